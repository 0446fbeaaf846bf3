//! The HNSW graph on its own (hnsw_rs with our distance kernels): search
//! time at several beam widths (`ef`) for f32 and f16 storage, on 20,000
//! clustered synthetic 128-d unit vectors (cosine, fixed seed, M 32,
//! ef_construction 128 as the server's defaults). Before timing, the
//! bench prints each ef's recall@10 against brute force over the same
//! data, so every time has its recall next to it.
//!
//! The f32 graph is also frozen (`index::frozen`, #20) and searched by
//! our own beam over the same vectors and kernel, at the same ef, with its
//! recall printed the same way: what the frozen walk saves.
//!
//! Run: `cargo bench --bench hnsw`

mod support;

use support::{unit_length, Rng};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use recstore::config::IndexSettings;
use recstore::index::frozen::{Beam, FrozenGraph, Space};
use recstore::index::graph::Graph;
use recstore::model::{Metric, VectorType};

const N: usize = 20_000;
const DIM: usize = 128;
const CLUSTERS: usize = 200;
const QUERIES: usize = 200;
const EFS: [usize; 5] = [16, 32, 64, 128, 256];

fn data(rng: &mut Rng) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let centres: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..DIM).map(|_| rng.normal()).collect())
        .collect();
    let point = |rng: &mut Rng| {
        let c = &centres[(rng.next() % CLUSTERS as u64) as usize];
        unit_length(c.iter().map(|x| x + 0.5 * rng.normal()).collect())
    };
    let base = (0..N).map(|_| point(rng)).collect();
    let queries = (0..QUERIES).map(|_| point(rng)).collect();
    (base, queries)
}

fn exact_top10(base: &[Vec<f32>], q: &[f32]) -> Vec<u32> {
    let mut scored: Vec<(f32, u32)> = base
        .iter()
        .enumerate()
        .map(|(i, v)| (q.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(), i as u32))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(10).map(|(_, i)| i).collect()
}

/// The frozen walk's view of the bench's vectors: cosine distance, no filter.
struct Cosine<'a> {
    base: &'a [Vec<f32>],
    query: &'a [f32],
    dot: fn(&[f32], &[f32]) -> f32,
}

impl Space for Cosine<'_> {
    fn distance(&self, slot: u32) -> f32 {
        1.0 - (self.dot)(self.query, &self.base[slot as usize])
    }
    fn accept(&self, _slot: u32) -> bool {
        true
    }
}

fn hnsw(c: &mut Criterion) {
    let mut rng = Rng(0xC0DE);
    let (base, queries) = data(&mut rng);
    let truth: Vec<Vec<u32>> = queries.iter().map(|q| exact_top10(&base, q)).collect();
    let settings = IndexSettings::default().hnsw;
    let mut group = c.benchmark_group("hnsw_search_20k_128d_k10");
    for (vector_type, name) in [(VectorType::F32, "f32"), (VectorType::F16, "f16")] {
        let graph = Graph::new(vector_type, Metric::Cosine, &settings, N);
        let points: Vec<(u32, &[f32])> = base
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, v.as_slice()))
            .collect();
        let started = std::time::Instant::now();
        graph.insert(&points);
        eprintln!(
            "{name}: built {N} points in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        for ef in EFS {
            let found: usize = queries
                .iter()
                .zip(&truth)
                .map(|(q, t)| {
                    graph
                        .search(q, 10, ef)
                        .0
                        .iter()
                        .filter(|s| t.contains(s))
                        .count()
                })
                .sum();
            eprintln!(
                "{name} ef {ef}: recall@10 {:.4} (brute force, {QUERIES} queries)",
                found as f64 / (10 * QUERIES) as f64
            );
            let mut q = 0;
            group.bench_with_input(BenchmarkId::new(name, ef), &ef, |b, &ef| {
                b.iter(|| {
                    q = (q + 1) % QUERIES;
                    graph.search(&queries[q], 10, ef).0.len()
                })
            });
        }
        if vector_type != VectorType::F32 {
            continue;
        }
        let frozen = FrozenGraph::freeze(&graph, N);
        let dot = recstore::index::kernels::active().dot_f32;
        let search = |q: &[f32], ef: usize| {
            let space = Cosine {
                base: &base,
                query: q,
                dot,
            };
            frozen.search(&Beam::new(10, ef), &space).0
        };
        for ef in EFS {
            let found: usize = queries
                .iter()
                .zip(&truth)
                .map(|(q, t)| search(q, ef).iter().filter(|(s, _)| t.contains(s)).count())
                .sum();
            eprintln!(
                "frozen ef {ef}: recall@10 {:.4} (brute force, {QUERIES} queries)",
                found as f64 / (10 * QUERIES) as f64
            );
            let mut q = 0;
            group.bench_with_input(BenchmarkId::new("frozen_f32", ef), &ef, |b, &ef| {
                b.iter(|| {
                    q = (q + 1) % QUERIES;
                    search(&queries[q], ef).len()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, hnsw);
criterion_main!(benches);
