//! The engagement score's pure parts: scoring one hit (features to vector,
//! the item logit, the probability at a slot) and training the model on
//! 100,000 and 500,000 synthetic labelled hits (known log-odds, fixed
//! seed). The whole rerank stage over a real catalog is in
//! `benches/recommend.rs` (`rerank/...`).
//!
//! Run: `cargo bench --bench engagement`

mod support;

use support::Rng;

use criterion::{criterion_group, criterion_main, Criterion};
use recstore::engagement::train::{train, Sample};
use recstore::engagement::{sigmoid, Features, Prior, Scorer, FEATURE_COUNT};
use recstore::model::Surface;

/// Hits whose true log-odds depend on three features and the position.
pub fn samples(n: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let mut x = [0f32; FEATURE_COUNT];
            for v in x.iter_mut() {
                *v = rng.unit() as f32;
            }
            let position = (rng.next() % 10) as usize;
            let z = -3.0 + 2.0 * f64::from(x[0]) + f64::from(x[4]) - 0.2 * position as f64;
            Sample {
                at_ms: i as i64,
                item: (rng.next() % 5_000) as u32,
                surface: Surface::Similar,
                position,
                x,
                engaged: rng.unit() < sigmoid(z),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let model = train(samples(100_000, 7), &Prior::default(), 100, 10, 0, 0).unwrap();
    let scorer = Scorer {
        model: Some(model),
        ..Scorer::default()
    };
    let features = Features {
        similarity: Some(0.8),
        profile_similarity: Some(0.4),
        popularity: 2.0,
        category_affinity: 0.3,
        price_vs_anchor: Some(0.2),
        price_vs_usual: Some(-0.1),
        recency: 1.5,
        surface: Some(Surface::Similar),
        ..Features::default()
    };
    let mut group = c.benchmark_group("engagement");
    group.bench_function("score_one_hit", |b| {
        b.iter(|| {
            let x = std::hint::black_box(&features).to_vec();
            let z = scorer.item_logit(&x);
            scorer.probability(z, Surface::Similar, 3)
        })
    });
    group.sample_size(10);
    for n in [100_000, 500_000] {
        let data = samples(n, 11);
        group.bench_function(format!("train/{n}_hits"), |b| {
            b.iter(|| train(data.clone(), &Prior::default(), 100, 10, 0, 0).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
