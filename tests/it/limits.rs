//! Limits: batch size, load shedding (503 `overloaded` + Retry-After) and
//! the request deadline (503 `timeout`), with health probes exempt.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{assert_error, Rng, TestServer};

/// Opens a connection and sends a POST whose body never completes: the
/// server holds one request slot for it until the socket closes.
async fn stalled_post(url: &str, path: &str) -> TcpStream {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n{{\"items\": ["
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

/// Whether the server has answered (or closed) a stalled request.
async fn answered(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    // A stalled request gets no byte back: the read waits out the timeout.
    tokio::time::timeout(Duration::from_millis(5), stream.peek(&mut byte))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_limit_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| s.limits.max_batch_items = 3).await;
    let api = &server.api;
    api.create_catalog("c", json!({ "dimension": 2, "metric": "l2" }))
        .await;
    let item = |i: usize| json!({ "id": format!("i{i}"), "vector": [i as f32, 1.0] });
    let four: Vec<_> = (0..4).map(item).collect();
    let refused = api
        .post("/v1/catalogs/c/items", json!({ "items": four }))
        .await;
    assert_error(&refused, 400, "invalid_argument", Some("items"));
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3"),
        "{}",
        refused.1
    );
    let (status, _) = api.get("/v1/catalogs/c/items/i0").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing of a refused batch is written"
    );
    api.upsert_items("c", &(0..3).map(item).collect::<Vec<_>>())
        .await;

    let users: Vec<_> = (0..4)
        .map(|i| json!({ "id": format!("u{i}"), "vector": [1.0, 0.0] }))
        .collect();
    let refused = api
        .post("/v1/catalogs/c/users", json!({ "users": users }))
        .await;
    assert_error(&refused, 400, "invalid_argument", Some("users"));
    let (status, _) = api.get("/v1/catalogs/c/users/u0").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let events: Vec<_> = (0..4)
        .map(|_| json!({ "user_id": "u9", "item_id": "i0", "type": "view" }))
        .collect();
    let refused = api
        .post("/v1/catalogs/c/events", json!({ "events": events }))
        .await;
    assert_error(&refused, 400, "invalid_argument", Some("events"));
    let (status, _) = api.get("/v1/catalogs/c/users/u9").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no user created by a refused batch"
    );

    let refused = api
        .post(
            "/v1/catalogs/c/items/delete",
            json!({ "ids": ["i0", "i1", "i2", "i9"] }),
        )
        .await;
    assert_error(&refused, 400, "invalid_argument", Some("ids"));
    api.get_ok("/v1/catalogs/c/items/i0").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_retry_after_and_probes_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| s.limits.max_in_flight = 2).await;
    let api = &server.api;
    api.create_catalog("c", json!({ "dimension": 2, "metric": "l2" }))
        .await;
    let mut rng = Rng::new(5);
    let items: Vec<_> = (0..20)
        .map(|i| json!({ "id": format!("i{i}"), "vector": rng.vector(2) }))
        .collect();
    api.upsert_items("c", &items).await;

    // Two requests hold both slots.
    let path = "/v1/catalogs/c/items";
    let mut stalled = [
        stalled_post(&api.url, path).await,
        stalled_post(&api.url, path).await,
    ];
    let search = json!({ "vector": [0.0, 0.0], "k": 3 });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let response = loop {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/catalogs/c/search", api.url))
            .json(&search)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        // The stalled requests may not have reached the guard yet, or one
        // reached it after a search had taken its slot and was shed itself
        // (the server answered it): open that one again.
        for stream in &mut stalled {
            if answered(stream).await {
                *stream = stalled_post(&api.url, path).await;
            }
        }
        assert!(std::time::Instant::now() < deadline, "never shed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for stream in &mut stalled {
        assert!(
            !answered(stream).await,
            "the stalled requests hold the slots"
        );
    }
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("overloaded"), "{body}");
    let (status, _) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "health is exempt from the limit");
    let (status, _) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);

    // Closing one stalled request frees its slot: searches are served.
    let [first, second] = stalled;
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = api.post("/v1/catalogs/c/search", search.clone()).await;
        if status == StatusCode::OK {
            assert_eq!(body["hits"].as_array().unwrap().len(), 3);
            break;
        }
        assert_error(&(status, body), 503, "overloaded", None);
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(second);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_deadline_gets_503_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| {
        s.limits.request_timeout = Duration::from_millis(300)
    })
    .await;
    let api = &server.api;
    api.create_catalog("c", json!({ "dimension": 2, "metric": "l2" }))
        .await;
    // A client that stops sending its body (slowloris) is cut off.
    let mut stream = stalled_post(&api.url, "/v1/catalogs/c/items").await;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server answers and closes within the deadline")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"code\":\"timeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    // Nothing of it was written; normal requests are unaffected.
    let catalog = api.get_ok("/v1/catalogs/c").await;
    assert_eq!(catalog["counts"]["items"], json!(0), "{catalog}");
    server.stop().await;
}
