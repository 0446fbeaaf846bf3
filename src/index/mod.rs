//! A catalog's in-memory index: slots, vectors, the HNSW graph, the
//! attribute index and the filter planner. Everything here is derived
//! state, rebuilt from `storage` on start.
//!
//! **Slots.** Each stored vector gets a dense internal id (a slot) that is
//! never reused within one `IndexState`. Replacing an item's vector gives it
//! a new slot and makes the old one dead; hnsw_rs cannot delete, so dead
//! slots stay in the graph and every search drops them (`live` bitmap).
//! A background rebuild (`catalog`) builds a fresh, compact state.
//!
//! **The filter planner** ([`IndexState::search`]). The attribute index
//! gives the exact set of matching slots. Small sets are scanned exactly;
//! otherwise the frozen graph (`frozen`) is walked once with the filter
//! inside the walk (through matches only, with seeds from the match set,
//! when the filter is selective), the delta written since the last freeze
//! is scanned exactly, and a walk that cannot find `min(k, matches)` hits
//! within what an exact scan would cost ends in one. hnsw_rs's own search
//! is not used (ARCHITECTURE.md, "The frozen graph and the delta").
//!
//! Must not: touch RocksDB, or know about HTTP.

pub mod attributes;
pub mod distance;
pub mod filter;
pub mod frozen;
pub mod graph;
pub mod kernels;
pub mod tiers;
pub mod vectors;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use roaring::RoaringBitmap;
use serde_json::{Map, Value};

use crate::config::IndexSettings;
use crate::model::{CatalogConfig, Item};
use attributes::AttributeIndex;
use filter::{Condition, Filter, PriceRange};
use frozen::{Beam, FrozenGraph, Navigation, Space};
use graph::Graph;
use vectors::VectorArena;

/// Inserts one chunk of (slot, vector) points into a graph: how a rebuild
/// chooses where its inserts run.
pub type InsertChunk<'a> = dyn FnMut(&Graph, &[(u32, &[f32])]) + 'a;

/// Brings a chunk of a rebuild's snapshot up to date just before its
/// points go into the graph (see [`IndexState::refresh_entries`]).
pub type RefreshChunk<'a> = dyn FnMut(&mut [(Arc<ItemMeta>, Vec<f32>)]) + 'a;

/// Points per call of a rebuild's insert: a rebuild picks its pool again
/// before each. A chunk begun on the idle pool must finish there before
/// the rebuild can move to the urgent one, and on cores saturated at
/// normal priority an idle-policy thread gets ~0.15 % of one (weight 3
/// against 1,024 each). At 1,024 points the first chunk of a 1,862-item
/// rebuild was still unfinished after 60 s of such load; at 256 each of
/// the two threads has 128 inserts to finish, and the same rebuild was
/// done in 16 s. Not smaller: 256 is the least batch the graph inserts on
/// all cores. The cost on idle cores: 20,000 128-d points took 4 % longer
/// in chunks of 256 than of 1,024 (24.6 against 23.8 s, then 18.9 against
/// 18.1 s).
pub const REBUILD_CHUNK: usize = graph::PARALLEL_INSERT_MIN;

/// Above this many candidates a price condition is answered from the price
/// index; below, by checking the candidates' prices directly.
const PRICE_PREDICATE_LIMIT: u64 = 65_536;

/// An item without its vector, as kept in memory for filtering and hits.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemMeta {
    pub id: Arc<str>,
    pub price: Option<f64>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub in_stock: bool,
    pub tags: Vec<String>,
    pub explicit_tier: Option<u8>,
    pub attributes: Map<String, Value>,
}

impl ItemMeta {
    pub fn from_item(item: &Item) -> ItemMeta {
        ItemMeta {
            id: Arc::from(item.id.as_str()),
            price: item.price,
            category: item.category.clone(),
            brand: item.brand.clone(),
            in_stock: item.in_stock,
            tags: item.tags.clone(),
            explicit_tier: item.explicit_tier,
            attributes: item.attributes.clone(),
        }
    }

    pub fn to_item(&self, vector: Vec<f32>) -> Item {
        Item {
            id: self.id.to_string(),
            vector,
            price: self.price,
            category: self.category.clone(),
            brand: self.brand.clone(),
            in_stock: self.in_stock,
            tags: self.tags.clone(),
            explicit_tier: self.explicit_tier,
            attributes: self.attributes.clone(),
        }
    }
}

/// A live item as seen by a reader: its metadata and current tier.
#[derive(Debug, Clone)]
pub struct ItemView {
    pub slot: u32,
    pub meta: Arc<ItemMeta>,
    pub tier: Option<u8>,
}

/// One search result.
#[derive(Debug, Clone)]
pub struct Hit {
    pub slot: u32,
    pub score: f32,
    pub meta: Arc<ItemMeta>,
    pub tier: Option<u8>,
}

/// Which path the planner took (reported in logs and, later, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Nothing can match.
    Empty,
    /// Exact scan of the matching slots.
    Exact,
    /// The frozen walk (filter inside it) plus the delta; `rounds` is 1.
    Graph { rounds: u32 },
    /// The graph did not yield enough hits; finished by an exact scan.
    GraphThenExact,
}

/// How often each [`Plan`] was taken, and what the graph's searches have
/// cost, since the catalog opened (carried across rebuilds: a rebuilt
/// graph over the same data costs about the same). Read by `/metrics`.
#[derive(Debug, Default)]
pub struct PlanCounts {
    pub empty: AtomicU64,
    pub exact: AtomicU64,
    pub graph: AtomicU64,
    pub graph_then_exact: AtomicU64,
    /// Graph searches repeated with a larger fetch (rounds beyond the first).
    pub escalations: AtomicU64,
    /// Graph searches run, escalation rounds included.
    pub graph_searches: AtomicU64,
    /// Distances those searches evaluated.
    pub graph_evaluations: AtomicU64,
    cost: GraphCost,
}

/// What a graph search costs on this catalog's data, learned from the
/// searches themselves: distances evaluated per unit of beam width, for
/// each decade of filter selectivity (a filtered walk evaluates more of
/// the graph the fewer slots match, and how many more depends on whether
/// the matches lie near the query).
///
/// How much of the graph a search visits depends on the data far more
/// than on its size. On clustered embeddings (what embedding models
/// produce) a beam of 64 evaluated ~600 of 100,000 vectors; on vectors
/// without structure (uniform noise in 128-d) 3,630 of 20,000, in random
/// order, taking twice as long as scanning all 20,000 exactly
/// (BENCHMARKS.md, "Planner constants"). A fixed constant cannot tell the
/// two apart; the count can.
#[derive(Debug, Default)]
struct GraphCost {
    buckets: [BucketCost; SELECTIVITY_BUCKETS],
}

/// [`GraphCost`] for one decade of selectivity.
#[derive(Debug, Default)]
struct BucketCost {
    /// Moving average of evaluations per unit of beam width, as `f64`
    /// bits; 0 until the first graph search.
    per_beam: AtomicU64,
    /// Searches the learned cost sent to the exact scan: every
    /// [`PROBE_EVERY`]-th goes to the graph anyway, so that the estimate
    /// follows a catalog that grows (where the graph's cost grows more
    /// slowly than the scan's).
    skipped: AtomicU64,
}

/// Decades of selectivity told apart by [`GraphCost`]: above 10 %,
/// 1-10 %, 0.1-1 %, below 0.1 %.
const SELECTIVITY_BUCKETS: usize = 4;

/// Which [`GraphCost`] bucket a selectivity falls in.
fn selectivity_bucket(selectivity: f64) -> usize {
    let decades = -selectivity.max(1e-12).log10();
    (decades.max(0.0) as usize).min(SELECTIVITY_BUCKETS - 1)
}

/// One in this many searches that the learned cost sends to an exact scan
/// runs on the graph instead, to keep measuring it.
const PROBE_EVERY: u64 = 64;

/// Weight of the latest search in the moving average: about the last 30
/// searches count.
const COST_SMOOTHING: f64 = 1.0 / 32.0;

/// What one evaluation of the frozen walk costs beyond reading its vector,
/// in bytes of exact scan: the heap operations, the visited stamp and the
/// cache miss of a vector read at a random place instead of the next one.
/// Measured on this machine (BENCHMARKS.md, "Issue #20").
const GRAPH_EVAL_OVERHEAD_BYTES: u64 = 1_024;

/// Distances a graph search evaluates per unit of beam width before the
/// catalog's own searches have been measured: ~600 for a beam of 64 on
/// clustered 100k data (above), divided by the share of slots that match
/// (an unmeasured filtered walk is assumed to pay in full for what it
/// skips).
const PRIOR_EVALUATIONS_PER_BEAM: f64 = 10.0;

impl GraphCost {
    fn per_beam(&self, bucket: usize) -> Option<f64> {
        let bits = self.buckets[bucket].per_beam.load(Relaxed);
        (bits != 0).then(|| f64::from_bits(bits))
    }

    fn record(&self, evaluations: u64, beam: usize, bucket: usize) {
        let sample = evaluations as f64 / beam.max(1) as f64;
        let next = match self.per_beam(bucket) {
            // Racing updates may lose a sample: an estimate, not a count.
            Some(old) => old + (sample - old) * COST_SMOOTHING,
            None => sample,
        };
        if next > 0.0 && next.is_finite() {
            self.buckets[bucket].per_beam.store(next.to_bits(), Relaxed);
        }
    }
}

impl PlanCounts {
    fn record(&self, plan: Plan) {
        let counter = match plan {
            Plan::Empty => &self.empty,
            Plan::Exact => &self.exact,
            Plan::Graph { rounds } => {
                self.escalations
                    .fetch_add(u64::from(rounds.saturating_sub(1)), Relaxed);
                &self.graph
            }
            Plan::GraphThenExact => {
                self.escalations.fetch_add(1, Relaxed);
                &self.graph_then_exact
            }
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// A filter matching less than this share of the live items walks the
/// graph through matches only ([`Navigation::Matching`]); a broader one
/// walks through every slot. See BENCHMARKS.md, "Issue #20".
const MATCHING_WALK_BELOW: f64 = 0.3;

/// Members of a filter's match set that seed a matching-only walk beside
/// the descent's entry (see `index::frozen`).
const SEEDS: u64 = 32;

/// The delta (slots written since the last freeze, searched exactly) is
/// frozen into the graph once its vectors pass this many bytes...
const FREEZE_DELTA_BYTES: usize = 1 << 20;

/// ... or this fraction of the frozen graph's, whichever is larger: a
/// freeze copies the whole graph, so a large catalog freezes less often
/// (at 1M x 128 f32: every 3,900 new slots, a delta that scans in ~0.2 ms).
const FREEZE_DELTA_SHARE: usize = 256;

/// Above this many estimated matches a broad price condition is not turned
/// into a set of slots: the graph checks each candidate's price instead.
/// Building the set costs a walk of the price index plus a sort (~4 ms for
/// 50,000 slots at 100k items, BENCHMARKS.md "Planner constants"), more
/// than the graph search it would serve; 10,000 slots cost ~0.7 ms.
const PRICE_MATERIALIZE_LIMIT: u64 = 16_384;

/// What a filter matches, ready to search ([`IndexState::plan`]).
pub struct Planned {
    candidates: Candidates,
    excluded: RoaringBitmap,
    /// How many live items match: exact, but for [`Candidates::Priced`] an
    /// estimate from the price index (for choosing a path only).
    matches: u64,
}

/// The matching slots, as the planner chose to represent them.
enum Candidates {
    /// Every live slot not excluded.
    All,
    /// Exactly these live slots (excluded ones already removed).
    Set(RoaringBitmap),
    /// The live slots (of `within` when given) whose price lies in every
    /// range and that are not excluded: a broad price filter, checked
    /// per candidate rather than materialised.
    Priced {
        within: Option<RoaringBitmap>,
        ranges: Vec<PriceRange>,
        estimate: u64,
    },
}

/// Where an upserted item goes.
#[derive(Debug, Clone, Copy)]
enum Placement {
    /// Same vector as stored: only metadata changes, the slot is kept.
    InPlace(u32),
    /// A new slot (new item or new vector).
    NewSlot(u32),
}

/// An upsert planned against a state: slots allocated, graph not yet touched.
pub struct PreparedUpsert {
    items: Vec<(Item, Placement)>,
    /// Metadata to publish as is instead of building it anew: a catch-up
    /// keeps the live index's `Arc`s, so the next catch-up still tells
    /// these items unchanged by pointer.
    shared: HashMap<Arc<str>, Arc<ItemMeta>>,
}

impl PreparedUpsert {
    /// Items to publish.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The points the graph must learn before [`IndexState::publish_upsert`].
    pub fn new_points(&self) -> Vec<(u32, &[f32])> {
        self.items
            .iter()
            .filter_map(|(item, p)| match p {
                Placement::NewSlot(slot) => Some((*slot, item.vector.as_slice())),
                Placement::InPlace(_) => None,
            })
            .collect()
    }
}

/// A freeze to run off the index's lock (see [`IndexState::freeze_job`]).
pub struct FreezeJob {
    graph: Arc<Graph>,
    limit: usize,
}

impl FreezeJob {
    /// Copies the graph's links for the published slots. Safe while
    /// writers insert later points into the same graph.
    pub fn run(self) -> Frozen {
        let frozen = FrozenGraph::freeze(&self.graph, self.limit);
        Frozen {
            graph: self.graph,
            frozen,
        }
    }

    /// Slots the freeze covers.
    pub fn slots(&self) -> usize {
        self.limit
    }
}

/// A finished freeze, for [`IndexState::install_frozen`].
pub struct Frozen {
    graph: Arc<Graph>,
    frozen: FrozenGraph,
}

/// Counts shown on a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexCounts {
    pub items: u64,
    pub graph_points: u64,
    pub tombstones: u64,
    /// Live items without a learned vector (catalogs with learned
    /// vectors; 0 elsewhere).
    pub unlearned: u64,
    /// Graph points written since the last freeze (searched exactly).
    pub delta: u64,
    /// Bytes of the frozen graph's link tables.
    pub frozen_bytes: u64,
}

/// The whole in-memory index of one catalog.
pub struct IndexState {
    config: CatalogConfig,
    settings: IndexSettings,
    arena: VectorArena,
    /// hnsw_rs's graph: where new points are inserted, and what is frozen.
    graph: Arc<Graph>,
    /// What searches walk: `graph` as of the last freeze, covering slots
    /// `0..frozen.covered()`; the slots after it (the delta) are scanned
    /// exactly until the next freeze takes them in.
    frozen: Arc<FrozenGraph>,
    metas: Vec<Option<Arc<ItemMeta>>>,
    tiers: Vec<Option<u8>>,
    ids: HashMap<Arc<str>, u32>,
    live: RoaringBitmap,
    /// With learned vectors: the live slots whose vector is all zeros (no
    /// factors yet). Every vector search excludes them (`plan`): a zero
    /// vector is equally far from everything, so it would only pad answers
    /// with meaningless ties.
    unlearned: RoaringBitmap,
    attrs: AttributeIndex,
    /// [`PRICE_MATERIALIZE_LIMIT`]; tests lower it to exercise the
    /// per-candidate price check on small data.
    price_materialize_limit: u64,
    plan_counts: Arc<PlanCounts>,
}

impl IndexState {
    /// An empty index.
    pub fn new(config: CatalogConfig, settings: IndexSettings, capacity: usize) -> IndexState {
        IndexState {
            config,
            settings,
            arena: VectorArena::new(config.vector_type, config.dimension, capacity),
            graph: Arc::new(Graph::new(
                config.vector_type,
                config.metric,
                &settings.hnsw,
                capacity,
            )),
            frozen: Arc::default(),
            metas: Vec::with_capacity(capacity),
            tiers: Vec::with_capacity(capacity),
            ids: HashMap::with_capacity(capacity),
            live: RoaringBitmap::new(),
            unlearned: RoaringBitmap::new(),
            attrs: AttributeIndex::default(),
            price_materialize_limit: PRICE_MATERIALIZE_LIMIT,
            plan_counts: Arc::default(),
        }
    }

    /// Builds an index over `items` (distinct ids), using every core for the graph.
    pub fn build(config: CatalogConfig, settings: IndexSettings, items: Vec<Item>) -> IndexState {
        IndexState::build_with_progress(config, settings, items, &mut |_| {})
    }

    /// [`IndexState::build`], reporting graph points inserted as it goes.
    pub fn build_with_progress(
        config: CatalogConfig,
        settings: IndexSettings,
        items: Vec<Item>,
        progress: &mut dyn FnMut(u64),
    ) -> IndexState {
        // About a hundred progress reports, each chunk inserted on all
        // cores; chunks stay large enough that the threads' start-up per
        // chunk does not show.
        let chunk = (items.len() / 100).clamp(1_000, 20_000);
        let mut state = IndexState::new(config, settings, items.len());
        let prepared = state.prepare_upsert(items);
        {
            let points = prepared.new_points();
            for chunk in points.chunks(chunk) {
                state.graph.insert(chunk);
                progress(chunk.len() as u64);
            }
        }
        state.publish_upsert(prepared);
        state.attrs.refresh_price_order();
        state.freeze();
        state
    }

    /// An index over a loaded graph whose `slots` points are `placed`
    /// (slot, item) and otherwise dead: a snapshot joined with the store.
    /// The caller checks that each item's slot holds its vector
    /// ([`IndexState::check_graph`]) and then freezes it.
    pub fn from_parts(
        config: CatalogConfig,
        settings: IndexSettings,
        graph: Graph,
        slots: usize,
        placed: Vec<(u32, Item)>,
    ) -> IndexState {
        let mut state = IndexState {
            config,
            settings,
            arena: VectorArena::zeros(config.vector_type, config.dimension, slots),
            graph: Arc::new(graph),
            frozen: Arc::default(),
            metas: vec![None; slots],
            tiers: vec![None; slots],
            ids: HashMap::with_capacity(placed.len()),
            live: RoaringBitmap::new(),
            unlearned: RoaringBitmap::new(),
            attrs: AttributeIndex::default(),
            price_materialize_limit: PRICE_MATERIALIZE_LIMIT,
            plan_counts: Arc::default(),
        };
        let mut categories = HashSet::new();
        for (slot, item) in placed {
            state.arena.set(slot, &item.vector);
            let meta = Arc::new(ItemMeta::from_item(&item));
            categories.insert(meta.category.clone());
            state.ids.insert(Arc::clone(&meta.id), slot);
            state.index_slot(slot, meta);
        }
        state.refresh_tiers(categories);
        state.attrs.refresh_price_order();
        state
    }

    /// Sets the broad-price limit ([`PRICE_MATERIALIZE_LIMIT`]).
    #[cfg(test)]
    fn set_price_materialize_limit(&mut self, limit: u64) {
        self.price_materialize_limit = limit;
    }

    /// The id of every slot, `None` for dead ones (a snapshot's slot table).
    pub fn slot_table(&self) -> Vec<Option<Arc<str>>> {
        self.metas
            .iter()
            .map(|m| m.as_ref().map(|m| Arc::clone(&m.id)))
            .collect()
    }

    /// Checks that the graph holds exactly the vectors of this state: one
    /// point per slot, and each live slot's point carries the slot's vector
    /// bit for bit. A graph of another state (or one whose id map does not
    /// belong to it) fails; the check reads every point once.
    pub fn check_graph(&self) -> Result<(), String> {
        let slots = self.metas.len();
        let mut seen = RoaringBitmap::new();
        let mut problem: Option<String> = None;
        self.graph.for_each_point(&mut |slot, v| {
            if problem.is_some() {
                return;
            }
            if slot as usize >= slots {
                problem = Some(format!("the graph has a point for slot {slot} of {slots}"));
            } else if !seen.insert(slot) {
                problem = Some(format!("the graph has two points for slot {slot}"));
            } else if self.live.contains(slot) && !self.arena.equals(slot, v) {
                problem = Some(format!(
                    "the graph's vector for slot {slot} ({}) is not the stored one",
                    self.metas[slot as usize]
                        .as_ref()
                        .map(|m| &*m.id)
                        .unwrap_or("?")
                ));
            }
        });
        if let Some(problem) = problem {
            return Err(problem);
        }
        if seen.len() as usize != slots {
            return Err(format!(
                "the graph has {} points for {slots} slots",
                seen.len()
            ));
        }
        Ok(())
    }

    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    /// Changes the planner's exact-scan threshold (benchmarks compare the
    /// two paths on one built index).
    pub fn set_exact_scan_threshold(&mut self, threshold: usize) {
        self.settings.exact_scan_threshold = threshold;
    }

    /// The graph, to insert prepared points into without holding a lock.
    pub fn graph(&self) -> Arc<Graph> {
        Arc::clone(&self.graph)
    }

    /// Slots written since the last freeze (dead ones included): what
    /// every graph search scans exactly.
    pub fn delta(&self) -> usize {
        self.metas.len() - self.frozen.covered()
    }

    /// Bytes of the frozen graph's link tables.
    pub fn frozen_bytes(&self) -> usize {
        self.frozen.memory_bytes()
    }

    /// Whether the delta has grown past [`FREEZE_DELTA_BYTES`] or
    /// [`FREEZE_DELTA_SHARE`]; with `exact_scan_threshold` 0 (tests and
    /// benchmarks that want the graph), whether there is any delta.
    pub fn freeze_due(&self) -> bool {
        let delta = self.delta();
        if delta == 0 {
            return false;
        }
        if self.settings.exact_scan_threshold == 0 {
            return true;
        }
        let bytes = self.arena.vector_bytes();
        delta * bytes >= FREEZE_DELTA_BYTES.max(self.frozen.covered() * bytes / FREEZE_DELTA_SHARE)
    }

    /// What a freeze of the published slots needs, to run without any
    /// lock on this state ([`FreezeJob::run`], then
    /// [`IndexState::install_frozen`]).
    pub fn freeze_job(&self) -> FreezeJob {
        FreezeJob {
            graph: Arc::clone(&self.graph),
            limit: self.metas.len(),
        }
    }

    /// Makes a finished freeze the one searches walk, unless this state
    /// no longer has the graph it was taken from (a rebuild replaced it)
    /// or already walks a newer one. Returns whether it did.
    pub fn install_frozen(&mut self, frozen: Frozen) -> bool {
        if !Arc::ptr_eq(&self.graph, &frozen.graph)
            || frozen.frozen.covered() < self.frozen.covered()
        {
            return false;
        }
        self.frozen = Arc::new(frozen.frozen);
        true
    }

    /// Freezes the published slots now (states not yet shared: built,
    /// loaded, rebuilt).
    pub fn freeze(&mut self) {
        let frozen = self.freeze_job().run();
        self.install_frozen(frozen);
    }

    pub fn counts(&self) -> IndexCounts {
        let items = self.live.len();
        let graph_points = self.metas.len() as u64;
        IndexCounts {
            items,
            graph_points,
            tombstones: graph_points - items,
            unlearned: self.unlearned.len(),
            delta: self.delta() as u64,
            frozen_bytes: self.frozen.memory_bytes() as u64,
        }
    }

    /// Whether the live slot has a vector to search with: always, but in a
    /// catalog with learned vectors for an item without factors yet.
    pub fn has_vector(&self, slot: u32) -> bool {
        !self.unlearned.contains(slot)
    }

    /// Whether dead points have passed the configured share of the graph.
    pub fn needs_rebuild(&self) -> bool {
        let c = self.counts();
        c.tombstones as usize >= self.settings.rebuild_min_tombstones.max(1)
            && c.tombstones as f64 >= self.settings.rebuild_tombstone_ratio * c.graph_points as f64
    }

    /// The slot of the live item `id` (cheaper than [`IndexState::get`]).
    pub fn slot_of(&self, id: &str) -> Option<u32> {
        self.ids.get(id).copied()
    }

    /// The live item `id`.
    pub fn get(&self, id: &str) -> Option<ItemView> {
        let slot = *self.ids.get(id)?;
        Some(self.view(slot))
    }

    fn view(&self, slot: u32) -> ItemView {
        ItemView {
            slot,
            meta: Arc::clone(
                self.metas[slot as usize]
                    .as_ref()
                    .expect("live slots have metadata"),
            ),
            tier: self.tiers[slot as usize],
        }
    }

    /// The score of live slot `slot` for a prepared `query` (as in hits).
    pub fn score(&self, query: &[f32], slot: u32) -> f32 {
        self.arena.score(self.config.metric, query, slot)
    }

    /// A hit for live slot `slot` with a score chosen by the caller.
    pub fn hit(&self, slot: u32, score: f32) -> Hit {
        let view = self.view(slot);
        Hit {
            slot,
            score,
            meta: view.meta,
            tier: view.tier,
        }
    }

    /// A computed vector (a profile, a centroid) made ready to search
    /// with, or `None` when it has no direction under cosine.
    pub fn prepare_query(&self, vector: Vec<f32>) -> Option<Vec<f32>> {
        self.config.prepare_vector("query", vector).ok()
    }

    /// A live slot's vector, as f32.
    pub fn vector(&self, slot: u32) -> Vec<f32> {
        self.arena.get(slot)
    }

    /// Every live item with its vector (for rebuilds and consistency checks).
    pub fn items(&self) -> Vec<Item> {
        self.live
            .iter()
            .map(|slot| {
                let meta = self.metas[slot as usize]
                    .as_ref()
                    .expect("live slots have metadata");
                meta.to_item(self.arena.get(slot))
            })
            .collect()
    }

    /// Plans an upsert: the last occurrence of an id wins, unchanged vectors
    /// keep their slot, others get new slots after the current end.
    pub fn prepare_upsert(&self, items: Vec<Item>) -> PreparedUpsert {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            last.insert(item.id.as_str(), i);
        }
        let keep: Vec<bool> = (0..items.len())
            .map(|i| last[items[i].id.as_str()] == i)
            .collect();
        let mut next_slot = self.metas.len() as u32;
        let mut planned = Vec::with_capacity(last.len());
        for (item, keep) in items.into_iter().zip(keep) {
            if !keep {
                continue;
            }
            let placement = match self.ids.get(item.id.as_str()) {
                Some(&slot) if self.arena.equals(slot, &item.vector) => Placement::InPlace(slot),
                _ => {
                    let slot = next_slot;
                    next_slot += 1;
                    Placement::NewSlot(slot)
                }
            };
            planned.push((item, placement));
        }
        PreparedUpsert {
            items: planned,
            shared: HashMap::new(),
        }
    }

    /// Makes a prepared upsert visible. The graph must already hold the new
    /// points; until this runs, searches that meet them skip them as dead.
    pub fn publish_upsert(&mut self, prepared: PreparedUpsert) {
        let PreparedUpsert { items, mut shared } = prepared;
        let mut categories: HashSet<Option<String>> = HashSet::new();
        for (item, placement) in items {
            // Plain writes share nothing: skip hashing the id for them.
            let meta = (!shared.is_empty())
                .then(|| shared.remove(item.id.as_str()))
                .flatten()
                .unwrap_or_else(|| Arc::new(ItemMeta::from_item(&item)));
            categories.insert(meta.category.clone());
            match placement {
                Placement::InPlace(slot) => {
                    let old = self.unindex(slot);
                    categories.insert(old.category.clone());
                    self.index_slot(slot, meta);
                }
                Placement::NewSlot(slot) => {
                    debug_assert_eq!(slot as usize, self.metas.len());
                    if let Some(&old_slot) = self.ids.get(item.id.as_str()) {
                        let old = self.unindex(old_slot);
                        categories.insert(old.category.clone());
                        self.metas[old_slot as usize] = None;
                    }
                    self.arena.push(&item.vector);
                    self.metas.push(None);
                    self.tiers.push(None);
                    self.ids.insert(Arc::clone(&meta.id), slot);
                    self.index_slot(slot, meta);
                }
            }
        }
        self.refresh_tiers(categories);
    }

    /// Deletes items by id; returns how many existed.
    pub fn delete(&mut self, ids: &[String]) -> usize {
        let mut categories = HashSet::new();
        let mut deleted = 0;
        for id in ids {
            if let Some(slot) = self.ids.remove(id.as_str()) {
                let old = self.unindex(slot);
                categories.insert(old.category.clone());
                self.metas[slot as usize] = None;
                deleted += 1;
            }
        }
        self.refresh_tiers(categories);
        deleted
    }

    fn index_slot(&mut self, slot: u32, meta: Arc<ItemMeta>) {
        // The tier is provisional until refresh_tiers runs for the category.
        let tier = meta.explicit_tier;
        self.attrs.insert(slot, &meta, tier);
        self.tiers[slot as usize] = tier;
        self.metas[slot as usize] = Some(meta);
        self.live.insert(slot);
        if self.config.is_learned() && self.arena.get(slot).iter().all(|x| *x == 0.0) {
            self.unlearned.insert(slot);
        }
    }

    fn unindex(&mut self, slot: u32) -> Arc<ItemMeta> {
        let meta = Arc::clone(
            self.metas[slot as usize]
                .as_ref()
                .expect("indexed slots have metadata"),
        );
        self.attrs.remove(slot, &meta, self.tiers[slot as usize]);
        self.tiers[slot as usize] = None;
        self.live.remove(slot);
        self.unlearned.remove(slot);
        meta
    }

    /// Re-derives the tiers of every item in `categories` without an
    /// explicit tier: a price change moves its neighbours' quantiles too.
    fn refresh_tiers(&mut self, categories: HashSet<Option<String>>) {
        for category in categories {
            let slots = self.attrs.category_slots(category.as_deref());
            let mut prices: Vec<f64> = slots
                .iter()
                .filter_map(|s| self.metas[s as usize].as_ref().and_then(|m| m.price))
                .collect();
            prices.sort_by(f64::total_cmp);
            for slot in &slots {
                let meta = self.metas[slot as usize]
                    .as_ref()
                    .expect("live slots have metadata");
                let tier = match (meta.explicit_tier, meta.price) {
                    (Some(t), _) => Some(t),
                    (None, Some(p)) => {
                        Some(tiers::derived_tier(&prices, p, self.config.price_tiers))
                    }
                    (None, None) => None,
                };
                let old = self.tiers[slot as usize];
                if old != tier {
                    self.attrs.set_tier(slot, old, tier);
                    self.tiers[slot as usize] = tier;
                }
            }
        }
    }

    /// Whether live slot `slot` satisfies every condition of `filter`.
    pub fn satisfies(&self, slot: u32, filter: &Filter) -> bool {
        let Some(meta) = self.metas.get(slot as usize).and_then(|m| m.as_ref()) else {
            return false;
        };
        let tier = self.tiers[slot as usize];
        filter
            .conditions
            .iter()
            .all(|c| condition_holds(c, meta, tier))
    }

    /// What `filter` matches, minus what it excludes (added to `excluded`).
    fn candidates(&self, filter: &Filter, excluded: &mut RoaringBitmap) -> Candidates {
        let mut set: Option<RoaringBitmap> = None;
        let mut prices: Vec<&PriceRange> = Vec::new();
        for condition in &filter.conditions {
            match condition {
                Condition::ExcludeIds(ids) => {
                    for id in ids {
                        if let Some(&slot) = self.ids.get(id.as_str()) {
                            excluded.insert(slot);
                        }
                    }
                }
                Condition::Price(range) => prices.push(range),
                other => {
                    let slots = self
                        .attrs
                        .condition_slots(other, &self.live)
                        .expect("every condition but ExcludeIds is indexed");
                    set = Some(match set {
                        None => slots,
                        Some(s) => s & slots,
                    });
                }
            }
        }
        let live_only = |mut s: RoaringBitmap| {
            s &= &self.live;
            s -= &*excluded;
            s
        };
        if prices.is_empty() {
            return set.map_or(Candidates::All, |s| Candidates::Set(live_only(s)));
        }
        // A small set: check its prices directly.
        if let Some(s) = set.as_ref().filter(|s| s.len() <= PRICE_PREDICATE_LIMIT) {
            let s = s
                .iter()
                .filter(|&slot| self.price_holds(slot, prices.iter().copied()))
                .collect();
            return Candidates::Set(live_only(s));
        }
        // Otherwise the narrowest range decides: materialised from the
        // price index when it is narrow, else checked per candidate.
        let (narrowest, estimate) = prices
            .iter()
            .map(|r| (*r, self.attrs.estimate_price_slots(r)))
            .min_by_key(|(_, n)| *n)
            .expect("at least one price range");
        let estimate = match &set {
            // Assume the price and the other conditions independent: an
            // estimate for planning, never for answers.
            Some(s) => {
                let share = estimate as f64 / self.live.len().max(1) as f64;
                (s.len() as f64 * share.min(1.0)).round() as u64
            }
            None => estimate,
        };
        if estimate > self.price_materialize_limit {
            return Candidates::Priced {
                within: set.map(live_only),
                ranges: prices.into_iter().cloned().collect(),
                estimate,
            };
        }
        let by_price = self.attrs.price_slots(narrowest);
        let s: RoaringBitmap = match set {
            Some(s) => s & by_price,
            None => by_price,
        };
        let s = if prices.len() > 1 {
            s.iter()
                .filter(|&slot| self.price_holds(slot, prices.iter().copied()))
                .collect()
        } else {
            s
        };
        Candidates::Set(live_only(s))
    }

    /// Whether slot `slot` has a price within every range of `ranges`.
    fn price_holds<'a>(&self, slot: u32, mut ranges: impl Iterator<Item = &'a PriceRange>) -> bool {
        let price = self
            .metas
            .get(slot as usize)
            .and_then(|m| m.as_ref())
            .and_then(|m| m.price);
        price.is_some_and(|p| ranges.all(|r| r.contains(p)))
    }

    /// Whether `slot` is one of `candidates` (`excluded` as planned).
    fn accepts(&self, candidates: &Candidates, excluded: &RoaringBitmap, slot: u32) -> bool {
        let live = || self.live.contains(slot) && !excluded.contains(slot);
        match candidates {
            Candidates::All => live(),
            Candidates::Set(set) => set.contains(slot),
            Candidates::Priced { within, ranges, .. } => {
                within.as_ref().map_or_else(live, |w| w.contains(slot))
                    && self.price_holds(slot, ranges.iter())
            }
        }
    }

    /// The `k` live items best scoring for `query` that satisfy `filter`
    /// and are not in `exclude`, best first. `query` must be prepared
    /// (right dimension; unit length under cosine). Fewer than `k` hits
    /// only when fewer than `k` items match.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter,
        exclude: &[u32],
    ) -> (Vec<Hit>, Plan) {
        self.execute(self.plan(filter, exclude), query, k)
    }

    /// The first half of [`IndexState::search`]: what `filter` minus
    /// `exclude` matches, from the attribute index. Split out so the API
    /// can time planning and searching apart.
    pub fn plan(&self, filter: &Filter, exclude: &[u32]) -> Planned {
        let mut excluded: RoaringBitmap = exclude.iter().copied().collect();
        excluded |= &self.unlearned;
        let candidates = self.candidates(filter, &mut excluded);
        let matches = match &candidates {
            Candidates::All => self.live.len() - excluded.intersection_len(&self.live),
            Candidates::Set(set) => set.len(),
            Candidates::Priced { estimate, .. } => *estimate,
        };
        Planned {
            candidates,
            excluded,
            matches,
        }
    }

    /// The second half of [`IndexState::search`]: the exact scan or the
    /// graph search over what `plan` matched.
    pub fn execute(&self, planned: Planned, query: &[f32], k: usize) -> (Vec<Hit>, Plan) {
        let (hits, plan) = self.execute_planned(planned, query, k);
        self.plan_counts.record(plan);
        (hits, plan)
    }

    /// The planner's counters (shared with the index this one replaces).
    pub fn plan_counts(&self) -> &PlanCounts {
        &self.plan_counts
    }

    /// Keeps counting into `previous`'s counters (a rebuilt index
    /// replacing it).
    pub fn continue_counts(&mut self, previous: &IndexState) {
        self.plan_counts = Arc::clone(&previous.plan_counts);
    }

    fn execute_planned(&self, planned: Planned, query: &[f32], k: usize) -> (Vec<Hit>, Plan) {
        let Planned {
            candidates,
            excluded,
            matches,
        } = planned;
        // An estimated count may be off (prices changed since the price
        // order was read): it only steers the path, never ends the search.
        let counted = !matches!(candidates, Candidates::Priced { .. });
        if k == 0 || (counted && matches == 0) {
            return (Vec::new(), Plan::Empty);
        }
        let want = if counted {
            (k as u64).min(matches) as usize
        } else {
            k
        };
        let live = self.live.len().max(1) as f64;
        let selectivity = (matches.max(1) as f64 / live).min(1.0);
        let beam_width = self.settings.hnsw.ef_search.max(k);
        // Few matches (a selective filter, or a small catalog): an exact
        // scan costs less than a graph search and is exact.
        if self.exact_is_cheaper(matches, selectivity, beam_width) {
            return (
                self.exact_over(&candidates, &excluded, query, k),
                Plan::Exact,
            );
        }
        let covered = self.frozen.covered();
        let navigation = match candidates {
            Candidates::All => Navigation::All,
            _ if selectivity >= MATCHING_WALK_BELOW => Navigation::All,
            _ => Navigation::Matching,
        };
        let seeds = match (&candidates, navigation) {
            (Candidates::Set(set), Navigation::Matching) => seeds_from(set, covered),
            _ => Vec::new(),
        };
        let beam = Beam {
            k,
            ef: beam_width,
            max_visits: self.visit_budget(matches),
            seeds: &seeds,
            navigation,
        };
        let space = IndexSpace {
            state: self,
            query,
            candidates: &candidates,
            excluded: &excluded,
        };
        let (found, walk) = self.frozen.search(&beam, &space);
        self.record_graph_search(&walk, beam_width, selectivity);
        let mut top = TopK::new(k);
        if !walk.cut_short {
            for (slot, distance) in found {
                top.push(slot, -distance, || self.id_of(slot));
            }
            self.scan_delta(&candidates, &excluded, query, covered, &mut top);
        }
        // Cut short (almost nothing matched within reach), or the walk ran
        // out of graph before it found enough: finish exactly.
        if walk.cut_short || top.len() < want {
            return (
                self.exact_over(&candidates, &excluded, query, k),
                Plan::GraphThenExact,
            );
        }
        (self.hits(top), Plan::Graph { rounds: 1 })
    }

    /// Offers every accepted slot of the delta (`covered..`) to `top`.
    fn scan_delta(
        &self,
        candidates: &Candidates,
        excluded: &RoaringBitmap,
        query: &[f32],
        covered: usize,
        top: &mut TopK,
    ) {
        let end = self.metas.len() as u32;
        let start = covered as u32;
        if start >= end {
            return;
        }
        let mut offer = |slot: u32| {
            top.push(
                slot,
                self.arena.score(self.config.metric, query, slot),
                || self.id_of(slot),
            );
        };
        match candidates {
            Candidates::Set(set) => set.range(start..end).for_each(&mut offer),
            Candidates::All => self
                .live
                .range(start..end)
                .filter(|s| !excluded.contains(*s))
                .for_each(&mut offer),
            Candidates::Priced { .. } => self
                .live
                .range(start..end)
                .filter(|&s| self.accepts(candidates, excluded, s))
                .for_each(&mut offer),
        }
    }

    /// Most distances a graph search may evaluate before an exact scan of
    /// the `matches` would have been cheaper (then it gives up and the
    /// scan runs: at worst twice the scan's cost, never unbounded).
    /// Unbounded with exact-first planning off (tests that want the
    /// graph's answers, whatever they cost).
    fn visit_budget(&self, matches: u64) -> usize {
        if self.settings.exact_scan_threshold == 0 {
            return usize::MAX;
        }
        let bytes = self.arena.vector_bytes() as u64;
        let budget = matches.saturating_mul(bytes) / (bytes + GRAPH_EVAL_OVERHEAD_BYTES);
        (budget as usize).max(4 * self.settings.hnsw.ef_search)
    }

    fn record_graph_search(&self, walk: &frozen::Walk, beam: usize, selectivity: f64) {
        let counts = &self.plan_counts;
        counts.graph_searches.fetch_add(1, Relaxed);
        counts
            .graph_evaluations
            .fetch_add(walk.evaluations, Relaxed);
        let cost = walk.evaluations + walk.checks / frozen::CHECKS_PER_VISIT as u64;
        counts
            .cost
            .record(cost, beam, selectivity_bucket(selectivity));
    }

    /// Exact top-k over `candidates`.
    fn exact_over(
        &self,
        candidates: &Candidates,
        excluded: &RoaringBitmap,
        query: &[f32],
        k: usize,
    ) -> Vec<Hit> {
        match candidates {
            Candidates::Set(set) => self.exact(query, k, set.iter()),
            Candidates::Priced { within, ranges, .. } => {
                // Scanning everything, materialise the price range after
                // all: checking each live slot's price reads its metadata
                // through a pointer, a cache miss a slot (the 10 % phase at
                // 1M items: 66 ms a query that way, 21 ms this way;
                // BENCHMARKS.md), while the price index yields the matching
                // slots in order.
                let narrowest = ranges
                    .iter()
                    .min_by_key(|r| self.attrs.estimate_price_slots(r))
                    .expect("a priced plan has a range");
                let mut set = self.attrs.price_slots(narrowest);
                match within {
                    Some(within) => set &= within,
                    None => {
                        set &= &self.live;
                        set -= excluded;
                    }
                }
                if ranges.len() > 1 {
                    self.exact(
                        query,
                        k,
                        set.iter().filter(|&s| self.price_holds(s, ranges.iter())),
                    )
                } else {
                    self.exact(query, k, set.iter())
                }
            }
            Candidates::All => self.exact(
                query,
                k,
                self.live.iter().filter(|&s| !excluded.contains(s)),
            ),
        }
    }

    /// Whether scanning `matches` vectors exactly costs less than a graph
    /// search with a beam of `beam` at this `selectivity`. Both costs are
    /// in bytes of vectors read: the exact scan reads `matches` vectors;
    /// the graph evaluates what [`GraphCost`] learned per unit of beam
    /// width for this decade of selectivity (before that,
    /// [`PRIOR_EVALUATIONS_PER_BEAM`] divided by the selectivity), each
    /// evaluation costing its vector plus [`GRAPH_EVAL_OVERHEAD_BYTES`].
    /// The overhead does not shrink with the vectors, so the rule leans to
    /// the graph at low dimensions, where it is right to. Also exact at or
    /// below `exact_scan_threshold` matches; a threshold of 0 turns
    /// exact-first planning off (the graph always, exact only as a
    /// fallback), which tests use to exercise the graph on small data.
    fn exact_is_cheaper(&self, matches: u64, selectivity: f64, beam: usize) -> bool {
        let threshold = self.settings.exact_scan_threshold;
        if threshold == 0 {
            return false;
        }
        if matches <= threshold as u64 {
            return true;
        }
        let bucket = selectivity_bucket(selectivity);
        let bytes = self.arena.vector_bytes() as u64;
        let scanned = matches.saturating_mul(bytes);
        let per_beam = self
            .plan_counts
            .cost
            .per_beam(bucket)
            .unwrap_or(PRIOR_EVALUATIONS_PER_BEAM / selectivity);
        let graph = per_beam * beam as f64 * (bytes + GRAPH_EVAL_OVERHEAD_BYTES) as f64;
        if scanned as f64 > graph {
            return false;
        }
        // The estimate chose the scan; now and then measure the graph
        // again (see `BucketCost::skipped`).
        self.plan_counts.cost.buckets[bucket]
            .skipped
            .fetch_add(1, Relaxed)
            % PROBE_EVERY
            != PROBE_EVERY - 1
    }

    /// Exact top-k over `slots`.
    fn exact(&self, query: &[f32], k: usize, slots: impl Iterator<Item = u32>) -> Vec<Hit> {
        let mut top = TopK::new(k);
        for slot in slots {
            top.push(
                slot,
                self.arena.score(self.config.metric, query, slot),
                || self.id_of(slot),
            );
        }
        self.hits(top)
    }

    fn id_of(&self, slot: u32) -> Arc<str> {
        Arc::clone(
            &self.metas[slot as usize]
                .as_ref()
                .expect("live slots have metadata")
                .id,
        )
    }

    fn hits(&self, top: TopK) -> Vec<Hit> {
        let mut hits: Vec<Hit> = top
            .into_sorted()
            .into_iter()
            .map(|(slot, score)| {
                let view = self.view(slot);
                Hit {
                    slot,
                    score,
                    meta: view.meta,
                    tier: view.tier,
                }
            })
            .collect();
        // Equal scores are ordered by id so answers are stable across
        // restarts, which renumber slots.
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.meta.id.cmp(&b.meta.id))
        });
        hits
    }

    /// Brings `self`, built from an older snapshot of `current`, up to date:
    /// items whose metadata `Arc` differs (new, changed, or re-vectored
    /// since the snapshot) are upserted, items gone from `current` deleted.
    /// Returns the upserts still to insert into the graph.
    pub fn catch_up_with(&mut self, current: &IndexState) -> PreparedUpsert {
        let stale: Vec<String> = self
            .ids
            .keys()
            .filter(|id| !current.ids.contains_key(&***id))
            .map(|id| id.to_string())
            .collect();
        self.delete(&stale);
        let mut changed = Vec::new();
        let mut shared = HashMap::new();
        for (id, &slot) in &current.ids {
            let current_meta = current.metas[slot as usize]
                .as_ref()
                .expect("live slots have metadata");
            let same = self.ids.get(id).is_some_and(|&mine| {
                self.metas[mine as usize]
                    .as_ref()
                    .is_some_and(|m| Arc::ptr_eq(m, current_meta))
            });
            if !same {
                changed.push(current_meta.to_item(current.arena.get(slot)));
                shared.insert(Arc::clone(id), Arc::clone(current_meta));
            }
        }
        let mut prepared = self.prepare_upsert(changed);
        prepared.shared = shared;
        prepared
    }

    /// A copy of the live items with their metadata `Arc`s shared, so that
    /// [`IndexState::catch_up_with`] can tell unchanged items by pointer.
    pub fn snapshot(&self) -> Vec<(Arc<ItemMeta>, Vec<f32>)> {
        self.live
            .iter()
            .map(|slot| {
                (
                    Arc::clone(
                        self.metas[slot as usize]
                            .as_ref()
                            .expect("live slots have metadata"),
                    ),
                    self.arena.get(slot),
                )
            })
            .collect()
    }

    /// Replaces each entry of a rebuild's snapshot whose item changed in
    /// this (live) index since the snapshot with its current metadata and
    /// vector. Deleted items are left for the catch-up to delete.
    pub fn refresh_entries(&self, entries: &mut [(Arc<ItemMeta>, Vec<f32>)]) {
        for (meta, vector) in entries {
            let Some(&slot) = self.ids.get(&meta.id) else {
                continue;
            };
            let current = self.metas[slot as usize]
                .as_ref()
                .expect("live slots have metadata");
            if !Arc::ptr_eq(current, meta) {
                *meta = Arc::clone(current);
                *vector = self.arena.get(slot);
            }
        }
    }

    /// Builds a compact index from a [`IndexState::snapshot`], keeping the
    /// metadata `Arc`s. The graph is built in chunks of
    /// [`REBUILD_CHUNK`] points, each handed to `insert` (which decides
    /// where the inserts run) after `refresh` brought it up to date.
    ///
    /// Why refresh: a rebuild takes minutes on a busy server, and an item
    /// whose vector is replaced meanwhile would otherwise enter the new
    /// graph with its old vector and be caught up as a new point, leaving
    /// the old one dead. At the soak's churn the new graph was born 18 %
    /// dead, close to the share that starts the next rebuild. Refreshed
    /// per chunk, only the items changed after their own chunk went in
    /// are left dead.
    pub fn build_from_snapshot(
        config: CatalogConfig,
        settings: IndexSettings,
        mut snapshot: Vec<(Arc<ItemMeta>, Vec<f32>)>,
        refresh: &mut RefreshChunk<'_>,
        insert: &mut InsertChunk<'_>,
    ) -> IndexState {
        let mut state = IndexState::new(config, settings, snapshot.len());
        for (number, chunk) in snapshot.chunks_mut(REBUILD_CHUNK).enumerate() {
            refresh(chunk);
            let first = number * REBUILD_CHUNK;
            let points: Vec<(u32, &[f32])> = chunk
                .iter()
                .enumerate()
                .map(|(i, (_, v))| ((first + i) as u32, v.as_slice()))
                .collect();
            insert(&state.graph, &points);
        }
        let mut categories = HashSet::new();
        for (slot, (meta, vector)) in snapshot.iter().enumerate() {
            let slot = slot as u32;
            state.arena.push(vector);
            state.metas.push(None);
            state.tiers.push(None);
            state.ids.insert(Arc::clone(&meta.id), slot);
            categories.insert(meta.category.clone());
            state.index_slot(slot, Arc::clone(meta));
        }
        state.refresh_tiers(categories);
        state.attrs.refresh_price_order();
        state.freeze();
        state
    }
}

/// The frozen walk's view of one planned search.
struct IndexSpace<'a> {
    state: &'a IndexState,
    query: &'a [f32],
    candidates: &'a Candidates,
    excluded: &'a RoaringBitmap,
}

impl Space for IndexSpace<'_> {
    #[inline]
    fn distance(&self, slot: u32) -> f32 {
        -self
            .state
            .arena
            .score(self.state.config.metric, self.query, slot)
    }

    #[inline]
    fn accept(&self, slot: u32) -> bool {
        self.state.accepts(self.candidates, self.excluded, slot)
    }

    #[inline]
    fn prefetch(&self, slot: u32) {
        self.state.arena.prefetch(slot);
    }
}

/// Up to [`SEEDS`] members of `set` below `covered`, spread evenly over
/// it: where a matching-only walk starts besides the descent's end.
fn seeds_from(set: &RoaringBitmap, covered: usize) -> Vec<u32> {
    let n = match covered {
        0 => 0,
        c => set.rank(c as u32 - 1),
    };
    if n == 0 {
        return Vec::new();
    }
    let take = n.min(SEEDS);
    (0..take)
        .filter_map(|i| set.select((i * n / take) as u32))
        .collect()
}

fn condition_holds(condition: &Condition, meta: &ItemMeta, tier: Option<u8>) -> bool {
    use filter::{StringCondition as S, TagCondition as T};
    let string_holds = |c: &S, value: &Option<String>| match c {
        S::In(set) => value.as_ref().is_some_and(|v| set.contains(v)),
        S::NotIn(set) => value.as_ref().is_none_or(|v| !set.contains(v)),
    };
    match condition {
        Condition::Category(c) => string_holds(c, &meta.category),
        Condition::CategoryUnset => meta.category.is_none(),
        Condition::Brand(c) => string_holds(c, &meta.brand),
        Condition::Price(range) => meta.price.is_some_and(|p| range.contains(p)),
        Condition::Tier { low, high } => tier.is_some_and(|t| (*low..=*high).contains(&t)),
        Condition::InStock(want) => meta.in_stock == *want,
        Condition::Tags(T::Any(tags)) => tags.iter().any(|t| meta.tags.contains(t)),
        Condition::Tags(T::All(tags)) => tags.iter().all(|t| meta.tags.contains(t)),
        Condition::ExcludeIds(ids) => !ids.iter().any(|id| **id == *meta.id),
        Condition::Attribute { key, value } => {
            meta.attributes.get(key).is_some_and(|v| value.matches(v))
        }
    }
}

/// A bounded heap keeping the `k` best (slot, score) pairs. Equal scores
/// are ranked by id, so which of several equally good items makes the cut
/// does not depend on slot numbers (which a restart or rebuild changes).
struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

/// Heap entry ordered so the worst (lowest score, then greatest id) is on top.
struct Worst(f32, Arc<str>, u32);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .total_cmp(&self.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Offers a live slot; `id` is only looked up when the slot may enter.
    fn push(&mut self, slot: u32, score: f32, id: impl FnOnce() -> Arc<str>) {
        if self.heap.len() < self.k {
            self.heap.push(Worst(score, id(), slot));
            return;
        }
        let Some(worst) = self.heap.peek() else {
            return;
        };
        let better = match score.total_cmp(&worst.0) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => {
                let id = id();
                if id < worst.1 {
                    self.heap.pop();
                    self.heap.push(Worst(score, id, slot));
                }
                return;
            }
        };
        if better {
            self.heap.pop();
            self.heap.push(Worst(score, id(), slot));
        }
    }

    fn len(&self) -> usize {
        self.heap.len()
    }

    fn into_sorted(self) -> Vec<(u32, f32)> {
        self.heap
            .into_iter()
            .map(|Worst(score, _, slot)| (slot, score))
            .collect()
    }
}

#[cfg(test)]
mod tests;
