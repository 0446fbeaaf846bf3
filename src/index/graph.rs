//! The HNSW graph (hnsw_rs) over a catalog's slots.
//!
//! hnsw_rs cannot delete or update points: the graph only ever grows, and
//! liveness is kept outside it (see `index::Index`). Every point's data id
//! is the item's slot. The graph stores its own copy of each vector in the
//! catalog's element type.

use half::f16;
use hnsw_rs::prelude::Hnsw;

use crate::catalog::model::{Metric, VectorType};
use crate::config::HnswSettings;
use crate::index::distance::{Element, GraphDistance};

/// hnsw_rs's dump format needs exactly 16 layers (../shared/DEPENDENCIES.md).
const MAX_LAYERS: usize = 16;

/// Batches at least this large are inserted on all cores.
const PARALLEL_INSERT_MIN: usize = 256;

/// A graph over vectors of one element type.
pub enum Graph {
    F32(Hnsw<'static, f32, GraphDistance>),
    F16(Hnsw<'static, f16, GraphDistance>),
}

impl Graph {
    /// An empty graph sized for about `capacity` points.
    pub fn new(
        vector_type: VectorType,
        metric: Metric,
        settings: &HnswSettings,
        capacity: usize,
    ) -> Graph {
        let dist = GraphDistance { metric };
        let capacity = capacity.max(1024);
        match vector_type {
            VectorType::F32 => Graph::F32(Hnsw::new(
                settings.m,
                capacity,
                MAX_LAYERS,
                settings.ef_construction,
                dist,
            )),
            VectorType::F16 => Graph::F16(Hnsw::new(
                settings.m,
                capacity,
                MAX_LAYERS,
                settings.ef_construction,
                dist,
            )),
        }
    }

    /// Inserts points `(slot, vector)`; large batches use every core.
    pub fn insert(&self, points: &[(u32, &[f32])]) {
        match self {
            Graph::F32(h) => insert_into(h, points),
            Graph::F16(h) => insert_into(h, points),
        }
    }

    /// The `fetch` nearest slots to `query`, nearest first, with a beam of
    /// at least `ef`. Includes dead slots: the caller filters.
    pub fn search(&self, query: &[f32], fetch: usize, ef: usize) -> Vec<u32> {
        let ef = ef.max(fetch);
        let neighbours = match self {
            Graph::F32(h) => h.search(query, fetch, ef),
            Graph::F16(h) => {
                let q: Vec<f16> = query.iter().map(|x| f16::from_f32(*x)).collect();
                h.search(&q, fetch, ef)
            }
        };
        neighbours.into_iter().map(|n| n.d_id as u32).collect()
    }

    /// Number of points in the graph, dead ones included.
    pub fn len(&self) -> usize {
        match self {
            Graph::F32(h) => h.get_nb_point(),
            Graph::F16(h) => h.get_nb_point(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn insert_into<T: Element>(h: &Hnsw<'static, T, GraphDistance>, points: &[(u32, &[f32])]) {
    let converted: Vec<(Vec<T>, usize)> = points
        .iter()
        .map(|(slot, v)| (v.iter().map(|x| T::from_f32(*x)).collect(), *slot as usize))
        .collect();
    if converted.len() >= PARALLEL_INSERT_MIN {
        let refs: Vec<(&[T], usize)> = converted.iter().map(|(v, s)| (v.as_slice(), *s)).collect();
        h.parallel_insert_slice(&refs);
    } else {
        for (v, slot) in &converted {
            h.insert_slice((v.as_slice(), *slot));
        }
    }
}
