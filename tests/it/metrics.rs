//! `GET /metrics`: request counts by route template and status, latency
//! histograms, catalog sizes, planner paths and RocksDB figures, checked
//! against what the test did.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{metric, scrape_metrics, Api, Rng, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_requests_catalogs_planner_and_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    api.create_catalog("shop", json!({ "dimension": 4, "metric": "cosine" }))
        .await;
    let mut rng = Rng::new(11);
    let items: Vec<_> = (0..50)
        .map(|i| {
            json!({
                "id": format!("i{i}"),
                "vector": rng.vector(4),
                "category": if i % 2 == 0 { "even" } else { "odd" },
            })
        })
        .collect();
    api.upsert_items("shop", &items).await;
    api.post_ok(
        "/v1/catalogs/shop/items/delete",
        json!({ "ids": ["i0", "i1"] }),
    )
    .await;
    api.post_ok(
        "/v1/catalogs/shop/users",
        json!({ "users": [{ "id": "u1", "vector": [1, 0, 0, 0] }] }),
    )
    .await;
    // 7 searches: 5 exact (a small catalog), 2 matching nothing.
    for _ in 0..5 {
        api.search("shop", json!({ "vector": rng.vector(4), "k": 3 }))
            .await;
    }
    for _ in 0..2 {
        let hits = api
            .search(
                "shop",
                json!({ "vector": rng.vector(4), "k": 3, "filter": { "category": "none" } }),
            )
            .await;
        assert!(hits.is_empty());
    }
    // Errors count under their route and status; unknown paths under
    // "unmatched", never their raw path.
    let (status, _) = api
        .post("/v1/catalogs/shop/search", json!({ "k": 3 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.get("/no/such/route/9f3a").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let m = scrape_metrics(&api.url).await;
    let search = r#"method="POST",route="/v1/catalogs/{catalog}/search""#;
    assert_eq!(
        metric(
            &m,
            &format!("recstore_http_requests_total{{{search},status=\"200\"}}")
        ),
        7.0
    );
    assert_eq!(
        metric(
            &m,
            &format!("recstore_http_requests_total{{{search},status=\"400\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"recstore_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        1.0
    );
    assert!(
        m.keys().all(|k| !k.contains("9f3a")),
        "raw paths never become labels"
    );
    assert_eq!(
        metric(
            &m,
            &format!("recstore_http_request_duration_seconds_count{{{search}}}")
        ),
        8.0
    );
    assert_eq!(
        metric(
            &m,
            &format!("recstore_http_request_duration_seconds_bucket{{le=\"+Inf\",{search}}}")
        ),
        8.0
    );
    assert_eq!(metric(&m, r#"recstore_items{catalog="shop"}"#), 48.0);
    assert_eq!(metric(&m, r#"recstore_users{catalog="shop"}"#), 1.0);
    assert_eq!(metric(&m, r#"recstore_graph_points{catalog="shop"}"#), 50.0);
    assert_eq!(metric(&m, r#"recstore_tombstones{catalog="shop"}"#), 2.0);
    assert_eq!(metric(&m, r#"recstore_catalogs{status="ready"}"#), 1.0);
    assert_eq!(
        metric(
            &m,
            r#"recstore_planner_searches{catalog="shop",path="exact"}"#
        ),
        5.0
    );
    assert_eq!(
        metric(
            &m,
            r#"recstore_planner_searches{catalog="shop",path="empty"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            r#"recstore_planner_searches{catalog="shop",path="graph"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(&m, r#"recstore_changes_since_snapshot{catalog="shop"}"#),
        52.0
    );
    assert!(metric(&m, r#"recstore_rocksdb{property="memtable_bytes"}"#) > 0.0);
    // The memtables are charged to the shared cache.
    assert!(metric(&m, r#"recstore_rocksdb{property="block_cache_bytes"}"#) > 0.0);
    assert_eq!(
        metric(&m, r#"recstore_rocksdb{property="background_errors"}"#),
        0.0
    );
    assert!(metric(&m, "recstore_process_resident_memory_bytes") > 1e6);
    // glibc's heap: the index and the store's buffers are allocated.
    assert!(
        metric(
            &m,
            r#"recstore_process_heap_bytes{allocator="jemalloc",state="in_use"}"#
        ) > 1e6
    );
    assert!(m.contains_key(r#"recstore_process_heap_bytes{allocator="jemalloc",state="free"}"#));
    // RocksDB's memtables are allocated by glibc.
    assert!(
        metric(
            &m,
            r#"recstore_process_heap_bytes{allocator="glibc",state="in_use"}"#
        ) > 1e5
    );

    // A deleted catalog's series disappear.
    let (status, _) = api.delete("/v1/catalogs/shop").await;
    assert_eq!(status, StatusCode::OK);
    let m = scrape_metrics(&api.url).await;
    assert!(!m.contains_key(r#"recstore_items{catalog="shop"}"#));
    assert_eq!(metric(&m, r#"recstore_catalogs{status="ready"}"#), 0.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_searches_are_counted_as_graph() {
    let dir = tempfile::tempdir().unwrap();
    // Exact-first planning off: every unfiltered search walks the graph.
    let server = TestServer::start_in(dir.path(), |s| s.index.exact_scan_threshold = 0).await;
    let api = &server.api;
    api.create_catalog("g", json!({ "dimension": 8, "metric": "l2" }))
        .await;
    let mut rng = Rng::new(3);
    let items: Vec<_> = (0..400)
        .map(|i| json!({ "id": format!("i{i}"), "vector": rng.vector(8) }))
        .collect();
    api.upsert_items("g", &items).await;
    // The write is searched at once (exactly, as the delta); the
    // background freeze then takes it into the graph, and the delta
    // shown falls to 0.
    let mut m = scrape_metrics(&api.url).await;
    let started = std::time::Instant::now();
    while metric(&m, r#"recstore_index_delta_points{catalog="g"}"#) > 0.0 {
        assert!(
            started.elapsed().as_secs() < 30,
            "the delta was never frozen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        m = scrape_metrics(&api.url).await;
    }
    assert_eq!(metric(&m, r#"recstore_index_freezes{catalog="g"}"#), 1.0);
    assert!(metric(&m, r#"recstore_index_frozen_graph_bytes{catalog="g"}"#) > 400.0 * 4.0);
    for _ in 0..4 {
        api.search("g", json!({ "vector": rng.vector(8), "k": 5 }))
            .await;
    }
    let m = scrape_metrics(&api.url).await;
    assert_eq!(
        metric(&m, r#"recstore_planner_searches{catalog="g",path="graph"}"#),
        4.0
    );
    assert_eq!(
        metric(&m, r#"recstore_planner_searches{catalog="g",path="exact"}"#),
        0.0
    );
    // Each search's distance evaluations are counted: a beam of 64
    // (ef_search) evaluates at least 64 of the 400 points.
    assert_eq!(metric(&m, r#"recstore_graph_searches{catalog="g"}"#), 4.0);
    let evaluations = metric(&m, r#"recstore_graph_distance_evaluations{catalog="g"}"#);
    assert!(evaluations >= 4.0 * 64.0, "{evaluations}");
    server.stop().await;
}

/// Loads 1,000 items into `catalog`, deletes the first `deleted` in one
/// request and waits until the rebuild that starts has finished.
async fn rebuild_after_deleting(api: &Api, catalog: &str, deleted: usize) {
    api.create_catalog(catalog, json!({ "dimension": 8, "metric": "l2" }))
        .await;
    let mut rng = Rng::new(17);
    let items: Vec<_> = (0..1000)
        .map(|i| json!({ "id": format!("i{i}"), "vector": rng.vector(8) }))
        .collect();
    api.upsert_items(catalog, &items).await;
    let ids: Vec<_> = (0..deleted).map(|i| format!("i{i}")).collect();
    api.post_ok(
        &format!("/v1/catalogs/{catalog}/items/delete"),
        json!({ "ids": ids }),
    )
    .await;
    // Idle time may be scarce while other tests run: generous, not a timing.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let counts = api.get_ok(&format!("/v1/catalogs/{catalog}")).await["counts"].clone();
        if counts["rebuilds"] == json!(1) && counts["rebuilding"] == json!(false) {
            return;
        }
        assert!(Instant::now() < deadline, "no rebuild in time: {counts}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn chunks_of(items: usize) -> f64 {
    items.div_ceil(recstore::index::REBUILD_CHUNK) as f64
}

/// A server whose rebuilds start at 20 % dead points (and 50 of them),
/// waiting `patience_secs` for idle time before going urgent.
async fn rebuilding_server(dir: &std::path::Path, patience_secs: u64) -> TestServer {
    TestServer::start_in(dir, |s| {
        s.index.rebuild_idle_secs = patience_secs;
        s.index.rebuild_min_tombstones = 50;
        s.index.rebuild_tombstone_ratio = 0.2;
    })
    .await
}

/// Asserts a catalog's rebuild chunks by pool in a scrape.
fn assert_chunks(m: &HashMap<String, f64>, catalog: &str, idle: f64, urgent: f64) {
    for (pool, want) in [("idle", idle), ("urgent", urgent)] {
        let series =
            format!(r#"recstore_index_rebuild_chunks{{catalog="{catalog}",pool="{pool}"}}"#);
        assert_eq!(metric(m, &series), want, "{series}");
    }
}

/// A rebuild runs on the idle pool until `rebuild_idle_secs` have passed
/// or twice the trigger share of the graph is dead, then on the urgent
/// pool; `/metrics` counts its chunks by the pool they ran on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_chunks_are_counted_by_the_pool_they_ran_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = rebuilding_server(dir.path(), 600).await;
    let api = &server.api;
    // 25 % dead (the trigger is 20 %): the 750 live items are rebuilt on
    // idle time only.
    rebuild_after_deleting(api, "mild", 250).await;
    // 50 % dead, past twice the trigger: urgent from the first chunk.
    rebuild_after_deleting(api, "heavy", 500).await;
    let m = scrape_metrics(&api.url).await;
    assert_chunks(&m, "mild", chunks_of(750), 0.0);
    assert_chunks(&m, "heavy", 0.0, chunks_of(500));
    server.stop().await;

    // No patience: even a mild rebuild is urgent from its first chunk.
    let dir = tempfile::tempdir().unwrap();
    let server = rebuilding_server(dir.path(), 0).await;
    rebuild_after_deleting(&server.api, "mild", 250).await;
    let m = scrape_metrics(&server.api.url).await;
    assert_chunks(&m, "mild", 0.0, chunks_of(750));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let client = reqwest::Client::new();
    let url = &server.api.url;
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    // A sane client id is echoed (a proxy's id follows the request).
    let r = client
        .get(format!("{url}/v1/catalogs"))
        .header("x-request-id", "edge-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r).as_deref(), Some("edge-7f3a"));
    // Otherwise each response gets a fresh one, errors included.
    let a = id_of(&client.get(format!("{url}/nope")).send().await.unwrap()).unwrap();
    let b = id_of(
        &client
            .get(format!("{url}/v1/catalogs"))
            .send()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_ne!(a, b);
    let long = "x".repeat(200);
    let r = client
        .get(format!("{url}/v1/catalogs"))
        .header("x-request-id", long.as_str())
        .send()
        .await
        .unwrap();
    let id = id_of(&r).unwrap();
    assert_ne!(id, long, "an oversized id is replaced");
    server.stop().await;
}
