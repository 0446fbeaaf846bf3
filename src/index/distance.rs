//! Distance and score kernels for the element types a catalog can store.
//!
//! Two views of the same geometry:
//! - a **score** (higher is better) between an f32 query and a stored
//!   vector: cosine similarity (vectors are unit length), dot product, or
//!   the negative squared L2 distance. Hits carry this score.
//! - a **graph distance** for hnsw_rs, which asserts that every distance
//!   is `>= 0` and not NaN (a panic there would take the server down), so
//!   the score is mapped through a strictly decreasing function onto
//!   `[0, inf)`. HNSW only ever *compares* distances, so any strictly
//!   monotone map builds the same graph and returns the same neighbours.
//!
//! The loops use eight independent accumulators so LLVM can vectorise them
//! without fast-math; hand-written SIMD is a later step (issue #5).

use half::f16;
use hnsw_rs::prelude::Distance;

use crate::catalog::model::Metric;

/// An element type vectors can be stored as.
pub trait Element: Copy + Clone + Send + Sync + 'static + std::fmt::Debug {
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for f16 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

const LANES: usize = 8;

/// Dot product of two equal-length vectors.
#[inline]
pub fn dot<A: Element, B: Element>(a: &[A], b: &[B]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let chunks = a.len() / LANES;
    for c in 0..chunks {
        let base = c * LANES;
        for l in 0..LANES {
            acc[l] += a[base + l].to_f32() * b[base + l].to_f32();
        }
    }
    let mut sum = 0.0;
    for i in chunks * LANES..a.len() {
        sum += a[i].to_f32() * b[i].to_f32();
    }
    sum + acc.iter().sum::<f32>()
}

/// Squared Euclidean distance of two equal-length vectors.
#[inline]
pub fn l2_squared<A: Element, B: Element>(a: &[A], b: &[B]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let chunks = a.len() / LANES;
    for c in 0..chunks {
        let base = c * LANES;
        for l in 0..LANES {
            let d = a[base + l].to_f32() - b[base + l].to_f32();
            acc[l] += d * d;
        }
    }
    let mut sum = 0.0;
    for i in chunks * LANES..a.len() {
        let d = a[i].to_f32() - b[i].to_f32();
        sum += d * d;
    }
    sum + acc.iter().sum::<f32>()
}

/// The score of stored vector `v` for `query`; higher is better.
#[inline]
pub fn score<A: Element, B: Element>(metric: Metric, query: &[A], v: &[B]) -> f32 {
    match metric {
        Metric::Cosine | Metric::Dot => dot(query, v),
        Metric::L2 => -l2_squared(query, v),
    }
}

/// Maps a score onto a non-negative graph distance, strictly decreasing in
/// the score: `1 - s` for `s <= 0` (so `>= 1`), `1 / (1 + s)` for `s > 0`
/// (so in `(0, 1)`). Continuous at 0, finite for finite scores.
#[inline]
pub fn score_to_distance(s: f32) -> f32 {
    if s.is_nan() {
        // Cannot happen for validated vectors; never hand NaN to hnsw_rs.
        return f32::MAX;
    }
    if s <= 0.0 {
        (1.0 - s).min(f32::MAX)
    } else {
        1.0 / (1.0 + s)
    }
}

/// The distance hnsw_rs uses for a catalog's graph.
#[derive(Debug, Clone, Copy)]
pub struct GraphDistance {
    pub metric: Metric,
}

impl<T: Element> Distance<T> for GraphDistance {
    fn eval(&self, a: &[T], b: &[T]) -> f32 {
        match self.metric {
            // Cosine vectors are unit length: 1 - dot is in [0, 2] up to
            // rounding, clamped so rounding can never make it negative.
            Metric::Cosine => (1.0 - dot(a, b)).max(0.0),
            Metric::Dot => score_to_distance(dot(a, b)),
            Metric::L2 => l2_squared(a, b).min(f32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    proptest! {
        #[test]
        fn kernels_match_a_plain_reference(
            pair in (1usize..70).prop_flat_map(|n| (
                proptest::collection::vec(-10.0f32..10.0, n),
                proptest::collection::vec(-10.0f32..10.0, n),
            ))
        ) {
            let (a, b) = pair;
            let d = reference_dot(&a, &b);
            prop_assert!((f64::from(dot(&a, &b)) - d).abs() < 1e-3 * (1.0 + d.abs()));
            let l2: f64 = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
            prop_assert!((f64::from(l2_squared(&a, &b)) - l2).abs() < 1e-3 * (1.0 + l2));
            let a16: Vec<f16> = a.iter().map(|x| f16::from_f32(*x)).collect();
            prop_assert!((f64::from(dot(&b, &a16)) - d).abs() < 0.05 * (1.0 + d.abs()) + 0.01 * a.len() as f64);
        }

        #[test]
        fn graph_distance_is_non_negative_and_order_preserving(s1 in -1e6f32..1e6, s2 in -1e6f32..1e6) {
            let (d1, d2) = (score_to_distance(s1), score_to_distance(s2));
            prop_assert!(d1 >= 0.0 && d2 >= 0.0);
            if s1 < s2 { prop_assert!(d1 >= d2); }
        }
    }

    #[test]
    fn cosine_distance_never_negative_for_unit_vectors() {
        let v = [0.6f32, 0.8];
        let d = GraphDistance {
            metric: Metric::Cosine,
        };
        assert!(Distance::<f32>::eval(&d, &v, &v) >= 0.0);
    }
}
