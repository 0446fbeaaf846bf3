//! Experiments, impressions, attribution and analytics over real HTTP
//! (#18): an experiment assigns units stickily, each answer is recorded
//! and can be looked up, events citing it are attributed, results and
//! analytics count them, and all of it survives a restart.

use serde_json::{json, Value};

use crate::support::fixtures;
use crate::support::{assert_error, metric, scrape_metrics, Api, TestServer};

async fn catalog(api: &Api) {
    api.create_catalog("shop", json!({"dimension": 384, "metric": "cosine"}))
        .await;
    let p = fixtures::superstore();
    let items: Vec<Value> = (0..60).map(|i| p[i].to_item(i)).collect();
    api.upsert_items("shop", &items).await;
}

fn experiment() -> Value {
    json!({
        "surface": "similar",
        "unit": "user",
        "arms": [
            {"name": "control", "weight": 1, "strategy": {"kind": "default"}},
            {"name": "tuned", "weight": 1, "strategy": {"kind": "default", "settings": {"upsell_affinity": 0.5}}},
            {"name": "holdout", "weight": 1, "strategy": {"kind": "none"}}
        ],
        "control": "control",
        "primary_metric": "conversion_rate"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_are_validated_and_conflicts_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    catalog(api).await;
    let path = "/v1/catalogs/shop/experiments/e1";
    let bad = |f: &dyn Fn(&mut Value)| {
        let mut body = experiment();
        f(&mut body);
        body
    };
    for (body, field) in [
        (
            bad(&|b| b["arms"][1]["weight"] = json!(0)),
            "arms[1].weight",
        ),
        (bad(&|b| b["surface"] = json!("checkout")), "surface"),
        (bad(&|b| b["control"] = json!("nobody")), "control"),
        (bad(&|b| b["unit"] = json!("device")), "unit"),
        (
            bad(&|b| b["primary_metric"] = json!("clicks")),
            "primary_metric",
        ),
        (
            bad(&|b| b["arms"][2]["strategy"]["kind"] = json!("random")),
            "arms[2].strategy.kind",
        ),
        (
            bad(&|b| b["arms"][1]["strategy"]["settings"] = json!({"upsell_affinity": -1})),
            "arms[1].strategy.settings.upsell_affinity",
        ),
        (
            bad(&|b| {
                b["arms"][1]["strategy"]["settings"] = json!({"collaborative": {"enabled": false}})
            }),
            "arms[1].strategy.settings.collaborative",
        ),
    ] {
        let (status, answer) = api.put(path, body).await;
        assert_error(
            &(status, answer.clone()),
            400,
            "invalid_argument",
            Some(field),
        );
    }
    // Nothing of the refused requests was written.
    let list = api.get_ok("/v1/catalogs/shop/experiments").await;
    assert_eq!(list["experiments"], json!([]));
    let (status, created) = api.put(path, experiment()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "running");
    assert_eq!(
        created["arms"][1]["strategy"]["settings"]["upsell_affinity"],
        0.5
    );
    let (status, _) = api.put(path, experiment()).await;
    assert_eq!(status, 200, "an identical PUT is a no-op");
    let mut other = experiment();
    other["arms"][0]["weight"] = json!(2);
    let (status, answer) = api.put(path, other).await;
    assert_error(&(status, answer.clone()), 409, "conflict", Some("name"));
    let (status, answer) = api
        .put("/v1/catalogs/shop/experiments/e2", experiment())
        .await;
    assert_error(&(status, answer.clone()), 409, "conflict", Some("surface"));
    let (status, answer) = api.get("/v1/catalogs/shop/experiments/nope").await;
    assert_error(
        &(status, answer.clone()),
        404,
        "experiment_not_found",
        Some("name"),
    );
    let stopped = api.post_ok(&format!("{path}/stop"), json!({})).await;
    assert_eq!(stopped["status"], "stopped");
    // Once stopped, the surface takes a new experiment.
    let (status, _) = api
        .put("/v1/catalogs/shop/experiments/e2", experiment())
        .await;
    assert_eq!(status, 201);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_recorded_attributed_counted_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    catalog(api).await;
    let p = fixtures::superstore();
    let (status, _) = api
        .put("/v1/catalogs/shop/experiments/sim", experiment())
        .await;
    assert_eq!(status, 201);
    let mut arms_seen = std::collections::HashMap::new();
    let mut arm_of = std::collections::HashMap::new();
    let mut clicked = 0;
    for u in 0..60 {
        let user = format!("user-{u}");
        let answer = api
            .post_ok(
                "/v1/catalogs/shop/recommend/similar",
                json!({"item_id": p[u % 10].id, "user_id": user, "k": 5}),
            )
            .await;
        let arm = answer["experiment"]["arm"].as_str().unwrap().to_string();
        // Sticky: the same user gets the same arm again.
        let again = api
            .post_ok(
                "/v1/catalogs/shop/recommend/similar",
                json!({"item_id": p[u % 10].id, "user_id": user, "k": 5}),
            )
            .await;
        assert_eq!(again["experiment"]["arm"], arm.as_str());
        let hits = answer["hits"].as_array().unwrap();
        if arm == "holdout" {
            assert!(hits.is_empty(), "a holdout answers nothing");
        }
        *arms_seen.entry(arm.clone()).or_insert(0) += 1;
        arm_of.insert(user.clone(), arm.clone());
        let id = answer["recommendation_id"].as_str().unwrap();
        // The impression can be looked up at once.
        let shown = api
            .get_ok(&format!("/v1/catalogs/shop/recommendations/{id}"))
            .await;
        assert_eq!(shown["surface"], "similar");
        assert_eq!(shown["experiment"]["arm"], arm.as_str());
        assert_eq!(shown["item_ids"].as_array().unwrap().len(), hits.len());
        if let Some(first) = hits.first().filter(|_| u % 2 == 0) {
            let item = first["id"].as_str().unwrap();
            let outcome = api
                .post_ok(
                    "/v1/catalogs/shop/events",
                    json!({"events": [
                        {"user_id": user, "item_id": item, "type": "click", "recommendation_id": id},
                        {"user_id": user, "item_id": p[59].id, "type": "click", "recommendation_id": id},
                        // No id: attributed through the click.
                        {"user_id": user, "item_id": item, "type": "purchase", "price": 10.0, "quantity": 2, "order_id": format!("o-{u}")},
                    ]}),
                )
                .await;
            let not_shown = !shown["item_ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i == p[59].id.as_str());
            assert_eq!(outcome["attributed"], 1 + u64::from(!not_shown));
            assert_eq!(outcome["unattributed"], u64::from(not_shown));
            clicked += 1;
        }
    }
    assert_eq!(arms_seen.len(), 3, "{arms_seen:?}");
    let (status, answer) = api
        .get("/v1/catalogs/shop/recommendations/r-1-00000000-0")
        .await;
    assert_error(
        &(status, answer.clone()),
        404,
        "recommendation_not_found",
        Some("recommendation_id"),
    );

    let results = api
        .get_ok("/v1/catalogs/shop/experiments/sim/results")
        .await;
    let arms = results["arms"].as_array().unwrap();
    let units: u64 = arms.iter().map(|a| a["units"].as_u64().unwrap()).sum();
    assert_eq!(units, 60);
    assert_eq!(results["sample_size"], 60);
    let clicks: u64 = arms.iter().map(|a| a["clicks"].as_u64().unwrap()).sum();
    assert!(clicks >= clicked as u64, "{results}");
    let purchases: u64 = arms.iter().map(|a| a["purchases"].as_u64().unwrap()).sum();
    assert_eq!(purchases, clicked as u64, "{results}");
    let control = &arms[0];
    assert!(control.get("vs_control").is_none());
    for arm in &arms[1..] {
        for metric in ["ctr", "conversion_rate", "revenue_per_unit"] {
            assert!(arm["vs_control"].get(metric).is_some(), "{arm}");
        }
    }
    let revenue: f64 = arms.iter().map(|a| a["revenue"].as_f64().unwrap()).sum();
    assert!((revenue - 20.0 * clicked as f64).abs() < 1e-6, "{results}");
    assert_eq!(results["verdict"], "inconclusive");

    let analytics = api
        .get_ok("/v1/catalogs/shop/analytics?surface=similar&bucket=day")
        .await;
    let points = analytics["surfaces"][0]["points"].as_array().unwrap();
    let impressions: u64 = points
        .iter()
        .map(|p| p["impressions"].as_u64().unwrap())
        .sum();
    assert_eq!(impressions, 120);
    let orders = analytics["orders"].as_array().unwrap();
    let with: u64 = orders
        .iter()
        .map(|o| o["orders_with_recommendation"].as_u64().unwrap())
        .sum();
    assert_eq!(with, clicked as u64);
    let (status, answer) = api.get("/v1/catalogs/shop/analytics?bucket=month").await;
    assert_error(
        &(status, answer.clone()),
        400,
        "invalid_argument",
        Some("bucket"),
    );

    server.stop().await;
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let api = &server.api;
    api.wait_ready().await;
    let after = api
        .get_ok("/v1/catalogs/shop/experiments/sim/results")
        .await;
    assert_eq!(after, results, "results survive a restart");
    let again = api
        .post_ok(
            "/v1/catalogs/shop/recommend/similar",
            json!({"item_id": p[0].id, "user_id": "user-0", "k": 5}),
        )
        .await;
    assert_eq!(
        again["experiment"]["arm"],
        arm_of["user-0"].as_str(),
        "assignment survives a restart"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impression_queue_of_zero_records_nothing_and_counts_the_drops() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| s.analytics.impression_queue = 0).await;
    let api = &server.api;
    catalog(api).await;
    let p = fixtures::superstore();
    let answer = api
        .post_ok(
            "/v1/catalogs/shop/recommend/similar",
            json!({"item_id": p[0].id, "user_id": "u", "k": 5}),
        )
        .await;
    // The answer is whole: only its record is dropped.
    assert_eq!(answer["hits"].as_array().unwrap().len(), 5);
    let id = answer["recommendation_id"].as_str().unwrap();
    let (status, body) = api
        .get(&format!("/v1/catalogs/shop/recommendations/{id}"))
        .await;
    assert_error(
        &(status, body),
        404,
        "recommendation_not_found",
        Some("recommendation_id"),
    );
    let item = answer["hits"][0]["id"].as_str().unwrap();
    let outcome = api
        .post_ok(
            "/v1/catalogs/shop/events",
            json!({"events": [{"user_id": "u", "item_id": item, "type": "click", "recommendation_id": id}]}),
        )
        .await;
    assert_eq!(outcome["accepted"], 1);
    assert_eq!(outcome["unattributed"], 1);
    let metrics = scrape_metrics(&api.url).await;
    assert_eq!(
        metric(&metrics, "recstore_impressions{state=\"dropped\"}"),
        1.0
    );
    server.stop().await;
}
