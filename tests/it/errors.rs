//! Bad input: each gets a 4xx JSON error naming the field and the reason,
//! and nothing of the request is written.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{assert_error, Api, TestServer};

const C: &str = "/v1/catalogs/shop";

/// Everything a client can observe of the store: catalogs with counts,
/// every item with its vector, and the known users.
async fn observable_state(api: &Api) -> Value {
    let catalogs = api.get_ok("/v1/catalogs").await;
    let mut items = Vec::new();
    for id in ["a", "b", "c", "new", "x", "y", ""] {
        let (status, body) = api.get(&format!("{C}/items/{id}?with_vector=true")).await;
        items.push(json!([status.as_u16(), body]));
    }
    let (_, users) = api.get(&format!("{C}/users/u1")).await;
    let all = api
        .search("shop", json!({"vector": [1, 1, 1], "k": 1000}))
        .await;
    json!({"catalogs": catalogs, "items": items, "users": users, "all": all})
}

async fn seeded() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| s.limits.max_body_bytes = 64 * 1024).await;
    let api = &server.api;
    api.create_catalog(
        "shop",
        json!({"dimension": 3, "metric": "cosine", "price_tiers": 4}),
    )
    .await;
    api.upsert_items(
        "shop",
        &[
            json!({"id": "a", "vector": [1, 0, 0], "price": 10, "category": "x"}),
            json!({"id": "b", "vector": [0, 1, 0], "price": 20, "category": "x", "tags": ["t"]}),
            json!({"id": "c", "vector": [0, 0, 1], "category": "y"}),
        ],
    )
    .await;
    api.post_ok(
        &format!("{C}/users"),
        json!({"users": [{"id": "u1", "vector": [1, 1, 0], "attributes": {"k": "v"}}]}),
    )
    .await;
    (dir, server)
}

fn item(fields: Value) -> Value {
    let mut base = json!({"id": "new", "vector": [1, 2, 3], "price": 5});
    for (k, v) in fields.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_writes_are_rejected_with_the_field_and_write_nothing() {
    let (_dir, server) = seeded().await;
    let api = &server.api;
    let before = observable_state(api).await;
    let long_id = "x".repeat(257);

    // (body, status, code, field)
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"items": [item(json!({"vector": [1, 2]}))]}),
            400,
            "wrong_dimension",
            "items[0].vector",
        ),
        (
            json!({"items": [item(json!({"vector": [1, 2, 3, 4]}))]}),
            400,
            "wrong_dimension",
            "items[0].vector",
        ),
        // 1e39 overflows f32: it arrives as infinity.
        (
            json!({"items": [item(json!({"vector": [1e39, 0, 0]}))]}),
            400,
            "invalid_argument",
            "items[0].vector[0]",
        ),
        (
            json!({"items": [item(json!({"vector": [0, 0, 0]}))]}),
            400,
            "invalid_argument",
            "items[0].vector",
        ),
        (
            json!({"items": [item(json!({"id": ""}))]}),
            400,
            "invalid_argument",
            "items[0].id",
        ),
        (
            json!({"items": [item(json!({"id": long_id}))]}),
            400,
            "invalid_argument",
            "items[0].id",
        ),
        (
            json!({"items": [item(json!({"price": -1}))]}),
            400,
            "invalid_argument",
            "items[0].price",
        ),
        (
            json!({"items": [item(json!({"price_tier": 0}))]}),
            400,
            "invalid_argument",
            "items[0].price_tier",
        ),
        (
            json!({"items": [item(json!({"price_tier": 5}))]}),
            400,
            "invalid_argument",
            "items[0].price_tier",
        ),
        (
            json!({"items": [item(json!({"colour": "red"}))]}),
            400,
            "unknown_field",
            "items[0].colour",
        ),
        (
            json!({"items": [item(json!({"price": "cheap"}))]}),
            400,
            "malformed_json",
            "items[0].price",
        ),
        (
            json!({"items": [item(json!({})), item(json!({"id": "x"})), item(json!({"id": "y", "vector": [1]}))]}),
            400,
            "wrong_dimension",
            "items[2].vector",
        ),
        (
            json!({"items": [item(json!({"id": "a", "vector": [0, 0, 1]})), item(json!({"id": "b", "price": -3}))]}),
            400,
            "invalid_argument",
            "items[1].price",
        ),
        (json!({"itemz": []}), 400, "unknown_field", "itemz"),
        (json!({}), 400, "malformed_json", "body"),
    ];
    for (body, status, code, field) in cases {
        let response = api.post(&format!("{C}/items"), body.clone()).await;
        assert_error(&response, status, code, Some(field));
        assert_eq!(observable_state(api).await, before, "after {body}");
    }

    // A price too large for f64 and NaN are not JSON numbers serde accepts.
    for raw in [
        r#"{"items": [{"id": "new", "vector": [1, 2, 3], "price": 1e400}]}"#,
        r#"{"items": [{"id": "new", "vector": [NaN, 2, 3]}]}"#,
        r#"{"items": [{"id": "new", "vector": [1, 2, 3]}"#,
        r#"{"items": [{"id": "new", "vector": [1, 2, 3]}]} trailing"#,
        "",
    ] {
        let response = api
            .send_raw(
                Method::POST,
                &format!("{C}/items"),
                "application/json",
                raw.into(),
            )
            .await;
        assert_error(&response, 400, "malformed_json", None);
    }
    let response = api
        .send_raw(
            Method::POST,
            &format!("{C}/items"),
            "text/plain",
            b"{}".to_vec(),
        )
        .await;
    assert_error(&response, 415, "unsupported_media_type", None);

    // Over the body limit (64 KiB in this server): 413, nothing written.
    let big: Vec<Value> = (0..3000)
        .map(|i| json!({"id": format!("big{i}"), "vector": [1, 2, 3]}))
        .collect();
    let response = api.post(&format!("{C}/items"), json!({"items": big})).await;
    assert_error(&response, 413, "payload_too_large", None);

    // Users.
    for (body, code, field) in [
        (
            json!({"users": [{"id": "u2", "vector": [1, 2]}]}),
            "wrong_dimension",
            "users[0].vector",
        ),
        (
            json!({"users": [{"id": "", "vector": [1, 2, 3]}]}),
            "invalid_argument",
            "users[0].id",
        ),
        (
            json!({"users": [{"id": "u2"}, {"id": "u3", "vector": [0, 0, 0]}]}),
            "invalid_argument",
            "users[1].vector",
        ),
        (
            json!({"users": [{"id": "u2", "age": 3}]}),
            "unknown_field",
            "users[0].age",
        ),
    ] {
        let response = api.post(&format!("{C}/users"), body.clone()).await;
        assert_error(&response, 400, code, Some(field));
    }
    assert_eq!(api.get(&format!("{C}/users/u2")).await.0.as_u16(), 404);

    // Writes to a catalog that does not exist.
    let response = api
        .post(
            "/v1/catalogs/nope/items",
            json!({"items": [item(json!({}))]}),
        )
        .await;
    assert_error(&response, 404, "catalog_not_found", None);

    assert_eq!(observable_state(api).await, before);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_clear_errors() {
    let (_dir, server) = seeded().await;
    let api = &server.api;
    let search = format!("{C}/search");
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            &search,
            json!({"vector": [1, 0, 0], "k": 0}),
            400,
            "invalid_argument",
            Some("k"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "k": 1001}),
            400,
            "invalid_argument",
            Some("k"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "k": -1}),
            400,
            "malformed_json",
            Some("k"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "k": 2.5}),
            400,
            "malformed_json",
            Some("k"),
        ),
        (
            &search,
            json!({"vector": [1, 0]}),
            400,
            "wrong_dimension",
            Some("vector"),
        ),
        (
            &search,
            json!({"vector": [0, 0, 0]}),
            400,
            "invalid_argument",
            Some("vector"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "limit": 3}),
            400,
            "unknown_field",
            Some("limit"),
        ),
        (
            &search,
            json!({"k": 3}),
            400,
            "invalid_argument",
            Some("vector"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"colour": "red"}}),
            400,
            "unknown_field",
            Some("filter.colour"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"category": 3}}),
            400,
            "invalid_argument",
            Some("filter.category"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"category": {"in": "x"}}}),
            400,
            "invalid_argument",
            Some("filter.category.in"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"brand": {"is": ["x"]}}}),
            400,
            "invalid_argument",
            Some("filter.brand.is"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"price": {"gt": 1, "gte": 2}}}),
            400,
            "invalid_argument",
            Some("filter.price"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"price": {"gte": 5, "lt": 2}}}),
            400,
            "invalid_argument",
            Some("filter.price"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"price": {}}}),
            400,
            "invalid_argument",
            Some("filter.price"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"price": {"above": 1}}}),
            400,
            "unknown_field",
            Some("filter.price.above"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"price_tier": 0}}),
            400,
            "invalid_argument",
            Some("filter.price_tier"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"price_tier": {"gte": 3, "lte": 1}}}),
            400,
            "invalid_argument",
            Some("filter.price_tier"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"tags": {"some": ["t"]}}}),
            400,
            "unknown_field",
            Some("filter.tags.some"),
        ),
        (
            &search,
            json!({"vector": [1, 0, 0], "filter": {"attributes": {"color": ["red"]}}}),
            400,
            "invalid_argument",
            Some("filter.attributes.color"),
        ),
    ];
    for (path, body, status, code, field) in cases {
        eprintln!("query case: {body}");
        let response = api.post(path, body.clone()).await;
        assert_error(&response, status, code, field);
    }
    // An integer may be written with a zero fraction (JSON Schema counts
    // `2.0` as an integer; Python's json.dumps writes floats that way).
    let whole = api
        .post(&search, json!({"vector": [1, 0, 0], "k": 2.0}))
        .await;
    assert_eq!(whole.0.as_u16(), 200, "{}", whole.1);
    assert_eq!(whole.1["hits"].as_array().unwrap().len(), 2, "{}", whole.1);

    let similar = format!("{C}/recommend/similar");
    let upsell = format!("{C}/recommend/upsell");
    assert_error(
        &api.post(&similar, json!({"item_id": "zzz"})).await,
        404,
        "item_not_found",
        Some("item_id"),
    );
    assert_error(
        &api.post(&similar, json!({"item_id": "a", "k": 0})).await,
        400,
        "invalid_argument",
        Some("k"),
    );
    assert_error(
        &api.post(&upsell, json!({"item_id": "zzz"})).await,
        404,
        "item_not_found",
        Some("item_id"),
    );
    // "c" has no price: nothing can be pricier.
    assert_error(
        &api.post(&upsell, json!({"item_id": "c"})).await,
        422,
        "unprocessable",
        Some("item_id"),
    );
    assert_error(
        &api.post(&upsell, json!({"item_id": "a", "min_price_ratio": 0.5}))
            .await,
        400,
        "invalid_argument",
        Some("min_price_ratio"),
    );
    assert_error(
        &api.post(
            &upsell,
            json!({"item_id": "a", "min_price_ratio": 1.5, "max_price_ratio": 1.2}),
        )
        .await,
        400,
        "invalid_argument",
        Some("max_price_ratio"),
    );
    assert_error(
        &api.post(&upsell, json!({"item_id": "a", "tiers_up": 0}))
            .await,
        400,
        "invalid_argument",
        Some("tiers_up"),
    );

    assert_error(
        &api.get(&format!("{C}/items/zzz")).await,
        404,
        "item_not_found",
        None,
    );
    assert_error(
        &api.get(&format!("{C}/items/a?with_vector=maybe")).await,
        400,
        "invalid_argument",
        None,
    );
    assert_error(
        &api.get(&format!("{C}/users/zzz")).await,
        404,
        "user_not_found",
        None,
    );
    assert_error(
        &api.delete(&format!("{C}/users/zzz")).await,
        404,
        "user_not_found",
        None,
    );
    assert_error(
        &api.delete(&format!("{C}/items/zzz")).await,
        404,
        "item_not_found",
        None,
    );
    assert_error(
        &api.get("/v1/catalogs/nope").await,
        404,
        "catalog_not_found",
        None,
    );
    assert_error(
        &api.post("/v1/catalogs/nope/search", json!({"vector": [1]}))
            .await,
        404,
        "catalog_not_found",
        None,
    );
    assert_error(
        &api.delete("/v1/catalogs/nope").await,
        404,
        "catalog_not_found",
        None,
    );
    assert_error(
        &api.get("/v1/nothing/here").await,
        404,
        "route_not_found",
        None,
    );
    assert_error(
        &api.send(Method::PATCH, C, None).await,
        405,
        "method_not_allowed",
        None,
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_lifecycle_and_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    let config = json!({"dimension": 4, "metric": "l2", "vector_type": "f16", "price_tiers": 3});
    let (status, body) = api.put("/v1/catalogs/shop", config.clone()).await;
    assert_eq!(status.as_u16(), 201, "{body}");
    assert_eq!(body["dimension"], 4);
    assert_eq!(body["metric"], "l2");
    assert_eq!(body["vector_type"], "f16");
    assert_eq!(body["price_tiers"], 3);
    let (status, _) = api.put("/v1/catalogs/shop", config.clone()).await;
    assert_eq!(status.as_u16(), 200, "same config again is 200");
    let response = api
        .put(
            "/v1/catalogs/shop",
            json!({"dimension": 4, "metric": "cosine", "vector_type": "f16", "price_tiers": 3}),
        )
        .await;
    assert_error(&response, 409, "catalog_config_conflict", None);

    // Defaults: cosine, f32, 4 tiers.
    let (status, body) = api.put("/v1/catalogs/other", json!({"dimension": 2})).await;
    assert_eq!(status.as_u16(), 201);
    assert_eq!(
        (&body["metric"], &body["vector_type"], &body["price_tiers"]),
        (&json!("cosine"), &json!("f32"), &json!(4))
    );

    for (name, body, code, field) in [
        (
            "bad",
            json!({"dimension": 0}),
            "invalid_argument",
            "dimension",
        ),
        (
            "bad",
            json!({"dimension": 100000}),
            "invalid_argument",
            "dimension",
        ),
        (
            "bad",
            json!({"dimension": 3, "metric": "cosinus"}),
            "malformed_json",
            "metric",
        ),
        (
            "bad",
            json!({"dimension": 3, "vector_type": "f64"}),
            "malformed_json",
            "vector_type",
        ),
        (
            "bad",
            json!({"dimension": 3, "price_tiers": 0}),
            "invalid_argument",
            "price_tiers",
        ),
        (
            "bad",
            json!({"dimension": 3, "shards": 2}),
            "unknown_field",
            "shards",
        ),
        (
            "bad name",
            json!({"dimension": 3}),
            "invalid_argument",
            "catalog",
        ),
        (
            &"n".repeat(65),
            json!({"dimension": 3}),
            "invalid_argument",
            "catalog",
        ),
    ] {
        let response = api.put(&format!("/v1/catalogs/{name}"), body.clone()).await;
        assert_error(&response, 400, code, Some(field));
    }

    let list = api.get_ok("/v1/catalogs").await;
    let names: Vec<&str> = list["catalogs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["other", "shop"]);

    api.upsert_items("shop", &[json!({"id": "a", "vector": [1, 2, 3, 4]})])
        .await;
    let shop = api.get_ok("/v1/catalogs/shop").await;
    assert_eq!(shop["counts"]["items"], 1);
    assert_eq!(shop["status"], "ready");

    let (status, _) = api.delete("/v1/catalogs/shop").await;
    assert_eq!(status.as_u16(), 200);
    assert_error(
        &api.get("/v1/catalogs/shop").await,
        404,
        "catalog_not_found",
        None,
    );
    assert_error(
        &api.get("/v1/catalogs/shop/items/a").await,
        404,
        "catalog_not_found",
        None,
    );
    // Re-created with another config, it starts empty: nothing of the old
    // catalog's records comes back.
    let (status, _) = api.put("/v1/catalogs/shop", json!({"dimension": 2})).await;
    assert_eq!(status.as_u16(), 201);
    assert_eq!(api.get_ok("/v1/catalogs/shop").await["counts"]["items"], 0);
    assert_error(
        &api.get("/v1/catalogs/shop/items/a").await,
        404,
        "item_not_found",
        None,
    );
    server.stop().await;

    // And after a restart too.
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    assert_eq!(
        server.api.get_ok("/v1/catalogs/shop").await["counts"]["items"],
        0
    );
    assert_eq!(server.api.get_ok("/v1/catalogs/shop").await["dimension"], 2);
    assert_eq!(server.api.get_ok("/healthz").await["status"], "ok");
    server.stop().await;
}
