//! The shopper simulator: proves recstore's experiment statistics against
//! a real server over HTTP.
//!
//! Simulated shoppers (see [`world`]) with latent tastes and known click
//! and purchase probabilities visit a catalog, ask `recommend/user` for
//! personal picks, click, cart and buy what they are shown, and send their
//! events back with the answer's `recommendation_id`, exactly as a shop
//! would. Each experiment has fresh shoppers, arriving in batches; after
//! every batch the simulator reads `GET .../experiments/{name}/results`
//! the way a person checking a dashboard would, and records each metric's
//! fixed-horizon and always-valid p-value and intervals. Because every
//! probability is known, the true difference between the arms is known
//! exactly ([`world::Behaviour::expected`]), and the report gives:
//!
//! - **A/A** (both arms serve the same ranking, the same shoppers): the
//!   false-positive rate of the always-valid test checked after every
//!   batch, against the fixed-horizon test checked once (and, to show why
//!   the always-valid one exists, the fixed-horizon test checked after
//!   every batch);
//! - **A/B** with a lift injected in the treatment's shoppers (they click
//!   `1 + lift` times as often): how often the intervals cover the true
//!   difference, and the power at the experiment's sample size;
//! - **holdout** (the treatment arm serves nothing): a real, server-caused
//!   effect with a closed-form truth.
//!
//! Every experiment also checks recstore's counting: the per-arm units,
//! impressions, clicks, add-to-carts, attributed purchases, converted
//! units and revenue the server reports must equal what the simulator
//! sent.
//!
//! `tests/it/shoppers.rs` runs it small in CI; the `recstore-shoppersim`
//! binary runs the full study (EXPERIMENTS.md).

pub mod engagement;
pub mod world;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use recstore_toolkit::Client;
pub use world::{Behaviour, METRICS};
use world::{Catalog, Rng, Shopper};

/// What the two arms serve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Scenario {
    /// Both arms serve today's ranking to identical shoppers.
    Aa,
    /// Both arms serve today's ranking; the treatment's shoppers click
    /// `1 + lift` times as often (an injected, known effect).
    Ab { lift: f64 },
    /// The treatment is a holdout (`{"kind": "none"}`): it answers nothing.
    Holdout,
}

impl Scenario {
    /// The arms' names and strategies, control first.
    fn arms(self) -> [(&'static str, Value); 2] {
        let default = json!({"kind": "default"});
        match self {
            Scenario::Aa => [("a", default.clone()), ("b", default)],
            Scenario::Ab { .. } => [("control", default.clone()), ("treatment", default)],
            Scenario::Holdout => [("control", default), ("holdout", json!({"kind": "none"}))],
        }
    }

    /// The factor on each arm's shoppers' click probability, given a
    /// non-empty answer.
    fn click_factor(self) -> [f64; 2] {
        match self {
            Scenario::Ab { lift } => [1.0, 1.0 + lift],
            Scenario::Aa | Scenario::Holdout => [1.0, 1.0],
        }
    }

    /// The effective factor each arm's shoppers see (a holdout's empty
    /// answers get no clicks): what the truth is computed with.
    fn effective_factor(self) -> [f64; 2] {
        match self {
            Scenario::Holdout => [1.0, 0.0],
            other => other.click_factor(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Scenario::Aa => "aa",
            Scenario::Ab { .. } => "ab",
            Scenario::Holdout => "holdout",
        }
    }
}

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// The server, e.g. `http://127.0.0.1:7720`.
    pub url: String,
    /// An API key with write rights, when the server has keys.
    #[serde(skip)]
    pub api_key: Option<String>,
    pub scenario: Scenario,
    pub experiments: usize,
    /// Shoppers per experiment (both arms together).
    pub units: usize,
    /// The shoppers arrive in this many equal batches; the results are
    /// read after each.
    pub batches: usize,
    /// Visits per shopper (each one `recommend/user` answer).
    pub visits: usize,
    /// Hits per answer.
    pub k: usize,
    /// Catalogs run side by side, one experiment at a time each.
    pub parallel: usize,
    /// Shoppers in flight per catalog.
    pub in_flight: usize,
    pub primary_metric: String,
    pub items: usize,
    pub dimension: usize,
    pub seed: u64,
    pub behaviour: Behaviour,
}

impl Options {
    pub fn new(url: String, scenario: Scenario) -> Options {
        Options {
            url,
            api_key: None,
            scenario,
            experiments: 200,
            units: 2_000,
            batches: 10,
            visits: 3,
            k: 5,
            parallel: 4,
            in_flight: 16,
            primary_metric: "ctr".into(),
            items: 300,
            dimension: 16,
            seed: 1,
            behaviour: Behaviour::default(),
        }
    }
}

/// One look at an experiment's results for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Look {
    pub batch: usize,
    /// Units in the smaller arm.
    pub units: u64,
    pub difference: f64,
    pub p_value: f64,
    pub ci95: [f64; 2],
    pub always_valid_p_value: f64,
    pub always_valid_ci95: Option<[f64; 2]>,
}

/// One experiment's course.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRun {
    pub name: String,
    /// Per metric, one look per batch (missing while the comparison is
    /// undefined, e.g. before a unit in each arm).
    pub looks: BTreeMap<String, Vec<Look>>,
    pub verdict: String,
    /// Units per arm at the end.
    pub units: [u64; 2],
}

/// A rate over experiments with its 95 % Wilson interval.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    pub hits: usize,
    pub of: usize,
    pub rate: f64,
    pub wilson95: [f64; 2],
}

impl Rate {
    fn of(hits: usize, of: usize) -> Rate {
        let n = of.max(1) as f64;
        let p = hits as f64 / n;
        let z = 1.959_964_f64;
        let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
        let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
        Rate {
            hits,
            of,
            rate: p,
            wilson95: [(centre - half).max(0.0), (centre + half).min(1.0)],
        }
    }
}

/// What a metric's tests did over all experiments.
#[derive(Debug, Clone, Serialize)]
pub struct MetricSummary {
    pub metric: String,
    /// The true treatment - control difference.
    pub truth: f64,
    /// Fixed-horizon p < 0.05 at the last look only.
    pub fixed_rejects_once: Rate,
    /// Fixed-horizon p < 0.05 at any look (peeking: not a valid test).
    pub fixed_rejects_when_peeking: Rate,
    /// Always-valid p < 0.05 at any look.
    pub always_valid_rejects_when_peeking: Rate,
    /// Always-valid p < 0.05 at the last look.
    pub always_valid_rejects_at_end: Rate,
    /// The fixed 95 % interval at the last look holds the truth.
    pub fixed_covers: Rate,
    /// The always-valid interval holds the truth at every look.
    pub always_valid_covers_at_every_look: Rate,
    /// Median widths of the two intervals at the last look.
    pub fixed_width: f64,
    pub always_valid_width: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub options: Options,
    pub seconds: f64,
    pub requests: u64,
    /// Per metric, each arm's expected value (control, treatment).
    pub expected: BTreeMap<String, [f64; 2]>,
    pub summary: Vec<MetricSummary>,
    /// Differences between what the server counted and what was sent.
    pub mismatches: Vec<String>,
    /// Answers of a default arm that came back empty (each one bends the
    /// truth; expected 0).
    pub empty_answers: u64,
    /// Event writes sent again after a 503 (the server's request timeout
    /// or overload; each event carries an `event_id`, so a retry of a
    /// write that was applied is counted once).
    pub retried_writes: u64,
    /// The verdicts, counted.
    pub verdicts: BTreeMap<String, usize>,
    pub experiments: Vec<ExperimentRun>,
}

/// What one arm's shoppers did, as the simulator counts it.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    units: u64,
    impressions: u64,
    clicks: u64,
    add_to_carts: u64,
    /// Purchases attributed: by recommendation id, or an organic purchase
    /// of an item the shopper clicked from a recommendation before.
    purchases: u64,
    converted: u64,
    revenue: f64,
    attributed_revenue: f64,
    empty: u64,
    requests: u64,
    retries: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.units += o.units;
        self.impressions += o.impressions;
        self.clicks += o.clicks;
        self.add_to_carts += o.add_to_carts;
        self.purchases += o.purchases;
        self.converted += o.converted;
        self.revenue += o.revenue;
        self.attributed_revenue += o.attributed_revenue;
        self.empty += o.empty;
        self.requests += o.requests;
        self.retries += o.retries;
    }
}

/// Times an event write that answered 503 is sent again.
const WRITE_RETRIES: usize = 5;

/// Runs the study.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    if options.units < 2 || options.batches == 0 || options.visits == 0 {
        bail!("need at least 2 units, 1 batch and 1 visit");
    }
    if options.parallel == 0 || options.in_flight == 0 {
        bail!("need at least one catalog and one shopper in flight");
    }
    if options.items < options.k * 4 || options.k == 0 {
        bail!("need at least 4 * k items");
    }
    let started = Instant::now();
    let client = Client::with(
        reqwest::Client::builder()
            .pool_max_idle_per_host(options.parallel * options.in_flight + 4)
            .build()?,
        &options.url,
        options.api_key.clone(),
    );
    client
        .must(reqwest::Method::GET, "/readyz", None)
        .await
        .context("the server is not ready")?;
    let catalog = Arc::new(Catalog::generate(
        options.items,
        options.dimension,
        options.seed,
    ));
    let options = Arc::new(options.clone());

    let mut slots = Vec::new();
    for slot in 0..options.parallel {
        let (client, catalog, options) =
            (client.clone(), Arc::clone(&catalog), Arc::clone(&options));
        slots.push(tokio::spawn(async move {
            run_slot(&client, &catalog, &options, slot).await
        }));
    }
    let mut runs = Vec::new();
    let mut mismatches = Vec::new();
    let (mut empty_answers, mut requests, mut retried_writes) = (0, 0, 0);
    for slot in slots {
        let outcome = slot.await.context("a catalog's task panicked")??;
        runs.extend(outcome.runs);
        mismatches.extend(outcome.mismatches);
        empty_answers += outcome.empty;
        requests += outcome.requests;
        retried_writes += outcome.retries;
    }
    runs.sort_by_key(|r| {
        r.name
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    });

    let factor = options.scenario.effective_factor();
    let behaviour = &options.behaviour;
    let mut expected = BTreeMap::new();
    let mut summary = Vec::new();
    for metric in METRICS {
        let values = factor.map(|m| behaviour.expected(metric, m, options.visits));
        expected.insert(metric.to_string(), values);
        summary.push(summarise(metric, values[1] - values[0], &runs));
    }
    let mut verdicts = BTreeMap::new();
    for r in &runs {
        *verdicts.entry(r.verdict.clone()).or_insert(0) += 1;
    }
    Ok(Report {
        options: (*options).clone(),
        seconds: started.elapsed().as_secs_f64(),
        requests,
        expected,
        summary,
        mismatches,
        empty_answers,
        retried_writes,
        verdicts,
        experiments: runs,
    })
}

fn summarise(metric: &str, truth: f64, runs: &[ExperimentRun]) -> MetricSummary {
    let looks: Vec<&Vec<Look>> = runs
        .iter()
        .filter_map(|r| r.looks.get(metric))
        .filter(|l| !l.is_empty())
        .collect();
    let n = looks.len();
    let count = |f: &dyn Fn(&Vec<Look>) -> bool| looks.iter().filter(|l| f(l)).count();
    let last = |l: &Vec<Look>| l.last().cloned().expect("not empty");
    let covers = |ci: [f64; 2]| ci[0] <= truth && truth <= ci[1];
    let mut fixed_widths: Vec<f64> = looks
        .iter()
        .map(|l| {
            let c = last(l).ci95;
            c[1] - c[0]
        })
        .collect();
    let mut valid_widths: Vec<f64> = looks
        .iter()
        .filter_map(|l| last(l).always_valid_ci95.map(|c| c[1] - c[0]))
        .collect();
    MetricSummary {
        metric: metric.to_string(),
        truth,
        fixed_rejects_once: Rate::of(count(&|l| last(l).p_value < 0.05), n),
        fixed_rejects_when_peeking: Rate::of(count(&|l| l.iter().any(|x| x.p_value < 0.05)), n),
        always_valid_rejects_when_peeking: Rate::of(
            count(&|l| l.iter().any(|x| x.always_valid_p_value < 0.05)),
            n,
        ),
        always_valid_rejects_at_end: Rate::of(count(&|l| last(l).always_valid_p_value < 0.05), n),
        fixed_covers: Rate::of(count(&|l| covers(last(l).ci95)), n),
        always_valid_covers_at_every_look: Rate::of(
            count(&|l| l.iter().all(|x| x.always_valid_ci95.is_none_or(covers))),
            n,
        ),
        fixed_width: median(&mut fixed_widths),
        always_valid_width: median(&mut valid_widths),
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct SlotOutcome {
    runs: Vec<ExperimentRun>,
    mismatches: Vec<String>,
    empty: u64,
    requests: u64,
    retries: u64,
}

/// One catalog: set it up, then run its share of the experiments one
/// after another (a surface has at most one running experiment).
async fn run_slot(
    client: &Client,
    catalog: &Arc<Catalog>,
    options: &Arc<Options>,
    slot: usize,
) -> anyhow::Result<SlotOutcome> {
    let name = format!("sim-{}-{}-{slot}", options.scenario.label(), options.seed);
    let base = format!("/v1/catalogs/{name}");
    let items: Vec<Value> = (0..catalog.ids.len())
        .map(|i| {
            json!({"id": catalog.ids[i], "vector": catalog.vectors[i],
                   "price": catalog.prices[i], "category": catalog.categories[i]})
        })
        .collect();
    fresh_catalog(client, &base, options.dimension, &items).await?;
    // Some past traffic, so that a new shopper's picks (popular items)
    // are never empty.
    let mut rng = Rng::derive(options.seed, 0x5EED_0000 + slot as u64);
    let events: Vec<Value> = (0..500)
        .map(|j| {
            json!({"user_id": format!("past-{}", j % 50),
                   "item_id": catalog.ids[rng.below(catalog.ids.len())], "type": "view"})
        })
        .collect();
    client
        .must(
            reqwest::Method::POST,
            &format!("{base}/events"),
            Some(&json!({ "events": events })),
        )
        .await?;

    let mut outcome = SlotOutcome {
        runs: Vec::new(),
        mismatches: Vec::new(),
        empty: 0,
        requests: 0,
        retries: 0,
    };
    for e in (slot..options.experiments).step_by(options.parallel) {
        run_experiment(client, catalog, options, &base, e, &mut outcome).await?;
    }
    client.must(reqwest::Method::DELETE, &base, None).await?;
    Ok(outcome)
}

/// Deletes the catalog at `base` if it exists, creates it (cosine, of
/// `dimension`) and uploads `items` in batches of 500.
pub(crate) async fn fresh_catalog(
    client: &Client,
    base: &str,
    dimension: usize,
    items: &[Value],
) -> anyhow::Result<()> {
    let (status, _) = client.send(reqwest::Method::GET, base, None).await?;
    if status == 200 {
        client.must(reqwest::Method::DELETE, base, None).await?;
    }
    client
        .must(
            reqwest::Method::PUT,
            base,
            Some(&json!({"dimension": dimension, "metric": "cosine"})),
        )
        .await?;
    for batch in items.chunks(500) {
        client
            .must(
                reqwest::Method::POST,
                &format!("{base}/items"),
                Some(&json!({ "items": batch })),
            )
            .await?;
    }
    Ok(())
}

async fn run_experiment(
    client: &Client,
    catalog: &Arc<Catalog>,
    options: &Arc<Options>,
    base: &str,
    e: usize,
    outcome: &mut SlotOutcome,
) -> anyhow::Result<()> {
    let name = format!("{}-{e}", options.scenario.label());
    let arms: Vec<Value> = options
        .scenario
        .arms()
        .iter()
        .map(|(n, s)| json!({"name": n, "weight": 1, "strategy": s}))
        .collect();
    let path = format!("{base}/experiments/{name}");
    client
        .must(
            reqwest::Method::PUT,
            &path,
            Some(&json!({"surface": "user", "unit": "user", "arms": arms,
                         "control": options.scenario.arms()[0].0,
                         "primary_metric": options.primary_metric})),
        )
        .await?;
    let arm_names = options.scenario.arms().map(|(n, _)| n);
    let mut tallies = [Tally::default(); 2];
    let mut looks: BTreeMap<String, Vec<Look>> = BTreeMap::new();
    let mut verdict = String::new();
    let mut units = [0, 0];
    let per_batch = options.units.div_ceil(options.batches);
    let permits = Arc::new(Semaphore::new(options.in_flight));
    for batch in 0..options.batches {
        let mut tasks = tokio::task::JoinSet::new();
        let first = batch * per_batch;
        for u in first..(first + per_batch).min(options.units) {
            let permit = Arc::clone(&permits).acquire_owned().await?;
            let (client, catalog, options) =
                (client.clone(), Arc::clone(catalog), Arc::clone(options));
            let base = base.to_string();
            tasks.spawn(async move {
                let _permit = permit;
                let seed = Rng::derive(options.seed, (e as u64) << 32 | u as u64).next_u64();
                let shopper = Shopper::new(
                    format!("e{e}-u{u}"),
                    seed,
                    options.dimension,
                    &options.behaviour,
                );
                shop(&client, &catalog, &options, &base, shopper, &arm_names).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (arm, tally) = done.context("a shopper's task panicked")??;
            tallies[arm].add(&tally);
        }
        let results = client
            .must(reqwest::Method::GET, &format!("{path}/results"), None)
            .await?;
        verdict = results["verdict"].as_str().unwrap_or_default().to_string();
        let arms = results["arms"].as_array().context("results without arms")?;
        units = [0, 1].map(|i| arms[i]["units"].as_u64().unwrap_or(0));
        for metric in METRICS {
            let c = &arms[1]["vs_control"][metric];
            if c.is_null() {
                continue;
            }
            let pair = |v: &Value| -> Option<[f64; 2]> {
                Some([v.get(0)?.as_f64()?, v.get(1)?.as_f64()?])
            };
            let look = Look {
                batch,
                units: units[0].min(units[1]),
                difference: c["difference"].as_f64().unwrap_or(f64::NAN),
                p_value: c["p_value"].as_f64().unwrap_or(1.0),
                ci95: pair(&c["ci95"]).unwrap_or([f64::NAN; 2]),
                always_valid_p_value: c["always_valid_p_value"].as_f64().unwrap_or(1.0),
                always_valid_ci95: pair(&c["always_valid_ci95"]),
            };
            looks.entry(metric.to_string()).or_default().push(look);
        }
        if batch + 1 == options.batches {
            compare(&name, arms, &tallies, &mut outcome.mismatches);
        }
    }
    client
        .must(
            reqwest::Method::POST,
            &format!("{path}/stop"),
            Some(&json!({})),
        )
        .await?;
    // A default arm's empty answer bends the truth; a holdout's is the point.
    outcome.empty += tallies[0].empty
        + if options.scenario == Scenario::Holdout {
            0
        } else {
            tallies[1].empty
        };
    outcome.requests += tallies[0].requests + tallies[1].requests;
    outcome.retries += tallies[0].retries + tallies[1].retries;
    outcome.runs.push(ExperimentRun {
        name,
        looks,
        verdict,
        units,
    });
    Ok(())
}

/// The server's per-arm counts against the simulator's.
fn compare(name: &str, arms: &[Value], tallies: &[Tally; 2], mismatches: &mut Vec<String>) {
    for (i, t) in tallies.iter().enumerate() {
        let a = &arms[i];
        let int = |f: &str| a[f].as_u64().unwrap_or(u64::MAX);
        let units = int("units");
        let converted =
            (a["conversion_rate"].as_f64().unwrap_or(-1.0) * units as f64).round() as u64;
        for (field, server, sent) in [
            ("units", units, t.units),
            ("impressions", int("impressions"), t.impressions),
            ("clicks", int("clicks"), t.clicks),
            ("add_to_carts", int("add_to_carts"), t.add_to_carts),
            ("purchases", int("purchases"), t.purchases),
            ("converted units", converted, t.converted),
        ] {
            if server != sent {
                mismatches.push(format!(
                    "{name} arm {i} {field}: server {server}, sent {sent}"
                ));
            }
        }
        for (field, server, sent) in [
            ("revenue", a["revenue"].as_f64(), t.revenue),
            (
                "attributed_revenue",
                a["attributed_revenue"].as_f64(),
                t.attributed_revenue,
            ),
        ] {
            // A missing value (NaN) is a mismatch too.
            let close = server.is_some_and(|s| (s - sent).abs() <= 1e-6 * sent.abs().max(1.0));
            let server = server.unwrap_or(f64::NAN);
            if !close {
                mismatches.push(format!(
                    "{name} arm {i} {field}: server {server}, sent {sent}"
                ));
            }
        }
    }
}

/// One shopper's visits; returns the arm they were served and what they
/// did.
async fn shop(
    client: &Client,
    catalog: &Catalog,
    options: &Options,
    base: &str,
    mut shopper: Shopper,
    arm_names: &[&str; 2],
) -> anyhow::Result<(usize, Tally)> {
    let behaviour = &options.behaviour;
    let factor = options.scenario.click_factor();
    let mut tally = Tally {
        units: 1,
        ..Tally::default()
    };
    let mut arm = None;
    let mut clicked = HashSet::new();
    let everything: Vec<usize> = (0..catalog.ids.len()).collect();
    let mut bought = false;
    for visit in 0..options.visits {
        let answer = client
            .must(
                reqwest::Method::POST,
                &format!("{base}/recommend/user"),
                Some(&json!({"user_id": shopper.id, "k": options.k})),
            )
            .await?;
        tally.requests += 1;
        let served = answer["experiment"]["arm"]
            .as_str()
            .context("an answer without the experiment")?;
        let a = arm_names
            .iter()
            .position(|n| *n == served)
            .with_context(|| format!("unknown arm {served}"))?;
        if *arm.get_or_insert(a) != a {
            bail!("shopper {} moved from arm {arm:?} to {a}", shopper.id);
        }
        tally.impressions += 1;
        let id = answer["recommendation_id"]
            .as_str()
            .context("an answer without recommendation_id")?
            .to_string();
        let shown: Vec<usize> = answer["hits"]
            .as_array()
            .context("an answer without hits")?
            .iter()
            .filter_map(|h| catalog.index_of(h["id"].as_str()?))
            .collect();
        if shown.is_empty() {
            tally.empty += 1;
        }
        let rng = &mut shopper.rng;
        let mut events = Vec::new();
        let event = |item: usize, kind: &str| json!({"user_id": shopper.id, "item_id": catalog.ids[item], "type": kind});
        if !shown.is_empty() && rng.chance(shopper.click * factor[a]) {
            let item = catalog.choose(&shopper.taste, &shown, behaviour.taste_sharpness, rng);
            let with_id = |mut e: Value| {
                e["recommendation_id"] = json!(id);
                e
            };
            events.push(with_id(event(item, "click")));
            tally.clicks += 1;
            clicked.insert(item);
            if rng.chance(behaviour.cart_after_click) {
                events.push(with_id(event(item, "add_to_cart")));
                tally.add_to_carts += 1;
                if rng.chance(behaviour.purchase_after_cart) {
                    let price = behaviour.price(rng);
                    let mut p = with_id(event(item, "purchase"));
                    p["price"] = json!(price);
                    events.push(p);
                    tally.purchases += 1;
                    tally.revenue += price;
                    tally.attributed_revenue += price;
                    bought = true;
                }
            }
        }
        if rng.chance(behaviour.organic) {
            let item = catalog.choose(&shopper.taste, &everything, behaviour.taste_sharpness, rng);
            let price = behaviour.price(rng);
            let mut p = event(item, "purchase");
            p["price"] = json!(price);
            events.push(p);
            tally.revenue += price;
            bought = true;
            // Attributed through the click window (README, attribution).
            if clicked.contains(&item) {
                tally.purchases += 1;
                tally.attributed_revenue += price;
            }
        }
        if !events.is_empty() {
            for (n, e) in events.iter_mut().enumerate() {
                e["event_id"] = json!(format!("{}-{visit}-{n}", shopper.id));
            }
            let body = json!({ "events": events });
            let path = format!("{base}/events");
            let mut answer = Value::Null;
            for attempt in 0..=WRITE_RETRIES {
                let (status, value) = client
                    .send(reqwest::Method::POST, &path, Some(&body))
                    .await
                    .with_context(|| format!("POST {path}"))?;
                tally.requests += 1;
                match status {
                    200 => {
                        answer = value;
                        break;
                    }
                    503 if attempt < WRITE_RETRIES => {
                        tally.retries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    _ => bail!("POST {path} answered {status}: {value}"),
                }
            }
            if answer["unattributed"].as_u64() != Some(0) {
                bail!("events of {} were not attributed: {answer}", shopper.id);
            }
        }
    }
    tally.converted = u64::from(bought);
    Ok((arm.context("no visit")?, tally))
}

/// The report as Markdown tables (EXPERIMENTS.md quotes them).
pub fn markdown(report: &Report) -> String {
    let o = &report.options;
    let mut out = format!(
        "{} experiments, scenario `{}`, {} shoppers each in {} batches of {} ({} visits, k {}), \
         results read after every batch; {} requests in {:.0} s; mismatched counts: {}; \
         empty default answers: {}; event writes retried after a 503: {}\n\n",
        report.experiments.len(),
        serde_json::to_string(&o.scenario).unwrap_or_default(),
        o.units,
        o.batches,
        o.units.div_ceil(o.batches),
        o.visits,
        o.k,
        report.requests,
        report.seconds,
        report.mismatches.len(),
        report.empty_answers,
        report.retried_writes,
    );
    out.push_str(
        "| metric | control | treatment | true difference | fixed, checked once: p < 0.05 | \
         fixed, checked every batch | always valid, every batch | always valid at end | \
         fixed CI covers | always-valid CI covers at every look | median width fixed / always valid |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let rate = |r: &Rate| {
        format!(
            "{:.1} % ({}/{}; {:.1}–{:.1})",
            100.0 * r.rate,
            r.hits,
            r.of,
            100.0 * r.wilson95[0],
            100.0 * r.wilson95[1]
        )
    };
    for s in &report.summary {
        let e = report.expected[&s.metric];
        out.push_str(&format!(
            "| {} | {:.4} | {:.4} | {:+.4} | {} | {} | {} | {} | {} | {} | {:.4} / {:.4} |\n",
            s.metric,
            e[0],
            e[1],
            s.truth,
            rate(&s.fixed_rejects_once),
            rate(&s.fixed_rejects_when_peeking),
            rate(&s.always_valid_rejects_when_peeking),
            rate(&s.always_valid_rejects_at_end),
            rate(&s.fixed_covers),
            rate(&s.always_valid_covers_at_every_look),
            s.fixed_width,
            s.always_valid_width,
        ));
    }
    out.push_str("\nVerdicts: ");
    let verdicts: Vec<String> = report
        .verdicts
        .iter()
        .map(|(v, n)| format!("{v:?} × {n}"))
        .collect();
    out.push_str(&verdicts.join(", "));
    out.push('\n');
    out
}
