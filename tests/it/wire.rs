//! The compact vector encoding (`vector_b64`) on every endpoint that takes
//! a vector, and the search endpoint's `Server-Timing` split.

use base64::Engine as _;
use half::f16;
use serde_json::{json, Value};

use crate::support::{assert_error, ids, Rng, TestServer};

const DIM: usize = 16;

fn b64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn b64_f16(v: &[f32]) -> String {
    let bytes: Vec<u8> = v
        .iter()
        .flat_map(|x| f16::from_f32(*x).to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn as_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| f16::from_f32(*x).to_f32()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_b64_is_accepted_wherever_a_vector_is() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    api.create_catalog("shop", json!({"dimension": DIM, "metric": "cosine"}))
        .await;
    let mut rng = Rng::new(7);
    let vectors: Vec<Vec<f32>> = (0..300).map(|_| rng.vector(DIM)).collect();

    // Items 0..100 as JSON arrays, 100..200 as base64 f32, 200..300 as
    // base64 f16 without padding; a twin of each b64 item as JSON.
    let mut items = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let item = match i / 100 {
            0 => json!({"id": format!("i{i}"), "vector": v}),
            1 => json!({"id": format!("i{i}"), "vector_b64": b64_f32(v)}),
            _ => json!({"id": format!("i{i}"), "vector_b64": b64_f16(v).trim_end_matches('=')}),
        };
        items.push(item);
    }
    items.push(json!({"id": "twin32", "vector": vectors[150]}));
    items.push(json!({"id": "twin16", "vector": as_f16(&vectors[250])}));
    api.upsert_items("shop", &items).await;
    let stored = |id: &str| {
        let api = api.clone();
        let id = id.to_string();
        async move {
            api.get_ok(&format!("/v1/catalogs/shop/items/{id}?with_vector=true"))
                .await["vector"]
                .clone()
        }
    };
    assert_eq!(stored("i150").await, stored("twin32").await);
    assert_eq!(stored("i250").await, stored("twin16").await);

    // Searches: base64 f32 answers exactly as the JSON array does; f16 is
    // the f16-rounded query, answered as that query sent as JSON.
    for q in vectors.iter().step_by(37) {
        let by_json = api.search("shop", json!({"vector": q, "k": 10})).await;
        let by_b64 = api
            .search("shop", json!({"vector_b64": b64_f32(q), "k": 10}))
            .await;
        assert_eq!(by_json, by_b64);
        let by_json16 = api
            .search("shop", json!({"vector": as_f16(q), "k": 10}))
            .await;
        let by_b64_16 = api
            .search("shop", json!({"vector_b64": b64_f16(q), "k": 10}))
            .await;
        assert_eq!(by_json16, by_b64_16);
        assert_eq!(ids(&by_b64_16)[0], ids(&by_json)[0]);
    }

    // Users.
    api.post_ok(
        "/v1/catalogs/shop/users",
        json!({"users": [{"id": "u", "vector_b64": b64_f32(&vectors[3])}, {"id": "w", "vector": vectors[3]}]}),
    )
    .await;
    let u = api.get_ok("/v1/catalogs/shop/users/u").await;
    let w = api.get_ok("/v1/catalogs/shop/users/w").await;
    assert_eq!(u["vector"], w["vector"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_vector_b64_names_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    api.create_catalog("shop", json!({"dimension": 4, "metric": "cosine"}))
        .await;
    api.upsert_items("shop", &[json!({"id": "a", "vector": [1, 0, 0, 0]})])
        .await;
    let good = b64_f32(&[0.0, 1.0, 0.0, 0.0]);
    let nan = b64_f32(&[0.0, f32::NAN, 0.0, 0.0]);
    let three = b64_f32(&[1.0, 0.0, 0.0]);
    let zero = b64_f16(&[0.0; 4]);
    let huge = "A".repeat(10_000);
    // (item, field)
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"id": "b", "vector": [1, 0, 0, 0], "vector_b64": good}),
            "items[1].vector_b64",
        ),
        (
            json!({"id": "b", "vector_b64": "not base64!"}),
            "items[1].vector_b64",
        ),
        (
            json!({"id": "b", "vector_b64": three}),
            "items[1].vector_b64",
        ),
        (
            json!({"id": "b", "vector_b64": nan}),
            "items[1].vector_b64[1]",
        ),
        (
            json!({"id": "b", "vector_b64": zero}),
            "items[1].vector_b64",
        ),
        (
            json!({"id": "b", "vector_b64": huge}),
            "items[1].vector_b64",
        ),
        (json!({"id": "b"}), "items[1].vector"),
        (json!({"id": "b", "vector_b64": 17}), "items[1].vector_b64"),
    ];
    for (item, field) in cases {
        let body = json!({"items": [{"id": "c", "vector": [0, 0, 1, 0]}, item]});
        let response = api.post("/v1/catalogs/shop/items", body.clone()).await;
        let code = if field.ends_with("vector_b64") && item["vector_b64"].is_number() {
            "malformed_json"
        } else {
            "invalid_argument"
        };
        assert_error(&response, 400, code, Some(field));
        assert_eq!(
            api.get("/v1/catalogs/shop/items/c").await.0.as_u16(),
            404,
            "nothing written after {body}"
        );
    }
    let response = api
        .post(
            "/v1/catalogs/shop/search",
            json!({"vector_b64": three, "k": 1}),
        )
        .await;
    assert_error(&response, 400, "invalid_argument", Some("vector_b64"));
    let response = api.post("/v1/catalogs/shop/search", json!({"k": 1})).await;
    assert_error(&response, 400, "invalid_argument", Some("vector"));
    let response = api
        .post(
            "/v1/catalogs/shop/users",
            json!({"users": [{"id": "u", "vector_b64": "@@@@"}]}),
        )
        .await;
    assert_error(
        &response,
        400,
        "invalid_argument",
        Some("users[0].vector_b64"),
    );
    assert_eq!(api.get("/v1/catalogs/shop/users/u").await.0.as_u16(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_reports_its_time_split_in_server_timing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    api.create_catalog("shop", json!({"dimension": 2, "metric": "l2"}))
        .await;
    api.upsert_items("shop", &[json!({"id": "a", "vector": [1, 0]})])
        .await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/catalogs/shop/search", api.url))
        .json(&json!({"vector": [1, 0], "k": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let timing = response.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_string();
    let names: Vec<&str> = timing
        .split(", ")
        .map(|part| {
            let (name, dur) = part.split_once(";dur=").expect("name;dur=ms");
            let ms: f64 = dur.parse().expect("a number of milliseconds");
            assert!((0.0..10_000.0).contains(&ms), "{timing}");
            name
        })
        .collect();
    assert_eq!(names, ["parse", "queue", "plan", "search", "encode"]);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["hits"][0]["id"], "a");
    server.stop().await;
}
