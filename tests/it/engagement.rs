//! The engagement score over real HTTP (#19): every hit carries one, from
//! the prior until the catalog's own clicks train a model; the model
//! reports its quality on held-out hits, orders answers when asked (by a
//! request or an experiment arm) and survives a restart.
//!
//! The shoppers here click by a rule the features can see and similarity
//! alone cannot: an item cheaper than the one viewed is clicked seven
//! times as often, less so further down the list.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::support::fixtures::{self, superstore};
use crate::support::{assert_error, Api, Rng, TestServer};

const WINDOW_MS: i64 = 1_500;

async fn store(api: &Api) {
    api.create_catalog("store", json!({"dimension": 384, "metric": "cosine"}))
        .await;
    fixtures::load_superstore(api, "store").await;
}

fn hits(answer: &Value) -> Vec<Value> {
    answer["hits"].as_array().unwrap().clone()
}

/// `n` similar answers for users `u0..`, each hit clicked with
/// probability `0.35` (cheaper than the anchor) or `0.05`, times
/// `1 / (1 + 0.15 * position)`.
async fn shop(api: &Api, n: usize, seed: u64) {
    let products = superstore();
    let price: HashMap<&str, f64> = products.iter().map(|p| (p.id.as_str(), p.price)).collect();
    let mut rng = Rng::new(seed);
    let mut clicks = Vec::new();
    for r in 0..n {
        let anchor = &products[rng.below(products.len())];
        let user = format!("u{}", r % 97);
        let answer = api
            .post_ok(
                "/v1/catalogs/store/recommend/similar",
                json!({"item_id": anchor.id, "user_id": user, "k": 10}),
            )
            .await;
        let id = answer["recommendation_id"].as_str().unwrap().to_string();
        for (pos, h) in hits(&answer).iter().enumerate() {
            let item = h["id"].as_str().unwrap();
            let base = if price[item] < anchor.price {
                0.35
            } else {
                0.05
            };
            // `unit` is uniform in [-1, 1).
            let u = (f64::from(rng.unit()) + 1.0) / 2.0;
            if u < base / (1.0 + 0.15 * pos as f64) {
                clicks.push(json!({"user_id": user, "item_id": item, "type": "click", "recommendation_id": id}));
            }
        }
        // Sent at once, as a shop would: well within the window.
        if !clicks.is_empty() {
            let batch: Vec<Value> = std::mem::take(&mut clicks);
            api.post_ok("/v1/catalogs/store/events", json!({ "events": batch }))
                .await;
        }
    }
}

fn check_scores(answer: &Value, source: &str) {
    assert_eq!(answer["engagement_source"], json!(source), "{answer}");
    for h in hits(answer) {
        let p = h["engagement"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{answer}");
        assert_eq!(h["engagement_source"], json!(source));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_score_starts_as_the_prior_and_learns_from_the_shops_clicks() {
    let dir = tempfile::tempdir().unwrap();
    let tweak = |s: &mut recstore::config::Settings| {
        s.index.model_check_secs = 0;
        s.analytics.attribution_window_ms = WINDOW_MS;
    };
    let server = TestServer::start_in(dir.path(), tweak).await;
    let api = &server.api;
    store(api).await;
    let anchor = superstore()[5].id.clone();

    // The prior: every surface, falling with position.
    for (surface, body) in [
        ("similar", json!({"item_id": anchor, "k": 10})),
        (
            "upsell",
            json!({"item_id": anchor, "k": 5, "max_price_ratio": 100}),
        ),
        ("cross-sell", json!({"item_ids": [anchor], "k": 5})),
        ("user", json!({"user_id": "nobody", "k": 5})),
        ("trending", json!({"k": 5})),
    ] {
        let answer = api
            .post_ok(&format!("/v1/catalogs/store/recommend/{surface}"), body)
            .await;
        check_scores(&answer, "prior");
        assert_eq!(answer["rank_by"], json!("score"));
    }
    let prior = api
        .post_ok(
            "/v1/catalogs/store/recommend/similar",
            json!({"item_id": anchor, "k": 10}),
        )
        .await;
    let p: Vec<f64> = hits(&prior)
        .iter()
        .map(|h| h["engagement"].as_f64().unwrap())
        .collect();
    assert!(p.windows(2).all(|w| w[0] > w[1]), "{prior}");
    let model = api.get_ok("/v1/catalogs/store/engagement-model").await;
    assert_eq!(model["source"], json!("prior"), "{model}");
    assert!(model["quality"].is_null());

    // Too little feedback: the training says so and the prior stays.
    let trained = api
        .post_ok("/v1/catalogs/store/engagement-model/train", json!({}))
        .await;
    assert_eq!(trained["source"], json!("prior"));
    assert!(trained["not_enough"].as_str().is_some(), "{trained}");

    shop(api, 400, 1).await;
    api.put(
        "/v1/catalogs/store/settings",
        json!({"engagement": {"min_samples": 500, "min_positives": 50}}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(WINDOW_MS as u64 + 100)).await;
    let trained = api
        .post_ok("/v1/catalogs/store/engagement-model/train", json!({}))
        .await;
    assert_eq!(trained["source"], json!("model"), "{trained}");
    let q = &trained["quality"];
    let auc = q["auc"].as_f64().unwrap();
    let baseline = trained["baseline_auc"].as_f64().unwrap();
    assert!(
        auc > baseline + 0.05,
        "auc {auc} vs similarity-only {baseline}: {trained}"
    );
    assert!(
        q["expected_calibration_error"].as_f64().unwrap() < 0.08,
        "{trained}"
    );
    assert_eq!(q["reliability"].as_array().unwrap().len(), 10);
    assert!(
        q["log_loss"].as_f64().unwrap() < trained["prior_quality"]["log_loss"].as_f64().unwrap()
    );
    assert_eq!(trained["held_out"], q["samples"]);
    let features = trained["features"].as_array().unwrap();
    assert_eq!(features.len(), 22);
    let weight = |name: &str| {
        features.iter().find(|f| f["name"] == json!(name)).unwrap()["weight"]
            .as_f64()
            .unwrap()
    };
    // Cheaper than the anchor is what shoppers click.
    assert!(weight("price_vs_anchor") < -0.2, "{trained}");
    let m = crate::support::scrape_metrics(&api.url).await;
    let series = |name: &str| format!("recstore_{name}{{catalog=\"store\"}}");
    assert_eq!(crate::support::metric(&m, &series("engagement_model")), 1.0);
    assert_eq!(
        crate::support::metric(&m, &series("engagement_model_trainings")),
        2.0
    );
    let offsets = trained["position_offsets"].as_array().unwrap();
    assert_eq!(offsets[0], json!(0.0));

    // The model scores, and orders when asked.
    let answer = api
        .post_ok(
            "/v1/catalogs/store/recommend/similar",
            json!({"item_id": anchor, "k": 10}),
        )
        .await;
    check_scores(&answer, "model");
    let ranked = api
        .post_ok(
            "/v1/catalogs/store/recommend/similar",
            json!({"item_id": anchor, "k": 10, "rank_by": "engagement"}),
        )
        .await;
    check_scores(&ranked, "model");
    assert_eq!(ranked["rank_by"], json!("engagement"));
    // Ordered by the item part of the logit: the score's logit minus its
    // slot's offset never rises.
    let offsets: Vec<f64> = offsets.iter().map(|o| o.as_f64().unwrap()).collect();
    let item_logits: Vec<f64> = hits(&ranked)
        .iter()
        .enumerate()
        .map(|(slot, h)| {
            let p = h["engagement"].as_f64().unwrap();
            (p / (1.0 - p)).ln() - offsets[slot]
        })
        .collect();
    assert!(
        item_logits.windows(2).all(|w| w[0] >= w[1] - 1e-9),
        "{item_logits:?}: {ranked}"
    );
    // The same candidates, the same scores at the same slots, whatever
    // the order: rank_by changes only the order.
    assert_ne!(
        crate::support::ids(&hits(&ranked)),
        crate::support::ids(&hits(&answer)),
        "the model reorders this answer"
    );
    assert_error(
        &api.post(
            "/v1/catalogs/store/recommend/similar",
            json!({"item_id": anchor, "rank_by": "luck"}),
        )
        .await,
        400,
        "malformed_json",
        Some("rank_by"),
    );

    // An experiment arm can rank by it.
    let (status, body) = api
        .put(
            "/v1/catalogs/store/experiments/rank",
            json!({
                "surface": "similar", "unit": "user", "control": "control",
                "primary_metric": "ctr",
                "arms": [
                    {"name": "control", "weight": 1, "strategy": {"kind": "default"}},
                    {"name": "scored", "weight": 1, "strategy": {"kind": "default",
                        "settings": {"engagement": {"rank_by": "engagement"}}}}
                ]
            }),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let mut seen = HashMap::new();
    for u in 0..40 {
        let a = api
            .post_ok(
                "/v1/catalogs/store/recommend/similar",
                json!({"item_id": anchor, "user_id": format!("x{u}"), "k": 10}),
            )
            .await;
        let arm = a["experiment"]["arm"].as_str().unwrap().to_string();
        let by = a["rank_by"].as_str().unwrap().to_string();
        assert_eq!(
            by,
            if arm == "scored" {
                "engagement"
            } else {
                "score"
            },
            "{a}"
        );
        seen.insert(arm, by);
    }
    assert_eq!(seen.len(), 2, "both arms served");

    // The model and its watermark survive a restart.
    let before = api.get_ok("/v1/catalogs/store/engagement-model").await;
    server.stop().await;
    let server = TestServer::start_in(dir.path(), tweak).await;
    let after = server
        .api
        .get_ok("/v1/catalogs/store/engagement-model")
        .await;
    assert_eq!(after["source"], json!("model"));
    assert_eq!(after["features"], before["features"]);
    assert_eq!(after["last_trained"], before["last_trained"]);
    assert_eq!(after["watermark"], before["watermark"]);
    server.stop().await;
}
