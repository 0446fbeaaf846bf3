//! API keys: 401 without a valid key, 403 for the read-only key on a
//! write (with nothing written), both header forms, health probes open.

use recstore::config::ApiKeys;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::TestServer;

const ADMIN: &str = "admin-key-0123456789abcdef";
const READER: &str = "read-key-0123456789abcdef";

/// One request with the given auth header (name, value), if any.
async fn call(
    url: &str,
    method: Method,
    path: &str,
    auth: Option<(&str, String)>,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = reqwest::Client::new().request(method, format!("{url}{path}"));
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request reaches the server");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {text:?}: {e}"))
    };
    (status, value, challenge)
}

fn bearer(key: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {key}")))
}

fn x_api_key(key: &str) -> Option<(&'static str, String)> {
    Some(("x-api-key", key.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_guard_every_route_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| {
        s.api_keys = ApiKeys {
            admin: Some(ADMIN.into()),
            read: Some(READER.into()),
        }
    })
    .await;
    let url = server.api.url.clone();
    let catalog = json!({"dimension": 2, "metric": "cosine"});
    let item = json!({"items": [{"id": "a", "vector": [1.0, 0.0]}]});
    let search = json!({"vector": [1.0, 0.0], "k": 5});

    // Health probes need no key.
    for path in ["/healthz", "/readyz"] {
        let (status, _, _) = call(&url, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }

    // No key, a wrong key, a malformed header: 401 with a challenge, and
    // the write did not happen.
    for auth in [
        None,
        bearer("not-the-key-0123456789"),
        x_api_key("not-the-key-0123456789"),
        Some(("authorization", format!("Basic {ADMIN}"))),
        bearer(&ADMIN[..ADMIN.len() - 1]),
    ] {
        let (status, body, challenge) = call(
            &url,
            Method::PUT,
            "/v1/catalogs/shop",
            auth.clone(),
            Some(catalog.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        assert!(challenge.unwrap().starts_with("Bearer"));
        let (status, _, _) = call(&url, Method::GET, "/v1/catalogs", auth, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = call(&url, Method::GET, "/v1/catalogs/shop", bearer(ADMIN), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused PUT created nothing"
    );

    // The admin key does everything, in either header (scheme in any case).
    let (status, body, _) = call(
        &url,
        Method::PUT,
        "/v1/catalogs/shop",
        Some(("authorization", format!("bearer {ADMIN}"))),
        Some(catalog.clone()),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body, _) = call(
        &url,
        Method::POST,
        "/v1/catalogs/shop/items",
        x_api_key(ADMIN),
        Some(item),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A proxy's Basic credentials do not hide an x-api-key.
    let response = reqwest::Client::new()
        .get(format!("{url}/v1/catalogs"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .header("x-api-key", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // The read key queries and reads...
    for auth in [bearer(READER), x_api_key(READER)] {
        let (status, body, _) = call(
            &url,
            Method::POST,
            "/v1/catalogs/shop/search",
            auth.clone(),
            Some(search.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["hits"][0]["id"], "a", "{body}");
        let (status, _, _) = call(&url, Method::GET, "/v1/catalogs/shop/items/a", auth, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    // ...but cannot write: 403, and nothing changes.
    let (status, body, _) = call(
        &url,
        Method::POST,
        "/v1/catalogs/shop/items",
        bearer(READER),
        Some(json!({"items": [{"id": "b", "vector": [0.0, 1.0]}]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    let (status, _, _) = call(
        &url,
        Method::DELETE,
        "/v1/catalogs/shop",
        x_api_key(READER),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(
        &url,
        Method::GET,
        "/v1/catalogs/shop/items/b",
        bearer(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused upsert wrote nothing"
    );
    let (status, _, _) = call(&url, Method::GET, "/v1/catalogs/shop", bearer(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "the refused delete deleted nothing");
    server.stop().await;
}
