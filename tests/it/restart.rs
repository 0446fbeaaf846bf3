//! A restart, graceful or `kill -9`, loses no acknowledged write and answers
//! the same. The crash tests run the real binary and SIGKILL it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::fixtures;
use crate::support::{Api, BinaryServer, Rng, TestServer};

/// The effect of one write request per id: `Some(vector)` for an upsert,
/// `None` for a delete.
type Batch = Vec<(String, Option<Vec<f32>>)>;

/// Answers to a fixed set of queries (ids and scores), for comparing a
/// store before and after a restart.
pub(crate) async fn answers(api: &Api) -> Vec<Value> {
    let p = fixtures::superstore();
    let mut out = Vec::new();
    // Some of these anchors were deleted: their 404s must stay 404s.
    for a in (0..p.len()).step_by(37) {
        let requests = [
            (
                "/v1/catalogs/store/search",
                json!({"vector": p[a].vector, "k": 10, "filter": {"in_stock": true}}),
            ),
            (
                "/v1/catalogs/store/recommend/similar",
                json!({"item_id": p[a].id, "k": 5}),
            ),
            (
                "/v1/catalogs/store/recommend/upsell",
                json!({"item_id": p[a].id, "k": 5}),
            ),
        ];
        for (path, body) in requests {
            let (status, mut body) = api.post(path, body).await;
            // A fresh id per response, by design.
            if let Some(o) = body.as_object_mut() {
                o.remove("recommendation_id");
            }
            out.push(json!([status.as_u16(), body]));
        }
        let (status, body) = api
            .get(&format!(
                "/v1/catalogs/store/items/{}?with_vector=true",
                p[a].id
            ))
            .await;
        out.push(json!([status.as_u16(), body]));
    }
    out.push(api.get_ok("/v1/catalogs/store/users/u1").await);
    let mut catalog = api.get_ok("/v1/catalogs/store").await;
    // Graph points, tombstones and how the index was made are derived
    // state: a restart may compact them or load them from a snapshot.
    catalog["counts"]["graph_points"] = json!(null);
    catalog["counts"]["tombstones"] = json!(null);
    catalog["index"] = json!(null);
    out.push(catalog);
    out
}

/// Compares answers one by one, printing only the first difference.
pub(crate) fn assert_same_answers(before: &[Value], after: &[Value]) {
    assert_eq!(before.len(), after.len());
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        if b != a {
            let short = |v: &Value| {
                let mut v = v.clone();
                strip_vectors(&mut v);
                v.to_string()
            };
            panic!(
                "answer {i} differs after the restart:\nbefore: {}\nafter:  {}",
                short(b),
                short(a)
            );
        }
    }
}

fn strip_vectors(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(vector) = map.get_mut("vector") {
                *vector = json!("...");
            }
            map.values_mut().for_each(strip_vectors);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_vectors),
        _ => {}
    }
}

/// Loads Superstore, then updates, deletes and users, so the restart has
/// tombstones and replaced vectors to get right.
pub(crate) async fn populate(api: &Api) {
    fixtures::load_superstore(api, "store").await;
    let p = fixtures::superstore();
    // New vectors for some items (tombstones in the graph), new prices for
    // others (tiers move), deletions.
    let moved: Vec<Value> = (0..p.len())
        .step_by(11)
        .map(|i| {
            let mut item = p[i].to_item(i);
            item["vector"] = json!(p[(i + 1) % p.len()].vector);
            item["price"] = json!(p[i].price * 1.5);
            item
        })
        .collect();
    api.upsert_items("store", &moved).await;
    let gone: Vec<&str> = (5..p.len()).step_by(13).map(|i| p[i].id.as_str()).collect();
    api.post_ok("/v1/catalogs/store/items/delete", json!({"ids": gone}))
        .await;
    api.post_ok(
        "/v1/catalogs/store/users",
        json!({"users": [{"id": "u1", "vector": p[3].vector, "attributes": {"segment": "b2b"}}]}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_loses_nothing_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    populate(&server.api).await;
    let before = answers(&server.api).await;
    server.stop().await;

    let server = TestServer::start_in(dir.path(), |_| {}).await;
    assert_same_answers(&before, &answers(&server.api).await);
    server.stop().await;
}

/// SIGTERM the moment the server says it listens: the handler is in
/// place before that line, so the exit is the graceful one (status 0),
/// never the signal's default action. Under CPU load a SIGTERM that came
/// before the server's signal task first ran used to kill it outright.
#[test]
fn sigterm_right_after_start_exits_cleanly() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let server = BinaryServer::spawn(dir.path(), &[]);
        server.terminate();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_restarts_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    populate(&server.api).await;
    let before = answers(&server.api).await;
    server.terminate();

    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    assert_same_answers(&before, &answers(&server.api).await);
}

/// `recstore_http_in_flight_requests` from `/metrics`, this scrape included.
async fn in_flight_requests(url: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("recstore_http_in_flight_requests "))
        .expect("the in-flight gauge")
        .parse()
        .unwrap()
}

/// SIGTERM while a request is in flight: the server stops accepting
/// connections, lets the request finish (its client was still sending the
/// body), snapshots, flushes and exits 0; the next start loads the
/// snapshot with nothing to replay and has the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    server
        .api
        .create_catalog("shop", json!({"dimension": 2, "metric": "l2"}))
        .await;
    server
        .api
        .upsert_items("shop", &[json!({"id": "a", "vector": [1.0, 0.0]})])
        .await;
    let address = server.api.url.trim_start_matches("http://").to_string();
    let body = json!({"items": [{"id": "in-flight", "vector": [0.0, 1.0]}]}).to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/catalogs/shop/items HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..10]).await.unwrap();
    // The request is in flight once the server counts it (the scrape that
    // reads the gauge is one more).
    let deadline = Instant::now() + Duration::from_secs(30);
    while in_flight_requests(&server.api.url).await < 2.0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.signal_term();
    // No new connections are taken (once the signal has been handled)...
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let refused = reqwest::Client::new()
            .get(format!("{}/healthz", server.api.url))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if refused.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new requests still served after SIGTERM: {refused:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...but the one in flight completes.
    stream.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the in-flight request is answered")
        .unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"upserted\":1"), "{text}");
    let exit = server.wait_exit();
    assert!(exit.success(), "a clean exit: {exit}");

    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    server.api.get_ok("/v1/catalogs/shop/items/in-flight").await;
    let index = server.api.get_ok("/v1/catalogs/shop").await["index"].clone();
    assert_eq!(
        index["source"],
        json!("snapshot"),
        "snapshotted at shutdown: {index}"
    );
    assert_eq!(index["replayed"], json!(0), "{index}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_acknowledged_writes_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    populate(&server.api).await;
    let before = answers(&server.api).await;
    server.kill_9();

    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    assert_same_answers(&before, &answers(&server.api).await);
}

/// Writers upsert and delete concurrently; the server is killed while they
/// run. Every acknowledged write must be there after the restart, with its
/// exact values, and each item must be found by its own vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_writes_keeps_every_acknowledged_one() {
    const DIM: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(dir.path(), &["--rebuild-min-tombstones", "50"]);
    server.api.wait_ready().await;
    server
        .api
        .create_catalog("shop", json!({"dimension": DIM, "metric": "l2"}))
        .await;

    // id -> Some(vector) when its last acknowledged write was an upsert,
    // None when it was a delete. Each writer owns its ids, so the last
    // acknowledged write per id is well defined.
    let acked: Arc<Mutex<HashMap<String, Option<Vec<f32>>>>> = Arc::default();
    // The request each writer had in flight when the server died: it may
    // or may not have been committed, but only as a whole.
    let in_flight: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let api = server.api.clone();
        let acked = acked.clone();
        let in_flight = in_flight.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = Rng::new(w + 1);
            let client = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let n = 1 + rng.below(20);
                let batch: Vec<(String, Vec<f32>)> = (0..n)
                    .map(|_| (format!("w{w}-{}", rng.below(300)), rng.vector(DIM)))
                    .collect();
                let delete = rng.below(5) == 0;
                let (path, body) = if delete {
                    let ids: Vec<&String> = batch.iter().map(|(id, _)| id).collect();
                    ("/v1/catalogs/shop/items/delete", json!({"ids": ids}))
                } else {
                    let items: Vec<Value> = batch
                        .iter()
                        .map(|(id, v)| json!({"id": id, "vector": v}))
                        .collect();
                    ("/v1/catalogs/shop/items", json!({"items": items}))
                };
                // A connection error means the server died: stop. Anything
                // acknowledged before that counts.
                // The effect per id: the last occurrence in the batch wins.
                let mut outcome: Batch = Vec::new();
                for (id, v) in &batch {
                    outcome.retain(|(seen, _)| seen != id);
                    outcome.push((id.clone(), (!delete).then(|| v.clone())));
                }
                let sent = client
                    .post(format!("{}{path}", api.url))
                    .json(&body)
                    .send()
                    .await;
                if !sent.is_ok_and(|r| r.status().is_success()) {
                    in_flight.lock().unwrap().push(outcome);
                    return;
                }
                let mut acked = acked.lock().unwrap();
                for (id, v) in batch {
                    // Within a batch the last occurrence of an id wins.
                    acked.insert(id, (!delete).then_some(v));
                }
            }
        }));
    }
    // Let the writers run (and the rebuilds they trigger), then kill. On a
    // slow machine the writers get at least 100 ids acknowledged first.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() <= 100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill_9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "writers made progress ({} ids)",
        acked.len()
    );
    let in_flight = in_flight.lock().unwrap().clone();

    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    let api = &server.api;
    // Each in-flight batch was committed entirely or not at all.
    let mut committed_in_flight = 0;
    for batch in &in_flight {
        let mut applied = Vec::new();
        for (id, outcome) in batch {
            let (status, body) = api
                .get(&format!("/v1/catalogs/shop/items/{id}?with_vector=true"))
                .await;
            let now: Option<Vec<f32>> = (status.as_u16() == 200)
                .then(|| serde_json::from_value(body["vector"].clone()).unwrap());
            let before = acked.get(id).cloned().flatten();
            let after = outcome.clone();
            if before != after {
                applied.push(now == after);
            }
        }
        assert!(
            applied.iter().all(|a| *a) || applied.iter().all(|a| !*a),
            "an in-flight batch was half applied: {applied:?}"
        );
        committed_in_flight += usize::from(applied.first() == Some(&true));
    }
    let in_flight_ids: std::collections::HashSet<&String> =
        in_flight.iter().flatten().map(|(id, _)| id).collect();
    let mut present = 0;
    for (id, want) in &acked {
        if in_flight_ids.contains(id) {
            continue;
        }
        let (status, body) = api
            .get(&format!("/v1/catalogs/shop/items/{id}?with_vector=true"))
            .await;
        match want {
            Some(v) => {
                assert_eq!(status.as_u16(), 200, "acknowledged upsert of {id} lost");
                let got: Vec<f32> = serde_json::from_value(body["vector"].clone()).unwrap();
                assert_eq!(&got, v, "{id} has its last acknowledged vector");
                let hits = api.search("shop", json!({"vector": v, "k": 1})).await;
                assert_eq!(hits[0]["id"], json!(id), "{id} found by its own vector");
                present += 1;
            }
            None => assert_eq!(status.as_u16(), 404, "acknowledged delete of {id} undone"),
        }
    }
    eprintln!(
        "{} acknowledged ids checked, {present} present; {} batches in flight at the kill, {committed_in_flight} of them committed",
        acked.len(),
        in_flight.len()
    );
}

/// A stored item that no longer decodes is reported as corruption: the
/// catalog fails to open (503 on /readyz naming it, 500 `corruption` on its
/// routes) while the other catalogs keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_fails_its_catalog_not_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    for name in ["broken", "fine"] {
        api.create_catalog(name, json!({"dimension": 2})).await;
        api.upsert_items(
            name,
            &[
                json!({"id": "a", "vector": [1, 0]}),
                json!({"id": "b", "vector": [0, 1]}),
            ],
        )
        .await;
    }
    server.stop().await;

    // Catalog ids are handed out from 1 in creation order.
    {
        let cfs = recstore::storage::keys::ALL_CFS;
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), cfs).unwrap();
        let items = db.cf_handle(recstore::storage::keys::CF_ITEMS).unwrap();
        let key = recstore::storage::keys::record_key(1, "b");
        assert!(db.get_cf(&items, &key).unwrap().is_some());
        db.put_cf(&items, &key, [1u8, 0xff, 0xff]).unwrap();
    }

    let server = TestServer::start_unready(dir.path(), |_| {}).await;
    let api = &server.api;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Wait until both have finished opening: "broken" failed and "fine"
    // no longer loading (the two open in parallel, in either order).
    let ready = loop {
        let (status, body) = api.get("/readyz").await;
        let settled = body["status"] == "failed"
            && body
                .get("loading")
                .is_none_or(|l| l.as_array().is_some_and(|l| l.is_empty()));
        if settled || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready.0.as_u16(), 503, "{}", ready.1);
    assert!(
        ready.1["failed"]["broken"].as_str().is_some(),
        "{}",
        ready.1
    );
    let (status, body) = api.get("/v1/catalogs/broken/items/a").await;
    assert_eq!(
        (status.as_u16(), &body["error"]["code"]),
        (500, &json!("corruption")),
        "{body}"
    );
    let listed = api.get_ok("/v1/catalogs/broken").await;
    assert_eq!(listed["status"], "failed");
    assert_eq!(
        api.search("fine", json!({"vector": [1, 0], "k": 1})).await[0]["id"],
        "a"
    );
    server.stop().await;
}

/// While a catalog's index is being built at start, its routes answer 503
/// `catalog_loading` (never another error), then the right answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loading_catalog_answers_503_until_ready() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    fixtures::load_superstore(&server.api, "store").await;
    server.stop().await;

    let server = TestServer::start_unready(dir.path(), |_| {}).await;
    let api = &server.api;
    let p = fixtures::superstore();
    let (mut loading, mut readyz_loading) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ready_status, ready_body) = api.get("/readyz").await;
        let (status, body) = api
            .post(
                "/v1/catalogs/store/search",
                json!({"vector": p[0].vector, "k": 1}),
            )
            .await;
        if status.as_u16() == 200 {
            assert_eq!(body["hits"][0]["id"], json!(p[0].id));
            break;
        }
        assert_eq!(
            (status.as_u16(), &body["error"]["code"]),
            (503, &json!("catalog_loading")),
            "{body}"
        );
        loading += 1;
        if ready_status.as_u16() == 503 {
            assert_eq!(ready_body["loading"], json!(["store"]), "{ready_body}");
            readyz_loading += 1;
        }
        assert!(Instant::now() < deadline, "the catalog never became ready");
    }
    assert_eq!(api.get("/readyz").await.0.as_u16(), 200);
    eprintln!(
        "{loading} requests answered catalog_loading, /readyz said loading {readyz_loading} times"
    );
    server.stop().await;
}

/// The snapshot folders of a data dir (`snapshots/<catalog id>/snap-*`).
fn snapshot_dirs(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(catalogs) = std::fs::read_dir(data_dir.join("snapshots")) else {
        return out;
    };
    for catalog in catalogs.flatten() {
        for snap in std::fs::read_dir(catalog.path()).unwrap().flatten() {
            out.push(snap.path());
        }
    }
    out.sort();
    out
}

/// Polls `GET /v1/catalogs/store` until `done` holds (at most 60 s).
async fn wait_for_catalog(api: &Api, what: &str, done: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let catalog = api.get_ok("/v1/catalogs/store").await;
        if done(&catalog) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited in vain for {what}: {catalog}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn index_info(api: &Api) -> Value {
    api.get_ok("/v1/catalogs/store").await["index"].clone()
}

/// Changes made after the snapshot: new vectors, deletions (some of ids
/// already gone), new items. Returns how many distinct ids they name.
async fn change_after_snapshot(api: &Api) -> u64 {
    let p = fixtures::superstore();
    let moved: Vec<Value> = (2..p.len())
        .step_by(61)
        .map(|i| {
            let mut item = p[i].to_item(i);
            item["vector"] = json!(p[(i + 7) % p.len()].vector);
            item
        })
        .collect();
    api.upsert_items("store", &moved).await;
    let gone: Vec<&str> = (4..p.len()).step_by(97).map(|i| p[i].id.as_str()).collect();
    api.post_ok("/v1/catalogs/store/items/delete", json!({"ids": gone}))
        .await;
    let fresh: Vec<Value> = (0..10)
        .map(|i| {
            let mut item = p[i * 3].to_item(i * 3);
            item["id"] = json!(format!("NEW-{i}"));
            item
        })
        .collect();
    api.upsert_items("store", &fresh).await;
    let named: std::collections::HashSet<&str> = moved
        .iter()
        .chain(&fresh)
        .map(|item| item["id"].as_str().unwrap())
        .chain(gone)
        .collect();
    named.len() as u64
}

/// A graceful stop snapshots the index; a restart loads it instead of
/// building the graph, replays exactly the writes made after it (even
/// after `kill -9`), and answers as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loads_the_snapshot_and_replays_only_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    populate(&server.api).await;
    let before = answers(&server.api).await;
    server.terminate();
    assert_eq!(
        snapshot_dirs(dir.path()).len(),
        1,
        "one snapshot after a graceful stop"
    );

    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    let info = index_info(&server.api).await;
    assert_eq!(info["source"], "snapshot", "{info}");
    assert_eq!(info["replayed"], 0, "{info}");
    assert_same_answers(&before, &answers(&server.api).await);

    let changed = change_after_snapshot(&server.api).await;
    let before = answers(&server.api).await;
    let items_before = server.api.get_ok("/v1/catalogs/store").await["counts"]["items"].clone();
    server.kill_9();

    let server = BinaryServer::spawn(dir.path(), &[]);
    server.api.wait_ready().await;
    let catalog = server.api.get_ok("/v1/catalogs/store").await;
    assert_eq!(catalog["index"]["source"], "snapshot", "{catalog}");
    assert_eq!(catalog["index"]["replayed"], changed, "{catalog}");
    assert_eq!(catalog["counts"]["items"], items_before);
    assert_same_answers(&before, &answers(&server.api).await);
    // Every replayed item is found by its own vector, and no deleted one is.
    let p = fixtures::superstore();
    for i in (2..p.len()).step_by(61) {
        let hits = server
            .api
            .search(
                "store",
                json!({"vector": p[(i + 7) % p.len()].vector, "k": 3}),
            )
            .await;
        assert!(
            crate::support::ids(&hits).contains(&p[i].id),
            "moved item {} not found by its new vector",
            p[i].id
        );
    }
    for i in (4..p.len()).step_by(97) {
        let hits = server
            .api
            .search("store", json!({"vector": p[i].vector, "k": 20}))
            .await;
        assert!(!crate::support::ids(&hits).contains(&p[i].id));
    }
}

/// A damaged or missing snapshot is detected and the index rebuilt from
/// RocksDB, answering exactly as before; the next stop writes a good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_missing_snapshot_is_rebuilt_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    populate(&server.api).await;
    let before = answers(&server.api).await;
    server.stop().await;

    let snaps = snapshot_dirs(dir.path());
    assert_eq!(snaps.len(), 1);
    let data = snaps[0].join("graph.hnsw.data");
    let mut bytes = std::fs::read(&data).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();

    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let info = index_info(&server.api).await;
    assert_eq!(info["source"], "rebuild", "{info}");
    let reason = info["rebuild_reason"].as_str().unwrap();
    assert!(
        reason.contains("graph.hnsw.data") && reason.contains("CRC"),
        "{reason}"
    );
    assert_same_answers(&before, &answers(&server.api).await);
    // The rebuilt index is snapshotted again (at once, and at the stop).
    server.stop().await;
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    assert_eq!(index_info(&server.api).await["source"], "snapshot");
    server.stop().await;

    for snap in snapshot_dirs(dir.path()) {
        std::fs::remove_dir_all(snap).unwrap();
    }
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let info = index_info(&server.api).await;
    assert_eq!(info["source"], "rebuild", "{info}");
    assert!(
        info["rebuild_reason"].as_str().unwrap().contains("missing"),
        "{info}"
    );
    assert_same_answers(&before, &answers(&server.api).await);
    server.stop().await;
}

/// With a low threshold, snapshots follow the writes while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_taken_periodically_as_writes_accumulate() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| {
        s.index.snapshot_min_changes = 300;
        s.index.snapshot_min_interval_secs = 0;
    })
    .await;
    fixtures::load_superstore(&server.api, "store").await;
    wait_for_catalog(&server.api, "a periodic snapshot", |c| {
        c["index"]["snapshot_watermark"].is_u64()
            && c["index"]["changes_since_snapshot"].as_u64() < Some(300)
    })
    .await;
    assert!(!snapshot_dirs(dir.path()).is_empty());
    server.stop().await;
}

/// A background rebuild renumbers the slots, so it publishes a fresh
/// snapshot of its own (here periodic snapshots are off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_rebuild_writes_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| {
        s.index.snapshot_min_changes = 0;
        s.index.rebuild_min_tombstones = 100;
    })
    .await;
    fixtures::load_superstore(&server.api, "store").await;
    assert_eq!(
        index_info(&server.api).await["snapshot_watermark"],
        Value::Null
    );
    let p = fixtures::superstore();
    let moved: Vec<Value> = (0..p.len())
        .step_by(3)
        .map(|i| {
            let mut item = p[i].to_item(i);
            item["vector"] = json!(p[(i + 1) % p.len()].vector);
            item
        })
        .collect();
    server.api.upsert_items("store", &moved).await;
    wait_for_catalog(&server.api, "a snapshot after a rebuild", |c| {
        c["counts"]["rebuilds"].as_u64() >= Some(1) && c["index"]["snapshot_watermark"].is_u64()
    })
    .await;
    server.stop().await;
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let info = index_info(&server.api).await;
    assert_eq!(info["source"], "snapshot", "{info}");
    let hits = server
        .api
        .search("store", json!({"vector": p[1].vector, "k": 5}))
        .await;
    assert!(
        crate::support::ids(&hits).contains(&p[0].id),
        "item 0 moved to vector 1"
    );
    server.stop().await;
}
