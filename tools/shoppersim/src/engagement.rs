//! The engagement study (#19): does recstore's engagement score mean what
//! it says, and does ranking by it sell more?
//!
//! **The world.** Items have a latent direction `v` (their embedding, as
//! given to recstore), a latent quality `q ~ N(0, 1)` recstore never sees,
//! a lognormal price, a category, and a return rate (one in ten items is
//! sent back half the time, the rest 5 %). Shoppers have a taste `t` (a
//! direction) and a budget `b` (lognormal, like prices). A visit starts
//! with the shopper viewing an item they like (a softmax over 40 random
//! items of `t·v − |ln(price / b)|`), sent as a `view`; then they ask for
//! `similar` to it (half the visits) or for personal picks (`user`). Each
//! hit at 0-based position `p` is clicked with the **known** probability
//!
//! `P = (1 + p)^-position_decay × σ(intercept + taste·(t·v) + quality·q − budget·|ln(price / b)|)`,
//!
//! so what drives a click is partly visible to recstore (similarity to the
//! anchor or profile, the price against the shopper's usual one, the
//! popularity that quality earns over time, the position) and partly not
//! (`q` itself, the exact budget). A click is carted with probability 0.3,
//! a cart bought with 0.6, a purchase returned with the item's rate; every
//! event cites the answer's `recommendation_id`.
//!
//! **The phases.** (1) *Logging*: `train_shoppers` shoppers shop under
//! today's ranking; the server logs every hit's features and score. (2)
//! *Training*: the study waits out the server's attribution window and
//! calls `POST .../engagement-model/train`. (3) *Held-out traffic*:
//! `test_shoppers` new shoppers shop; for every hit the study keeps the
//! score served and whether it was clicked, and computes the calibration
//! (ECE over ten equal-count bins, the reliability table), AUC and log
//! loss itself, next to the AUC of the position alone and of the true
//! probabilities (the best any score could do). (4) *A/B*: an experiment
//! on `similar` serves today's ranking to the control and `rank_by:
//! engagement` to the treatment, to `ab_shoppers` new shoppers; the study
//! reports each arm's CTR, conversion and revenue from the experiment's
//! results.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use recstore_toolkit::{Client, Rng};

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct EngagementOptions {
    pub url: String,
    #[serde(skip)]
    pub api_key: Option<String>,
    pub items: usize,
    pub dimension: usize,
    pub train_shoppers: usize,
    pub test_shoppers: usize,
    pub ab_shoppers: usize,
    pub visits: usize,
    pub k: usize,
    pub in_flight: usize,
    /// The server's attribution window (`--attribution-window-secs`):
    /// how long the study waits before training.
    pub window_secs: u64,
    pub seed: u64,
    pub truth: Truth,
}

/// The known click model (see the module documentation).
#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    pub intercept: f64,
    pub taste: f64,
    pub quality: f64,
    pub budget: f64,
    pub position_decay: f64,
    pub cart_after_click: f64,
    pub purchase_after_cart: f64,
}

impl Default for Truth {
    fn default() -> Truth {
        Truth {
            intercept: -2.2,
            taste: 2.5,
            quality: 0.8,
            budget: 0.8,
            position_decay: 0.5,
            cart_after_click: 0.3,
            purchase_after_cart: 0.6,
        }
    }
}

impl EngagementOptions {
    pub fn new(url: String) -> EngagementOptions {
        EngagementOptions {
            url,
            api_key: None,
            items: 2_000,
            dimension: 16,
            train_shoppers: 3_000,
            test_shoppers: 1_500,
            ab_shoppers: 3_000,
            visits: 4,
            k: 10,
            in_flight: 16,
            window_secs: 2,
            seed: 1,
            truth: Truth::default(),
        }
    }
}

/// Calibration and discrimination of a set of scores against outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub hits: usize,
    pub engaged: usize,
    pub log_loss: f64,
    pub auc: f64,
    pub ece: f64,
    /// Per decile of the scores: (mean score, observed rate, count).
    pub reliability: Vec<(f64, f64, usize)>,
}

/// One arm of the A/B phase, as the server's results report it.
#[derive(Debug, Clone, Serialize)]
pub struct ArmOutcome {
    pub arm: String,
    pub units: u64,
    pub ctr: f64,
    pub conversion_rate: f64,
    pub revenue_per_unit: f64,
}

/// The whole study.
#[derive(Debug, Clone, Serialize)]
pub struct EngagementReport {
    pub options: EngagementOptions,
    pub seconds: f64,
    /// `GET .../engagement-model` after the training.
    pub model: Value,
    /// The served scores on held-out traffic.
    pub served: Scored,
    /// The same hits scored by their position only (AUC of `-position`).
    pub position_auc: f64,
    /// The same hits scored by the true probability.
    pub oracle: Scored,
    pub ab: Vec<ArmOutcome>,
    /// The treatment's CTR over the control's, minus one; with the
    /// always-valid interval of the difference.
    pub ctr_lift: f64,
    pub ab_results: Value,
}

struct World {
    ids: Vec<String>,
    vectors: Vec<Vec<f32>>,
    quality: Vec<f64>,
    prices: Vec<f64>,
    returns: Vec<f64>,
}

impl World {
    fn generate(o: &EngagementOptions) -> World {
        let mut rng = Rng::derive(o.seed, 0xE46A_6E00);
        let n = o.items;
        let mut w = World {
            ids: (0..n).map(|i| format!("item-{i}")).collect(),
            vectors: Vec::with_capacity(n),
            quality: Vec::with_capacity(n),
            prices: Vec::with_capacity(n),
            returns: Vec::with_capacity(n),
        };
        for _ in 0..n {
            w.vectors.push(rng.direction(o.dimension));
            w.quality.push(rng.normal());
            w.prices
                .push(((3.5 + 0.8 * rng.normal()).exp() * 100.0).round() / 100.0);
            w.returns.push(if rng.chance(0.1) { 0.5 } else { 0.05 });
        }
        w
    }

    fn dot(&self, taste: &[f32], i: usize) -> f64 {
        f64::from(
            taste
                .iter()
                .zip(&self.vectors[i])
                .map(|(a, b)| a * b)
                .sum::<f32>(),
        )
    }

    /// The true probability that a shopper clicks item `i` at `position`.
    fn click(&self, t: &Truth, s: &Shopper, i: usize, position: usize) -> f64 {
        let z = t.intercept + t.taste * self.dot(&s.taste, i) + t.quality * self.quality[i]
            - t.budget * (self.prices[i] / s.budget).ln().abs();
        let examine = (1.0 + position as f64).powf(-t.position_decay);
        examine / (1.0 + (-z).exp())
    }

    /// The item a shopper views to start a visit.
    fn browse(&self, taste: &[f32], budget: f64, rng: &mut Rng) -> usize {
        let candidates: Vec<usize> = (0..40).map(|_| rng.below(self.ids.len())).collect();
        let weights: Vec<f64> = candidates
            .iter()
            .map(|&i| (4.0 * self.dot(taste, i) - (self.prices[i] / budget).ln().abs()).exp())
            .collect();
        let mut pick = rng.unit() * weights.iter().sum::<f64>();
        for (w, &i) in weights.iter().zip(&candidates) {
            if pick < *w {
                return i;
            }
            pick -= w;
        }
        candidates[candidates.len() - 1]
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        id.strip_prefix("item-")?
            .parse::<usize>()
            .ok()
            .filter(|&i| i < self.ids.len())
    }
}

struct Shopper {
    id: String,
    taste: Vec<f32>,
    budget: f64,
    rng: Rng,
}

impl Shopper {
    fn new(id: String, seed: u64, dimension: usize) -> Shopper {
        let mut rng = Rng::new(seed);
        let taste = rng.direction(dimension);
        let budget = (3.5 + 0.8 * rng.normal()).exp();
        Shopper {
            id,
            taste,
            budget,
            rng,
        }
    }
}

/// One hit as the study saw it: served score, true probability,
/// position, outcome.
#[derive(Debug, Clone, Copy)]
struct Seen {
    served: f64,
    truth: f64,
    position: usize,
    clicked: bool,
}

/// Runs the study.
pub async fn run_engagement(o: &EngagementOptions) -> anyhow::Result<EngagementReport> {
    if o.items < 4 * o.k || o.k == 0 || o.visits == 0 || o.in_flight == 0 {
        bail!("need k >= 1, items >= 4k, visits >= 1 and in_flight >= 1");
    }
    let started = Instant::now();
    let client = Client::with(
        reqwest::Client::builder()
            .pool_max_idle_per_host(o.in_flight + 4)
            .build()?,
        &o.url,
        o.api_key.clone(),
    );
    client
        .must(reqwest::Method::GET, "/readyz", None)
        .await
        .context("the server is not ready")?;
    let world = Arc::new(World::generate(o));
    let o = Arc::new(o.clone());
    let base = format!("/v1/catalogs/engagement-sim-{}", o.seed);
    let items: Vec<Value> = (0..o.items)
        .map(|i| {
            json!({"id": world.ids[i], "vector": world.vectors[i],
                   "price": world.prices[i], "category": format!("c{}", i % 12)})
        })
        .collect();
    crate::fresh_catalog(&client, &base, o.dimension, &items).await?;
    // Phase 1: logging under today's ranking.
    crowd(&client, &world, &o, &base, 0, o.train_shoppers, false).await?;
    // Phase 2: train once every logged hit's outcome is final.
    tokio::time::sleep(Duration::from_secs(o.window_secs) + Duration::from_millis(500)).await;
    let model = client
        .must(
            reqwest::Method::POST,
            &format!("{base}/engagement-model/train"),
            Some(&json!({})),
        )
        .await?;
    if model["source"] != json!("model") {
        bail!("no model after the logging phase: {model}");
    }
    // Phase 3: held-out shoppers.
    let seen = crowd(&client, &world, &o, &base, 1, o.test_shoppers, false).await?;
    let served = score(&seen, |s| s.served);
    let oracle = score(&seen, |s| s.truth);
    let position_auc = auc(
        &seen
            .iter()
            .map(|s| -(s.position as f64))
            .collect::<Vec<_>>(),
        &seen.iter().map(|s| s.clicked).collect::<Vec<_>>(),
    );
    // Phase 4: A/B through the experiments API (skipped with no shoppers).
    let (ab, ctr_lift, results) = if o.ab_shoppers == 0 {
        (Vec::new(), f64::NAN, Value::Null)
    } else {
        let path = format!("{base}/experiments/rank-by-engagement");
        client
            .must(
                reqwest::Method::PUT,
                &path,
                Some(&json!({
                    "surface": "similar", "unit": "user", "control": "score",
                    "primary_metric": "ctr",
                    "arms": [
                        {"name": "score", "weight": 1, "strategy": {"kind": "default"}},
                        {"name": "engagement", "weight": 1, "strategy": {"kind": "default",
                            "settings": {"engagement": {"rank_by": "engagement"}}}}
                    ]
                })),
            )
            .await?;
        crowd(&client, &world, &o, &base, 2, o.ab_shoppers, true).await?;
        let results = client
            .must(reqwest::Method::GET, &format!("{path}/results"), None)
            .await?;
        let arms = results["arms"].as_array().context("results without arms")?;
        let ab: Vec<ArmOutcome> = arms
            .iter()
            .map(|a| ArmOutcome {
                arm: a["name"].as_str().unwrap_or_default().to_string(),
                units: a["units"].as_u64().unwrap_or(0),
                ctr: a["ctr"].as_f64().unwrap_or(f64::NAN),
                conversion_rate: a["conversion_rate"].as_f64().unwrap_or(f64::NAN),
                revenue_per_unit: a["revenue_per_unit"].as_f64().unwrap_or(f64::NAN),
            })
            .collect();
        let ctr_lift = ab.get(1).map_or(f64::NAN, |t| t.ctr / ab[0].ctr - 1.0);
        client
            .must(
                reqwest::Method::POST,
                &format!("{path}/stop"),
                Some(&json!({})),
            )
            .await?;
        (ab, ctr_lift, results)
    };
    let report = EngagementReport {
        options: (*o).clone(),
        seconds: started.elapsed().as_secs_f64(),
        model,
        served,
        position_auc,
        oracle,
        ab,
        ctr_lift,
        ab_results: results,
    };
    client.must(reqwest::Method::DELETE, &base, None).await?;
    Ok(report)
}

/// `n` shoppers of phase `phase`, `in_flight` at a time; the hits they
/// saw with their scores and outcomes. In the A/B phase every visit asks
/// for `similar` (the experiment's surface).
async fn crowd(
    client: &Client,
    world: &Arc<World>,
    o: &Arc<EngagementOptions>,
    base: &str,
    phase: u64,
    n: usize,
    similar_only: bool,
) -> anyhow::Result<Vec<Seen>> {
    let permits = Arc::new(Semaphore::new(o.in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    for u in 0..n {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let (client, world, o, base) = (
            client.clone(),
            Arc::clone(world),
            Arc::clone(o),
            base.to_string(),
        );
        tasks.spawn(async move {
            let _permit = permit;
            let seed = Rng::derive(o.seed, phase << 40 | u as u64).next_u64();
            let shopper = Shopper::new(format!("p{phase}-u{u}"), seed, o.dimension);
            visit_all(&client, &world, &o, &base, shopper, similar_only).await
        });
    }
    let mut seen = Vec::new();
    while let Some(done) = tasks.join_next().await {
        seen.extend(done.context("a shopper's task panicked")??);
    }
    Ok(seen)
}

async fn visit_all(
    client: &Client,
    world: &World,
    o: &EngagementOptions,
    base: &str,
    mut s: Shopper,
    similar_only: bool,
) -> anyhow::Result<Vec<Seen>> {
    let mut seen = Vec::new();
    for _ in 0..o.visits {
        let anchor = world.browse(&s.taste, s.budget, &mut s.rng);
        let mut events =
            vec![json!({"user_id": s.id, "item_id": world.ids[anchor], "type": "view"})];
        let (surface, body) = if similar_only || s.rng.chance(0.5) {
            (
                "similar",
                json!({"item_id": world.ids[anchor], "user_id": s.id, "k": o.k}),
            )
        } else {
            ("user", json!({"user_id": s.id, "k": o.k}))
        };
        let answer = client
            .must(
                reqwest::Method::POST,
                &format!("{base}/recommend/{surface}"),
                Some(&body),
            )
            .await?;
        let id = answer["recommendation_id"]
            .as_str()
            .context("no recommendation_id")?
            .to_string();
        for (position, h) in answer["hits"]
            .as_array()
            .context("no hits")?
            .iter()
            .enumerate()
        {
            let Some(i) = h["id"].as_str().and_then(|id| world.index_of(id)) else {
                continue;
            };
            let truth = world.click(&o.truth, &s, i, position);
            let clicked = s.rng.chance(truth);
            seen.push(Seen {
                served: h["engagement"].as_f64().unwrap_or(f64::NAN),
                truth,
                position,
                clicked,
            });
            if !clicked {
                continue;
            }
            let event = |kind: &str| json!({"user_id": s.id, "item_id": world.ids[i], "type": kind, "recommendation_id": id});
            events.push(event("click"));
            if s.rng.chance(o.truth.cart_after_click) {
                events.push(event("add_to_cart"));
                if s.rng.chance(o.truth.purchase_after_cart) {
                    let mut p = event("purchase");
                    p["price"] = json!(world.prices[i]);
                    events.push(p);
                    if s.rng.chance(world.returns[i]) {
                        events.push(
                            json!({"user_id": s.id, "item_id": world.ids[i], "type": "return"}),
                        );
                    }
                }
            }
        }
        client
            .must(
                reqwest::Method::POST,
                &format!("{base}/events"),
                Some(&json!({ "events": events })),
            )
            .await?;
    }
    Ok(seen)
}

fn score(seen: &[Seen], f: impl Fn(&Seen) -> f64) -> Scored {
    let p: Vec<f64> = seen.iter().map(&f).collect();
    let y: Vec<bool> = seen.iter().map(|s| s.clicked).collect();
    let n = p.len().max(1) as f64;
    let log_loss = p
        .iter()
        .zip(&y)
        .map(|(&p, &y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum::<f64>()
        / n;
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let bins = 10.min(p.len()).max(1);
    let reliability: Vec<(f64, f64, usize)> = (0..bins)
        .map(|b| {
            let part = &order[b * p.len() / bins..(b + 1) * p.len() / bins];
            let c = part.len().max(1) as f64;
            (
                part.iter().map(|&i| p[i]).sum::<f64>() / c,
                part.iter().filter(|&&i| y[i]).count() as f64 / c,
                part.len(),
            )
        })
        .collect();
    let ece = reliability
        .iter()
        .map(|(pred, obs, c)| *c as f64 / n * (pred - obs).abs())
        .sum();
    Scored {
        hits: p.len(),
        engaged: y.iter().filter(|&&y| y).count(),
        log_loss,
        auc: auc(&p, &y),
        ece,
        reliability,
    }
}

/// AUC with ties counted half (midranks). The study computes its own
/// figures (this tool talks to the server over HTTP only and does not
/// link recstore), so they check the server's `engagement::quality`
/// rather than repeat it.
fn auc(p: &[f64], y: &[bool]) -> f64 {
    let pos = y.iter().filter(|&&y| y).count() as f64;
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * order[i..=j].iter().filter(|&&k| y[k]).count() as f64;
        i = j + 1;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// The report as Markdown.
pub fn engagement_markdown(r: &EngagementReport) -> String {
    let mut out = String::new();
    let o = &r.options;
    out.push_str(&format!(
        "Engagement study: {} items, {} + {} + {} shoppers x {} visits, k {}, seed {}; {:.0} s\n\n",
        o.items, o.train_shoppers, o.test_shoppers, o.ab_shoppers, o.visits, o.k, o.seed, r.seconds
    ));
    let m = &r.model;
    out.push_str(&format!(
        "Model (server, held-out newest 20 % of the logged hits): samples {}, AUC {:.3}, ECE {:.4}, log loss {:.4}; similarity-only AUC {:.3}; prior log loss {:.4}\n\n",
        m["training_samples"], m["quality"]["auc"].as_f64().unwrap_or(f64::NAN),
        m["quality"]["expected_calibration_error"].as_f64().unwrap_or(f64::NAN),
        m["quality"]["log_loss"].as_f64().unwrap_or(f64::NAN),
        m["baseline_auc"].as_f64().unwrap_or(f64::NAN),
        m["prior_quality"]["log_loss"].as_f64().unwrap_or(f64::NAN),
    ));
    out.push_str(
        "| held-out traffic | hits | engaged | AUC | ECE | log loss |\n|---|---|---|---|---|---|\n",
    );
    for (name, s) in [("served score", &r.served), ("true probability", &r.oracle)] {
        out.push_str(&format!(
            "| {name} | {} | {} | {:.3} | {:.4} | {:.4} |\n",
            s.hits, s.engaged, s.auc, s.ece, s.log_loss
        ));
    }
    out.push_str(&format!(
        "| position only | | | {:.3} | | |\n\n",
        r.position_auc
    ));
    out.push_str("Reliability of the served score (decile: mean score, observed rate, hits):\n\n");
    for (i, (p, obs, c)) in r.served.reliability.iter().enumerate() {
        out.push_str(&format!("- {}: {:.4}, {:.4}, {}\n", i + 1, p, obs, c));
    }
    out.push_str(
        "\n| A/B arm | units | CTR | conversion | revenue / unit |\n|---|---|---|---|---|\n",
    );
    for a in &r.ab {
        out.push_str(&format!(
            "| {} | {} | {:.4} | {:.4} | {:.2} |\n",
            a.arm, a.units, a.ctr, a.conversion_rate, a.revenue_per_unit
        ));
    }
    let c = &r.ab_results["arms"][1]["vs_control"]["ctr"];
    out.push_str(&format!(
        "\nCTR lift {:+.1} %; difference {:.4}, 95 % CI {}, always-valid CI {}, p {}; verdict: {}\n",
        100.0 * r.ctr_lift,
        c["difference"].as_f64().unwrap_or(f64::NAN),
        c["ci95"],
        c["always_valid_ci95"],
        c["p_value"],
        r.ab_results["verdict"]
    ));
    out
}
