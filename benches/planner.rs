//! The filter planner's two paths on one index: an exact scan of the
//! matching items versus an over-fetching HNSW search, for filters that
//! match from 250 to 20,000 of 20,000 items (384-d f32, cosine, synthetic
//! clustered vectors, fixed seed). The crossover sets
//! `Defaults::EXACT_SCAN_THRESHOLD`; see BENCHMARKS.md.
//!
//! Run: `cargo bench --bench planner`

mod support;

use support::{unit_length, Rng};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use recstore::config::IndexSettings;
use recstore::index::filter::{Bound, Condition, Filter, PriceRange};
use recstore::index::{IndexState, Plan};
use recstore::model::{CatalogConfig, Item, Metric, VectorType};
use serde_json::Map;

const N: usize = 20_000;
const DIM: usize = 384;
const CLUSTERS: usize = 64;

/// Clustered unit vectors; item i has price i % 100, so `price < p`
/// matches p % of the items.
fn data(rng: &mut Rng) -> (Vec<Item>, Vec<Vec<f32>>) {
    let centers: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..DIM).map(|_| rng.normal()).collect())
        .collect();
    let point = |rng: &mut Rng| {
        let c = &centers[(rng.next() % CLUSTERS as u64) as usize];
        unit_length(c.iter().map(|x| x + 0.6 * rng.normal()).collect())
    };
    let items = (0..N)
        .map(|i| Item {
            id: format!("i{i}"),
            vector: point(rng),
            price: Some((i % 100) as f64),
            category: None,
            brand: None,
            in_stock: true,
            tags: Vec::new(),
            explicit_tier: None,
            attributes: Map::new(),
        })
        .collect();
    let queries = (0..64).map(|_| point(rng)).collect();
    (items, queries)
}

fn planner(c: &mut Criterion) {
    let mut rng = Rng(0x5EED);
    let (items, queries) = data(&mut rng);
    let config = CatalogConfig::new(DIM, Metric::Cosine, VectorType::F32, 4).unwrap();
    let mut index = IndexState::build(config, IndexSettings::default(), items);
    let mut group = c.benchmark_group("planner_20k_384d_k10");
    group.sample_size(20);
    for percent in [1usize, 2, 5, 10, 20, 40, 100] {
        let matches = N * percent / 100;
        let filter = if percent == 100 {
            Filter::default()
        } else {
            Filter::default().and(Condition::Price(PriceRange {
                low: None,
                high: Some(Bound {
                    value: percent as f64,
                    inclusive: false,
                }),
            }))
        };
        for (path, threshold) in [("exact", usize::MAX), ("graph", 0)] {
            index.set_exact_scan_threshold(threshold);
            let mut q = 0;
            group.bench_with_input(BenchmarkId::new(path, matches), &filter, |b, filter| {
                b.iter(|| {
                    q = (q + 1) % queries.len();
                    let (hits, plan) = index.search(&queries[q], 10, filter, &[]);
                    debug_assert!(threshold != usize::MAX || plan == Plan::Exact);
                    hits.len()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, planner);
criterion_main!(benches);
