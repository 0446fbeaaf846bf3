//! The score kernels (`index::kernels`): the portable loops against the
//! best set this CPU runs (AVX2+FMA+F16C on x86-64), for each metric and
//! element type, per vector pair at 128, 384 and 784 dimensions; and an
//! exact scan of 10,000 stored vectors through the vector arena (the
//! kernels in use). Random unit vectors, fixed seed.
//!
//! Run: `cargo bench --bench kernels`

mod support;

use support::{unit_length, Rng};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;
use recstore::index::distance::score_with;
use recstore::index::kernels::{self, Kernels};
use recstore::index::vectors::VectorArena;
use recstore::model::{Metric, VectorType};

const METRICS: [(Metric, &str); 3] = [
    (Metric::Cosine, "cosine"),
    (Metric::Dot, "dot"),
    (Metric::L2, "l2"),
];

/// A random unit vector.
fn vector(rng: &mut Rng, dim: usize) -> Vec<f32> {
    unit_length(
        (0..dim)
            .map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect(),
    )
}

fn pairs(c: &mut Criterion) {
    let mut rng = Rng(0x5EED);
    let mut group = c.benchmark_group("pair");
    let mut sets: Vec<&'static Kernels> = vec![&kernels::PORTABLE];
    if !std::ptr::eq(kernels::best(), &kernels::PORTABLE) {
        sets.push(kernels::best());
    }
    for dim in [128usize, 384, 784] {
        let q = vector(&mut rng, dim);
        let v32 = vector(&mut rng, dim);
        let v16: Vec<f16> = v32.iter().map(|x| f16::from_f32(*x)).collect();
        for k in &sets {
            for (metric, name) in METRICS {
                group.bench_with_input(
                    BenchmarkId::new(format!("{}/f32/{name}", k.name), dim),
                    &dim,
                    |b, _| {
                        b.iter(|| {
                            score_with(
                                k,
                                metric,
                                std::hint::black_box(&q[..]),
                                std::hint::black_box(&v32[..]),
                            )
                        })
                    },
                );
                group.bench_with_input(
                    BenchmarkId::new(format!("{}/f16/{name}", k.name), dim),
                    &dim,
                    |b, _| {
                        b.iter(|| {
                            score_with(
                                k,
                                metric,
                                std::hint::black_box(&q[..]),
                                std::hint::black_box(&v16[..]),
                            )
                        })
                    },
                );
            }
            // The graph's own pairing: two stored f16 vectors.
            group.bench_with_input(
                BenchmarkId::new(format!("{}/f16xf16/l2", k.name), dim),
                &dim,
                |b, _| {
                    b.iter(|| {
                        (k.l2_f16)(
                            std::hint::black_box(&v16[..]),
                            std::hint::black_box(&v16[..]),
                        )
                    })
                },
            );
        }
    }
    group.finish();
}

fn scan(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut rng = Rng(0xA11CE);
    let mut group = c.benchmark_group("exact_scan_10k");
    group.throughput(Throughput::Elements(N as u64));
    for dim in [128usize, 384] {
        for (vector_type, type_name) in [(VectorType::F32, "f32"), (VectorType::F16, "f16")] {
            let mut arena = VectorArena::new(vector_type, dim, N);
            for _ in 0..N {
                arena.push(&vector(&mut rng, dim));
            }
            let q = vector(&mut rng, dim);
            group.bench_with_input(
                BenchmarkId::new(format!("{type_name}/l2"), dim),
                &dim,
                |b, _| {
                    b.iter(|| {
                        let mut best = f32::NEG_INFINITY;
                        for slot in 0..N as u32 {
                            best = best.max(arena.score(Metric::L2, &q, slot));
                        }
                        best
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, pairs, scan);
criterion_main!(benches);
