//! The standard offline protocol (`--protocol offline`): a time split.
//!
//! Every purchase dated before `--cutoff` is recorded through the real
//! write path (`Catalog::record_events`); the collaborative model is
//! trained once on them (`Catalog::train_collaborative`, as the server's
//! background trainer would); then every customer with purchases on both
//! sides of the cutoff is asked for personal picks *at the cutoff*, and
//! scored against the distinct products they bought after it:
//! - **hit@10**: any of them in the first 10; **NDCG@10** (binary
//!   relevance); **recall@20**: the share of them in the first 20;
//! - **coverage**: distinct products recommended (top 10, all users) over
//!   the catalogue;
//! - **popularity percentile**: the mean, over recommended products, of
//!   their rank by training purchases (100 = the bestseller): how much the
//!   method leans on bestsellers.
//!
//! Two variants: **new** (products the customer bought before the cutoff
//! are excluded from the answer and from the targets, recstore's default
//! `purchase_exclusion_secs: null`), and **rebuy** (nothing is excluded:
//! `purchase_exclusion_secs: 0`).
//!
//! Methods, all through `recommend_user` with different blends:
//! popularity (trending), content only (similarity), EASE only, item-kNN
//! only, and the shipped default blend; plus a grid of blends to choose
//! the defaults from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use recstore::index::filter::Filter;
use recstore::model::{BehaviourSettings, Event, EventKind, Item};
use recstore::recommend::personal::{features, recommend_user, trending, UserRequest};
use recstore::recommend::similar::similar;
use recstore::recommend::UserContext;

use crate::{ids, open_catalog, Order};

/// One purchase line.
pub struct Line {
    pub kind: EventKind,
    pub user: String,
    pub item: String,
    pub order: String,
    pub at_ms: i64,
    /// Whether the line counts as a hit when it is in the future: every
    /// line, except on a latent set with stars, the 4- and 5-star ones.
    pub liked: bool,
}

impl Line {
    /// The event recstore records for this line.
    pub fn event(&self) -> Event {
        Event {
            user_id: self.user.clone(),
            item_id: self.item.clone(),
            kind: self.kind,
            timestamp_ms: self.at_ms,
            session_id: None,
            order_id: Some(self.order.clone()),
            quantity: 1,
            price: None,
            event_id: None,
            recommendation_id: None,
        }
    }
}

/// A product with only an id, a vector and a price.
fn product(id: String, vector: Vec<f32>, price: f64) -> Item {
    Item {
        id,
        vector,
        price: Some(price),
        category: None,
        brand: None,
        in_stock: true,
        tags: Vec::new(),
        explicit_tier: None,
        attributes: Default::default(),
    }
}

/// Products and purchase lines of the Online Retail sample: guests'
/// invoices count as one-off users (`guest:<invoice>`, real baskets for
/// the model, never evaluated); returns (`C` invoices) are left out, or
/// with `returns` recorded as `return` events of their customer (never a
/// hit); other lines without a positive quantity are left out. Product
/// vectors are hashed bags of the name's words (128-d): a content signal
/// from names alone.
pub fn online_retail(data: &Path, returns: bool) -> Result<(Vec<Item>, Vec<Line>)> {
    let mut reader = csv::Reader::from_path(data.join("transactions.csv"))
        .with_context(|| format!("reading {}", data.display()))?;
    let mut names: BTreeMap<String, (String, f64)> = BTreeMap::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let r = record?;
        let (invoice, code, name) = (&r[0], r[1].trim(), r[2].trim());
        let quantity: f64 = r[3].parse().unwrap_or(0.0);
        let price: f64 = r[5].parse().unwrap_or(0.0);
        let returned = invoice.starts_with('C');
        let customer_known = !r[6].trim().is_empty();
        if code.is_empty()
            || (returned && !(returns && customer_known))
            || (!returned && quantity <= 0.0)
        {
            continue;
        }
        names
            .entry(code.to_string())
            .or_insert_with(|| (name.to_string(), price.max(0.0)));
        let t = time::PrimitiveDateTime::parse(
            &r[4],
            &time::format_description::well_known::Iso8601::DEFAULT,
        )
        .with_context(|| format!("bad date {:?}", &r[4]))?;
        let customer = r[6].trim();
        lines.push(Line {
            kind: if returned {
                EventKind::Return
            } else {
                EventKind::Purchase
            },
            user: if customer.is_empty() {
                format!("guest:{invoice}")
            } else {
                customer.to_string()
            },
            item: code.to_string(),
            order: invoice.to_string(),
            at_ms: (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64,
            liked: !returned,
        });
    }
    let items = names
        .into_iter()
        .map(|(code, (name, price))| product(code.clone(), hashed_words(&code, &name, 128), price))
        .collect();
    lines.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.order.cmp(&b.order)));
    Ok((items, lines))
}

/// A hashed bag of words (FNV-1a, signed), plus the code so no vector is
/// all zeros.
fn hashed_words(code: &str, name: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![0.0f32; dim];
    let words = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .chain(std::iter::once(format!("#{code}")));
    for w in words {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in w.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        v[(h % dim as u64) as usize] += sign;
    }
    v
}

/// Orders as purchase lines (the Superstore layout, or generated ones).
pub fn lines_of(orders: &[Order]) -> Vec<Line> {
    orders
        .iter()
        .flat_map(|o| {
            o.products.iter().map(|p| Line {
                kind: EventKind::Purchase,
                user: o.customer.clone(),
                item: p.clone(),
                order: o.id.clone(),
                at_ms: o.at_ms,
                liked: true,
            })
        })
        .collect()
}

#[derive(Default)]
struct Metrics {
    users: usize,
    hits: f64,
    ndcg: f64,
    recall: f64,
    recommended: HashSet<String>,
    percentile_sum: f64,
    percentile_n: f64,
}

/// A named blend of the personal-picks ranking.
pub struct Method {
    pub name: String,
    /// `None`: the popularity list (trending), not `recommend_user`.
    pub settings: Option<BehaviourSettings>,
    /// Items similar to the customer's last purchase before the cutoff
    /// (`recommend::similar`) instead of personal picks.
    pub similar: bool,
}

/// The default settings with these blend weights.
fn blended(
    similarity: f64,
    collaborative: f64,
    popularity: f64,
    category: f64,
) -> BehaviourSettings {
    let mut s = BehaviourSettings::default();
    s.blend.similarity = similarity;
    s.blend.collaborative = collaborative;
    s.blend.popularity = popularity;
    s.blend.category = category;
    // These weights, not the ones the server fits on the history.
    s.collaborative.fit_blend = false;
    s
}

/// The methods every run reports.
pub fn methods(grid: &[(f64, f64, f64, f64)], fitted: Option<[f64; 4]>) -> Vec<Method> {
    let with = |sim: f64, col: f64, pop: f64, knn: bool| {
        let mut s = blended(sim, col, pop, 0.0);
        if knn {
            s.collaborative.ease_max_items = 0;
        }
        Some(s)
    };
    let mut out = vec![
        Method {
            name: "popularity".into(),
            settings: None,
            similar: false,
        },
        Method {
            name: "similar to the last purchase".into(),
            settings: Some(BehaviourSettings::default()),
            similar: true,
        },
        Method {
            name: "content only".into(),
            settings: with(1.0, 0.0, 0.0, false),
            similar: false,
        },
        Method {
            name: "EASE only".into(),
            settings: with(0.0, 1.0, 0.0, false),
            similar: false,
        },
        Method {
            name: "item-kNN only".into(),
            settings: with(0.0, 1.0, 0.0, true),
            similar: false,
        },
        Method {
            name: "shipped blend (defaults: fitted by the server)".into(),
            settings: Some(BehaviourSettings::default()),
            similar: false,
        },
        Method {
            name: "shipped fixed weights (fit_blend off)".into(),
            settings: Some({
                let mut s = BehaviourSettings::default();
                s.collaborative.fit_blend = false;
                s
            }),
            similar: false,
        },
        Method {
            name: "shipped blend, exclude_seen off".into(),
            settings: Some(BehaviourSettings {
                exclude_seen: false,
                ..BehaviourSettings::default()
            }),
            similar: false,
        },
    ];
    if let Some([sim, col, pop, cat]) = fitted {
        out.push(Method {
            name: format!("fitted blend (sim {sim:.3} col {col:.3} pop {pop:.3} cat {cat:.3})"),
            settings: Some(blended(sim, col, pop, cat)),
            similar: false,
        });
    }
    for &(sim, col, pop, cat) in grid {
        out.push(Method {
            name: format!("blend sim {sim} col {col} pop {pop} cat {cat}"),
            settings: Some(blended(sim, col, pop, cat)),
            similar: false,
        });
    }
    out
}

/// Runs the protocol for every method and prints one table row each.
/// `ask_ms`: when the questions are asked (the cutoff, or much later: a
/// shop that imported an old history and went live).
pub fn run(
    items: &[Item],
    lines: &[Line],
    cutoff_ms: i64,
    ask_ms: i64,
    methods: &[Method],
    learned: Option<usize>,
) -> Result<()> {
    let train: Vec<&Line> = lines.iter().filter(|l| l.at_ms < cutoff_ms).collect();
    // Customers with history, and what they bought (recstore excludes
    // purchases, not views, by default).
    let mut bought: HashMap<&str, HashSet<&str>> = HashMap::new();
    // Each customer's last purchase before the cutoff: the anchor of the
    // "similar" method.
    let mut last: HashMap<&str, (i64, &str)> = HashMap::new();
    for l in &train {
        let had = bought.entry(&l.user).or_default();
        if l.kind == EventKind::Purchase {
            had.insert(&l.item);
            let newest = last.entry(&l.user).or_insert((l.at_ms, &l.item));
            if l.at_ms >= newest.0 {
                *newest = (l.at_ms, &l.item);
            }
        }
    }
    let mut future: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.at_ms >= cutoff_ms && l.liked) {
        if bought.contains_key(l.user.as_str()) && !l.user.starts_with("guest:") {
            future.entry(&l.user).or_default().insert(&l.item);
        }
    }
    // Popularity rank of every product by training purchases.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for l in train.iter().filter(|l| l.kind != EventKind::Return) {
        *counts.entry(&l.item).or_default() += 1;
    }
    let mut order: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    order.sort_by(|a, b| {
        counts
            .get(b)
            .unwrap_or(&0)
            .cmp(counts.get(a).unwrap_or(&0))
            .then(a.cmp(b))
    });
    let percentile: HashMap<&str, f64> = order
        .iter()
        .enumerate()
        .map(|(r, id)| (*id, 100.0 * (1.0 - r as f64 / order.len() as f64)))
        .collect();
    println!(
        "{} products, {} purchase lines ({} before the cutoff), {} evaluated customers",
        items.len(),
        lines.len(),
        train.len(),
        future.len()
    );
    println!("| method | variant | users | hit@10 | NDCG@10 | recall@20 | coverage | popularity percentile | model | seconds |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for method in methods {
        for rebuy in [false, true] {
            let started = Instant::now();
            let dir = tempfile::tempdir()?;
            let mut settings = method.settings.unwrap_or_default();
            settings.purchase_exclusion_ms = if rebuy { Some(0) } else { None };
            let (_catalogs, catalog) =
                catalog_until(dir.path(), items, &train, cutoff_ms, settings, learned)?;
            let model = catalog.collaborative();
            let model_desc = model.map_or("none".to_string(), |m| {
                let fit = m.info.blend.filter(|_| settings.collaborative.fit_blend).map_or(
                    String::new(),
                    |b| {
                        format!(
                            "; fit sim {} col {} pop {} cat {} on {} users, {} held out: recall@10 {:.3} (settings {:.3}, col {:.3}, sim {:.3}, pop {:.3}, cat {:.3})",
                            b.similarity,
                            b.collaborative,
                            b.popularity,
                            b.category,
                            b.users,
                            b.held_out,
                            b.recall,
                            b.settings_recall,
                            b.collaborative_only,
                            b.similarity_only,
                            b.popularity_only,
                            b.category_only
                        )
                    },
                );
                format!(
                    "{} ({} items, {:.1} s{fit})",
                    m.info.kind.as_str(),
                    m.items(),
                    m.info.seconds
                )
            });
            let mut m = Metrics::default();
            for (user, targets) in &future {
                let had = bought.get(user).cloned().unwrap_or_default();
                let targets: Vec<&str> = targets
                    .iter()
                    .copied()
                    .filter(|t| rebuy || !had.contains(t))
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                let picks = match method.settings {
                    Some(_) if method.similar => {
                        let Some((_, anchor)) = last.get(user) else {
                            continue;
                        };
                        let context = UserContext::load(&catalog, user, ask_ms)?;
                        similar(&catalog, anchor, 20, Filter::default(), &context, ask_ms)?
                    }
                    None => {
                        let context = UserContext::load(&catalog, user, ask_ms)?;
                        trending(&catalog, &context, 20, Filter::default(), ask_ms)
                    }
                    Some(_) => recommend_user(
                        &catalog,
                        &UserRequest {
                            user_id: user.to_string(),
                            k: 20,
                            filter: Filter::default(),
                            now_ms: ask_ms,
                        },
                    )?,
                };
                let ranked = ids(&picks);
                m.users += 1;
                let mut dcg = 0.0;
                for (r, id) in ranked.iter().take(10).enumerate() {
                    if targets.contains(id) {
                        dcg += 1.0 / ((r + 2) as f64).log2();
                    }
                    m.recommended.insert(id.to_string());
                    m.percentile_sum += percentile.get(id).copied().unwrap_or(0.0);
                    m.percentile_n += 1.0;
                }
                let ideal: f64 = (0..targets.len().min(10))
                    .map(|r| 1.0 / ((r + 2) as f64).log2())
                    .sum();
                if dcg > 0.0 {
                    m.hits += 1.0;
                }
                m.ndcg += dcg / ideal;
                let found = ranked
                    .iter()
                    .take(20)
                    .filter(|id| targets.contains(id))
                    .count();
                m.recall += found as f64 / targets.len() as f64;
            }
            let n = m.users.max(1) as f64;
            println!(
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {} | {:.0} |",
                method.name,
                if rebuy { "rebuy" } else { "new" },
                m.users,
                m.hits / n,
                m.ndcg / n,
                m.recall / n,
                m.recommended.len() as f64 / items.len() as f64,
                m.percentile_sum / m.percentile_n.max(1.0),
                model_desc,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Records the lines before `until_ms` as purchases into a new catalog
/// with `settings`, and trains its collaborative model.
fn catalog_until(
    dir: &Path,
    items: &[Item],
    lines: &[&Line],
    until_ms: i64,
    settings: BehaviourSettings,
    learned: Option<usize>,
) -> Result<(
    std::sync::Arc<recstore::catalog::registry::Catalogs>,
    std::sync::Arc<recstore::catalog::Catalog>,
)> {
    let (catalogs, catalog) = match learned {
        Some(factors) => open_catalog(dir, items.to_vec(), factors, true)?,
        None => open_catalog(dir, items.to_vec(), items[0].vector.len(), false)?,
    };
    catalog.set_behaviour(settings)?;
    let train: Vec<&Line> = lines
        .iter()
        .copied()
        .filter(|l| l.at_ms < until_ms)
        .collect();
    for chunk in train.chunks(5_000) {
        catalog.record_events(chunk.iter().map(|l| l.event()).collect())?;
    }
    catalog.train_collaborative(recstore::recommend::blend::fit_for)?;
    Ok((catalogs, catalog))
}

/// Fits the blend's weights by logistic regression on a validation split:
/// the history before `from_ms` is recorded and the model trained on it;
/// every customer who buys something new in `[from_ms, to_ms)` is asked
/// for candidates at `from_ms` (`recommend::personal::features`, the
/// standardised similarity, collaborative score, popularity and category
/// share), labelled 1 when bought in the window. Newton's method on the
/// log-likelihood (with a small ridge); negative weights are clamped to 0
/// (a setting is a non-negative weight). Returns
/// `[similarity, collaborative, popularity, category]` and the row count.
pub fn fit(items: &[Item], lines: &[Line], from_ms: i64, to_ms: i64) -> Result<([f64; 4], usize)> {
    let all: Vec<&Line> = lines.iter().collect();
    let dir = tempfile::tempdir()?;
    let mut settings = BehaviourSettings::default();
    settings.blend.similarity = 1.0;
    settings.blend.collaborative = 1.0;
    settings.blend.popularity = 1.0;
    settings.blend.category = 1.0;
    // Every candidate source, whatever the server's own fit would choose.
    settings.collaborative.fit_blend = false;
    let (_catalogs, catalog) = catalog_until(dir.path(), items, &all, from_ms, settings, None)?;
    let mut before: HashMap<&str, HashSet<&str>> = HashMap::new();
    for l in lines.iter().filter(|l| l.at_ms < from_ms) {
        before.entry(&l.user).or_default().insert(&l.item);
    }
    let mut window: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for l in lines
        .iter()
        .filter(|l| l.at_ms >= from_ms && l.at_ms < to_ms)
    {
        let had = before.get(l.user.as_str());
        if had.is_some()
            && !had.is_some_and(|h| h.contains(l.item.as_str()))
            && !l.user.starts_with("guest:")
        {
            window.entry(&l.user).or_default().insert(&l.item);
        }
    }
    let mut rows: Vec<([f64; 5], f64)> = Vec::new();
    for (user, bought) in &window {
        let context = UserContext::load(&catalog, user, from_ms)?;
        let request = UserRequest {
            user_id: user.to_string(),
            k: 20,
            filter: Filter::default(),
            now_ms: from_ms,
        };
        let found = catalog.with_index(|index| {
            features(&catalog, index, &context, &request).map(|fs| {
                fs.into_iter()
                    .map(|f| {
                        let id = index.hit(f.slot, 0.0).meta.id.clone();
                        (
                            [1.0, f.similarity, f.collaborative, f.popularity, f.category],
                            if bought.contains(&*id) { 1.0 } else { 0.0 },
                        )
                    })
                    .collect::<Vec<_>>()
            })
        });
        rows.extend(found.unwrap_or_default());
    }
    let mut w = [0.0f64; 5];
    for _ in 0..30 {
        let mut grad = [0.0f64; 5];
        let mut hess = faer::Mat::<f64>::zeros(5, 5);
        for (x, y) in &rows {
            let z: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            for i in 0..5 {
                grad[i] += (y - p) * x[i];
                for j in 0..5 {
                    hess[(i, j)] += p * (1.0 - p) * x[i] * x[j];
                }
            }
        }
        for i in 0..5 {
            grad[i] -= 1e-3 * w[i];
            hess[(i, i)] += 1e-3;
        }
        let g = faer::Mat::<f64>::from_fn(5, 1, |i, _| grad[i]);
        let Ok(llt) = hess.llt(faer::Side::Lower) else {
            break;
        };
        use faer::linalg::solvers::Solve;
        let step = llt.solve(&g);
        let mut moved = 0.0f64;
        for i in 0..5 {
            w[i] += step[(i, 0)];
            moved = moved.max(step[(i, 0)].abs());
        }
        if moved < 1e-8 {
            break;
        }
    }
    Ok((
        [w[1].max(0.0), w[2].max(0.0), w[3].max(0.0), w[4].max(0.0)],
        rows.len(),
    ))
}

/// What training costs (`--protocol train-cost`): a synthetic history of
/// `events` interactions by `users` users over `items` items (Zipf
/// popularity, users drawn to one of 50 taste clusters), the model trained
/// directly from it (no store), with the wall time and the process's peak
/// RSS before and after.
pub fn train_cost(
    items: usize,
    users: usize,
    events: usize,
    settings: &recstore::model::CollaborativeSettings,
) -> Result<()> {
    use recstore::collaborative::train::{train, Interactions};
    let mut rng = crate::Rng(7);
    let clusters = 50;
    let weights = BehaviourSettings::default().weights;
    let started = Instant::now();
    let mut data = Interactions::new();
    let per_user = (events / users.max(1)).max(1);
    // Zipf (s = 1) by its inverse CDF, ln(i + 1) / ln(n + 1).
    let zipf = |rng: &mut crate::Rng, n: usize| {
        ((rng.unit() * ((n + 1) as f64).ln()).exp() as usize)
            .saturating_sub(1)
            .min(n - 1)
    };
    for u in 0..users {
        let taste = rng.below(clusters);
        for _ in 0..per_user {
            // 70 % within the user's cluster's slice of the catalogue.
            let item = if rng.unit() < 0.7 {
                let width = (items / clusters).max(1);
                taste * width + zipf(&mut rng, width)
            } else {
                zipf(&mut rng, items)
            };
            let line = Line {
                kind: EventKind::Purchase,
                user: format!("u{u}"),
                item: format!("i{item}"),
                order: String::new(),
                at_ms: 0,
                liked: true,
            };
            data.add(&line.event(), &weights);
        }
    }
    let data = data.finish();
    let built = started.elapsed().as_secs_f64();
    let rss_before = peak_rss_mib();
    let model = train(&data, settings, events as u64).context("no interactions")?;
    // The item factors of a catalog with learned vectors (32 by default).
    let als_started = Instant::now();
    let factors = data.learn_factors(&recstore::collaborative::factors::AlsSettings {
        dimension: recstore::model::DEFAULT_LEARNED_DIMENSION,
        iterations: settings.als_iterations as usize,
        alpha: settings.als_alpha,
        lambda: settings.als_lambda,
    });
    let als_seconds = als_started.elapsed().as_secs_f64();
    println!(
        "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {:.0} | {:.0} | {:.1} | {:.0} |",
        items,
        data.items(),
        users,
        data.pairs(),
        model.info.kind.as_str(),
        built,
        model.info.seconds,
        model.weights(),
        model.memory_bytes() as f64 / (1 << 20) as f64,
        peak_rss_mib().max(rss_before),
        als_seconds,
        (factors.len() * 4) as f64 / (1 << 20) as f64,
    );
    Ok(())
}

/// The process's peak resident set (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Whether a latent history carries stars, and how they are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stars {
    /// None: every line counts (the shipped check).
    Off,
    /// Stars drawn; lines recorded as purchases (or views); only 4- and
    /// 5-star future lines count as hits.
    Purchases,
    /// The same stars recorded as `rating` events with their value.
    Ratings,
}

/// Stars by affinity rank (0 = the user's favourite): the top 40 % five,
/// then 25 % four, 15 % three, 10 % two, 10 % one, roughly MovieLens's
/// shape.
fn star_of(rank_share: f64) -> u8 {
    match rank_share {
        r if r < 0.40 => 5,
        r if r < 0.65 => 4,
        r if r < 0.80 => 3,
        r if r < 0.90 => 2,
        _ => 1,
    }
}

/// A synthetic history with known latent structure, shaped like a ratings
/// set (`--format latent`): `items` items and `users` users in a 16-d
/// taste space, each user interacting with `per_user` distinct items drawn
/// with probability ∝ popularity (Zipf) × exp(8 · taste · item), one a day
/// over a year ending 2020-12-31; the item vectors the shop "supplies" are
/// the latent vectors plus as much noise again (content that knows
/// something, not everything). Its figures are labelled synthetic.
pub fn latent(
    items: usize,
    users: usize,
    per_user: usize,
    view_share: f64,
    stars: Stars,
    seed: u64,
) -> (Vec<Item>, Vec<Line>) {
    const D: usize = 16;
    let mut rng = crate::Rng(seed.max(1));
    let mut gauss = move || {
        // Box-Muller.
        let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let unit = |v: Vec<f64>| {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        v.into_iter().map(|x| x / n).collect::<Vec<f64>>()
    };
    let latent: Vec<Vec<f64>> = (0..items)
        .map(|_| unit((0..D).map(|_| gauss()).collect()))
        .collect();
    let noisy: Vec<Vec<f32>> = latent
        .iter()
        .map(|v| {
            let noise = unit((0..D).map(|_| gauss()).collect());
            v.iter().zip(&noise).map(|(a, b)| (a + b) as f32).collect()
        })
        .collect();
    let pop: Vec<f64> = (0..items)
        .map(|i| 1.0 / (1.0 + i as f64).powf(0.6))
        .collect();
    let catalogue: Vec<Item> = (0..items)
        .map(|i| product(format!("m{i}"), noisy[i].clone(), 10.0))
        .collect();
    let stars_as_ratings = stars == Stars::Ratings;
    let end = 1_609_372_800_000i64; // 2020-12-31
    let day = 86_400_000i64;
    let mut lines = Vec::new();
    for u in 0..users {
        let taste = unit((0..D).map(|_| gauss()).collect());
        let weights: Vec<f64> = (0..items)
            .map(|i| {
                pop[i]
                    * (8.0
                        * taste
                            .iter()
                            .zip(&latent[i])
                            .map(|(a, b)| a * b)
                            .sum::<f64>())
                    .exp()
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut chosen: Vec<usize> = Vec::new();
        let mut tries = 0;
        let mut r = crate::Rng(seed.wrapping_mul(31).wrapping_add(u as u64 + 1));
        while chosen.len() < per_user.min(items) && tries < per_user * 50 {
            tries += 1;
            let mut x = r.unit() * total;
            let mut pick = items - 1;
            for (i, w) in weights.iter().enumerate() {
                x -= w;
                if x <= 0.0 {
                    pick = i;
                    break;
                }
            }
            if !chosen.contains(&pick) {
                chosen.push(pick);
            }
        }
        let start = end - 365 * day + (r.below(180) as i64) * day;
        // Stars by the user's own affinity order (no extra draws, so the
        // history is the same with and without them).
        let stars: Option<Vec<u8>> = (stars != Stars::Off).then(|| {
            let affinity: Vec<f64> = chosen
                .iter()
                .map(|&i| taste.iter().zip(&latent[i]).map(|(a, b)| a * b).sum())
                .collect();
            let mut order: Vec<usize> = (0..chosen.len()).collect();
            order.sort_by(|&a, &b| affinity[b].total_cmp(&affinity[a]));
            let mut out = vec![0u8; chosen.len()];
            for (rank, &k) in order.iter().enumerate() {
                out[k] = star_of(rank as f64 / chosen.len().max(1) as f64);
            }
            out
        });
        let stars = stars.as_deref();
        for (n, i) in chosen.into_iter().enumerate() {
            // A share of the interactions are views (a "ratings set
            // replayed as purchases and views").
            let view = (r.next() % 1000) as f64 / 1000.0 < view_share;
            lines.push(Line {
                kind: match stars {
                    Some(s) if stars_as_ratings => EventKind::Rating(s[n]),
                    _ if view => EventKind::View,
                    _ => EventKind::Purchase,
                },
                user: format!("user{u}"),
                item: format!("m{i}"),
                order: format!("o{u}-{n}"),
                at_ms: (start + n as i64 * day).min(end),
                liked: stars.is_none_or(|s| s[n] >= 4),
            });
        }
    }
    lines.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.order.cmp(&b.order)));
    (catalogue, lines)
}
