//! The HNSW graph (hnsw_rs) over a catalog's slots.
//!
//! hnsw_rs cannot delete or update points: the graph only ever grows, and
//! liveness is kept outside it (see `index::Index`). Every point's data id
//! is the item's slot. The graph stores its own copy of each vector in the
//! catalog's element type.

use std::io::{Read, Seek, SeekFrom, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use half::f16;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::Hnsw;

use crate::config::HnswSettings;
use crate::index::distance::{Element, GraphDistance};
use crate::model::{Metric, VectorType};

/// hnsw_rs's dump format needs exactly 16 layers (../shared/DEPENDENCIES.md).
const MAX_LAYERS: usize = 16;

/// Batches at least this large are inserted on all cores.
pub(crate) const PARALLEL_INSERT_MIN: usize = 256;

/// Base name of hnsw_rs's dump files: `graph.hnsw.graph`, `graph.hnsw.data`.
pub const DUMP_BASENAME: &str = "graph";
/// The files [`Graph::dump`] writes.
pub const DUMP_FILES: [&str; 2] = ["graph.hnsw.graph", "graph.hnsw.data"];

/// hnsw_rs's header magic for the dump format we patch (`MAGICDESCR_4`).
const DESCRIPTION_MAGIC_V4: u32 = 0x002a_6779;
/// Byte offset of the level-sampling scale in that header: magic (u32),
/// dump mode (u8), max connections (u8), then the scale (f64, native endian).
const LEVEL_SCALE_OFFSET: u64 = 6;

/// What [`Graph::for_each_link`] calls: slot, level, links per layer.
pub type LinkVisitor<'a> = dyn FnMut(u32, usize, &[Vec<u32>]) + 'a;

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
    /// at least `ef`, and how many distances the search evaluated. Includes
    /// dead slots: the caller filters.
    pub fn search(&self, query: &[f32], fetch: usize, ef: usize) -> (Vec<u32>, u64) {
        let ef = ef.max(fetch);
        let before = crate::index::distance::evaluations();
        let neighbours = match self {
            Graph::F32(h) => h.search(query, fetch, ef),
            Graph::F16(h) => {
                let q: Vec<f16> = query.iter().map(|x| f16::from_f32(*x)).collect();
                h.search(&q, fetch, ef)
            }
        };
        let evaluated = crate::index::distance::evaluations() - before;
        (
            neighbours.into_iter().map(|n| n.d_id as u32).collect(),
            evaluated,
        )
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

    /// The scale hnsw_rs draws new points' levels with; `1 / ln(M)` for a
    /// healthy graph (see [`Graph::dump`]).
    pub fn level_scale(&self) -> f64 {
        match self {
            Graph::F32(h) => h.get_point_indexation().get_level_scale(),
            Graph::F16(h) => h.get_point_indexation().get_level_scale(),
        }
    }

    /// Calls `f` with every point's slot and vector (as f32), in no
    /// particular order. Holds hnsw_rs's point lock: not for use while
    /// points are being inserted.
    pub fn for_each_point(&self, f: &mut dyn FnMut(u32, &[f32])) {
        // hnsw_rs's point iterator unwraps the entry point, which an empty
        // graph does not have.
        if self.is_empty() {
            return;
        }
        fn visit<T: Element>(h: &Hnsw<'static, T, GraphDistance>, f: &mut dyn FnMut(u32, &[f32])) {
            let mut buf = Vec::new();
            for point in h.get_point_indexation() {
                buf.clear();
                buf.extend(point.get_v().iter().map(|x| x.to_f32()));
                f(point.get_origin_id() as u32, &buf);
            }
        }
        match self {
            Graph::F32(h) => visit(h, f),
            Graph::F16(h) => visit(h, f),
        }
    }

    /// Calls `f` with every point's slot, its level (0 = layer 0 only) and
    /// its neighbours' slots on each layer from 0 to its level (what
    /// `index::frozen` copies the graph with).
    ///
    /// Safe while points are being inserted, unlike
    /// [`Graph::for_each_point`]: the points are first collected layer by
    /// layer, each layer's read lock held only while its `Arc`s are
    /// cloned, and the links are then read point by point under each
    /// point's own lock. (hnsw_rs's all-layer iterator takes its layers'
    /// read lock a second time while holding it, which deadlocks against a
    /// waiting insert under parking_lot's fair locks.) A point inserted
    /// meanwhile may or may not be seen, and its links may be partial: the
    /// caller drops what it did not publish.
    pub fn for_each_link(&self, f: &mut LinkVisitor<'_>) {
        fn visit<T: Element>(h: &Hnsw<'static, T, GraphDistance>, f: &mut LinkVisitor<'_>) {
            let indexation = h.get_point_indexation();
            let mut points = Vec::with_capacity(h.get_nb_point());
            // `get_layer_nb_point` answers 0 beyond the last layer, where
            // `get_layer_iterator` would index out of bounds.
            for layer in (0..MAX_LAYERS).filter(|&l| indexation.get_layer_nb_point(l) > 0) {
                points.extend(indexation.get_layer_iterator(layer));
            }
            for point in points {
                let level = usize::from(point.get_point_id().0);
                let layers: Vec<Vec<u32>> = point
                    .get_neighborhood_id()
                    .into_iter()
                    .take(level + 1)
                    .map(|layer| layer.into_iter().map(|n| n.d_id as u32).collect())
                    .collect();
                f(point.get_origin_id() as u32, level, &layers);
            }
        }
        match self {
            Graph::F32(h) => visit(h, f),
            Graph::F16(h) => visit(h, f),
        }
    }

    /// Points on layer 1 and above (tests check that levels are drawn at
    /// the right scale after a reload).
    pub fn upper_layer_points(&self) -> usize {
        let count = |pi: &dyn Fn(usize) -> usize| (1..MAX_LAYERS).map(pi).sum();
        match self {
            Graph::F32(h) => count(&|l| h.get_point_indexation().get_layer_nb_point(l)),
            Graph::F16(h) => count(&|l| h.get_point_indexation().get_layer_nb_point(l)),
        }
    }

    /// Writes hnsw_rs's dump (`DUMP_FILES`) into the empty folder `dir`.
    /// Not durable by itself: the caller fsyncs and publishes the files.
    ///
    /// **The reload bug.** hnsw_rs dumps the level scale it samples with
    /// (`1/ln M`, 0.36 at M 16) but its loader treats the stored value as a
    /// *factor* of `1/ln M`, so a reloaded graph samples levels at `1/ln²M`
    /// (0.13): points inserted after a reload almost never reach the upper
    /// layers, and every dump/reload cycle compounds it. Its public API
    /// cannot raise the scale again (`modify_level_scale` only lowers it).
    /// So the dump's header is patched to the factor, 1.0, which the loader
    /// turns back into exactly `1/ln M`. The patch checks the header's
    /// magic and the old value first, so a changed dump format fails the
    /// snapshot loudly instead of being corrupted silently.
    pub fn dump(&self, dir: &Path) -> Result<(), String> {
        let m = match self {
            Graph::F32(h) => h.get_max_nb_connection(),
            Graph::F16(h) => h.get_max_nb_connection(),
        };
        let dumped = catch_unwind(AssertUnwindSafe(|| match self {
            Graph::F32(h) => h.file_dump(dir, DUMP_BASENAME),
            Graph::F16(h) => h.file_dump(dir, DUMP_BASENAME),
        }));
        match dumped {
            Ok(Ok(name)) if name == DUMP_BASENAME => {}
            Ok(Ok(name)) => {
                return Err(format!(
                    "hnsw_rs dumped under {name:?}, not {DUMP_BASENAME:?}"
                ))
            }
            Ok(Err(e)) => return Err(format!("hnsw_rs dump failed: {e}")),
            Err(_) => return Err("hnsw_rs dump panicked".into()),
        }
        patch_level_scale(&dir.join(DUMP_FILES[0]), m as usize)
    }

    /// Loads a graph written by [`Graph::dump`].
    pub fn load(
        dir: &Path,
        vector_type: VectorType,
        metric: Metric,
        settings: &HnswSettings,
    ) -> Result<Graph, String> {
        // hnsw_rs's loaded graph borrows its loader for the graph's
        // lifetime; the loader is a few paths and options, so leaking one
        // per load (once per catalog open) is the simple way to 'static.
        let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(dir, DUMP_BASENAME)));
        let dist = GraphDistance { metric };
        let loaded = catch_unwind(AssertUnwindSafe(|| match vector_type {
            VectorType::F32 => io
                .load_hnsw_with_dist::<f32, GraphDistance>(dist)
                .map(Graph::F32),
            VectorType::F16 => io
                .load_hnsw_with_dist::<f16, GraphDistance>(dist)
                .map(Graph::F16),
        }));
        let mut graph = match loaded {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(format!("hnsw_rs could not load the graph: {e}")),
            Err(_) => return Err("hnsw_rs panicked loading the graph".into()),
        };
        // A loaded graph extends candidates on insert, a new one does not:
        // keep inserts after a reload as cheap as before it.
        match &mut graph {
            Graph::F32(h) => h.set_extend_candidates(false),
            Graph::F16(h) => h.set_extend_candidates(false),
        }
        let (m, ef) = match &graph {
            Graph::F32(h) => (h.get_max_nb_connection(), h.get_ef_construction()),
            Graph::F16(h) => (h.get_max_nb_connection(), h.get_ef_construction()),
        };
        if m as usize != settings.m || ef != settings.ef_construction {
            return Err(format!(
                "graph built with M {m} and ef_construction {ef}, settings say {} and {}",
                settings.m, settings.ef_construction
            ));
        }
        Ok(graph)
    }
}

/// See [`Graph::dump`].
fn patch_level_scale(path: &Path, m: usize) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("patching {}: {e}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(fail)?;
    let mut header = [0u8; 14];
    file.read_exact(&mut header).map_err(fail)?;
    let magic = u32::from_ne_bytes(header[0..4].try_into().expect("4 bytes"));
    if magic != DESCRIPTION_MAGIC_V4 {
        return Err(format!("unexpected hnsw_rs dump magic {magic:#x}"));
    }
    let scale = f64::from_ne_bytes(header[6..14].try_into().expect("8 bytes"));
    let expected = 1.0 / (m as f64).ln();
    if (scale - expected).abs() > 1e-9 {
        return Err(format!(
            "hnsw_rs dumped level scale {scale}, expected 1/ln({m}) = {expected}"
        ));
    }
    file.seek(SeekFrom::Start(LEVEL_SCALE_OFFSET))
        .map_err(fail)?;
    file.write_all(&1.0f64.to_ne_bytes()).map_err(fail)?;
    Ok(())
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
