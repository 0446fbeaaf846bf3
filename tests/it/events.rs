//! `POST /events`: durable, deduplicated by `event_id`, unknown items kept
//! and reported, unknown users created; bad events get a 4xx naming the
//! field and nothing of the request is written.

use serde_json::{json, Value};

use crate::support::fixtures;
use crate::support::{assert_error, Api, TestServer};

async fn catalog_with_items(api: &Api) {
    api.create_catalog("store", json!({"dimension": 384, "metric": "cosine"}))
        .await;
    let p = fixtures::superstore();
    let items: Vec<Value> = (0..20).map(|i| p[i].to_item(i)).collect();
    api.upsert_items("store", &items).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_deduplicated_and_create_users() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    catalog_with_items(api).await;
    let p = fixtures::superstore();
    let answer = api
        .post_ok(
            "/v1/catalogs/store/events",
            json!({"events": [
                {"user_id": "u1", "item_id": p[0].id, "type": "view", "timestamp": "2026-11-24T10:00:00Z"},
                {"user_id": "u1", "item_id": "NOPE", "type": "click", "session_id": "s1"},
                {"user_id": "u2", "item_id": p[1].id, "type": "purchase", "event_id": "e1",
                 "order_id": "o9", "quantity": 2, "price": 19.99, "timestamp": "2026-11-24T11:00:00+01:00",
                 "recommendation_id": "r77"},
            ]}),
        )
        .await;
    assert_eq!(
        answer,
        json!({"accepted": 3, "duplicates": 0, "unknown_items": ["NOPE"], "new_users": ["u1", "u2"],
               "attributed": 0, "unattributed": 1})
    );
    let u1 = api.get_ok("/v1/catalogs/store/users/u1").await;
    assert_eq!(u1["vector"], Value::Null);
    // A known event id is a duplicate, also within one request.
    let again = api
        .post_ok(
            "/v1/catalogs/store/events",
            json!({"events": [
                {"user_id": "u2", "item_id": p[1].id, "type": "purchase", "event_id": "e1"},
                {"user_id": "u2", "item_id": p[2].id, "type": "add_to_cart", "event_id": "e2"},
                {"user_id": "u2", "item_id": p[2].id, "type": "add_to_cart", "event_id": "e2"},
            ]}),
        )
        .await;
    assert_eq!(
        again,
        json!({"accepted": 1, "duplicates": 2, "unknown_items": [], "new_users": [],
               "attributed": 0, "unattributed": 0})
    );
    server.stop().await;

    // Deduplication survives a restart.
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let after = server
        .api
        .post_ok(
            "/v1/catalogs/store/events",
            json!({"events": [{"user_id": "u2", "item_id": p[2].id, "type": "add_to_cart", "event_id": "e2"}]}),
        )
        .await;
    assert_eq!(after["duplicates"], 1, "{after}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_refused_whole_and_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    catalog_with_items(api).await;
    let p = fixtures::superstore();
    let good = json!({"user_id": "u-new", "item_id": p[0].id, "type": "view", "event_id": "g1"});
    let cases = [
        (
            json!({"user_id": "u", "item_id": "i", "type": "like"}),
            400,
            "malformed_json",
            "events[1].type",
        ),
        (
            json!({"item_id": "i", "type": "view"}),
            400,
            "malformed_json",
            "events[1]",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "timestamp": "yesterday"}),
            400,
            "invalid_argument",
            "events[1].timestamp",
        ),
        (
            json!({"user_id": "", "item_id": "i", "type": "view"}),
            400,
            "invalid_argument",
            "events[1].user_id",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "quantity": 0}),
            400,
            "invalid_argument",
            "events[1].quantity",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "price": -1}),
            400,
            "invalid_argument",
            "events[1].price",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "colour": "red"}),
            400,
            "unknown_field",
            "events[1].colour",
        ),
    ];
    for (bad, status, code, field) in cases {
        let response = api
            .post("/v1/catalogs/store/events", json!({"events": [good, bad]}))
            .await;
        assert_error(&response, status, code, Some(field));
    }
    let (status, body) = api
        .send_raw(
            reqwest::Method::POST,
            "/v1/catalogs/store/events",
            "application/json",
            b"{\"events\": [".to_vec(),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    // Nothing of the refused requests was written: no user, no event id.
    let (status, _) = api.get("/v1/catalogs/store/users/u-new").await;
    assert_eq!(status, 404);
    let answer = api
        .post_ok("/v1/catalogs/store/events", json!({"events": [good]}))
        .await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["duplicates"], 0);
    let (status, _) = api
        .post("/v1/catalogs/nope/events", json!({"events": [good]}))
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}
