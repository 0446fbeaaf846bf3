//! Upsell and similar items on the real Superstore catalog: the invariants
//! hold for every product, and the ranking matches brute force.

use serde_json::{json, Value};

use crate::support::fixtures::{self, brute_force_scores, recall, tier_of, Metric, Product};
use crate::support::{Api, TestServer};

const K: usize = 10;

/// Checks one recommendation answer against the rows that may appear:
/// every hit eligible, min(k, eligible) hits, best first, and recall
/// against brute force by similarity to the anchor. Returns the recall.
fn check(
    what: &str,
    products: &[Product],
    anchor: usize,
    hits: &[Value],
    eligible: impl Fn(usize) -> bool,
) -> f64 {
    let base: Vec<Vec<f32>> = products.iter().map(|p| p.vector.clone()).collect();
    let count = (0..products.len()).filter(|i| eligible(*i)).count();
    assert_eq!(
        hits.len(),
        K.min(count),
        "{what} for {}: k hits unless fewer are eligible",
        products[anchor].id
    );
    let mut found = Vec::new();
    for hit in hits {
        let row = products
            .iter()
            .position(|p| p.id == hit["id"].as_str().unwrap())
            .expect("known id");
        assert!(row != anchor, "{what}: the anchor itself was returned");
        assert!(
            eligible(row),
            "{what} for {} ({} at {}): {} ({} at {}) is not eligible",
            products[anchor].id,
            products[anchor].category,
            products[anchor].price,
            products[row].id,
            products[row].category,
            products[row].price
        );
        assert_eq!(hit["price"].as_f64(), Some(products[row].price));
        assert_eq!(
            hit["category"].as_str(),
            Some(products[row].category.as_str())
        );
        assert_eq!(
            hit["price_tier"].as_u64(),
            Some(u64::from(tier_of(products, row)))
        );
        found.push(fixtures::score(Metric::Cosine, &base[anchor], &base[row]));
    }
    let scores: Vec<f32> = hits
        .iter()
        .map(|h| h["score"].as_f64().unwrap() as f32)
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "{what}: ranked by similarity"
    );
    let exact = brute_force_scores(Metric::Cosine, &base, &base[anchor], K, |i| {
        i != anchor && eligible(i)
    });
    recall(&found, &exact)
}

async fn post_hits(api: &Api, path: &str, body: Value) -> Vec<Value> {
    api.post_ok(path, body).await["hits"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsell_invariants_hold_for_every_superstore_product() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    fixtures::load_superstore(api, "store").await;
    let p = fixtures::superstore();
    let upsell = "/v1/catalogs/store/recommend/upsell";
    let (mut ratio_recall, mut tier_recall, mut with_hits) = (0.0, 0.0, 0);
    for a in 0..p.len() {
        // Defaults: same category, price in (anchor, 2 x anchor].
        let hits = post_hits(api, upsell, json!({"item_id": p[a].id, "k": K})).await;
        with_hits += usize::from(!hits.is_empty());
        ratio_recall += check("upsell", p, a, &hits, |i| {
            p[i].category == p[a].category
                && p[i].price > p[a].price
                && p[i].price <= 2.0 * p[a].price
        });
        // Tier mode: the next tier up, still strictly pricier.
        let hits = post_hits(
            api,
            upsell,
            json!({"item_id": p[a].id, "k": K, "tiers_up": 1}),
        )
        .await;
        let tier = tier_of(p, a);
        tier_recall += check("upsell tiers_up 1", p, a, &hits, |i| {
            p[i].category == p[a].category && tier_of(p, i) == tier + 1 && p[i].price > p[a].price
        });
    }
    let n = p.len() as f64;
    eprintln!(
        "upsell recall: ratio {:.4}, tier {:.4}; {with_hits} anchors with hits",
        ratio_recall / n,
        tier_recall / n
    );
    assert!(
        ratio_recall / n >= 0.99,
        "ratio-mode ranking matches brute force"
    );
    assert!(
        tier_recall / n >= 0.99,
        "tier-mode ranking matches brute force"
    );
    assert!(with_hits > p.len() / 2, "most products have an upsell");

    // Other departments allowed, narrower band, a request filter on top,
    // two tiers up: on every 7th product.
    for a in (0..p.len()).step_by(7) {
        let hits = post_hits(
            api,
            upsell,
            json!({"item_id": p[a].id, "k": K, "same_category": false, "min_price_ratio": 1.1,
                   "max_price_ratio": 1.5, "filter": {"in_stock": true}}),
        )
        .await;
        check("upsell any category", p, a, &hits, |i| {
            p[i].price > 1.1 * p[a].price && p[i].price <= 1.5 * p[a].price && i % 4 != 0
        });
        let hits = post_hits(
            api,
            upsell,
            json!({"item_id": p[a].id, "k": K, "tiers_up": 2}),
        )
        .await;
        let tier = tier_of(p, a);
        check("upsell tiers_up 2", p, a, &hits, |i| {
            p[i].category == p[a].category
                && (tier + 1..=tier + 2).contains(&tier_of(p, i))
                && p[i].price > p[a].price
        });
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_items_never_include_the_item_and_match_brute_force() {
    let dir = tempfile::tempdir().unwrap();
    // Threshold 0: every similar query goes through the graph.
    let server = TestServer::start_in(dir.path(), |s| s.index.exact_scan_threshold = 0).await;
    let api = &server.api;
    fixtures::load_superstore(api, "store").await;
    let p = fixtures::superstore();
    let similar = "/v1/catalogs/store/recommend/similar";
    let (mut total, mut filtered, mut n) = (0.0, 0.0, 0.0);
    for a in (0..p.len()).step_by(5) {
        let hits = post_hits(api, similar, json!({"item_id": p[a].id, "k": K})).await;
        total += check("similar", p, a, &hits, |i| i != a);
        let hits = post_hits(
            api,
            similar,
            json!({"item_id": p[a].id, "k": K, "filter": {"category": p[a].category.clone(), "exclude_ids": [p[(a + 1) % p.len()].id]}}),
        )
        .await;
        filtered += check("similar same category", p, a, &hits, |i| {
            i != a && p[i].category == p[a].category && i != (a + 1) % p.len()
        });
        n += 1.0;
    }
    eprintln!(
        "similar recall: {:.4}, same category {:.4}",
        total / n,
        filtered / n
    );
    assert!(total / n >= 0.95);
    assert!(filtered / n >= 0.95);
    server.stop().await;
}
