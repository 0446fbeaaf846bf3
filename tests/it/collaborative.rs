//! The collaborative model (#17): learned from the events, used by personal
//! picks and cross-sell, persisted and reloaded, retrained when missing,
//! and the very next request after an event reflects it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{ids, TestServer};

const C: &str = "/v1/catalogs/shop";

/// Twelve items whose *content* misleads: the p-items sit far apart in
/// vector space, and each has a decoy right next to it that nobody uses.
fn items() -> Vec<Value> {
    let v = |i: usize| {
        let mut v = vec![0.01f32; 8];
        v[i % 8] = 1.0;
        v
    };
    let mut out = Vec::new();
    for (n, id) in ["p1", "p2", "p3", "q1", "q2", "q3"].iter().enumerate() {
        out.push(json!({"id": id, "vector": v(n), "price": 10.0, "category": format!("c{n}")}));
        // The decoy: nearly the same vector, never interacted with.
        let mut d = v(n);
        d[(n + 1) % 8] = 0.2;
        out.push(json!({"id": format!("decoy-{id}"), "vector": d, "price": 10.0, "category": format!("c{n}")}));
    }
    out
}

/// Views only (no baskets, so no bought-together evidence): ten users
/// view all of p1..p3, ten all of q1..q3.
fn group_events() -> Vec<Value> {
    let mut events = Vec::new();
    for u in 0..10 {
        for p in ["p1", "p2", "p3"] {
            events.push(
                json!({"user_id": format!("a{u}"), "item_id": p, "type": "view",
                               "timestamp": "2026-01-01T00:00:00Z"}),
            );
        }
        for q in ["q1", "q2", "q3"] {
            events.push(
                json!({"user_id": format!("b{u}"), "item_id": q, "type": "view",
                               "timestamp": "2026-01-01T00:00:00Z"}),
            );
        }
    }
    events
}

async fn picks(api: &crate::support::Api, user: &str) -> Vec<Value> {
    let body = api
        .post_ok(
            &format!("{C}/recommend/user"),
            json!({"user_id": user, "k": 4, "at": "2026-01-02T00:00:00Z"}),
        )
        .await;
    body["hits"].as_array().expect("hits").clone()
}

async fn wait_for_model(api: &crate::support::Api) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = api.get_ok(&format!("{C}/model")).await;
        if status.get("model").is_some() {
            return status;
        }
        assert!(Instant::now() < deadline, "no model in time: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn personal_picks_and_cross_sell_use_the_learned_model_which_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // No automatic training: this test trains when it says so.
    let manual = |s: &mut recstore::config::Settings| s.index.model_check_secs = 0;
    let server = TestServer::start_in(dir.path(), manual).await;
    let api = server.api.clone();
    api.create_catalog("shop", json!({"dimension": 8})).await;
    api.upsert_items("shop", &items()).await;
    api.post_ok(&format!("{C}/events"), json!({"events": group_events()}))
        .await;
    let before = api.get_ok(&format!("{C}/model")).await;
    assert_eq!(before["events"], json!(60), "{before}");
    assert!(before.get("model").is_none(), "{before}");

    let trained = api.post_ok(&format!("{C}/model/train"), json!({})).await;
    let model = &trained["model"];
    assert_eq!(model["kind"], "ease", "{trained}");
    assert_eq!(model["items"], json!(6));
    assert_eq!(model["users"], json!(20));
    assert_eq!(model["events"], json!(60));
    assert_eq!(trained["events_since_training"], json!(0));

    // A shopper who viewed p1: p2 and p3 come first, from the model, not
    // p1's decoys (which content alone would pick).
    api.post_ok(
        &format!("{C}/events"),
        json!({"events": [{"user_id": "u", "item_id": "p1", "type": "view",
                           "timestamp": "2026-01-01T12:00:00Z"}]}),
    )
    .await;
    let hits = picks(&api, "u").await;
    let mut top2 = ids(&hits[..2]);
    top2.sort();
    assert_eq!(top2, ["p2", "p3"], "{hits:?}");
    assert!(
        hits[..2].iter().any(|h| h["reason"] == "collaborative"),
        "{hits:?}"
    );

    // The very next request after an event reflects it, without
    // retraining: after a view of q1, q2 and q3 join the picks.
    api.post_ok(
        &format!("{C}/events"),
        json!({"events": [{"user_id": "u", "item_id": "q1", "type": "view",
                           "timestamp": "2026-01-01T23:00:00Z"}]}),
    )
    .await;
    let hits = picks(&api, "u").await;
    let got = ids(&hits);
    assert!(
        got.contains(&"q2".to_string()) && got.contains(&"q3".to_string()),
        "{hits:?}"
    );

    // Cross-sell: no baskets, so the model's neighbours of the cart come
    // first, citing the cart item.
    let body = api
        .post_ok(
            &format!("{C}/recommend/cross-sell"),
            json!({"item_ids": ["q2"], "k": 2}),
        )
        .await;
    let hits = body["hits"].as_array().unwrap();
    let mut got = ids(hits);
    got.sort();
    assert_eq!(got, ["q1", "q3"], "{body}");
    for h in hits {
        assert_eq!(h["reason"], "collaborative", "{body}");
        assert_eq!(h["model_evidence"]["with"], "q2", "{body}");
    }

    // Restart: the model is reloaded, not retrained.
    let trained_at = model["trained_at"].clone();
    server.stop().await;
    let server = TestServer::start_in(dir.path(), manual).await;
    let api = server.api.clone();
    let status = api.get_ok(&format!("{C}/model")).await;
    assert_eq!(status["model"]["trained_at"], trained_at, "{status}");
    assert_eq!(status["trainings"], json!(0), "{status}");
    assert_eq!(status["events_since_training"], json!(2), "{status}");
    server.stop().await;

    // Missing (deleted, or damaged: both are read as "no model"): the
    // background trainer rebuilds it from the events.
    let models = dir.path().join("models");
    let catalog_dir = std::fs::read_dir(&models).unwrap().next().unwrap().unwrap();
    std::fs::write(catalog_dir.path().join("collaborative.bin"), b"garbage").unwrap();
    let server = TestServer::start_in(dir.path(), |s| s.index.model_check_secs = 1).await;
    let api = server.api.clone();
    let status = wait_for_model(&api).await;
    assert_eq!(status["model"]["events"], json!(62), "{status}");
    assert_eq!(status["model"]["users"], json!(21), "{status}");
    server.stop().await;
}

#[tokio::test]
async fn the_model_retrains_in_the_background_and_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| s.index.model_check_secs = 1).await;
    let api = server.api.clone();
    api.create_catalog("shop", json!({"dimension": 8})).await;
    api.upsert_items("shop", &items()).await;
    // Retrain after 1 quiet second instead of 5.
    let (status, body) = api
        .put(
            &format!("{C}/settings"),
            json!({"collaborative": {"retrain_quiet_secs": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["collaborative"]["retrain_quiet_secs"], json!(1.0));
    assert_eq!(body["blend"]["collaborative"], json!(3.0), "{body}");
    api.post_ok(&format!("{C}/events"), json!({"events": group_events()}))
        .await;
    let status = wait_for_model(&api).await;
    assert_eq!(status["model"]["events"], json!(60), "{status}");

    // Turned off: no model is used or shown, and picks fall back to
    // content and popularity.
    let (code, body) = api
        .put(
            &format!("{C}/settings"),
            json!({"collaborative": {"enabled": false}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let status = api.get_ok(&format!("{C}/model")).await;
    assert_eq!(status["enabled"], json!(false));
    assert!(status.get("model").is_none(), "{status}");
    api.post_ok(
        &format!("{C}/events"),
        json!({"events": [{"user_id": "u", "item_id": "p1", "type": "view",
                           "timestamp": "2026-01-01T12:00:00Z"}]}),
    )
    .await;
    for hit in picks(&api, "u").await {
        assert_ne!(hit["reason"], "collaborative", "{hit}");
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_collaborative_settings_name_their_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = server.api.clone();
    api.create_catalog("shop", json!({"dimension": 8})).await;
    let before = api.get_ok(&format!("{C}/settings")).await;
    for (body, field) in [
        (
            json!({"collaborative": {"neighbours": 0}}),
            "settings.collaborative.neighbours",
        ),
        (
            json!({"collaborative": {"ease_lambda": 0}}),
            "settings.collaborative.ease_lambda",
        ),
        (
            json!({"collaborative": {"ease_max_items": 20001}}),
            "settings.collaborative.ease_max_items",
        ),
        (
            json!({"collaborative": {"retrain_share": -1}}),
            "settings.collaborative.retrain_share",
        ),
        (
            json!({"collaborative": {"half_life_secs": 0}}),
            "settings.collaborative.half_life_secs",
        ),
        (
            json!({"blend": {"session": 1, "long_term": 1, "user_vector": 1, "popularity": 1,
                          "category": 1, "collaborative": -1}}),
            "settings.blend.collaborative",
        ),
    ] {
        let (status, err) = api.put(&format!("{C}/settings"), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    let (status, err) = api
        .put(
            &format!("{C}/settings"),
            json!({"collaborative": {"nope": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(api.get_ok(&format!("{C}/settings")).await, before);
    let (status, err) = api.post("/v1/catalogs/nope/model/train", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    server.stop().await;
}
