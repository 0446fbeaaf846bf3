//! The recommenders in-process, without HTTP: personal picks (a user with
//! events, and a cold start), cross-sell, trending, and loading a user's
//! context (events from RocksDB + profile), on 20,000 synthetic clustered
//! 384-d items in 64 categories with 200,000 events by 10,000 users
//! (Zipf-skewed items, fixed seed), in a real store in a temp dir, with
//! the collaborative model trained (item-kNN: more than 5,000 items have
//! events), plus one heavy user with 600 events; and training that model
//! (with the blend's fit).
//!
//! Run: `cargo bench --bench recommend`

mod support;

use support::Rng;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use recstore::catalog::registry::Catalogs;
use recstore::config::IndexSettings;
use recstore::engagement::train::{train, Sample};
use recstore::engagement::{Prior, Scorer, FEATURE_COUNT};
use recstore::index::filter::Filter;
use recstore::model::{CatalogConfig, CatalogName, Event, EventKind, Item, Metric, VectorType};
use recstore::model::{RankBy, Surface};
use recstore::recommend::cross_sell::{cross_sell, CrossSellRequest};
use recstore::recommend::personal::{recommend_user, trending, UserRequest};
use recstore::recommend::rerank::{finish, Ask};
use recstore::recommend::UserContext;
use recstore::storage::Store;

const N: usize = 20_000;
const DIM: usize = 384;
const CLUSTERS: usize = 64;
const USERS: usize = 10_000;
const EVENTS: usize = 200_000;
const NOW: i64 = 1_800_000_000_000;

fn items(rng: &mut Rng) -> Vec<Item> {
    let centers: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..DIM).map(|_| rng.normal()).collect())
        .collect();
    (0..N)
        .map(|i| {
            let c = (rng.next() % CLUSTERS as u64) as usize;
            let v: Vec<f32> = centers[c].iter().map(|x| x + 0.6 * rng.normal()).collect();
            Item {
                id: format!("i{i}"),
                vector: v,
                price: Some((i % 100) as f64 + 1.0),
                category: Some(format!("c{c}")),
                brand: None,
                in_stock: true,
                tags: Vec::new(),
                explicit_tier: None,
                attributes: Default::default(),
            }
        })
        .collect()
}

fn setup() -> (tempfile::TempDir, Arc<Catalogs>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let catalogs =
        Arc::new(Catalogs::open(store, IndexSettings::default(), Default::default()).unwrap());
    let name = CatalogName::parse("bench").unwrap();
    catalogs
        .create(
            &name,
            CatalogConfig::new(DIM, Metric::Cosine, VectorType::F32, 4).unwrap(),
        )
        .unwrap();
    let catalog = catalogs.get("bench").unwrap();
    let mut rng = Rng(0x5EED);
    catalog.upsert_items(items(&mut rng)).unwrap();
    let kinds = [
        EventKind::View,
        EventKind::View,
        EventKind::Click,
        EventKind::AddToCart,
        EventKind::Purchase,
    ];
    let mut events = Vec::with_capacity(EVENTS);
    for e in 0..EVENTS {
        // Zipf-like item popularity: the square of a uniform index.
        let item = ((rng.unit() * rng.unit()) * N as f64) as usize;
        let user = (rng.next() % USERS as u64) as usize;
        let kind = kinds[(rng.next() % kinds.len() as u64) as usize];
        events.push(Event {
            user_id: format!("u{user}"),
            item_id: format!("i{item}"),
            kind,
            timestamp_ms: NOW - (rng.next() % (60 * 86_400_000)) as i64,
            session_id: None,
            order_id: (kind == EventKind::Purchase).then(|| format!("o{}", e / 3)),
            quantity: 1,
            price: None,
            event_id: None,
            recommendation_id: None,
        });
        if events.len() == 10_000 {
            catalog.record_events(std::mem::take(&mut events)).unwrap();
        }
    }
    // One heavy user: 600 events (a third of them purchases), whose
    // exclusions and collaborative row are what made #17's p99 miss.
    let heavy: Vec<Event> = (0..600)
        .map(|e| {
            let item = ((rng.unit() * rng.unit()) * N as f64) as usize;
            let kind = if e % 3 == 0 {
                EventKind::Purchase
            } else {
                EventKind::View
            };
            Event {
                user_id: "heavy".into(),
                item_id: format!("i{item}"),
                kind,
                timestamp_ms: NOW - (rng.next() % (60 * 86_400_000)) as i64,
                session_id: None,
                order_id: (kind == EventKind::Purchase).then(|| format!("h{}", e / 30)),
                quantity: 1,
                price: None,
                event_id: None,
                recommendation_id: None,
            }
        })
        .collect();
    catalog.record_events(heavy).unwrap();
    catalog
        .train_collaborative(recstore::recommend::blend::fit_for)
        .unwrap();
    (dir, catalogs)
}

/// A model fitted on synthetic labelled hits (its weights only need to be
/// real numbers of a real fit for the timing).
fn engagement_model() -> recstore::engagement::Model {
    let mut rng = Rng(3);
    let samples: Vec<Sample> = (0..20_000)
        .map(|i| {
            let mut x = [0f32; FEATURE_COUNT];
            for v in x.iter_mut() {
                *v = rng.unit() as f32;
            }
            Sample {
                at_ms: i,
                item: (rng.next() % 1_000) as u32,
                surface: Surface::User,
                position: (rng.next() % 10) as usize,
                engaged: rng.unit() < 0.05 + 0.1 * f64::from(x[0]),
                x,
            }
        })
        .collect();
    train(samples, &Prior::default(), 100, 10, 0, 0).unwrap()
}

fn bench(c: &mut Criterion) {
    let (_dir, catalogs) = setup();
    let catalog = catalogs.get("bench").unwrap();
    let mut group = c.benchmark_group("recommend");
    group.sample_size(30);
    let user = |id: &str| UserRequest {
        user_id: id.into(),
        k: 10,
        filter: Filter::default(),
        now_ms: NOW,
    };
    group.bench_function("user_context/20_events", |b| {
        b.iter(|| UserContext::load(&catalog, "u17", NOW).unwrap())
    });
    group.bench_function("personal/20_events", |b| {
        b.iter(|| recommend_user(&catalog, &user("u17")).unwrap())
    });
    group.bench_function("personal/600_events", |b| {
        b.iter(|| recommend_user(&catalog, &user("heavy")).unwrap())
    });
    group.bench_function("personal/cold_start", |b| {
        b.iter(|| recommend_user(&catalog, &user("nobody")).unwrap())
    });
    let empty = UserContext::default();
    group.bench_function("trending/k10", |b| {
        b.iter(|| trending(&catalog, &empty, 10, Filter::default(), NOW))
    });
    let cart = CrossSellRequest {
        item_ids: vec!["i3".into()],
        user_id: Some("u17".into()),
        k: 10,
        filter: Filter::default(),
        now_ms: NOW,
    };
    group.bench_function("cross_sell/one_item", |b| {
        b.iter(|| cross_sell(&catalog, &cart).unwrap())
    });
    // The rerank stage every surface ends with (#19): features and score
    // for 20 candidates of personal picks, keeping 10, with a model
    // trained on synthetic hits; with the surface's order and with the
    // engagement order.
    let context = UserContext::load(&catalog, "u17", NOW).unwrap();
    let candidates = recommend_user(
        &catalog,
        &UserRequest {
            k: 20,
            ..user("u17")
        },
    )
    .unwrap();
    let scorer = Scorer {
        model: Some(engagement_model()),
        ..Scorer::default()
    };
    for rank_by in [RankBy::Score, RankBy::Engagement] {
        let ask = Ask {
            surface: Surface::User,
            anchor: &[],
            context: &context,
            user_id: Some("u17"),
            rank_by,
            k: 10,
            now_ms: NOW,
        };
        group.bench_function(format!("rerank/20_candidates_{}", rank_by.as_str()), |b| {
            b.iter(|| finish(&catalog, &scorer, &ask, candidates.clone()))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("collaborative");
    group.sample_size(10);
    group.bench_function("train/item_knn_200k_events", |b| {
        b.iter(|| {
            catalog
                .train_collaborative(recstore::recommend::blend::fit_for)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
