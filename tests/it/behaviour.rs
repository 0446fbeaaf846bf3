//! What events change, over HTTP, with the real Superstore orders replayed
//! as purchase events: cross-sell statistics against counts computed here
//! independently, purchased items never recommended, one add_to_cart
//! changing the very next answer, cold start, preferences, settings.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::support::fixtures::{self, data_path};
use crate::support::{assert_error, ids, Api, TestServer};

/// One order line of tests/data/orders.csv.
struct Line {
    order: String,
    customer: String,
    date: String,
    product: String,
}

fn orders() -> Vec<Line> {
    let mut reader = csv::Reader::from_path(data_path("orders.csv")).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            Line {
                order: r[0].to_string(),
                customer: r[1].to_string(),
                date: r[2].to_string(),
                product: r[3].to_string(),
            }
        })
        .collect()
}

async fn store_with_products(api: &Api) {
    api.create_catalog("store", json!({"dimension": 384, "metric": "cosine"}))
        .await;
    fixtures::load_superstore(api, "store").await;
}

/// Posts every order line as a purchase event (in file order: the store
/// must not depend on arrival order).
async fn replay_orders(api: &Api, lines: &[Line]) {
    for chunk in lines.chunks(500) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|l| {
                json!({"user_id": l.customer, "item_id": l.product, "type": "purchase",
                       "order_id": l.order, "timestamp": format!("{}T12:00:00Z", l.date)})
            })
            .collect();
        let answer = api
            .post_ok("/v1/catalogs/store/events", json!({ "events": events }))
            .await;
        assert_eq!(answer["accepted"], chunk.len(), "{answer}");
    }
}

async fn recommend(api: &Api, kind: &str, body: Value) -> Value {
    let answer = api
        .post_ok(&format!("/v1/catalogs/store/recommend/{kind}"), body)
        .await;
    assert!(
        answer["recommendation_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("r-")),
        "{answer}"
    );
    answer
}

fn hits(answer: &Value) -> Vec<Value> {
    answer["hits"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_orders_give_exact_cross_sell_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    store_with_products(api).await;
    let lines = orders();
    replay_orders(api, &lines).await;

    // Independent counts: baskets are orders; an item counts once each.
    let mut baskets: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for l in &lines {
        baskets.entry(&l.order).or_default().insert(&l.product);
    }
    let n = baskets.len() as f64;
    let mut with: HashMap<&str, f64> = HashMap::new();
    let mut pairs: HashMap<(&str, &str), f64> = HashMap::new();
    for items in baskets.values() {
        for a in items {
            *with.entry(a).or_default() += 1.0;
            for b in items {
                if a != b {
                    *pairs.entry((a, b)).or_default() += 1.0;
                }
            }
        }
    }
    // The items with the most distinct partners make the strongest test.
    let mut anchors: Vec<&str> = with.keys().copied().collect();
    anchors.sort_by_key(|a| {
        (
            std::cmp::Reverse(pairs.keys().filter(|(x, _)| x == a).count()),
            *a,
        )
    });
    let category: HashMap<&str, &str> = fixtures::superstore()
        .iter()
        .map(|p| (p.id.as_str(), p.category.as_str()))
        .collect();
    let mut checked = 0;
    for anchor in anchors.iter().take(5) {
        let partners: BTreeSet<&str> = pairs
            .keys()
            .filter(|(x, _)| x == anchor)
            .map(|(_, b)| *b)
            .collect();
        assert!(!partners.is_empty());
        let answer = recommend(api, "cross-sell", json!({"item_ids": [anchor], "k": 100})).await;
        let got = hits(&answer);
        let mut seen = BTreeSet::new();
        let mut last_confidence = f64::INFINITY;
        let mut complementary_started = false;
        let mut collaborative_started = false;
        for hit in &got {
            let id = hit["id"].as_str().unwrap();
            assert_ne!(id, *anchor, "never the cart's own item");
            match hit["reason"].as_str().unwrap() {
                "bought_together" => {
                    assert!(
                        !complementary_started && !collaborative_started,
                        "bought-together hits come first"
                    );
                    let e = &hit["evidence"];
                    let together = pairs[&(*anchor, id)];
                    let confidence = together / with[anchor];
                    let lift = confidence / (with[id] / n);
                    assert_eq!(e["with"], json!(anchor));
                    assert_eq!(e["together"].as_f64().unwrap(), together);
                    let close = |field: &str, want: f64| {
                        let v = e[field].as_f64().unwrap();
                        assert!(
                            (v - want).abs() <= 1e-9 * want.max(1.0),
                            "{field} {v} vs {want}"
                        );
                    };
                    close("support", together / n);
                    close("confidence", confidence);
                    close("lift", lift);
                    assert!(
                        confidence <= last_confidence + 1e-12,
                        "ranked by confidence"
                    );
                    last_confidence = confidence;
                    seen.insert(id);
                    checked += 1;
                }
                // The collaborative model's neighbours of the cart (#17)
                // come next, citing the cart item.
                "collaborative" => {
                    assert!(!complementary_started, "before complementary hits");
                    collaborative_started = true;
                    assert_eq!(hit["model_evidence"]["with"], json!(anchor));
                }
                "complementary" => {
                    complementary_started = true;
                    assert_ne!(
                        category[id], category[anchor],
                        "complements come from other categories"
                    );
                }
                other => panic!("unexpected reason {other}"),
            }
        }
        // Every partner with a lift of at least 1 (the default) is there.
        let expected: BTreeSet<&str> = partners
            .iter()
            .copied()
            .filter(|b| (pairs[&(*anchor, *b)] / with[anchor]) / (with[b] / n) >= 1.0)
            .collect();
        assert_eq!(seen, expected, "anchor {anchor}");
        assert_eq!(got.len(), 100, "complements fill the rest");
    }
    assert!(checked >= 10, "only {checked} pairs checked");

    // A cart of two items: neither comes back, and the thresholds apply.
    let cart = [anchors[0], anchors[1]];
    let answer = recommend(api, "cross-sell", json!({"item_ids": cart, "k": 20})).await;
    for hit in hits(&answer) {
        assert!(!cart.contains(&hit["id"].as_str().unwrap()));
    }
    api.put(
        "/v1/catalogs/store/settings",
        json!({"cross_sell": {"min_together": 2, "min_lift": 1.0}}),
    )
    .await;
    let answer = recommend(
        api,
        "cross-sell",
        json!({"item_ids": [anchors[0]], "k": 100}),
    )
    .await;
    for hit in hits(&answer) {
        if hit["reason"] == "bought_together" {
            assert!(hit["evidence"]["together"].as_u64().unwrap() >= 2, "{hit}");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchased_items_never_come_back_and_one_event_changes_the_next_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    store_with_products(api).await;
    let lines = orders();
    replay_orders(api, &lines).await;
    let mut bought: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for l in &lines {
        bought.entry(&l.customer).or_default().insert(&l.product);
    }
    // The customers who bought most, asked for many picks, as of the end
    // of the history and as of now; also through similar, upsell and
    // cross-sell with their user id.
    let mut customers: Vec<(&str, usize)> = bought.iter().map(|(c, b)| (*c, b.len())).collect();
    customers.sort_by_key(|(c, n)| (std::cmp::Reverse(*n), *c));
    for (customer, _) in customers.iter().take(8) {
        let theirs = &bought[customer];
        for at in [Some("2020-12-31T00:00:00Z"), None] {
            let mut body = json!({"user_id": customer, "k": 200});
            if let Some(at) = at {
                body["at"] = json!(at);
            }
            let got = hits(&recommend(api, "user", body).await);
            assert_eq!(got.len(), 200);
            for hit in &got {
                let id = hit["id"].as_str().unwrap();
                assert!(!theirs.contains(id), "{customer} bought {id}");
                assert!(["profile", "recent_activity", "trending"]
                    .contains(&hit["reason"].as_str().unwrap()));
            }
        }
        let anchor = theirs.iter().next().unwrap();
        for (kind, body) in [
            (
                "similar",
                json!({"item_id": anchor, "user_id": customer, "k": 100}),
            ),
            (
                "upsell",
                json!({"item_id": anchor, "user_id": customer, "k": 50, "max_price_ratio": 100.0}),
            ),
            (
                "cross-sell",
                json!({"item_ids": [anchor], "user_id": customer, "k": 100}),
            ),
        ] {
            for hit in hits(&recommend(api, kind, body).await) {
                let id = hit["id"].as_str().unwrap();
                assert!(!theirs.contains(id), "{kind}: {customer} bought {id}");
            }
        }
    }

    // A shopper browsing bookcases, then one add_to_cart of a phone.
    let p = fixtures::superstore();
    let of = |cat: &str| -> Vec<usize> { (0..p.len()).filter(|&i| p[i].category == cat).collect() };
    let (bookcases, phones) = (of("Bookcases"), of("Phones"));
    let views: Vec<Value> = bookcases[..3]
        .iter()
        .map(|&i| json!({"user_id": "shopper", "item_id": p[i].id, "type": "view", "session_id": "s1"}))
        .collect();
    api.post_ok("/v1/catalogs/store/events", json!({ "events": views }))
        .await;
    let ask = json!({"user_id": "shopper", "k": 10});
    let before = hits(&recommend(api, "user", ask.clone()).await);
    let phones_in = |hits: &[Value]| hits.iter().filter(|h| h["category"] == "Phones").count();
    assert!(phones_in(&before) <= 1, "{:?}", ids(&before));
    assert!(before.iter().any(|h| h["reason"] == "recent_activity"));
    api.post_ok(
        "/v1/catalogs/store/events",
        json!({"events": [{"user_id": "shopper", "item_id": p[phones[0]].id, "type": "add_to_cart", "session_id": "s1"}]}),
    )
    .await;
    let after = hits(&recommend(api, "user", ask).await);
    assert_ne!(ids(&before), ids(&after));
    assert!(
        phones_in(&after) >= 2 && phones_in(&after) > phones_in(&before),
        "the cart's phone pulls phones in: {:?}",
        ids(&after)
    );
    // The cart item is left out of cross-sell for that shopper.
    let cross = hits(
        &recommend(
            api,
            "cross-sell",
            json!({"item_ids": [p[bookcases[0]].id], "user_id": "shopper", "k": 1000,
                   "filter": {"category": "Phones"}}),
        )
        .await,
    );
    // (Every other phone comes back, so only the exclusion keeps it out.)
    assert_eq!(cross.len(), phones.len() - 1);
    assert!(!ids(&cross).contains(&p[phones[0]].id));
    // Carted and not bought: left out of personal picks by default
    // (`exclude_seen`, #17)...
    let seen = ids(&hits(
        &recommend(api, "user", json!({"user_id": "shopper", "k": 100})).await,
    ));
    assert!(!seen.contains(&p[phones[0]].id));
    // ...shown when the shop wants "still interested?" picks...
    let (status, body) = api
        .put(
            "/v1/catalogs/store/settings",
            json!({"exclude_seen": false}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    // ...and buying it takes it out whatever that setting says.
    let before_buy = ids(&hits(
        &recommend(api, "user", json!({"user_id": "shopper", "k": 100})).await,
    ));
    assert!(before_buy.contains(&p[phones[0]].id));
    api.post_ok(
        "/v1/catalogs/store/events",
        json!({"events": [{"user_id": "shopper", "item_id": p[phones[0]].id, "type": "purchase", "session_id": "s1"}]}),
    )
    .await;
    let after_buy = ids(&hits(
        &recommend(api, "user", json!({"user_id": "shopper", "k": 100})).await,
    ));
    assert!(!after_buy.contains(&p[phones[0]].id));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_is_trending_and_preferences_act_as_default_filters() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    store_with_products(api).await;
    // No events yet: nothing is trending, so a cold start has no picks.
    let empty = recommend(api, "user", json!({"user_id": "nobody"})).await;
    assert_eq!(hits(&empty).len(), 0);
    let lines = orders();
    replay_orders(api, &lines).await;
    // Purchases per item, the newest date each: trending ranks by decayed
    // counts, so check the order against an exact recomputation.
    let p = fixtures::superstore();
    let category: HashMap<&str, &str> = p
        .iter()
        .map(|x| (x.id.as_str(), x.category.as_str()))
        .collect();
    let at_ms = |date: &str| {
        let t = time::OffsetDateTime::parse(
            &format!("{date}T12:00:00Z"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        (t.unix_timestamp() * 1000) as f64
    };
    let now = at_ms("2021-01-01") - 12.0 * 3_600_000.0;
    let half_life = 30.0 * 86_400_000.0;
    let mut popularity: HashMap<&str, f64> = HashMap::new();
    for l in &lines {
        *popularity.entry(&l.product).or_default() +=
            8.0 * (-(now - at_ms(&l.date)) / half_life).exp2();
    }
    let body = json!({"user_id": "nobody", "k": 10, "filter": {"category": "Phones"},
                      "at": "2021-01-01T00:00:00Z"});
    let got = hits(&recommend(api, "user", body.clone()).await);
    let mut want: Vec<(&str, f64)> = popularity
        .iter()
        .filter(|(id, _)| category[*id] == "Phones")
        .map(|(id, s)| (*id, *s))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    assert_eq!(got.len(), 10);
    for (hit, (id, score)) in got.iter().zip(&want) {
        assert_eq!(hit["reason"], "trending");
        assert_eq!(hit["category"], "Phones");
        assert_eq!(hit["id"], json!(id));
        let s = hit["score"].as_f64().unwrap();
        assert!((s - score).abs() <= 1e-4 * score, "{s} vs {score}");
    }
    // The trending endpoint agrees.
    let trending = hits(
        &recommend(
            api,
            "trending",
            json!({"k": 10, "filter": {"category": "Phones"}, "at": "2021-01-01T00:00:00Z"}),
        )
        .await,
    );
    assert_eq!(ids(&trending), ids(&got));

    // Preferences in the user's attributes filter by default; an explicit
    // filter on the same field wins.
    api.post_ok(
        "/v1/catalogs/store/users",
        json!({"users": [{"id": "picky", "attributes": {"preferences": {"categories": ["Chairs"], "max_price": 200}}}]}),
    )
    .await;
    for kind in ["user", "trending"] {
        let got = hits(&recommend(api, kind, json!({"user_id": "picky", "k": 20})).await);
        assert_eq!(got.len(), 20);
        for hit in &got {
            assert_eq!(hit["category"], "Chairs", "{kind}");
            assert!(hit["price"].as_f64().unwrap() <= 200.0);
        }
        let got = hits(
            &recommend(
                api,
                kind,
                json!({"user_id": "picky", "k": 20, "filter": {"category": "Tables"}}),
            )
            .await,
        );
        for hit in &got {
            assert_eq!(hit["category"], "Tables");
            assert!(
                hit["price"].as_f64().unwrap() <= 200.0,
                "price still preferred"
            );
        }
    }
    let bookcase = p.iter().find(|x| x.category == "Bookcases").unwrap();
    for hit in hits(
        &recommend(
            api,
            "similar",
            json!({"item_id": bookcase.id, "user_id": "picky", "k": 5}),
        )
        .await,
    ) {
        assert_eq!(hit["category"], "Chairs");
    }
    // Bad preferences are refused when the user is written.
    let bad = api
        .post(
            "/v1/catalogs/store/users",
            json!({"users": [{"id": "x", "attributes": {"preferences": {"max_price": "cheap"}}}]}),
        )
        .await;
    assert_error(
        &bad,
        400,
        "invalid_argument",
        Some("users[0].attributes.preferences.max_price"),
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_validated_persisted_and_change_rankings() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    store_with_products(api).await;
    let defaults = api.get_ok("/v1/catalogs/store/settings").await;
    assert_eq!(
        defaults["event_weights"],
        json!({"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0,
               "rating": 4.0, "dislike": 4.0, "own": 8.0, "return": 4.0})
    );
    assert_eq!(defaults["session_half_life_secs"], 1800.0);
    assert_eq!(defaults["long_term_half_life_secs"], 2_592_000.0);
    assert_eq!(defaults["purchase_exclusion_secs"], Value::Null);
    for (body, field) in [
        (
            json!({"session_half_life_secs": 0}),
            "settings.session_half_life_secs",
        ),
        (
            json!({"event_weights": {"view": -1, "click": 1, "add_to_cart": 1, "purchase": 1}}),
            "settings.event_weights.view",
        ),
        (json!({"profile_events": 0}), "settings.profile_events"),
        (
            json!({"cross_sell": {"min_together": 0, "min_lift": 1}}),
            "settings.cross_sell.min_together",
        ),
        (
            json!({"purchase_exclusion_secs": -5}),
            "settings.purchase_exclusion_secs",
        ),
    ] {
        let answer = api.put("/v1/catalogs/store/settings", body).await;
        assert_error(&answer, 400, "invalid_argument", Some(field));
    }
    let unknown = api
        .put("/v1/catalogs/store/settings", json!({"colour": 1}))
        .await;
    assert_eq!(unknown.0.as_u16(), 400);
    // serde would fill a struct from an array by position: `[60]` would set
    // the first field. A body is an object or nothing.
    for body in [json!([]), json!([60]), json!(60), json!("x")] {
        let answer = api.put("/v1/catalogs/store/settings", body).await;
        assert_error(&answer, 400, "malformed_json", Some("body"));
        assert!(
            answer.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("JSON object"),
            "{}",
            answer.1
        );
    }
    assert_eq!(
        api.get_ok("/v1/catalogs/store/settings").await,
        defaults,
        "nothing written"
    );

    // An exclusion window of one day: an old purchase is recommended again.
    let p = fixtures::superstore();
    api.post_ok(
        "/v1/catalogs/store/events",
        json!({"events": [
            {"user_id": "u", "item_id": p[0].id, "type": "purchase", "timestamp": "2026-01-01T00:00:00Z"},
            {"user_id": "u", "item_id": p[1].id, "type": "view", "timestamp": "2026-01-01T00:00:00Z"},
        ]}),
    )
    .await;
    let ask = json!({"user_id": "u", "k": 50, "filter": {"category": p[0].category}});
    assert!(!ids(&hits(&recommend(api, "user", ask.clone()).await)).contains(&p[0].id));
    let changed = api
        .put(
            "/v1/catalogs/store/settings",
            json!({"purchase_exclusion_secs": 86400}),
        )
        .await;
    assert_eq!(changed.0.as_u16(), 200, "{}", changed.1);
    assert_eq!(changed.1["purchase_exclusion_secs"], 86400.0);
    assert_eq!(changed.1["session_half_life_secs"], 1800.0, "others kept");
    assert!(ids(&hits(&recommend(api, "user", ask.clone()).await)).contains(&p[0].id));
    server.stop().await;
    // Settings survive a restart.
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let after = server.api.get_ok("/v1/catalogs/store/settings").await;
    assert_eq!(after["purchase_exclusion_secs"], 86400.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_recommendation_requests_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    store_with_products(api).await;
    let p = fixtures::superstore();
    for (kind, body, status, code, field) in [
        ("user", json!({"k": 5}), 400, "malformed_json", None),
        (
            "user",
            json!({"user_id": ""}),
            400,
            "invalid_argument",
            Some("user_id"),
        ),
        (
            "user",
            json!({"user_id": "u", "k": 0}),
            400,
            "invalid_argument",
            Some("k"),
        ),
        (
            "user",
            json!({"user_id": "u", "at": "yesterday"}),
            400,
            "invalid_argument",
            Some("at"),
        ),
        (
            "cross-sell",
            json!({"item_ids": []}),
            400,
            "invalid_argument",
            Some("item_ids"),
        ),
        (
            "cross-sell",
            json!({"item_ids": [""]}),
            400,
            "invalid_argument",
            Some("item_ids[0]"),
        ),
        (
            "cross-sell",
            json!({"item_ids": ["NOPE"]}),
            404,
            "item_not_found",
            None,
        ),
        (
            "cross-sell",
            json!({"item_ids": [p[0].id], "filter": {"price": {}}}),
            400,
            "invalid_argument",
            Some("filter.price"),
        ),
        (
            "similar",
            json!({"item_id": p[0].id, "user_id": ""}),
            400,
            "invalid_argument",
            Some("user_id"),
        ),
        (
            "trending",
            json!({"k": 5000}),
            400,
            "invalid_argument",
            Some("k"),
        ),
    ] {
        let answer = api
            .post(
                &format!("/v1/catalogs/store/recommend/{kind}"),
                body.clone(),
            )
            .await;
        assert_error(&answer, status, code, field);
    }
    server.stop().await;
}

/// Upsell for a user blends their taste into the ranking: an item that is
/// the user's own vector climbs; without a user the order is similarity
/// to the anchor alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsell_for_a_user_blends_their_taste() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    store_with_products(api).await;
    let p = fixtures::superstore();
    // The cheapest chair has many pricier chairs above it.
    let anchor = p
        .iter()
        .filter(|x| x.category == "Chairs")
        .min_by(|a, b| a.price.total_cmp(&b.price))
        .unwrap();
    let ask = json!({"item_id": anchor.id, "k": 10, "max_price_ratio": 100.0});
    let plain = ids(&hits(&recommend(api, "upsell", ask.clone()).await));
    assert_eq!(plain.len(), 10);
    let last = plain[9].clone();
    let taste = p.iter().find(|x| x.id == last).unwrap();
    api.post_ok(
        "/v1/catalogs/store/users",
        json!({"users": [{"id": "fan", "vector": taste.vector}]}),
    )
    .await;
    let mut with_user = ask.clone();
    with_user["user_id"] = json!("fan");
    let personal = ids(&hits(&recommend(api, "upsell", with_user).await));
    let rank = personal.iter().position(|id| *id == last);
    assert!(
        rank.is_some_and(|r| r < 9),
        "the user's favourite climbs: {plain:?} -> {personal:?}"
    );
    // Every hit is still a pricier chair.
    for hit in hits(
        &recommend(
            api,
            "upsell",
            json!({"item_id": anchor.id, "k": 10, "user_id": "fan", "max_price_ratio": 100.0}),
        )
        .await,
    ) {
        assert_eq!(hit["category"], "Chairs");
        assert!(hit["price"].as_f64().unwrap() > anchor.price);
    }
    // With the affinity weight at 0 the user changes nothing.
    api.put("/v1/catalogs/store/settings", json!({"upsell_affinity": 0}))
        .await;
    let mut again = ask.clone();
    again["user_id"] = json!("fan");
    assert_eq!(ids(&hits(&recommend(api, "upsell", again).await)), plain);
    server.stop().await;
}
