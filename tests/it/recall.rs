//! Recall@10 against brute force on real data, unfiltered and filtered at
//! selectivities from 100 % down to ~1 %, through the HTTP API. Every hit
//! must satisfy its filter, and a query returns min(k, matches) hits.
//!
//! Each data set runs twice: with the exact-scan threshold at 0 (every
//! query goes through the HNSW graph with over-fetch and escalation) and
//! at its default (small filtered sets are scanned exactly).

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::fixtures::{self, brute_force_scores, recall, Metric};
use crate::support::{Api, TestServer};

const K: usize = 10;

/// A filter and the same condition as a predicate on a row.
struct Case {
    name: &'static str,
    filter: Value,
    keep: Box<dyn Fn(usize) -> bool>,
}

fn case(name: &'static str, filter: Value, keep: impl Fn(usize) -> bool + 'static) -> Case {
    Case {
        name,
        filter,
        keep: Box::new(keep),
    }
}

/// Runs every query under every case; asserts filter, count and recall.
async fn check_cases(
    api: &Api,
    catalog: &str,
    metric: Metric,
    base: &[Vec<f32>],
    queries: &[Vec<f32>],
    row_of: impl Fn(&str) -> usize,
    cases: &[Case],
) {
    for case in cases {
        let matches = (0..base.len()).filter(|i| (case.keep)(*i)).count();
        assert!(matches > 0, "case {} matches nothing", case.name);
        let mut total = 0.0;
        for query in queries {
            let hits = api
                .search(
                    catalog,
                    json!({"vector": query, "k": K, "filter": case.filter}),
                )
                .await;
            assert_eq!(
                hits.len(),
                K.min(matches),
                "case {}: k hits unless fewer match",
                case.name
            );
            let mut seen = HashSet::new();
            let mut found = Vec::new();
            for hit in &hits {
                let row = row_of(hit["id"].as_str().unwrap());
                assert!(
                    (case.keep)(row),
                    "case {}: hit {} does not satisfy the filter",
                    case.name,
                    hit["id"]
                );
                assert!(seen.insert(row), "case {}: duplicate hit", case.name);
                // Score recomputed from our own copy of the vector, so a
                // wrong score from the server cannot hide a wrong hit.
                let ours = fixtures::score(metric, query, &base[row]);
                let theirs = hit["score"].as_f64().unwrap() as f32;
                assert!(
                    (ours - theirs).abs() <= 1e-3 * ours.abs().max(1.0),
                    "case {}: score {theirs} for {}, brute force says {ours}",
                    case.name,
                    hit["id"]
                );
                found.push(ours);
            }
            assert!(
                found
                    .windows(2)
                    .all(|w| w[0] >= w[1] - 1e-3 * w[0].abs().max(1.0)),
                "case {}: hits best first",
                case.name
            );
            let exact = brute_force_scores(metric, base, query, K, &case.keep);
            total += recall(&found, &exact);
        }
        let mean = total / queries.len() as f64;
        eprintln!(
            "{catalog} {:<28} matches {:>5} ({:>5.1} %) recall@10 {mean:.4}",
            case.name,
            matches,
            100.0 * matches as f64 / base.len() as f64
        );
        assert!(
            mean >= 0.95,
            "case {}: recall@10 {mean:.4} < 0.95",
            case.name
        );
    }
}

fn superstore_cases() -> Vec<Case> {
    let p = fixtures::superstore();
    vec![
        case("unfiltered", json!(null), |_| true),
        case("in_stock (75 %)", json!({"in_stock": true}), |i| i % 4 != 0),
        case(
            "tag any even (50 %)",
            json!({"tags": {"any": ["even"]}}),
            |i| i % 2 == 0,
        ),
        case(
            "price > 205.99 (10 %)",
            json!({"price": {"gt": 205.99}}),
            move |i| p[i].price > 205.99,
        ),
        case(
            "category Phones (10 %)",
            json!({"category": "Phones"}),
            move |i| p[i].category == "Phones",
        ),
        case(
            "department attr (not Office)",
            json!({"attributes": {"department": "Technology"}}),
            move |i| p[i].department == "Technology",
        ),
        case(
            "category not_in + price band",
            json!({"category": {"not_in": ["Paper", "Binders", "Art"]}, "price": {"gte": 20, "lt": 100}}),
            move |i| {
                !["Paper", "Binders", "Art"].contains(&p[i].category.as_str())
                    && p[i].price >= 20.0
                    && p[i].price < 100.0
            },
        ),
        case(
            "tables|bookcases in stock (4 %)",
            json!({"category": {"in": ["Tables", "Bookcases"]}, "in_stock": true}),
            move |i| ["Tables", "Bookcases"].contains(&p[i].category.as_str()) && i % 4 != 0,
        ),
        case(
            "phones tagged tenth (1 %)",
            json!({"category": "Phones", "tags": {"all": ["tenth", "even"]}}),
            move |i| p[i].category == "Phones" && i % 10 == 0,
        ),
        case(
            "tier 4 copiers|machines (0.5 %)",
            json!({"category": {"in": ["Copiers", "Machines"]}, "price_tier": 4}),
            // Tier 4 of 4 by price quantile within each category.
            move |i| {
                ["Copiers", "Machines"].contains(&p[i].category.as_str())
                    && fixtures::tier_of(p, i) == 4
            },
        ),
    ]
}

async fn superstore_recall(exact_scan_threshold: usize) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| {
        s.index.exact_scan_threshold = exact_scan_threshold;
    })
    .await;
    let api = &server.api;
    fixtures::load_superstore(api, "superstore").await;
    let products = fixtures::superstore();
    let base: Vec<Vec<f32>> = products.iter().map(|p| p.vector.clone()).collect();
    // Every 10th product's embedding as a query: 187 queries.
    let queries: Vec<Vec<f32>> = base.iter().step_by(10).cloned().collect();
    let index: std::collections::HashMap<&str, usize> = products
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    check_cases(
        api,
        "superstore",
        Metric::Cosine,
        &base,
        &queries,
        |id| index[id],
        &superstore_cases(),
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superstore_cosine_recall_through_the_graph() {
    superstore_recall(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superstore_cosine_recall_with_default_planner() {
    superstore_recall(recstore::config::Defaults::EXACT_SCAN_THRESHOLD).await;
}

fn mnist_item(i: usize, v: &[f32]) -> Value {
    json!({
        "id": format!("m{i}"),
        "vector": v,
        "price": ((i * 7919) % 1000) as f64,
        "category": format!("c{}", i % 10),
        "tags": mnist_tags(i),
    })
}

fn mnist_tags(i: usize) -> Vec<String> {
    let mut tags = vec![format!("p{}", (i / 10) % 10)];
    if i % 2 == 0 {
        tags.push("even".into());
    }
    tags
}

fn mnist_cases() -> Vec<Case> {
    let price = |i: usize| ((i * 7919) % 1000) as f64;
    vec![
        case("unfiltered", json!(null), |_| true),
        case(
            "price < 500 (50 %)",
            json!({"price": {"lt": 500}}),
            move |i| price(i) < 500.0,
        ),
        case("category c3 (10 %)", json!({"category": "c3"}), |i| {
            i % 10 == 3
        }),
        case(
            "tag p7 not c1 (9 %)",
            json!({"tags": {"any": ["p7"]}, "category": {"not_in": ["c1"]}}),
            |i| (i / 10) % 10 == 7 && i % 10 != 1,
        ),
        case(
            "c3 and p7 (1 %)",
            json!({"category": "c3", "tags": {"all": ["p7"]}}),
            |i| i % 10 == 3 && (i / 10) % 10 == 7,
        ),
        case(
            "even, price 100..=120 (1 %)",
            json!({"tags": {"any": ["even"]}, "price": {"gte": 100, "lte": 120}}),
            move |i| i % 2 == 0 && (100.0..=120.0).contains(&price(i)),
        ),
    ]
}

async fn mnist_recall(vector_type: &str, exact_scan_threshold: usize) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| {
        s.index.exact_scan_threshold = exact_scan_threshold;
    })
    .await;
    let api = &server.api;
    api.create_catalog(
        "mnist",
        json!({"dimension": 784, "metric": "l2", "vector_type": vector_type}),
    )
    .await;
    let (base, queries) = fixtures::mnist();
    let items: Vec<Value> = base
        .iter()
        .enumerate()
        .map(|(i, v)| mnist_item(i, v))
        .collect();
    api.upsert_items("mnist", &items).await;
    check_cases(
        api,
        "mnist",
        Metric::L2,
        base,
        &queries[..100],
        |id| id[1..].parse().unwrap(),
        &mnist_cases(),
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mnist_l2_recall_through_the_graph() {
    mnist_recall("f32", 0).await;
}

/// MNIST pixels are integers 0..=255, exact in f16: the f16 catalog must
/// reach the same recall against f32 brute force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mnist_l2_recall_f16_with_default_planner() {
    mnist_recall("f16", recstore::config::Defaults::EXACT_SCAN_THRESHOLD).await;
}
