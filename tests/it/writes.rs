//! Writes are visible to the next query; replaced vectors never come back;
//! background rebuilds keep answers right while queries and writes go on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::support::{cosine, ids, Api, Rng, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_deletes_are_visible_to_the_next_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    api.create_catalog("shop", json!({"dimension": 3})).await;
    api.upsert_items(
        "shop",
        &[
            json!({"id": "a", "vector": [1, 0, 0], "price": 10, "category": "x", "tags": ["t1"]}),
            json!({"id": "b", "vector": [0.9, 0.1, 0], "price": 20, "category": "x"}),
            json!({"id": "c", "vector": [0, 0, 1], "price": 30, "category": "y"}),
        ],
    )
    .await;
    let top = |hits: Vec<Value>| ids(&hits);
    assert_eq!(
        top(api
            .search("shop", json!({"vector": [1, 0, 0], "k": 1}))
            .await),
        ["a"]
    );

    // New vector: the old position is gone at once.
    api.upsert_items(
        "shop",
        &[json!({"id": "a", "vector": [0, 1, 0], "price": 10, "category": "x"})],
    )
    .await;
    let hits = api
        .search("shop", json!({"vector": [1, 0, 0], "k": 3}))
        .await;
    assert_eq!(ids(&hits)[0], "b");
    let a = hits
        .iter()
        .find(|h| h["id"] == "a")
        .expect("a still listed");
    assert!(
        a["score"].as_f64().unwrap().abs() < 1e-6,
        "a scored by its new vector: {a}"
    );
    assert_eq!(
        top(api
            .search("shop", json!({"vector": [0, 1, 0], "k": 1}))
            .await),
        ["a"]
    );

    // Metadata only (same vector): filters follow, tags replaced.
    api.upsert_items(
        "shop",
        &[json!({"id": "a", "vector": [0, 1, 0], "price": 50, "category": "y", "in_stock": false})],
    )
    .await;
    let got = api.get_ok("/v1/catalogs/shop/items/a").await;
    assert_eq!(
        (
            got["price"].as_f64(),
            &got["category"],
            &got["in_stock"],
            &got["tags"]
        ),
        (Some(50.0), &json!("y"), &json!(false), &json!([]))
    );
    let x = api
        .search(
            "shop",
            json!({"vector": [0, 1, 0], "k": 3, "filter": {"category": "x"}}),
        )
        .await;
    assert_eq!(ids(&x), ["b"]);
    let y = api
        .search(
            "shop",
            json!({"vector": [0, 1, 0], "k": 3, "filter": {"category": "y", "in_stock": false}}),
        )
        .await;
    assert_eq!(ids(&y), ["a"]);
    let cheap = api
        .search(
            "shop",
            json!({"vector": [0, 1, 0], "k": 3, "filter": {"price": {"lt": 40}}}),
        )
        .await;
    assert!(!ids(&cheap).contains(&"a".to_string()));

    // Delete one, then a batch with an unknown id.
    let (status, body) = api.delete("/v1/catalogs/shop/items/a").await;
    assert_eq!((status.as_u16(), &body["deleted"]), (200, &json!(1)));
    assert_eq!(api.get("/v1/catalogs/shop/items/a").await.0.as_u16(), 404);
    let all = api
        .search("shop", json!({"vector": [0, 1, 0], "k": 10}))
        .await;
    assert_eq!(ids(&all).len(), 2);
    assert!(!ids(&all).contains(&"a".to_string()));
    let body = api
        .post_ok(
            "/v1/catalogs/shop/items/delete",
            json!({"ids": ["b", "nope", "b", "nope"]}),
        )
        .await;
    assert_eq!(body, json!({"deleted": 1, "not_found": ["nope"]}));
    assert_eq!(
        ids(&api
            .search("shop", json!({"vector": [1, 0, 0], "k": 10}))
            .await),
        ["c"]
    );
    let counts = &api.get_ok("/v1/catalogs/shop").await["counts"];
    assert_eq!(counts["items"], 1);

    // A batch naming an id twice: the last one wins.
    api.upsert_items(
        "shop",
        &[
            json!({"id": "d", "vector": [1, 0, 0], "price": 1}),
            json!({"id": "d", "vector": [0, 1, 0], "price": 2}),
        ],
    )
    .await;
    let d = api
        .get_ok("/v1/catalogs/shop/items/d?with_vector=true")
        .await;
    assert_eq!(
        (&d["price"], &d["vector"]),
        (&json!(2.0), &json!([0.0, 1.0, 0.0]))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_are_derived_per_category_and_kept_current() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    api.create_catalog("shop", json!({"dimension": 2, "price_tiers": 4}))
        .await;
    let items: Vec<Value> = (1..=8)
        .map(|p| json!({"id": format!("p{p}"), "vector": [1, p], "price": p, "category": "c"}))
        .chain([
            json!({"id": "other", "vector": [1, 1], "price": 1000, "category": "d"}),
            json!({"id": "fixed", "vector": [1, 2], "price": 1, "category": "c", "price_tier": 4}),
            json!({"id": "unpriced", "vector": [2, 1], "category": "c"}),
        ])
        .collect();
    api.upsert_items("shop", &items).await;
    let tier = |api: Api, id: &'static str| async move {
        let item = api.get_ok(&format!("/v1/catalogs/shop/items/{id}")).await;
        (
            item["price_tier"].clone(),
            item["price_tier_source"].clone(),
        )
    };
    // 9 priced items in "c" (p1..p8 and "fixed" at price 1):
    // tier = 1 + floor(4 * cheaper / 9).
    let expected = [1, 1, 2, 2, 3, 3, 4, 4]; // p1..p8
    for (p, want) in (1..=8).zip(expected) {
        let id: &'static str = Box::leak(format!("p{p}").into_boxed_str());
        assert_eq!(
            tier(api.clone(), id).await,
            (json!(want), json!("derived")),
            "p{p}"
        );
    }
    assert_eq!(
        tier(api.clone(), "fixed").await,
        (json!(4), json!("explicit"))
    );
    assert_eq!(
        tier(api.clone(), "other").await,
        (json!(1), json!("derived"))
    );
    assert_eq!(
        tier(api.clone(), "unpriced").await,
        (json!(null), json!(null))
    );

    // Tier filters see the same tiers.
    let t4 = api
        .search(
            "shop",
            json!({"vector": [1, 1], "k": 20, "filter": {"price_tier": 4}}),
        )
        .await;
    let mut got = ids(&t4);
    got.sort();
    assert_eq!(got, ["fixed", "p7", "p8"]);

    // p8 becomes the cheapest: every other item in "c" moves up.
    api.upsert_items(
        "shop",
        &[json!({"id": "p8", "vector": [1, 8], "price": 0.5, "category": "c"})],
    )
    .await;
    assert_eq!(tier(api.clone(), "p8").await.0, json!(1));
    assert_eq!(tier(api.clone(), "p7").await.0, json!(4));
    // Deleting the cheap items moves the rest down again.
    api.post_ok(
        "/v1/catalogs/shop/items/delete",
        json!({"ids": ["p8", "p1", "p2", "fixed"]}),
    )
    .await;
    // Left: p3..p7 (5 items): tiers 1,1,2,3,4.
    for (id, want) in [("p3", 1), ("p4", 1), ("p5", 2), ("p6", 3), ("p7", 4)] {
        assert_eq!(tier(api.clone(), id).await.0, json!(want), "{id}");
    }
    server.stop().await;
}

/// Replaces vectors over and over (with rebuilds triggered along the way)
/// and checks after every write that each hit is scored by its item's
/// current vector and every item is found by its own vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vector_replaced_many_times_never_comes_back_stale() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| {
        s.index.rebuild_min_tombstones = 20;
        s.index.rebuild_tombstone_ratio = 0.1;
        s.index.exact_scan_threshold = 0;
    })
    .await;
    let api = &server.api;
    api.create_catalog("shop", json!({"dimension": 8})).await;
    let mut rng = Rng::new(7);
    let mut current: HashMap<String, Vec<f32>> = HashMap::new();
    let items: Vec<Value> = (0..200)
        .map(|i| {
            let v = rng.vector(8);
            current.insert(format!("i{i}"), v.clone());
            json!({"id": format!("i{i}"), "vector": v, "category": format!("c{}", i % 3)})
        })
        .collect();
    api.upsert_items("shop", &items).await;
    let mut old_vectors = Vec::new();
    for round in 0..40 {
        // Replace 15 vectors, one request each or all at once.
        let mut batch = Vec::new();
        for _ in 0..15 {
            let id = format!("i{}", rng.below(200));
            let v = rng.vector(8);
            old_vectors.push(current.insert(id.clone(), v.clone()).unwrap());
            batch.push(json!({"id": id, "vector": v, "category": format!("c{}", rng.below(3))}));
        }
        if round % 2 == 0 {
            api.upsert_items("shop", &batch).await;
        } else {
            for item in batch {
                api.upsert_items("shop", &[item]).await;
            }
        }
        // Queries at old positions and current ones: each hit's score must
        // be its current vector's.
        for _ in 0..10 {
            let query = if rng.below(2) == 0 {
                old_vectors[rng.below(old_vectors.len())].clone()
            } else {
                current.values().nth(rng.below(200)).unwrap().clone()
            };
            for filter in [json!(null), json!({"category": "c1"})] {
                let hits = api
                    .search("shop", json!({"vector": query, "k": 10, "filter": filter}))
                    .await;
                assert_eq!(hits.len(), 10);
                for hit in &hits {
                    let id = hit["id"].as_str().unwrap();
                    let want = cosine(&query, &current[id]);
                    let got = hit["score"].as_f64().unwrap() as f32;
                    assert!(
                        (want - got).abs() < 1e-4,
                        "round {round}: {id} scored {got}, current vector gives {want}"
                    );
                }
            }
        }
    }
    // Every item is found by its own current vector.
    for (id, v) in &current {
        let hits = api.search("shop", json!({"vector": v, "k": 1})).await;
        assert_eq!(ids(&hits), std::slice::from_ref(id));
    }
    // The tombstones triggered a rebuild; it may still be running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let counts = api.get_ok("/v1/catalogs/shop").await["counts"].clone();
        assert_eq!(counts["items"], 200);
        if counts["rebuilds"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(
            counts["rebuilding"] == json!(true) && std::time::Instant::now() < deadline,
            "tombstones triggered rebuilds: {counts}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// Readers query without pause while a writer churns vectors and deletes
/// items, so the graph is rebuilt in the background several times. No
/// reader may see an item whose deletion was acknowledged before its query
/// started, and fixed items are always found by their own vector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_rebuilds_keep_answers_correct_while_queries_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| {
        s.index.rebuild_min_tombstones = 100;
        s.index.rebuild_tombstone_ratio = 0.1;
        // The readers keep the cores busy, so a rebuild may get next to
        // no idle time: after a second it moves to the urgent pool.
        s.index.rebuild_idle_secs = 1;
    })
    .await;
    let api = server.api.clone();
    const DIM: usize = 16;
    api.create_catalog("shop", json!({"dimension": DIM})).await;
    let mut rng = Rng::new(42);
    let stable: Vec<Vec<f32>> = (0..1500).map(|_| rng.vector(DIM)).collect();
    let items: Vec<Value> = stable
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"id": format!("s{i}"), "vector": v, "tags": ["stable"]}))
        .collect();
    api.upsert_items("shop", &items).await;

    let deleted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let stable = Arc::new(stable);
    let mut readers = Vec::new();
    for r in 0..2u64 {
        let (api, deleted, done, stable) =
            (api.clone(), deleted.clone(), done.clone(), stable.clone());
        readers.push(tokio::spawn(async move {
            let mut rng = Rng::new(100 + r);
            let mut queries = 0;
            while !done.load(Ordering::Acquire) {
                let i = rng.below(stable.len());
                let gone_before: HashSet<String> = deleted.lock().unwrap().clone();
                let filter = if queries % 2 == 0 {
                    json!(null)
                } else {
                    json!({"tags": {"any": ["stable"]}})
                };
                let hits = api
                    .search(
                        "shop",
                        json!({"vector": stable[i], "k": 10, "filter": filter}),
                    )
                    .await;
                assert_eq!(hits.len(), 10);
                assert_eq!(
                    hits[0]["id"],
                    json!(format!("s{i}")),
                    "a fixed item is found by its vector"
                );
                for hit in &hits {
                    let id = hit["id"].as_str().unwrap();
                    assert!(!gone_before.contains(id), "deleted item {id} returned");
                }
                queries += 1;
            }
            queries
        }));
    }

    // The writer: rounds of 150 fresh churn items, deleting the previous
    // round's, so tombstones pass 10 % again and again, until two rebuilds
    // have run under the readers (on idle time, then half the cores: on 2
    // vCPUs they take their time, and one rebuild may absorb many rounds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut previous: Vec<String> = Vec::new();
    let mut round = 0;
    loop {
        let counts = api.get_ok("/v1/catalogs/shop").await["counts"].clone();
        if counts["rebuilds"].as_u64().unwrap() >= 2 && counts["rebuilding"] == json!(false) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two rebuilds in time: {counts}"
        );
        let batch: Vec<Value> = (0..150)
            .map(|j| json!({"id": format!("churn{round}-{j}"), "vector": rng.vector(DIM)}))
            .collect();
        api.upsert_items("shop", &batch).await;
        if !previous.is_empty() {
            api.post_ok("/v1/catalogs/shop/items/delete", json!({"ids": previous}))
                .await;
            deleted.lock().unwrap().extend(previous.drain(..));
        }
        previous = (0..150).map(|j| format!("churn{round}-{j}")).collect();
        round += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::Release);
    let mut total = 0;
    for reader in readers {
        total += reader.await.expect("reader passed its checks");
    }
    assert!(total > 50, "readers ran during the churn ({total} queries)");
    let counts = api.get_ok("/v1/catalogs/shop").await["counts"].clone();
    assert!(counts["rebuilds"].as_u64().unwrap() >= 2, "{counts}");
    assert_eq!(counts["items"], 1650);
    server.stop().await;
}

/// Many concurrent single-item writers (group commit): every acknowledged
/// write is there with its values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = server.api.clone();
    api.create_catalog("shop", json!({"dimension": 4, "metric": "l2"}))
        .await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..40 {
                let v = [w as f32, j as f32, 1.0, 0.0];
                api.upsert_items(
                    "shop",
                    &[json!({"id": format!("w{w}-{j}"), "vector": v, "price": j})],
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        api.get_ok("/v1/catalogs/shop").await["counts"]["items"],
        320
    );
    for w in 0..8 {
        for j in (0..40).step_by(7) {
            let item = api
                .get_ok(&format!(
                    "/v1/catalogs/shop/items/w{w}-{j}?with_vector=true"
                ))
                .await;
            assert_eq!(item["vector"], json!([w as f32, j as f32, 1.0, 0.0]));
            assert_eq!(item["price"], json!(j as f64));
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_round_trip_and_hits_can_leave_out_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    api.create_catalog("shop", json!({"dimension": 2, "metric": "dot"}))
        .await;
    let body = api
        .post_ok(
            "/v1/catalogs/shop/users",
            json!({"users": [
                {"id": "u1", "vector": [3, 4], "attributes": {"segment": "b2b", "n": 1}},
                {"id": "u2"}
            ]}),
        )
        .await;
    assert_eq!(body, json!({"upserted": 2}));
    // Dot catalogs keep vectors as given (no normalisation).
    assert_eq!(
        api.get_ok("/v1/catalogs/shop/users/u1").await,
        json!({"id": "u1", "vector": [3.0, 4.0], "attributes": {"segment": "b2b", "n": 1}})
    );
    assert_eq!(
        api.get_ok("/v1/catalogs/shop/users/u2").await,
        json!({"id": "u2", "vector": null, "attributes": {}})
    );
    // Upserting replaces the whole user.
    api.post_ok(
        "/v1/catalogs/shop/users",
        json!({"users": [{"id": "u1", "attributes": {"x": true}}]}),
    )
    .await;
    assert_eq!(
        api.get_ok("/v1/catalogs/shop/users/u1").await,
        json!({"id": "u1", "vector": null, "attributes": {"x": true}})
    );
    assert_eq!(api.get_ok("/v1/catalogs/shop").await["counts"]["users"], 2);
    let (status, _) = api.delete("/v1/catalogs/shop/users/u1").await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(api.get("/v1/catalogs/shop/users/u1").await.0.as_u16(), 404);
    assert_eq!(api.get_ok("/v1/catalogs/shop").await["counts"]["users"], 1);

    api.upsert_items("shop", &[json!({"id": "a", "vector": [1, 2], "price": 3, "brand": "b", "tags": ["t"], "attributes": {"c": 1}})])
        .await;
    let full = api.search("shop", json!({"vector": [1, 1], "k": 1})).await;
    assert_eq!(
        full[0],
        json!({"id": "a", "score": 3.0, "price": 3.0, "price_tier": 1, "category": null,
               "brand": "b", "in_stock": true, "tags": ["t"], "attributes": {"c": 1}})
    );
    let lean = api
        .search(
            "shop",
            json!({"vector": [1, 1], "k": 1, "with_attributes": false}),
        )
        .await;
    assert_eq!(
        lean[0],
        json!({"id": "a", "score": 3.0, "price": 3.0, "price_tier": 1, "category": null})
    );
    server.stop().await;
}
