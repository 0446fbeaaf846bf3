//! Catalogs with learned vectors (#17): items come without vectors, and
//! their vectors are the collaborative model's item factors (iALS),
//! indexed by the same HNSW machinery, so similar, upsell and cross-sell
//! work from behaviour alone; an item without events is answered with
//! what is popular in its category.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{assert_error, ids, TestServer};

const C: &str = "/v1/catalogs/shop";

/// Two departments of six items each, and one newcomer nobody touched.
fn items() -> Vec<Value> {
    let mut out = Vec::new();
    for d in ["a", "b"] {
        for n in 0..6 {
            out.push(json!({"id": format!("{d}{n}"), "category": d,
                            "price": 10.0 + f64::from(n)}));
        }
    }
    out.push(json!({"id": "a-new", "category": "a", "price": 99.0}));
    out
}

/// 40 shoppers: the even ones buy four of department a's items, the odd
/// ones four of b's (rotating, so every pair of a department co-occurs),
/// one order each; a1 is the best seller of a.
fn events() -> Vec<Value> {
    let mut events = Vec::new();
    for u in 0..40 {
        let d = if u % 2 == 0 { "a" } else { "b" };
        let mut basket: Vec<usize> = (0..4).map(|k| (u / 2 + k) % 6).collect();
        if d == "a" && !basket.contains(&1) {
            basket[0] = 1;
        }
        for n in basket {
            events.push(
                json!({"user_id": format!("u{u}"), "item_id": format!("{d}{n}"),
                               "type": "purchase", "order_id": format!("o{u}"),
                               "timestamp": "2026-03-01T10:00:00Z"}),
            );
        }
    }
    events
}

async fn similar(api: &crate::support::Api, item: &str) -> Vec<Value> {
    let body = api
        .post_ok(
            &format!("{C}/recommend/similar"),
            json!({"item_id": item, "k": 5}),
        )
        .await;
    body["hits"].as_array().expect("hits").clone()
}

#[tokio::test]
async fn a_catalog_with_learned_vectors_serves_similar_items_from_events_alone() {
    let dir = tempfile::tempdir().unwrap();
    let manual = |s: &mut recstore::config::Settings| s.index.model_check_secs = 0;
    let server = TestServer::start_in(dir.path(), manual).await;
    let api = server.api.clone();

    // Learned vectors are compared by cosine; supplied ones need a dimension.
    assert_error(
        &api.put(C, json!({"vectors": "learned", "metric": "l2"}))
            .await,
        400,
        "invalid_argument",
        Some("metric"),
    );
    assert_error(
        &api.put(C, json!({"vectors": "learned", "dimension": 1000}))
            .await,
        400,
        "invalid_argument",
        Some("dimension"),
    );
    assert_error(
        &api.put(C, json!({})).await,
        400,
        "invalid_argument",
        Some("dimension"),
    );
    api.create_catalog("shop", json!({"vectors": "learned", "dimension": 8}))
        .await;
    let catalog = api.get_ok(C).await;
    assert_eq!(catalog["vectors"], "learned", "{catalog}");
    assert_eq!(catalog["dimension"], json!(8), "{catalog}");

    // An item with a vector is refused, naming the field; nothing is written.
    let refused = api
        .post(
            &format!("{C}/items"),
            json!({"items": [{"id": "x", "category": "a"}, {"id": "y", "vector": vec![1.0; 8]}]}),
        )
        .await;
    assert_error(&refused, 400, "invalid_argument", Some("items[1].vector"));
    assert_eq!(
        api.get(&format!("{C}/items/x")).await.0,
        StatusCode::NOT_FOUND
    );
    // A learned catalog cannot turn its model off.
    assert_error(
        &api.put(
            &format!("{C}/settings"),
            json!({"collaborative": {"enabled": false}}),
        )
        .await,
        400,
        "invalid_argument",
        Some("settings.collaborative.enabled"),
    );

    api.upsert_items("shop", &items()).await;
    // Before any training no item has a vector: similar answers with the
    // category's popular items (none have events yet: nothing to show).
    let catalog = api.get_ok(C).await;
    assert_eq!(
        catalog["counts"]["items_without_vectors"],
        json!(13),
        "{catalog}"
    );
    assert!(similar(&api, "a0").await.is_empty());

    api.post_ok(&format!("{C}/events"), json!({"events": events()}))
        .await;
    let trained = api.post_ok(&format!("{C}/model/train"), json!({})).await;
    assert_eq!(trained["model"]["factors"], json!(8), "{trained}");
    let catalog = api.get_ok(C).await;
    assert_eq!(
        catalog["counts"]["items_without_vectors"],
        json!(1),
        "only the newcomer: {catalog}"
    );

    // Neighbours in factor space are the department's other items.
    let mut answers = Vec::new();
    for anchor in ["a0", "b3"] {
        let hits = similar(&api, anchor).await;
        assert_eq!(hits.len(), 5, "{hits:?}");
        for hit in &hits {
            let id = hit["id"].as_str().unwrap();
            assert_eq!(id[..1], anchor[..1], "{anchor}: {hits:?}");
            assert_ne!(id, "a-new", "{hits:?}");
            assert_eq!(hit["reason"], "similar", "{hits:?}");
        }
        answers.push(ids(&hits));
    }
    // The newcomer has no factors: the popular items of its category.
    let hits = similar(&api, "a-new").await;
    assert!(!hits.is_empty());
    assert_eq!(hits[0]["id"], "a1", "the best seller first: {hits:?}");
    for hit in &hits {
        assert_eq!(hit["reason"], "trending", "{hits:?}");
        assert!(hit["id"].as_str().unwrap().starts_with('a'), "{hits:?}");
    }
    // Upsell from behaviour: pricier items of the same department.
    let body = api
        .post_ok(
            &format!("{C}/recommend/upsell"),
            json!({"item_id": "a0", "k": 3}),
        )
        .await;
    let up = body["hits"].as_array().unwrap();
    assert!(!up.is_empty(), "{body}");
    for hit in up {
        assert!(hit["id"].as_str().unwrap().starts_with('a'), "{body}");
        assert!(hit["price"].as_f64().unwrap() > 10.0, "{body}");
    }
    // Personal picks for an a-shopper come from department a.
    let body = api
        .post_ok(
            &format!("{C}/recommend/user"),
            json!({"user_id": "u0", "k": 2}),
        )
        .await;
    for hit in body["hits"].as_array().unwrap() {
        assert!(hit["id"].as_str().unwrap().starts_with('a'), "{body}");
    }
    // Re-upserting an item keeps its learned vector.
    api.upsert_items("shop", &items()[..1]).await;
    assert_eq!(ids(&similar(&api, "a0").await), answers[0]);
    let item = api.get_ok(&format!("{C}/items/a0?with_vector=true")).await;
    assert_eq!(item["vector"].as_array().map(Vec::len), Some(8), "{item}");

    // A restart rebuilds the index from the stored model's factors.
    server.stop().await;
    let server = TestServer::start_in(dir.path(), manual).await;
    let api = server.api.clone();
    let status = api.get_ok(&format!("{C}/model")).await;
    assert_eq!(
        status["trainings"],
        json!(0),
        "reloaded, not retrained: {status}"
    );
    assert_eq!(ids(&similar(&api, "a0").await), answers[0]);
    assert_eq!(ids(&similar(&api, "b3").await), answers[1]);
    server.stop().await;
}
