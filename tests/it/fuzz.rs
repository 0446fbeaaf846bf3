//! Hostile input, generated: random and mutated bodies, paths, methods and
//! headers against every endpoint of a real server holding real data.
//! Whatever arrives, the answer is never a 5xx (a caught panic is a 500),
//! always a JSON error with a code when it is a 4xx, and a refused write
//! changes nothing: the store's counts are the same before and after.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

use crate::support::{Rng, TestServer};

const DIM: usize = 4;

/// Every route, with a valid body to mutate.
fn endpoints() -> Vec<(&'static str, &'static str, Value)> {
    let v = json!([0.1, 0.2, 0.3, 0.4]);
    vec![
        (
            "PUT",
            "/v1/catalogs/{scratch}",
            json!({"dimension": 4, "metric": "l2", "vector_type": "f16", "price_tiers": 3}),
        ),
        ("GET", "/v1/catalogs/{catalog}", Value::Null),
        ("DELETE", "/v1/catalogs/{scratch}", Value::Null),
        ("GET", "/v1/catalogs", Value::Null),
        (
            "POST",
            "/v1/catalogs/{catalog}/items",
            json!({"items": [{"id": "n1", "vector": v, "price": 10.5, "category": "a", "brand": "b", "in_stock": true, "tags": ["x"], "attributes": {"k": 1}}]}),
        ),
        (
            "POST",
            "/v1/catalogs/{catalog}/items:bulk",
            json!({"id": "n2", "vector": v}),
        ),
        (
            "POST",
            "/v1/catalogs/{catalog}/items/delete",
            json!({"ids": ["i1", "zz"]}),
        ),
        ("GET", "/v1/catalogs/{catalog}/items/{id}", Value::Null),
        ("DELETE", "/v1/catalogs/{catalog}/items/{id}", Value::Null),
        (
            "POST",
            "/v1/catalogs/{catalog}/users",
            json!({"users": [{"id": "u9", "vector": v, "attributes": {"segment": "b2b"}}]}),
        ),
        ("GET", "/v1/catalogs/{catalog}/users/{id}", Value::Null),
        ("DELETE", "/v1/catalogs/{catalog}/users/{id}", Value::Null),
        (
            "POST",
            "/v1/catalogs/{catalog}/events",
            json!({"events": [{"user_id": "u1", "item_id": "i2", "type": "purchase", "quantity": 2, "price": 3.5, "order_id": "o1", "session_id": "s1", "event_id": "e1", "timestamp": "2024-01-02T03:04:05Z"}]}),
        ),
        (
            "POST",
            "/v1/catalogs/{catalog}/search",
            json!({"vector": v, "k": 5, "filter": {"category": "a", "price": {"gte": 1, "lt": 50}, "tags": {"any": ["x"]}, "in_stock": true}, "with_attributes": false}),
        ),
        (
            "POST",
            "/v1/catalogs/{catalog}/recommend/similar",
            json!({"item_id": "i1", "k": 3, "user_id": "u1"}),
        ),
        (
            "POST",
            "/v1/catalogs/{catalog}/recommend/upsell",
            json!({"item_id": "i1", "k": 3, "min_price_ratio": 1.1, "max_price_ratio": 3.0, "tiers_up": 1, "same_category": true}),
        ),
        (
            "POST",
            "/v1/catalogs/{catalog}/recommend/user",
            json!({"user_id": "u1", "k": 3, "at": "2024-05-01T00:00:00Z"}),
        ),
        (
            "POST",
            "/v1/catalogs/{catalog}/recommend/cross-sell",
            json!({"item_ids": ["i1", "i2"], "k": 3}),
        ),
        (
            "POST",
            "/v1/catalogs/{catalog}/recommend/trending",
            json!({"k": 3}),
        ),
        ("GET", "/v1/catalogs/{catalog}/settings", Value::Null),
        (
            "PUT",
            "/v1/catalogs/{catalog}/settings",
            json!({"session_half_life_secs": 600, "blend": 0.5}),
        ),
        ("POST", "/v1/admin/backup", json!({"name": "fuzz"})),
        ("GET", "/metrics", Value::Null),
        ("GET", "/healthz", Value::Null),
    ]
}

/// Any JSON value, nested a few levels, with the awkward numbers and
/// strings that break parsers and validators.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(1e308),
            Just(-1e308),
            Just(5e-324),
            any::<f64>().prop_filter("finite", |f| f.is_finite())
        ]
        .prop_map(Value::from),
        Just(json!(u64::MAX)),
        ".{0,12}".prop_map(Value::from),
        Just(json!("\u{0}\u{202e}\u{ffff}")),
        Just(json!("a".repeat(300))),
        Just(json!("2024-13-45T99:99:99Z")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,10}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A mutation of a valid body.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Replace(Value),
    /// Removes, or sets to a random value, the field at a random path.
    Field {
        pick: usize,
        value: Option<Value>,
    },
    AddUnknown(Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::None),
        2 => any_json().prop_map(Mutation::Replace),
        5 => (any::<usize>(), prop::option::of(any_json()))
            .prop_map(|(pick, value)| Mutation::Field { pick, value }),
        1 => any_json().prop_map(Mutation::AddUnknown),
    ]
}

/// Every (object, key) position in `v`, depth first.
fn positions(v: &Value, path: Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let mut p = path.clone();
                p.push(PathStep::Key(k.clone()));
                out.push(p.clone());
                positions(child, p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let mut p = path.clone();
                p.push(PathStep::Index(i));
                out.push(p.clone());
                positions(child, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn apply(body: &Value, m: &Mutation) -> Value {
    match m {
        Mutation::None => body.clone(),
        Mutation::Replace(v) => v.clone(),
        Mutation::AddUnknown(v) => {
            let mut body = body.clone();
            if let Value::Object(map) = &mut body {
                map.insert("surprise".into(), v.clone());
            }
            body
        }
        Mutation::Field { pick, value } => {
            let mut body = body.clone();
            let mut all = Vec::new();
            positions(&body, Vec::new(), &mut all);
            if all.is_empty() {
                return value.clone().unwrap_or(Value::Null);
            }
            let path = &all[pick % all.len()];
            let (last, parents) = path.split_last().unwrap();
            let mut at = &mut body;
            for step in parents {
                at = match step {
                    PathStep::Key(k) => &mut at[k.as_str()],
                    PathStep::Index(i) => &mut at[*i],
                };
            }
            match (last, value, at) {
                (PathStep::Key(k), None, Value::Object(map)) => {
                    map.remove(k);
                }
                (PathStep::Index(i), None, Value::Array(items)) => {
                    items.remove(*i);
                }
                (PathStep::Key(k), Some(v), at) => at[k.as_str()] = v.clone(),
                (PathStep::Index(i), Some(v), at) => at[*i] = v.clone(),
                _ => {}
            }
            body
        }
    }
}

/// A path segment: usually a real name, else anything a client could send
/// (percent escapes, valid and not, dots, unicode, long).
fn segment(real: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(real.to_string()),
        2 => "([a-zA-Z0-9_.~-]|%[0-9A-Fa-f]{2}|%[g-z]{2}){0,40}",
        1 => "\\PC{0,20}".prop_map(|s| s.replace(['/', '?', '#'], "")),
        1 => Just("x".repeat(300)),
        1 => Just("..".to_string()),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    endpoint: usize,
    method: Option<&'static str>,
    catalog: String,
    scratch: String,
    id: String,
    body: Mutation,
    content_type: Option<&'static str>,
    raw: Option<Vec<u8>>,
}

fn case(n: usize) -> impl Strategy<Value = Case> {
    (
        0..n,
        prop_oneof![
            8 => Just(None),
            1 => prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE"), Just("PATCH"), Just("HEAD"), Just("OPTIONS")].prop_map(Some),
        ],
        segment("c"),
        segment("scratch"),
        segment("i1"),
        mutation(),
        prop_oneof![
            6 => Just(Some("application/json")),
            1 => Just(None),
            1 => Just(Some("text/plain")),
            1 => Just(Some("application/x-ndjson")),
            1 => Just(Some("application/json; charset=utf-16")),
            1 => Just(Some("\u{1}garbage")),
        ],
        prop_oneof![
            8 => Just(None),
            1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Some),
            1 => Just(Some(b"{\"items\": [".repeat(50))),
            1 => Just(Some(b"\xef\xbb\xbf{\"k\": 3}".to_vec())),
        ],
    )
        .prop_map(|(endpoint, method, catalog, scratch, id, body, content_type, raw)| Case {
            endpoint,
            method,
            catalog,
            scratch,
            id,
            body,
            content_type,
            raw,
        })
}

/// Item and user counts of every catalog: what a refused write must leave
/// as it was.
async fn fingerprint(client: &reqwest::Client, url: &str) -> Value {
    let list: Value = client
        .get(format!("{url}/v1/catalogs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = Map::new();
    for c in list["catalogs"].as_array().cloned().unwrap_or_default() {
        out.insert(
            c["name"].as_str().unwrap().to_string(),
            json!([c["counts"]["items"], c["counts"]["users"]]),
        );
    }
    Value::Object(out)
}

#[test]
fn hostile_requests_never_get_a_5xx_nor_write_partially() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = runtime.block_on(async {
        let server = TestServer::start_in(dir.path(), |_| {}).await;
        let api = &server.api;
        api.create_catalog("c", json!({"dimension": DIM, "metric": "cosine"}))
            .await;
        let mut rng = Rng::new(9);
        let items: Vec<Value> = (0..60)
            .map(|i| {
                json!({"id": format!("i{i}"), "vector": rng.vector(DIM), "price": 1.0 + i as f64,
                       "category": (["a", "b", "c"][i % 3]), "tags": ["x"]})
            })
            .collect();
        api.upsert_items("c", &items).await;
        api.post_ok(
            "/v1/catalogs/c/users",
            json!({"users": [{"id": "u1", "vector": rng.vector(DIM)}]}),
        )
        .await;
        let events: Vec<Value> = (0..40)
            .map(|i| json!({"user_id": format!("u{}", i % 5), "item_id": format!("i{}", i % 12), "type": "purchase", "order_id": format!("o{}", i / 3)}))
            .collect();
        api.post_ok("/v1/catalogs/c/events", json!({"events": events}))
            .await;
        server
    });
    let url = server.api.url.clone();
    let client = reqwest::Client::new();
    let endpoints = endpoints();
    let cases = if std::env::var("RECSTORE_FUZZ_CASES").is_ok() {
        std::env::var("RECSTORE_FUZZ_CASES")
            .unwrap()
            .parse()
            .unwrap()
    } else {
        1_500
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<(u16, String), usize>::new());
    let outcome = runner.run(&case(endpoints.len()), |case| {
        let (default_method, template, valid) = &endpoints[case.endpoint];
        let method = case.method.unwrap_or(default_method);
        let path = template
            .replace("{catalog}", &case.catalog)
            .replace("{scratch}", &case.scratch)
            .replace("{id}", &case.id);
        let body: Option<Vec<u8>> = match (&case.raw, valid) {
            (Some(raw), _) => Some(raw.clone()),
            (None, Value::Null) if !matches!(case.body, Mutation::Replace(_)) => None,
            (None, valid) => {
                let mutated = apply(valid, &case.body);
                Some(if template.ends_with("items:bulk") {
                    // NDJSON: the mutated line, twice.
                    format!("{mutated}\n{mutated}\n").into_bytes()
                } else {
                    serde_json::to_vec(&mutated).unwrap()
                })
            }
        };
        let (status, text, before, after) = runtime.block_on(async {
            let before = fingerprint(&client, &url).await;
            let mut request = client.request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{url}{path}"),
            );
            if let Some(ct) = case.content_type {
                request = request.header("content-type", ct);
            }
            if let Some(body) = body {
                request = request.body(body);
            }
            let response = match request.build() {
                // A path reqwest itself refuses never reaches the server.
                Err(_) => return (0, String::new(), Value::Null, Value::Null),
                Ok(request) => client.execute(request).await.expect("the server answers"),
            };
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let after = fingerprint(&client, &url).await;
            (status, text, before, after)
        });
        if status == 0 {
            return Ok(());
        }
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        *seen.lock().unwrap().entry((status, code)).or_default() += 1;
        prop_assert!(
            status < 500,
            "{method} {path}: {status} {text}\ncase: {case:?}"
        );
        if status >= 400 && method != "HEAD" {
            let error: Value = serde_json::from_str(&text).map_err(|e| {
                TestCaseError::fail(format!("{method} {path}: {status} not JSON: {text:?}: {e}"))
            })?;
            prop_assert!(
                error["error"]["code"].is_string() && error["error"]["message"].is_string(),
                "{method} {path}: {status} {text}"
            );
            // A refused request wrote nothing (items:bulk reports rejected
            // lines in a 200 and loads the rest, by design).
            prop_assert_eq!(&before, &after, "{} {}: {} {}", method, path, status, text);
        }
        Ok(())
    });
    runtime.block_on(server.stop());
    eprintln!("answers by status and code: {:#?}", seen.lock().unwrap());
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
