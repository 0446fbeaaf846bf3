//! The shopper simulator (`tools/shoppersim`) run small against a real
//! server: every count the server reports for an experiment must equal
//! what the simulated shoppers sent, and a holdout that serves nothing
//! must come out measurably worse than the control. The full statistical
//! study (false positives, coverage, power over hundreds of experiments)
//! is too long for CI; it is in EXPERIMENTS.md.

use recstore_shoppersim::{run, Options, Scenario};

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_shoppers_are_counted_exactly_and_a_holdout_loses() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let mut options = Options::new(server.api.url.clone(), Scenario::Holdout);
    options.experiments = 2;
    options.units = 1_000;
    options.batches = 4;
    options.parallel = 2;
    options.in_flight = 8;
    options.items = 120;
    options.primary_metric = "conversion_rate".into();
    options.seed = 7;
    let report = run(&options).await.expect("the simulation runs");

    assert!(
        report.mismatches.is_empty(),
        "server counts differ from what was sent: {:#?}",
        report.mismatches
    );
    assert_eq!(report.empty_answers, 0, "a default arm answered nothing");
    assert_eq!(report.experiments.len(), 2);
    for experiment in &report.experiments {
        // Every shopper was assigned to one of the two arms, and both got
        // a fair share (weights 1:1; 1,000 shoppers).
        let [control, holdout] = experiment.units;
        assert_eq!(control + holdout, 1_000, "{}", experiment.name);
        assert!(control > 400 && holdout > 400, "{:?}", experiment.units);
        // One look per batch on the primary metric.
        let looks = &experiment.looks["conversion_rate"];
        assert_eq!(looks.len(), 4, "{}", experiment.name);
        // The holdout only buys organically (3 % a visit) while the
        // control also buys what it was shown: the truth is about -0.07,
        // ~3.5 standard errors at 500 shoppers per arm.
        let last = looks.last().unwrap();
        assert!(
            last.difference < 0.0 && last.ci95[0] < 0.0,
            "{}: {last:?}",
            experiment.name
        );
        assert!(last.ci95[0] <= last.difference && last.difference <= last.ci95[1]);
    }
    let truth = report.expected["conversion_rate"];
    assert!(truth[1] < truth[0], "{truth:?}");
    server.stop().await;
}

/// The engagement study (#19) run small: the score served to held-out
/// simulated shoppers is calibrated and tells clicks apart better than
/// the position alone, and the server's own held-out figures agree. The
/// full study, with its A/B experiment, is in BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engagement_score_is_calibrated_on_held_out_shoppers() {
    use recstore_shoppersim::engagement::{run_engagement, EngagementOptions};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |s| {
        s.index.model_check_secs = 0;
        s.analytics.attribution_window_ms = 1_000;
    })
    .await;
    let mut o = EngagementOptions::new(server.api.url.clone());
    o.items = 400;
    o.train_shoppers = 400;
    o.test_shoppers = 250;
    o.ab_shoppers = 0;
    o.in_flight = 8;
    o.window_secs = 1;
    o.seed = 3;
    let report = run_engagement(&o).await.expect("the study runs");
    eprintln!(
        "{}",
        recstore_shoppersim::engagement::engagement_markdown(&report)
    );
    let m = &report.model;
    assert_eq!(m["source"], "model", "{m}");
    let server_auc = m["quality"]["auc"].as_f64().unwrap();
    assert!(server_auc > m["baseline_auc"].as_f64().unwrap(), "{m}");
    let served = &report.served;
    assert!(served.hits > 5_000 && served.engaged > 300, "{served:?}");
    assert!(served.ece < 0.03, "{served:?}");
    assert!(
        served.auc > report.position_auc + 0.01,
        "{served:?} vs position {} and truth {:?}",
        report.position_auc,
        report.oracle
    );
    // No score beats the truth; ours is not far from it.
    assert!(served.auc <= report.oracle.auc + 0.01);
    server.stop().await;
}
