//! The OpenAPI document: generated from the handlers, served at
//! `/openapi.json`, and committed as `openapi.json`. This test fails when
//! the committed file drifts from the code; regenerate it with
//! `cargo run -- openapi > openapi.json`.

use serde_json::Value;

use crate::support::TestServer;

const COMMITTED: &str = include_str!("../../openapi.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_document_is_the_one_the_code_serves() {
    let generated = recstore::api::openapi_json();
    if generated != COMMITTED {
        let first = generated
            .lines()
            .zip(COMMITTED.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(generated.lines().count().min(COMMITTED.lines().count()));
        panic!(
            "openapi.json is out of date (first difference at line {}): \
             regenerate it with `cargo run -- openapi > openapi.json` and commit it",
            first + 1
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let response = reqwest::get(format!("{}/openapi.json", server.api.url))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), COMMITTED);
    server.stop().await;
}

#[test]
fn every_route_and_error_is_documented() {
    let doc: Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/catalogs/{catalog}", &["put", "get", "delete"][..]),
        ("/v1/catalogs/{catalog}/items", &["post"]),
        ("/v1/catalogs/{catalog}/items:bulk", &["post"]),
        ("/v1/catalogs/{catalog}/items/{id}", &["get", "delete"]),
        ("/v1/catalogs/{catalog}/search", &["post"]),
        ("/v1/catalogs/{catalog}/recommend/cross-sell", &["post"]),
        ("/v1/admin/backup", &["post"]),
        ("/metrics", &["get"]),
    ] {
        for method in methods {
            let op = &paths[path][method];
            assert!(op.is_object(), "{method} {path} is documented");
            if path.starts_with("/v1/") {
                assert!(
                    op["responses"]["4XX"].is_object(),
                    "{method} {path} documents its errors"
                );
            }
        }
    }
    // The wire types are described field by field, with what is required.
    let item = &doc["components"]["schemas"]["ItemWire"];
    assert!(item["properties"]["vector_b64"].is_object(), "{item}");
    assert_eq!(item["required"], serde_json::json!(["id"]), "{item}");
}
