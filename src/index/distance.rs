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
//! The arithmetic lives in `index::kernels`, chosen once for the CPU.

use std::cell::Cell;

use half::f16;
use hnsw_rs::prelude::Distance;

use crate::index::kernels::{active, Kernels};
use crate::model::Metric;

/// An element type vectors can be stored as, with the kernels that read
/// it: against an f32 query, and against another stored vector.
pub trait Element: Copy + Clone + Send + Sync + 'static + std::fmt::Debug {
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    /// Dot product of an f32 query with a stored vector.
    fn dot_query(k: &Kernels, query: &[f32], v: &[Self]) -> f32;
    /// Squared L2 distance of an f32 query to a stored vector.
    fn l2_query(k: &Kernels, query: &[f32], v: &[Self]) -> f32;
    /// Dot product of two stored vectors (the graph's distance).
    fn dot_stored(k: &Kernels, a: &[Self], b: &[Self]) -> f32;
    /// Squared L2 distance of two stored vectors.
    fn l2_stored(k: &Kernels, a: &[Self], b: &[Self]) -> f32;
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
    #[inline(always)]
    fn dot_query(k: &Kernels, query: &[f32], v: &[Self]) -> f32 {
        (k.dot_f32)(query, v)
    }
    #[inline(always)]
    fn l2_query(k: &Kernels, query: &[f32], v: &[Self]) -> f32 {
        (k.l2_f32)(query, v)
    }
    #[inline(always)]
    fn dot_stored(k: &Kernels, a: &[Self], b: &[Self]) -> f32 {
        (k.dot_f32)(a, b)
    }
    #[inline(always)]
    fn l2_stored(k: &Kernels, a: &[Self], b: &[Self]) -> f32 {
        (k.l2_f32)(a, b)
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
    #[inline(always)]
    fn dot_query(k: &Kernels, query: &[f32], v: &[Self]) -> f32 {
        (k.dot_f32_f16)(query, v)
    }
    #[inline(always)]
    fn l2_query(k: &Kernels, query: &[f32], v: &[Self]) -> f32 {
        (k.l2_f32_f16)(query, v)
    }
    #[inline(always)]
    fn dot_stored(k: &Kernels, a: &[Self], b: &[Self]) -> f32 {
        (k.dot_f16)(a, b)
    }
    #[inline(always)]
    fn l2_stored(k: &Kernels, a: &[Self], b: &[Self]) -> f32 {
        (k.l2_f16)(a, b)
    }
}

/// The score of stored vector `v` for `query`; higher is better.
#[inline]
pub fn score<T: Element>(metric: Metric, query: &[f32], v: &[T]) -> f32 {
    score_with(active(), metric, query, v)
}

/// [`score`] with the given kernels (benches compare kernel sets).
#[inline]
pub fn score_with<T: Element>(k: &Kernels, metric: Metric, query: &[f32], v: &[T]) -> f32 {
    debug_assert_eq!(query.len(), v.len());
    match metric {
        Metric::Cosine | Metric::Dot => T::dot_query(k, query, v),
        Metric::L2 => -T::l2_query(k, query, v),
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

thread_local! {
    /// Graph distances evaluated on this thread, ever. hnsw_rs searches on
    /// the calling thread, so the difference across one search is that
    /// search's work: the planner's measure of what the graph costs on
    /// this catalog's data (`index::GraphCost`).
    static EVALUATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Graph distances evaluated on this thread so far (see [`EVALUATIONS`]).
pub fn evaluations() -> u64 {
    EVALUATIONS.with(Cell::get)
}

/// The distance hnsw_rs uses for a catalog's graph.
#[derive(Debug, Clone, Copy)]
pub struct GraphDistance {
    pub metric: Metric,
}

impl<T: Element> Distance<T> for GraphDistance {
    fn eval(&self, a: &[T], b: &[T]) -> f32 {
        EVALUATIONS.with(|n| n.set(n.get() + 1));
        let k = active();
        match self.metric {
            // Cosine vectors are unit length: 1 - dot is in [0, 2] up to
            // rounding, clamped so rounding can never make it negative.
            Metric::Cosine => (1.0 - T::dot_stored(k, a, b)).max(0.0),
            Metric::Dot => score_to_distance(T::dot_stored(k, a, b)),
            Metric::L2 => T::l2_stored(k, a, b).min(f32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The kernels themselves are tested against a reference in
    // `index::kernels`; here, the mapping onto scores and distances.
    #[test]
    fn scores_and_distances_per_metric() {
        let q = [0.6f32, 0.8, 0.0];
        let v = [0.0f32, 0.6, 0.8];
        let v16: Vec<f16> = v.iter().map(|x| f16::from_f32(*x)).collect();
        assert!((score(Metric::Cosine, &q, &v) - 0.48).abs() < 1e-6);
        assert!((score(Metric::Dot, &q, &v16) - 0.48).abs() < 1e-3);
        assert!((score(Metric::L2, &q, &v) + 1.04).abs() < 1e-6);
        let d = |metric| GraphDistance { metric };
        assert!((Distance::<f32>::eval(&d(Metric::Cosine), &q, &v) - 0.52).abs() < 1e-6);
        assert!((Distance::<f16>::eval(&d(Metric::L2), &v16, &v16)).abs() < 1e-6);
        assert!((Distance::<f32>::eval(&d(Metric::Dot), &q, &v) - 1.0 / 1.48).abs() < 1e-6);
    }

    proptest! {
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
