//! Replays an order history through recstore in time order and measures
//! what a shop would see.
//!
//! For every order dated on or after `--cutoff` (and holding at least two
//! distinct products), *before* the order's purchases are recorded:
//! - **cross-sell** is asked with the order's first product (and its
//!   customer); the targets are the order's other products;
//! - **personal picks** are asked for the customer at the order's time;
//!   the targets are the order's products.
//!
//! Each answer of 10 scores hit-rate@10 (any target in it) and NDCG@10
//! (binary relevance). A popularity baseline is computed the same way:
//! the 10 most popular items at that moment (decayed like recstore's
//! trending), leaving out the query item for cross-sell and the customer's
//! purchases for personal picks, as recstore does. Then the order's
//! purchases are recorded and the replay moves on.
//!
//! It runs in-process on a temporary store with the real write path
//! (`Catalog::record_events`), the collaborative model retrained whenever
//! the server would (`Catalog::training_due`), and the real recommenders, once per setting
//! of the grid, so blend weights and half-lives are chosen by
//! measurement. Input: a folder with `products.csv` (id, name, category,
//! sub_category, price), `embeddings.fvecs` (row i = product i) and
//! `orders.csv` (order_id, customer_id, date, product_id, ...), e.g.
//! `../shared/data/superstore`.
//!
//! `--synthetic-orders N` replaces `orders.csv` by a generated history
//! over the same products (fixed seed) that *has* the structure real shops
//! show and Superstore's sample orders lack (BENCHMARKS.md): customers
//! with favourite sub-categories, sub-categories that complement each
//! other, and skewed product popularity. It checks that the replay can
//! tell good rankings from bad ones; its figures are labelled synthetic.

mod offline;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use recstore::catalog::registry::Catalogs;
use recstore::catalog::Catalog;
use recstore::config::IndexSettings;
use recstore::index::filter::Filter;
use recstore::model::{
    BehaviourSettings, CatalogConfig, CatalogName, Event, Item, Metric, VectorType,
};
use recstore::recommend::cross_sell::{cross_sell, CrossSellRequest};
use recstore::recommend::personal::{recommend_user, trending, UserRequest};
use recstore::recommend::{Recommendation, UserContext};
use recstore::storage::Store;

#[derive(Parser)]
#[command(about = "Replay an order history and measure cross-sell and personal picks")]
struct Args {
    /// Folder with products.csv, embeddings.fvecs and orders.csv.
    #[arg(long)]
    data: PathBuf,
    /// Orders from this date on (YYYY-MM-DD) are evaluated.
    #[arg(long, default_value = "2020-01-01")]
    cutoff: String,
    /// Popularity weights to try (blend.popularity).
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.3,1,3")]
    popularity_weights: Vec<f64>,
    /// Popularity half-lives to try, in days.
    #[arg(long, value_delimiter = ',', default_value = "7,30,365")]
    popularity_half_lives: Vec<f64>,
    /// Category-affinity weights to try (blend.category).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    category_weights: Vec<f64>,
    /// Long-term profile half-lives to try, in days.
    #[arg(long, value_delimiter = ',', default_value = "30")]
    long_term_half_lives: Vec<f64>,
    /// Replay a generated history of this many orders instead of orders.csv.
    #[arg(long)]
    synthetic_orders: Option<usize>,
    /// Seed of the generated history.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// `replay`: order by order, before each order is recorded (the
    /// default); `offline`: the standard time split (see `offline.rs`).
    #[arg(long, default_value = "replay")]
    protocol: String,
    /// `superstore` (products.csv, embeddings.fvecs, orders.csv),
    /// `online-retail` (transactions.csv) or `latent` (generated; `--items`,
    /// `--users`, `--per-user`); the last two with the offline protocol only.
    #[arg(long, default_value = "superstore")]
    format: String,
    /// train-cost: catalogue size.
    #[arg(long, default_value_t = 10_000)]
    items: usize,
    /// train-cost: users.
    #[arg(long, default_value_t = 20_000)]
    users: usize,
    /// train-cost: interactions.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Offline protocol: ask at this date (YYYY-MM-DD) instead of the
    /// cutoff: a history imported long after it happened.
    #[arg(long)]
    ask_at: Option<String>,
    /// latent: share of interactions recorded as views (the rest are
    /// purchases).
    #[arg(long, default_value_t = 0.0)]
    view_share: f64,
    /// latent: stars per interaction (`off`; `purchases`: recorded as
    /// purchases; `ratings`: as `rating` events); with stars only 4- and
    /// 5-star future interactions count as hits.
    #[arg(long, default_value = "off")]
    stars: String,
    /// online-retail: record the `C` (cancelled) invoices of known
    /// customers as `return` events (otherwise they are left out).
    #[arg(long)]
    returns: bool,
    /// latent: interactions per user.
    #[arg(long, default_value_t = 100)]
    per_user: usize,
    /// Offline protocol: `collaborative.neighbours` for every method.
    #[arg(long)]
    neighbours: Option<usize>,
    /// Offline protocol: `profile_events` for every method.
    #[arg(long)]
    profile_events: Option<usize>,
    /// Offline protocol: `collaborative.ease_lambda` for every method.
    #[arg(long)]
    lambda: Option<f64>,
    /// train-cost: `collaborative.ease_max_items` (default 5000).
    #[arg(long)]
    ease_max_items: Option<usize>,
    /// Offline protocol: fit the blend by logistic regression on the
    /// purchases from this date (YYYY-MM-DD) to the cutoff, with the model
    /// trained on what came before, and report the fitted blend too.
    #[arg(long)]
    fit_from: Option<String>,
    /// Offline protocol: extra blends to try,
    /// `similarity:collaborative:popularity[:category]` (category 1 when left out).
    #[arg(long, value_delimiter = ',')]
    grid: Vec<String>,
    /// Offline protocol, learned vectors: the factors' dimension.
    #[arg(long, default_value_t = recstore::model::DEFAULT_LEARNED_DIMENSION)]
    factors: usize,
    /// Offline protocol, learned vectors: `collaborative.als_lambda`.
    #[arg(long)]
    als_lambda: Option<f64>,
    /// Offline protocol, learned vectors: `collaborative.als_alpha`.
    #[arg(long)]
    als_alpha: Option<f64>,
    /// Offline protocol: only the methods whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Offline protocol: `supplied` (the data's vectors) or `learned` (a
    /// catalog without vectors: item factors learned from the history).
    #[arg(long, default_value = "supplied")]
    vectors: String,
}

/// xorshift64*: a small fixed-seed generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index drawn with weight `1 / (i + 1)` (Zipf, s = 1).
    fn zipf(&mut self, n: usize) -> usize {
        let total: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
        let mut x = self.unit() * total;
        for i in 0..n {
            x -= 1.0 / (i + 1) as f64;
            if x <= 0.0 {
                return i;
            }
        }
        n - 1
    }
}

/// A generated order history (see the module documentation): 2018-2020,
/// `n / 5` customers with two favourite sub-categories each, sub-categories
/// paired as complements, Zipf popularity within each sub-category and
/// overall. An order holds 2-4 products: the first from a favourite (70 %)
/// or anywhere; each next one from the first's complement (50 %), a
/// favourite (30 %) or anywhere.
fn synthetic_orders(items: &[Item], n: usize, seed: u64) -> Result<Vec<Order>> {
    let mut rng = Rng(seed.max(1));
    let mut by_category: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        by_category
            .entry(item.category.as_deref().unwrap_or(""))
            .or_default()
            .push(i);
    }
    let mut categories: Vec<Vec<usize>> = by_category.into_values().collect();
    for products in &mut categories {
        // A random popularity order within the sub-category.
        for i in (1..products.len()).rev() {
            products.swap(i, rng.below(i + 1));
        }
    }
    let mut overall: Vec<usize> = (0..items.len()).collect();
    for i in (1..overall.len()).rev() {
        overall.swap(i, rng.below(i + 1));
    }
    let mut order_of: Vec<usize> = (0..categories.len()).collect();
    for i in (1..order_of.len()).rev() {
        order_of.swap(i, rng.below(i + 1));
    }
    let mut complement = vec![0; categories.len()];
    for pair in order_of.chunks(2) {
        let (a, b) = (pair[0], *pair.last().expect("a chunk"));
        complement[a] = b;
        complement[b] = a;
    }
    let category_of: Vec<usize> = {
        let mut c = vec![0; items.len()];
        for (ci, products) in categories.iter().enumerate() {
            for &p in products {
                c[p] = ci;
            }
        }
        c
    };
    let customers = (n / 5).max(1);
    let favourites: Vec<[usize; 2]> = (0..customers)
        .map(|_| [rng.below(categories.len()), rng.below(categories.len())])
        .collect();
    let start = date_ms("2018-01-01")?;
    let span = date_ms("2020-12-31")? - start;
    let mut out = Vec::with_capacity(n);
    for o in 0..n {
        let customer = rng.below(customers);
        let at_ms = start + (rng.unit() * span as f64) as i64 / 86_400_000 * 86_400_000;
        let from = |rng: &mut Rng, c: usize| {
            let products = &categories[c];
            products[rng.zipf(products.len())]
        };
        let first = if rng.unit() < 0.7 {
            let c = favourites[customer][rng.below(2)];
            from(&mut rng, c)
        } else {
            overall[rng.zipf(overall.len())]
        };
        let mut products = vec![items[first].id.clone()];
        for _ in 0..1 + rng.below(3) {
            let x = rng.unit();
            let p = if x < 0.5 {
                from(&mut rng, complement[category_of[first]])
            } else if x < 0.8 {
                let c = favourites[customer][rng.below(2)];
                from(&mut rng, c)
            } else {
                overall[rng.zipf(overall.len())]
            };
            if !products.contains(&items[p].id) {
                products.push(items[p].id.clone());
            }
        }
        out.push(Order {
            id: format!("SYN-{o}"),
            customer: format!("C-{customer}"),
            at_ms,
            products,
        });
    }
    out.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

const DAY_MS: f64 = 86_400_000.0;
const K: usize = 10;

struct Order {
    id: String,
    customer: String,
    at_ms: i64,
    /// Distinct products, in line order.
    products: Vec<String>,
}

fn read_fvecs(path: &Path) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let dim = i32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
        at += 4;
        if at + 4 * dim > bytes.len() {
            bail!("{} is truncated", path.display());
        }
        out.push(
            bytes[at..at + 4 * dim]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        );
        at += 4 * dim;
    }
    Ok(out)
}

fn date_ms(date: &str) -> Result<i64> {
    let t = time::OffsetDateTime::parse(
        &format!("{date}T12:00:00Z"),
        &time::format_description::well_known::Rfc3339,
    )
    .with_context(|| format!("bad date {date:?}"))?;
    Ok(t.unix_timestamp() * 1000)
}

fn items(data: &Path) -> Result<Vec<Item>> {
    let vectors = read_fvecs(&data.join("embeddings.fvecs"))?;
    let mut reader = csv::Reader::from_path(data.join("products.csv"))?;
    let mut out = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let r = record?;
        let vector = vectors
            .get(row)
            .with_context(|| format!("no vector for product row {row}"))?
            .clone();
        out.push(Item {
            id: r[0].to_string(),
            vector,
            price: r[4].parse().ok(),
            // The sub-category: the level at which products substitute.
            category: Some(r[3].to_string()),
            brand: r[1].split_whitespace().next().map(String::from),
            in_stock: true,
            tags: Vec::new(),
            explicit_tier: None,
            attributes: Default::default(),
        });
    }
    Ok(out)
}

fn orders(data: &Path) -> Result<Vec<Order>> {
    let mut reader = csv::Reader::from_path(data.join("orders.csv"))?;
    let mut by_id: BTreeMap<String, Order> = BTreeMap::new();
    for record in reader.records() {
        let r = record?;
        let order = by_id.entry(r[0].to_string()).or_insert(Order {
            id: r[0].to_string(),
            customer: r[1].to_string(),
            at_ms: date_ms(&r[2])?,
            products: Vec::new(),
        });
        if !order.products.iter().any(|p| p == &r[3]) {
            order.products.push(r[3].to_string());
        }
    }
    let mut out: Vec<Order> = by_id.into_values().collect();
    out.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// Hit-rate and NDCG sums over evaluated queries.
#[derive(Default, Clone, Copy)]
struct Score {
    queries: u64,
    hits: f64,
    ndcg: f64,
}

impl Score {
    fn add(&mut self, ranked: &[&str], targets: &[&str]) {
        self.queries += 1;
        let mut dcg = 0.0;
        for (r, id) in ranked.iter().take(K).enumerate() {
            if targets.contains(id) {
                dcg += 1.0 / ((r + 2) as f64).log2();
            }
        }
        let ideal: f64 = (0..targets.len().min(K))
            .map(|r| 1.0 / ((r + 2) as f64).log2())
            .sum();
        if dcg > 0.0 {
            self.hits += 1.0;
        }
        self.ndcg += dcg / ideal;
    }

    fn hr(&self) -> f64 {
        self.hits / self.queries.max(1) as f64
    }

    fn ndcg(&self) -> f64 {
        self.ndcg / self.queries.max(1) as f64
    }
}

#[derive(Default)]
struct Outcome {
    cross_sell: Score,
    cross_sell_popularity: Score,
    personal: Score,
    personal_popularity: Score,
    /// Personal picks for customers with earlier orders only.
    returning: Score,
    returning_popularity: Score,
}

fn ids(picks: &[Recommendation]) -> Vec<&str> {
    picks.iter().map(|p| &*p.hit.meta.id).collect()
}

/// A new catalog of `items` (`learned`: without their vectors, which the
/// model's factors replace; see `recstore::collaborative::factors`).
fn open_catalog(
    dir: &Path,
    mut items: Vec<Item>,
    dim: usize,
    learned: bool,
) -> Result<(Arc<Catalogs>, Arc<Catalog>)> {
    let store = Arc::new(Store::open(dir)?);
    let catalogs = Arc::new(Catalogs::open(
        store,
        IndexSettings::default(),
        Default::default(),
    )?);
    let name = CatalogName::parse("replay")?;
    let config = if learned {
        for item in &mut items {
            item.vector.clear();
        }
        CatalogConfig::learned(dim, VectorType::F32, 4)?
    } else {
        CatalogConfig::new(dim, Metric::Cosine, VectorType::F32, 4)?
    };
    catalogs.create(&name, config)?;
    let catalog = catalogs.get("replay")?;
    catalog.upsert_items(items)?;
    Ok((catalogs, catalog))
}

fn replay(
    items: &[Item],
    orders: &[Order],
    cutoff_ms: i64,
    settings: BehaviourSettings,
) -> Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let dim = items[0].vector.len();
    let (_catalogs, catalog) = open_catalog(dir.path(), items.to_vec(), dim, false)?;
    catalog.set_behaviour(settings)?;
    let mut out = Outcome::default();
    let mut seen_customers: HashSet<&str> = HashSet::new();
    for order in orders {
        let now = order.at_ms - 1;
        if order.at_ms >= cutoff_ms && order.products.len() >= 2 {
            let anchor = order.products[0].as_str();
            let others: Vec<&str> = order.products[1..].iter().map(String::as_str).collect();
            let all: Vec<&str> = order.products.iter().map(String::as_str).collect();
            let picks = cross_sell(
                &catalog,
                &CrossSellRequest {
                    item_ids: vec![anchor.to_string()],
                    user_id: Some(order.customer.clone()),
                    k: K,
                    filter: Filter::default(),
                    now_ms: now,
                },
            )?;
            out.cross_sell.add(&ids(&picks), &others);
            let context = UserContext::load(&catalog, &order.customer, now)?;
            let popular = trending(&catalog, &context, K + 1, Filter::default(), now);
            let popular: Vec<&str> = ids(&popular)
                .into_iter()
                .filter(|id| *id != anchor)
                .take(K)
                .collect();
            out.cross_sell_popularity.add(&popular, &others);
            let picks = recommend_user(
                &catalog,
                &UserRequest {
                    user_id: order.customer.clone(),
                    k: K,
                    filter: Filter::default(),
                    now_ms: now,
                },
            )?;
            let popular = trending(&catalog, &context, K, Filter::default(), now);
            out.personal.add(&ids(&picks), &all);
            out.personal_popularity.add(&ids(&popular), &all);
            if seen_customers.contains(order.customer.as_str()) {
                out.returning.add(&ids(&picks), &all);
                out.returning_popularity.add(&ids(&popular), &all);
            }
        }
        let events: Vec<Event> = offline::lines_of(std::slice::from_ref(order))
            .iter()
            .map(offline::Line::event)
            .collect();
        catalog.record_events(events)?;
        // As the server's background trainer would (without its quiet
        // rule: a replay never pauses).
        if catalog.training_due() {
            catalog.train_collaborative(recstore::recommend::blend::fit_for)?;
        }
        seen_customers.insert(&order.customer);
    }
    Ok(out)
}

/// `orders.csv`, or the generated history `--synthetic-orders` asks for.
fn history(args: &Args, items: &[Item]) -> Result<Vec<Order>> {
    match args.synthetic_orders {
        Some(n) => {
            println!("SYNTHETIC order history: {n} orders, seed {}", args.seed);
            synthetic_orders(items, n, args.seed)
        }
        None => orders(&args.data),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.protocol == "train-cost" {
        let mut settings = recstore::model::CollaborativeSettings::default();
        if let Some(n) = args.ease_max_items {
            settings.ease_max_items = n;
        }
        println!("| catalogue | items with events | users | (user, item) pairs | model | matrix build s | training s | weights kept | model MiB | peak RSS MiB | iALS (32 factors) s | factors MiB |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        return offline::train_cost(args.items, args.users, args.events, &settings);
    }
    if args.protocol == "offline" {
        let grid = args
            .grid
            .iter()
            .map(|g| {
                let parts: Vec<f64> = g
                    .split(':')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("bad --grid entry {g:?}"))?;
                match parts[..] {
                    [s, c, p] => Ok((s, c, p, 1.0)),
                    [s, c, p, k] => Ok((s, c, p, k)),
                    _ => bail!("a --grid entry is similarity:collaborative:popularity[:category], not {g:?}"),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let (items, lines) = match args.format.as_str() {
            "online-retail" => offline::online_retail(&args.data, args.returns)?,
            "latent" => {
                println!(
                    "SYNTHETIC latent-taste history: {} items, {} users, {} each, seed {}",
                    args.items, args.users, args.per_user, args.seed
                );
                let stars = match args.stars.as_str() {
                    "off" => offline::Stars::Off,
                    "purchases" => offline::Stars::Purchases,
                    "ratings" => offline::Stars::Ratings,
                    other => bail!("--stars must be off, purchases or ratings, not {other:?}"),
                };
                offline::latent(
                    args.items,
                    args.users,
                    args.per_user,
                    args.view_share,
                    stars,
                    args.seed,
                )
            }
            "superstore" => {
                let items = items(&args.data)?;
                let orders = history(&args, &items)?;
                let lines = offline::lines_of(&orders);
                (items, lines)
            }
            other => bail!("unknown --format {other:?}"),
        };
        let cutoff_ms = date_ms(&args.cutoff)?;
        println!("offline protocol, cutoff {}", args.cutoff);
        let fitted = match &args.fit_from {
            Some(from) => {
                let from_ms = date_ms(from)?;
                let (w, rows) = offline::fit(&items, &lines, from_ms, cutoff_ms)?;
                println!(
                    "blend fitted on {from}..{} ({rows} candidates): similarity {:.4}, collaborative {:.4}, popularity {:.4}, category {:.4}",
                    args.cutoff, w[0], w[1], w[2], w[3]
                );
                Some(w)
            }
            None => None,
        };
        let mut methods = offline::methods(&grid, fitted);
        for m in &mut methods {
            if let Some(s) = &mut m.settings {
                if let Some(n) = args.neighbours {
                    s.collaborative.neighbours = n;
                }
                if let Some(l) = args.lambda {
                    s.collaborative.ease_lambda = l;
                }
                if let Some(n) = args.profile_events {
                    s.profile_events = n;
                }
                if let Some(l) = args.als_lambda {
                    s.collaborative.als_lambda = l;
                }
                if let Some(a) = args.als_alpha {
                    s.collaborative.als_alpha = a;
                }
            }
        }
        if let Some(only) = &args.only {
            methods.retain(|m| m.name.contains(only.as_str()));
        }
        let ask_ms = match &args.ask_at {
            Some(at) => date_ms(at)?,
            None => cutoff_ms,
        };
        let learned = match args.vectors.as_str() {
            "supplied" => false,
            "learned" => true,
            other => bail!("--vectors is supplied or learned, not {other:?}"),
        };
        if learned {
            println!("learned vectors: items without vectors, iALS factors from the history");
        }
        return offline::run(
            &items,
            &lines,
            cutoff_ms,
            ask_ms,
            &methods,
            learned.then_some(args.factors),
        );
    }
    let items = items(&args.data)?;
    let orders = history(&args, &items)?;
    let cutoff_ms = date_ms(&args.cutoff)?;
    let evaluated = orders
        .iter()
        .filter(|o| o.at_ms >= cutoff_ms && o.products.len() >= 2)
        .count();
    println!(
        "{} products, {} orders ({} evaluated: from {} with 2+ products), k = {K}",
        items.len(),
        orders.len(),
        evaluated,
        args.cutoff
    );
    println!(
        "| category weight | popularity weight | popularity half-life (d) | long-term half-life (d) | cross-sell HR@10 | NDCG@10 | popularity HR@10 | NDCG@10 | personal HR@10 | NDCG@10 | popularity HR@10 | NDCG@10 | returning HR@10 | popularity HR@10 | seconds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &category in &args.category_weights {
        for &long in &args.long_term_half_lives {
            for &half_life in &args.popularity_half_lives {
                for &weight in &args.popularity_weights {
                    let mut settings = BehaviourSettings::default();
                    settings.blend.popularity = weight;
                    settings.blend.category = category;
                    settings.popularity_half_life_ms = (half_life * DAY_MS) as i64;
                    settings.long_term_half_life_ms = (long * DAY_MS) as i64;
                    let started = Instant::now();
                    let o = replay(&items, &orders, cutoff_ms, settings)?;
                    println!(
                    "| {category} | {weight} | {half_life} | {long} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} ({}) | {:.3} | {:.0} |",
                    o.cross_sell.hr(),
                    o.cross_sell.ndcg(),
                    o.cross_sell_popularity.hr(),
                    o.cross_sell_popularity.ndcg(),
                    o.personal.hr(),
                    o.personal.ndcg(),
                    o.personal_popularity.hr(),
                    o.personal_popularity.ndcg(),
                    o.returning.hr(),
                    o.returning.queries,
                    o.returning_popularity.hr(),
                    started.elapsed().as_secs_f64(),
                );
                }
            }
        }
    }
    Ok(())
}
