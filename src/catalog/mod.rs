//! A catalog: its stored records (through `storage`), its in-memory index
//! (`index`), and its users. The write path lives here and only here:
//! validate -> commit durably (grouped) -> apply to memory in commit order
//! -> schedule a background rebuild when tombstones pile up.
//!
//! Locking: `state` is a `parking_lot::RwLock` (a std-style blocking lock,
//! never held across `.await`; callers run on blocking threads). Searches
//! hold the read lock for the search; writers take the write lock only to
//! publish a change, after the slow parts (fsync, graph insertion) are done.
//!
//! Snapshots: every item write logs the ids it changed under its sequencer
//! number (the change log, in RocksDB with the write). [`Catalog::snapshot`]
//! dumps the graph and slot table at a watermark (the last change applied);
//! [`Catalog::open`] loads the snapshot whose watermark RocksDB recorded and
//! replays only the ids changed after it, or rebuilds from RocksDB when the
//! snapshot is missing, stale or damaged.

pub mod engagement;
mod experiments;
pub mod registry;
pub mod sequencer;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::analytics::Analytics;
use crate::behaviour::Behaviour;
use crate::collaborative::factors::AlsSettings;
use crate::collaborative::file::ModelDir;
use crate::collaborative::train::{train, Interactions};
use crate::collaborative::{FittedBlend, Model};
use crate::config::IndexSettings;
use crate::error::{Error, Result};
use crate::experiments::Experiment;
use crate::index::filter::Filter;
use crate::index::{Hit, IndexCounts, IndexState, ItemView, Plan, REBUILD_CHUNK};
use crate::model::{
    BehaviourSettings, Blend, CatalogConfig, CatalogName, Event, EventKind, Item, User,
};
use crate::snapshot::{SnapshotDir, SnapshotError, Written};
use crate::storage::{wait_durable, Batch, Store};
use sequencer::Sequencer;

/// Counts shown by `GET /v1/catalogs/{catalog}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogCounts {
    pub index: IndexCounts,
    pub users: u64,
    pub rebuilds: u64,
    pub rebuilding: bool,
    /// Background freezes of the live graph installed since the catalog
    /// opened (see `Catalog::maybe_freeze`).
    pub freezes: u64,
    /// Chunks of rebuild graph inserts run on the idle pool and on the
    /// urgent one since the catalog opened (see `rebuild_pool`). Urgent
    /// chunks mean the server gave its rebuilds too little idle time.
    pub rebuild_chunks: RebuildChunks,
    /// How the index was made when the catalog opened.
    pub source: IndexSource,
    pub open_seconds: f64,
    /// The watermark of the newest snapshot on disk, if any.
    pub snapshot_watermark: Option<u64>,
    /// Item changes not yet covered by a snapshot.
    pub changes_since_snapshot: u64,
    /// Seconds since this process last wrote (or, at open, loaded) a
    /// snapshot; `None` without one.
    pub snapshot_age_seconds: Option<f64>,
}

/// Chunks of rebuild graph inserts by the pool they ran on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildChunks {
    pub idle: u64,
    pub urgent: u64,
}

/// The planner's counters, read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanSnapshot {
    pub empty: u64,
    pub exact: u64,
    pub graph: u64,
    pub graph_then_exact: u64,
    pub escalations: u64,
    pub graph_searches: u64,
    pub graph_evaluations: u64,
}

/// How a catalog's index was made when it opened.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexSource {
    /// Loaded from the snapshot at `watermark`, then the `replayed` items
    /// changed after it were applied from RocksDB.
    Snapshot { watermark: u64, replayed: u64 },
    /// Built from RocksDB; `reason` says why no snapshot was used.
    Rebuilt { reason: String },
}

/// An index opened from a snapshot: the index, how many changed ids were
/// replayed, the highest change number logged. `Err` says why the
/// snapshot cannot be used.
type FromSnapshot = std::result::Result<(IndexState, u64, Option<u64>), String>;

/// Where a background rebuild's graph inserts run.
///
/// First on the idle pool: one thread per core under the idle scheduling
/// policy, so a rebuild runs on the time requests leave idle and never on
/// theirs. Measured in the soak on 2 vCPUs at 70 % of capacity: a rebuild
/// on rayon's global pool (both cores, normal priority) halved capacity
/// while it ran and ~4 % of requests were shed; on one core it still took
/// a third of the machine for minutes; at nice 10 it still took 17
/// CPU-seconds a minute from saturated request threads (a niced thread,
/// once picked, runs its whole slice), while an idle-policy thread is
/// preempted as soon as a request thread wakes.
///
/// A rebuild moves to the urgent pool (half the cores at normal priority)
/// once the live index holds twice the dead share that triggered it, or
/// after `rebuild_idle_secs`. On a server saturated by requests the idle
/// pool gets next to nothing, and the dead points a rebuild would clear
/// make every search slower, so waiting for idle time for ever would feed
/// the overload. Loads and the build at start use rayon's global pool
/// (every core, normal priority).
fn rebuild_pool(urgent: bool) -> &'static rayon::ThreadPool {
    static IDLE: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    static URGENT: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    let cores = || std::thread::available_parallelism().map_or(2, |n| n.get());
    if urgent {
        URGENT.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads((cores() / 2).max(1))
                .thread_name(|i| format!("rebuild-urgent-{i}"))
                .build()
                .expect("a thread pool for rebuilds")
        })
    } else {
        IDLE.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(cores())
                .thread_name(|i| format!("rebuild-idle-{i}"))
                .start_handler(|_| run_when_idle())
                .build()
                .expect("a thread pool for rebuilds")
        })
    }
}

/// Puts the calling thread under `SCHED_IDLE` (on Linux the policy is per
/// thread). A failure only costs the priority: it is logged, not fatal.
fn run_when_idle() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain system call on the calling thread (id 0) with a
        // valid parameter block.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not put a rebuild thread on the idle scheduling policy");
        }
    }
}

/// Catch-up rounds a rebuild runs before it takes the writers' turn, and
/// the size at which it stops early: a round smaller than this took only
/// moments, so the writes made during it are few.
const CATCH_UP_ROUNDS: usize = 8;
const CATCH_UP_UNDER_TURN: usize = 64;

/// `published_watermark` before any snapshot.
const NO_SNAPSHOT: u64 = u64::MAX;

/// The last snapshot taken (or loaded), guarded by the snapshot lock.
struct SnapshotStatus {
    watermark: Option<u64>,
    at: Instant,
}

/// One open catalog.
pub struct Catalog {
    name: CatalogName,
    id: u32,
    config: CatalogConfig,
    settings: IndexSettings,
    store: Arc<Store>,
    state: RwLock<IndexState>,
    users: Mutex<HashSet<String>>,
    sequencer: Sequencer,
    rebuilding: AtomicBool,
    /// A background freeze of the live graph is running (`maybe_freeze`).
    freezing: AtomicBool,
    freezes: AtomicU64,
    rebuilds: AtomicU64,
    /// Rebuild chunks run on the idle pool (0) and the urgent one (1).
    rebuild_chunks: [AtomicU64; 2],
    snapshots: SnapshotDir,
    source: IndexSource,
    open_seconds: f64,
    /// Held while a snapshot is taken (one at a time).
    snapshot_status: Mutex<SnapshotStatus>,
    /// The newest snapshot's watermark, readable while a snapshot runs
    /// (`NO_SNAPSHOT` when there is none).
    published_watermark: AtomicU64,
    /// When `published_watermark` was last set (written or loaded).
    published_at: Mutex<Instant>,
    changes_since_snapshot: AtomicU64,
    /// Client event ids being written right now: with the stored ones,
    /// what makes a repeated event a duplicate even under concurrency.
    events_in_flight: Mutex<HashSet<String>>,
    /// Source of the unique part of event keys (see `storage::keys`).
    event_unique: AtomicU64,
    /// What the stored events imply (co-purchases, popularity, who bought
    /// what), applied in commit order.
    behaviour: RwLock<Behaviour>,
    behaviour_settings: RwLock<BehaviourSettings>,
    /// The collaborative model in use (derived from the events, like the
    /// index; see `collaborative`).
    collaborative: RwLock<Option<Arc<Model>>>,
    models: ModelDir,
    /// Held while a model trains (one at a time).
    training: Mutex<()>,
    /// When the newest event was applied (or the catalog opened): the
    /// quiet rule of retraining.
    last_event_at: Mutex<Instant>,
    /// Set when a settings change makes the model out of date.
    model_stale: AtomicBool,
    trainings: AtomicU64,
    /// The recorder that counts this catalog's impressions and events.
    analytics: Arc<Analytics>,
    /// The catalog's experiments, running and stopped (see `experiments.rs`).
    experiments: RwLock<Arc<Vec<Experiment>>>,
    /// Serialises experiment changes.
    experiments_admin: Mutex<()>,
    /// The next event-log number (see `analytics`): assigned under the
    /// users lock, like tickets, so numbers follow commit order.
    next_event_number: AtomicU64,
    /// The engagement scorer in use (see `engagement.rs`), the lock held
    /// while one trains, the recorder's impression and engaged counts at
    /// the last training, and the trainings since open.
    engagement: RwLock<Arc<crate::engagement::Scorer>>,
    engagement_lock: Mutex<()>,
    engagement_marks: Mutex<[u64; 2]>,
    engagement_trainings: AtomicU64,
}

/// What fits the personal-picks blend at each training (see
/// [`Catalog::train_collaborative`]): the catalog, its interactions, the
/// settings; `None` when it cannot (the settings' weights are used).
pub type BlendFit = fn(&Catalog, &Interactions, &BehaviourSettings) -> Option<FittedBlend>;

/// The quiet rule's least model age (see [`Catalog::training_due`]).
const QUIET_RETRAIN_MIN_AGE_MS: i64 = 60_000;

/// What `GET /v1/catalogs/{catalog}/model` reports.
#[derive(Debug, Clone)]
pub struct ModelStatus {
    pub enabled: bool,
    /// `collaborative.fit_blend`: a fitted blend is in use.
    pub fit_blend: bool,
    pub model: Option<Arc<Model>>,
    /// Events the catalog holds now (the model's `info.events` is what it
    /// saw).
    pub events: u64,
    pub training: bool,
    pub trainings: u64,
}

/// What [`Catalog::record_events`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsOutcome {
    pub accepted: usize,
    /// Events whose `event_id` was already recorded (or repeated in the
    /// request): not stored again.
    pub duplicates: usize,
    /// Item ids the catalog does not hold (the events are kept anyway).
    pub unknown_items: Vec<String>,
    /// Users created because an event named them first.
    pub new_users: Vec<String>,
    /// Events carrying a `recommendation_id` whose impression showed the item.
    pub attributed: usize,
    /// Events carrying a `recommendation_id` that is unknown or whose
    /// impression did not show the item (accepted, counted as unattributed).
    pub unattributed: usize,
}

impl Catalog {
    /// Opens a catalog: its index from the snapshot plus the changes after
    /// it, or built from the store when no usable snapshot exists.
    pub fn open(
        store: Arc<Store>,
        snapshots: SnapshotDir,
        name: CatalogName,
        id: u32,
        config: CatalogConfig,
        settings: IndexSettings,
        analytics: Arc<Analytics>,
    ) -> Result<Catalog> {
        let started = Instant::now();
        let mut users = HashSet::new();
        store.for_each_user_id(id, |u| {
            users.insert(u.to_string());
        })?;
        let recorded = store.watermark(id)?;
        let models = ModelDir::new(store.path());
        let collaborative = match models.read(id) {
            Ok(model) => model.map(Arc::new),
            Err(reason) => {
                tracing::warn!(catalog = %name, %reason, "collaborative model unusable; it is retrained from the events");
                None
            }
        };
        // A catalog with learned vectors needs the model's factors: one
        // without them (or of another dimension) is retrained at once.
        let model_stale = config.is_learned()
            && collaborative
                .as_ref()
                .is_some_and(|m| m.factor_dimension() != Some(config.dimension));
        let from_snapshot = match recorded {
            _ if config.is_learned() => {
                Err("learned vectors: the index is built from the model's factors".to_string())
            }
            None => Err("no snapshot was recorded".to_string()),
            Some(w) => open_from_snapshot(&store, &snapshots, id, config, settings, w)?,
        };
        let (state, source, last_change) = match from_snapshot {
            Ok((state, replayed, last_change)) => {
                let watermark = recorded.expect("a snapshot was recorded");
                (
                    state,
                    IndexSource::Snapshot {
                        watermark,
                        replayed,
                    },
                    last_change,
                )
            }
            Err(reason) => {
                if recorded.is_some() && !config.is_learned() {
                    tracing::warn!(catalog = %name, %reason, "index snapshot unusable; rebuilding the index from RocksDB");
                }
                let mut items = Vec::new();
                store.for_each_item(id, &config, |item| items.push(item))?;
                if config.is_learned() {
                    let model = collaborative.as_deref();
                    for item in &mut items {
                        item.vector = learned_vector(&config, model, &item.id);
                    }
                }
                let state = IndexState::build(config, settings, items);
                let last_change = store.changes_after(id, u64::MAX)?.last_change;
                (state, IndexSource::Rebuilt { reason }, last_change)
            }
        };
        let behaviour_settings = store.behaviour(id)?.unwrap_or_default();
        let behaviour = behaviour_from_store(&store, id, &behaviour_settings, &state)?;
        let open_seconds = started.elapsed().as_secs_f64();
        match &source {
            IndexSource::Snapshot {
                watermark,
                replayed,
            } => {
                tracing::info!(catalog = %name, items = state.counts().items, users = users.len(), watermark, replayed, seconds = open_seconds, "catalog index loaded from its snapshot")
            }
            IndexSource::Rebuilt { .. } => {
                tracing::info!(catalog = %name, items = state.counts().items, users = users.len(), seconds = open_seconds, "catalog index built from RocksDB")
            }
        }
        // Change numbers must keep growing past both the log and the
        // snapshot, or a later change could hide below the watermark.
        let last = last_change.unwrap_or(0).max(recorded.unwrap_or(0));
        let snapshot_watermark = match &source {
            IndexSource::Snapshot { watermark, .. } => Some(*watermark),
            IndexSource::Rebuilt { .. } => None,
        };
        let pending = match &source {
            IndexSource::Snapshot { replayed, .. } => *replayed,
            IndexSource::Rebuilt { .. } => state.counts().items,
        };
        let experiments = store.experiments(id)?;
        let next_event_number = store
            .last_event_log_number(id)?
            .unwrap_or(0)
            .max(store.analytics_watermark(id)?)
            + 1;
        // Before the catalog serves anything: the recorder counts the
        // logged events it missed before any new one.
        analytics.open_catalog(id, experiments.clone());
        let engagement = Catalog::read_engagement(&models, id, &name);
        Ok(Catalog {
            engagement: RwLock::new(Arc::new(engagement)),
            engagement_lock: Mutex::new(()),
            engagement_marks: Mutex::new([0, 0]),
            engagement_trainings: AtomicU64::new(0),
            analytics,
            experiments: RwLock::new(Arc::new(experiments)),
            experiments_admin: Mutex::new(()),
            next_event_number: AtomicU64::new(next_event_number),
            name,
            id,
            config,
            settings,
            store,
            state: RwLock::new(state),
            users: Mutex::new(users),
            sequencer: Sequencer::starting_after(last),
            rebuilding: AtomicBool::new(false),
            freezing: AtomicBool::new(false),
            freezes: AtomicU64::new(0),
            rebuilds: AtomicU64::new(0),
            rebuild_chunks: Default::default(),
            snapshots,
            source,
            open_seconds,
            published_watermark: AtomicU64::new(snapshot_watermark.unwrap_or(NO_SNAPSHOT)),
            published_at: Mutex::new(Instant::now()),
            snapshot_status: Mutex::new(SnapshotStatus {
                watermark: snapshot_watermark,
                at: Instant::now(),
            }),
            changes_since_snapshot: AtomicU64::new(pending),
            events_in_flight: Mutex::new(HashSet::new()),
            behaviour: RwLock::new(behaviour),
            behaviour_settings: RwLock::new(behaviour_settings),
            collaborative: RwLock::new(collaborative),
            models,
            training: Mutex::new(()),
            last_event_at: Mutex::new(Instant::now()),
            model_stale: AtomicBool::new(model_stale),
            trainings: AtomicU64::new(0),
            // Milliseconds at open, shifted: unique across restarts unless
            // a catalog takes over a million events in one millisecond.
            event_unique: AtomicU64::new(
                (std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64))
                    << 20,
            ),
        })
    }

    /// The numeric id that owns the catalog's records.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Holds the snapshot lock: while the guard lives, no snapshot of this
    /// catalog is published and no watermark recorded (writes go on).
    pub fn hold_snapshots(&self) -> impl Drop + '_ {
        self.snapshot_status.lock()
    }

    /// The folder of this catalog's snapshot at `watermark`.
    pub fn snapshot_path(&self, watermark: u64) -> std::path::PathBuf {
        self.snapshots.snapshot_path(self.id, watermark)
    }

    /// How the index was made at open.
    pub fn source(&self) -> &IndexSource {
        &self.source
    }

    /// Takes a snapshot of the index: dumps the graph and the slot table
    /// at the current watermark, publishes them atomically, records the
    /// watermark in RocksDB and trims the change log up to it.
    ///
    /// Writes wait while the graph is dumped (the graph must not change
    /// under the dump); searches go on. With `wait` false, returns at once
    /// if a snapshot is already running; without `force`, does nothing when
    /// no item changed since the last snapshot. Returns what was written.
    pub fn snapshot(&self, wait: bool, force: bool) -> Result<Option<Written>, SnapshotError> {
        // Learned vectors live in the model file, not in RocksDB: a graph
        // snapshot could not be checked against the store, so the index is
        // rebuilt from the model at every open (ARCHITECTURE.md).
        if self.config.is_learned() {
            return Ok(None);
        }
        let mut status = if wait {
            self.snapshot_status.lock()
        } else {
            match self.snapshot_status.try_lock() {
                Some(status) => status,
                None => return Ok(None),
            }
        };
        let pending = self.changes_since_snapshot.load(Ordering::Acquire);
        if !force && pending == 0 && status.watermark.is_some() {
            return Ok(None);
        }
        let started = Instant::now();
        tracing::info!(catalog = %self.name, "index snapshot started");
        let turn = self.sequencer.wait_turn(self.sequencer.ticket());
        let turn_taken = Instant::now();
        let watermark = turn.watermark();
        let (graph, slots) = {
            let state = self.state.read();
            (state.graph(), state.slot_table())
        };
        // Only the dump needs the graph unchanged, so only it holds the
        // turn; making it durable (checksums, fsyncs) happens after. A
        // crash in between leaves a temporary folder and the previous
        // snapshot in force: the watermark is recorded only below.
        let dumped = self.snapshots.dump(
            self.id,
            watermark,
            &self.config,
            &self.settings.hnsw,
            &graph,
            &slots,
        );
        drop(turn);
        let turn_held = turn_taken.elapsed();
        let written = self.snapshots.publish(dumped?)?;
        let mut batch = Batch::new();
        batch.set_watermark(self.id, watermark);
        self.store
            .commit(batch)
            .map_err(|e| SnapshotError(format!("recording the snapshot's watermark: {e}")))?;
        self.snapshots.prune(self.id, Some(watermark));
        self.changes_since_snapshot
            .fetch_sub(pending, Ordering::AcqRel);
        self.published_watermark.store(watermark, Ordering::Release);
        *self.published_at.lock() = Instant::now();
        *status = SnapshotStatus {
            watermark: Some(watermark),
            at: Instant::now(),
        };
        tracing::info!(catalog = %self.name, watermark, slots = slots.len(), bytes = written.bytes, seconds = started.elapsed().as_secs_f64(), turn_seconds = turn_held.as_secs_f64(), "index snapshot written");
        Ok(Some(written))
    }

    /// Counts `n` item changes and starts a background snapshot when enough
    /// have accumulated since the last one (and long enough ago).
    fn note_changes(self: &Arc<Self>, n: u64) {
        if self.config.is_learned() {
            return;
        }
        let pending = self.changes_since_snapshot.fetch_add(n, Ordering::AcqRel) + n;
        let min = self.settings.snapshot_min_changes;
        if min == 0 || pending < min {
            return;
        }
        let interval = Duration::from_secs(self.settings.snapshot_min_interval_secs);
        match self.snapshot_status.try_lock() {
            Some(status) if status.at.elapsed() >= interval => {}
            _ => return,
        }
        self.spawn_snapshot(false);
    }

    /// Takes a snapshot on a background thread.
    pub fn spawn_snapshot(self: &Arc<Self>, force: bool) {
        let catalog = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("snapshot-{}", self.name))
            .spawn(move || {
                if let Err(e) = catalog.snapshot(false, force) {
                    tracing::error!(catalog = %catalog.name, error = %e, "index snapshot failed; the next start rebuilds or replays more");
                }
            });
        if let Err(e) = spawned {
            tracing::error!(catalog = %self.name, error = %e, "could not start a snapshot thread");
        }
    }

    pub fn name(&self) -> &CatalogName {
        &self.name
    }

    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    /// How often the planner took each path.
    pub fn plan_counts(&self) -> PlanSnapshot {
        let state = self.state.read();
        let c = state.plan_counts();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PlanSnapshot {
            empty: load(&c.empty),
            exact: load(&c.exact),
            graph: load(&c.graph),
            graph_then_exact: load(&c.graph_then_exact),
            escalations: load(&c.escalations),
            graph_searches: load(&c.graph_searches),
            graph_evaluations: load(&c.graph_evaluations),
        }
    }

    pub fn counts(&self) -> CatalogCounts {
        let snapshot_watermark = match self.published_watermark.load(Ordering::Acquire) {
            NO_SNAPSHOT => None,
            w => Some(w),
        };
        CatalogCounts {
            index: self.state.read().counts(),
            users: self.users.lock().len() as u64,
            rebuilds: self.rebuilds.load(Ordering::Relaxed),
            rebuilding: self.rebuilding.load(Ordering::Relaxed),
            freezes: self.freezes.load(Ordering::Relaxed),
            rebuild_chunks: RebuildChunks {
                idle: self.rebuild_chunks[0].load(Ordering::Relaxed),
                urgent: self.rebuild_chunks[1].load(Ordering::Relaxed),
            },
            source: self.source.clone(),
            open_seconds: self.open_seconds,
            snapshot_watermark,
            changes_since_snapshot: self.changes_since_snapshot.load(Ordering::Relaxed),
            snapshot_age_seconds: snapshot_watermark
                .map(|_| self.published_at.lock().elapsed().as_secs_f64()),
        }
    }

    /// Upserts validated items durably and atomically; returns how many.
    pub fn upsert_items(self: &Arc<Self>, items: Vec<Item>) -> Result<usize> {
        let n = items.len();
        if n == 0 {
            return Ok(0);
        }
        let mut batch = Batch::new();
        for item in &items {
            batch.put_item(self.id, &self.config, item);
        }
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        let (ticket, durable) = self
            .sequencer
            .submit_change(&self.store, batch, self.id, &ids)?;
        let committed = wait_durable(durable);
        let _turn = self.sequencer.wait_turn(ticket);
        committed?;
        let mut items = items;
        if self.config.is_learned() {
            // Stored without a vector; indexed with the factors of the
            // model in use. A write that read the older model just before
            // a training swapped in a newer one, and published after the
            // relearning rebuild passed its chunk, keeps the older factors
            // until the next training (the catch-up copies what it finds).
            let model = self.collaborative.read().clone();
            for item in &mut items {
                item.vector = learned_vector(&self.config, model.as_deref(), &item.id);
            }
        }
        let prepared = self.state.read().prepare_upsert(items);
        // Graph insertion is the slow part: done without the write lock.
        // Searches that meet the new points before publishing skip them.
        let graph = self.state.read().graph();
        graph.insert(&prepared.new_points());
        self.state.write().publish_upsert(prepared);
        drop(_turn);
        self.note_changes(n as u64);
        self.maybe_rebuild();
        self.maybe_freeze();
        Ok(n)
    }

    /// Deletes items; returns the ids that existed.
    pub fn delete_items(self: &Arc<Self>, mut ids: Vec<String>) -> Result<Vec<String>> {
        let mut seen = HashSet::with_capacity(ids.len());
        ids.retain(|id| seen.insert(id.clone()));
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Batch::new();
        for id in &ids {
            batch.delete_item(self.id, id);
        }
        let logged: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (ticket, durable) =
            self.sequencer
                .submit_change(&self.store, batch, self.id, &logged)?;
        let committed = wait_durable(durable);
        let turn = self.sequencer.wait_turn(ticket);
        committed?;
        let mut state = self.state.write();
        let existed: Vec<String> = ids
            .iter()
            .filter(|id| state.get(id).is_some())
            .cloned()
            .collect();
        state.delete(&ids);
        drop(state);
        drop(turn);
        self.note_changes(existed.len() as u64);
        self.maybe_rebuild();
        Ok(existed)
    }

    /// A live item and, if asked, its vector.
    pub fn get_item(&self, id: &str, with_vector: bool) -> Result<(ItemView, Option<Vec<f32>>)> {
        let state = self.state.read();
        let view = state
            .get(id)
            .ok_or_else(|| Error::ItemNotFound { id: id.to_string() })?;
        let vector = with_vector.then(|| state.vector(view.slot));
        Ok((view, vector))
    }

    /// Upserts validated users durably and atomically.
    pub fn upsert_users(&self, users: Vec<User>) -> Result<usize> {
        let n = users.len();
        let mut batch = Batch::new();
        for user in &users {
            batch.put_user(self.id, &self.config, user);
        }
        // Submitted under the users lock so that `record_events` never
        // creates (and overwrites) a user this request is writing.
        let (ticket, durable) = {
            let mut known = self.users.lock();
            let submitted = self.sequencer.submit(&self.store, batch)?;
            for user in &users {
                known.insert(user.id.clone());
            }
            submitted
        };
        let committed = wait_durable(durable);
        let _turn = self.sequencer.wait_turn(ticket);
        committed?;
        Ok(n)
    }

    pub fn get_user(&self, id: &str) -> Result<User> {
        self.store
            .get_user(self.id, &self.config, id)?
            .ok_or_else(|| Error::UserNotFound { id: id.to_string() })
    }

    /// Deletes a user; `UserNotFound` if there was none.
    pub fn delete_user(&self, id: &str) -> Result<()> {
        if !self.users.lock().contains(id) {
            return Err(Error::UserNotFound { id: id.to_string() });
        }
        let mut batch = Batch::new();
        batch.delete_user(self.id, id);
        let (ticket, durable) = self.sequencer.submit(&self.store, batch)?;
        let committed = wait_durable(durable);
        drop(self.sequencer.wait_turn(ticket));
        committed?;
        // After the turn: `set_behaviour` holds the users lock while it
        // waits for its turn.
        self.users.lock().remove(id);
        Ok(())
    }

    /// Records validated events durably and atomically: events whose
    /// `event_id` was seen before are skipped, users named for the first
    /// time are created (without a vector), and item ids the catalog does
    /// not hold are reported but kept (the item may be indexed later).
    pub fn record_events(&self, events: Vec<Event>) -> Result<EventsOutcome> {
        let mut outcome = EventsOutcome::default();
        // Claimed ids are released whatever happens next, errors included.
        let mut release = ReleaseClaims {
            set: &self.events_in_flight,
            ids: Vec::new(),
        };
        let mut fresh = Vec::with_capacity(events.len());
        {
            let mut in_flight = self.events_in_flight.lock();
            for event in events {
                if let Some(id) = &event.event_id {
                    if in_flight.contains(id) || self.store.has_event_id(self.id, id)? {
                        outcome.duplicates += 1;
                        continue;
                    }
                    in_flight.insert(id.clone());
                    release.ids.push(id.clone());
                }
                fresh.push(event);
            }
        }
        if fresh.is_empty() {
            return Ok(outcome);
        }
        for event in &fresh {
            match self.analytics.attribution_of(self.id, event)? {
                Some(Some(_)) => outcome.attributed += 1,
                Some(None) => outcome.unattributed += 1,
                None => {}
            }
        }
        let mut batch = Batch::new();
        for event in &fresh {
            let unique = self.event_unique.fetch_add(1, Ordering::Relaxed);
            batch.put_event(self.id, event, unique);
        }
        // Analytics counts revenue at the price of the moment: the
        // event's, else the item's now.
        let priced: Vec<Event> = {
            let state = self.state.read();
            fresh
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    if e.kind == EventKind::Purchase && e.price.is_none() {
                        e.price = state.get(&e.item_id).and_then(|i| i.meta.price);
                    }
                    e
                })
                .collect()
        };
        // Deciding which users are new and submitting their records happen
        // under the users lock, as in `upsert_users`: a user written by
        // another request is either already in the set (not created here)
        // or committed after this batch (and wins).
        let mut new_users: Vec<String> = Vec::new();
        let (ticket, durable, number) = {
            let mut users = self.users.lock();
            for event in &fresh {
                if !users.contains(&event.user_id) && !new_users.contains(&event.user_id) {
                    new_users.push(event.user_id.clone());
                }
            }
            for id in &new_users {
                batch.put_user(
                    self.id,
                    &self.config,
                    &User {
                        id: id.clone(),
                        vector: None,
                        attributes: Default::default(),
                    },
                );
            }
            let number = self.next_event_number.fetch_add(1, Ordering::Relaxed);
            batch.log_events(self.id, number, &priced);
            let (ticket, durable) = self.sequencer.submit(&self.store, batch)?;
            for id in &new_users {
                users.insert(id.clone());
            }
            (ticket, durable, number)
        };
        let committed = wait_durable(durable);
        if let Err(e) = committed {
            // Before taking the turn: `set_behaviour` holds the users lock
            // while it waits for its turn.
            let mut users = self.users.lock();
            for id in &new_users {
                users.remove(id);
            }
            drop(users);
            drop(self.sequencer.wait_turn(ticket));
            return Err(e);
        }
        let turn = self.sequencer.wait_turn(ticket);
        let mut unknown = HashSet::new();
        {
            // Applied in commit order (under the turn), like the index.
            let state = self.state.read();
            let mut behaviour = self.behaviour.write();
            for event in &fresh {
                let item = state.get(&event.item_id);
                if item.is_none() && unknown.insert(event.item_id.clone()) {
                    outcome.unknown_items.push(event.item_id.clone());
                }
                behaviour.apply(
                    event,
                    item.as_ref().and_then(|i| i.meta.category.as_deref()),
                );
            }
        }
        // Under the turn, so the recorder gets event writes in commit order.
        self.analytics.record_events(self.id, number, priced);
        drop(turn);
        drop(release);
        *self.last_event_at.lock() = Instant::now();
        outcome.accepted = fresh.len();
        outcome.new_users = new_users;
        Ok(outcome)
    }

    /// The catalog's behaviour settings.
    pub fn behaviour_settings(&self) -> BehaviourSettings {
        *self.behaviour_settings.read()
    }

    /// Stores new behaviour settings and rebuilds what events imply under
    /// them (popularity depends on the weights and half-life): one scan
    /// of the catalog's events.
    pub fn set_behaviour(&self, settings: BehaviourSettings) -> Result<()> {
        settings.validate()?;
        if self.config.is_learned() && !settings.collaborative.enabled {
            return Err(Error::invalid(
                "settings.collaborative.enabled",
                "a catalog with learned vectors needs its collaborative model (its item vectors are the model's factors)",
            ));
        }
        let mut batch = Batch::new();
        batch.put_behaviour(self.id, &settings);
        // Holding the users lock keeps new events out of the commit queue
        // (`record_events` submits under it); once this ticket's turn
        // comes every earlier event is applied, so the store holds exactly
        // the events memory has seen and the rebuild counts each once.
        let users = self.users.lock();
        let (ticket, durable) = self.sequencer.submit(&self.store, batch)?;
        let committed = wait_durable(durable);
        let turn = self.sequencer.wait_turn(ticket);
        committed?;
        let rebuilt = {
            let state = self.state.read();
            behaviour_from_store(&self.store, self.id, &settings, &state)?
        };
        let before = *self.behaviour_settings.read();
        *self.behaviour.write() = rebuilt;
        *self.behaviour_settings.write() = settings;
        drop(turn);
        drop(users);
        // What the model is trained from changed: retrain at the next
        // check. (The blend weights and the row's half-life are read per
        // request and need no retraining.)
        let c = (before.collaborative, settings.collaborative);
        let trained_differently = c.0.ease_lambda != c.1.ease_lambda
            || c.0.ease_max_items != c.1.ease_max_items
            || c.0.neighbours != c.1.neighbours
            || c.0.shrinkage != c.1.shrinkage
            || (c.1.fit_blend && !c.0.fit_blend)
            || (self.config.is_learned()
                && (c.0.als_lambda != c.1.als_lambda
                    || c.0.als_alpha != c.1.als_alpha
                    || c.0.als_iterations != c.1.als_iterations))
            || before.weights != settings.weights;
        if trained_differently {
            self.model_stale.store(true, Ordering::Relaxed);
        }
        if !settings.collaborative.enabled {
            *self.collaborative.write() = None;
        }
        Ok(())
    }

    /// The collaborative model in use, if any (none while disabled).
    pub fn collaborative(&self) -> Option<Arc<Model>> {
        if !self.behaviour_settings.read().collaborative.enabled {
            return None;
        }
        self.collaborative.read().clone()
    }

    /// The model, the events it saw and whether one is training.
    pub fn model_status(&self) -> ModelStatus {
        ModelStatus {
            enabled: self.behaviour_settings.read().collaborative.enabled,
            fit_blend: self.behaviour_settings.read().collaborative.fit_blend,
            model: self.collaborative.read().clone(),
            events: self.behaviour.read().events,
            training: self.training.try_lock().is_none(),
            trainings: self.trainings.load(Ordering::Relaxed),
        }
    }

    /// Whether the model should be (re)trained now: there is none and the
    /// catalog has events, or the events changed since it was trained by
    /// `retrain_min_events` and by `retrain_share` of what it saw, or by
    /// any number once no event arrived for `retrain_quiet_secs` (and the
    /// model is at least a minute and ten of its trainings old), or a
    /// setting it is trained with changed.
    pub fn training_due(&self) -> bool {
        let settings = self.behaviour_settings.read().collaborative;
        if !settings.enabled {
            return false;
        }
        let events = self.behaviour.read().events;
        let (trained, age_ms, cost_ms) = match self.collaborative.read().as_ref() {
            Some(m) => (
                Some(m.info.events),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64)
                    .saturating_sub(m.info.trained_at_ms),
                (m.info.seconds * 1000.0) as i64,
            ),
            None => (None, i64::MAX, 0),
        };
        // A trickle of events (one every few seconds) would otherwise
        // retrain after every one: the quiet rule waits until the model is
        // a minute old, and ten of its own trainings.
        let quiet = self.last_event_at.lock().elapsed().as_millis()
            >= u128::try_from(settings.retrain_quiet_ms).unwrap_or(0)
            && age_ms >= QUIET_RETRAIN_MIN_AGE_MS.max(10 * cost_ms);
        let (seen, new) = match trained {
            Some(seen) => (seen, events.abs_diff(seen)),
            None if events == 0 => return false,
            None => (0, events),
        };
        if new == 0 {
            return self.model_stale.load(Ordering::Relaxed) && trained.is_some();
        }
        let growth = (settings.retrain_share * seen as f64).ceil() as u64;
        quiet
            || self.model_stale.load(Ordering::Relaxed)
            || new >= settings.retrain_min_events.max(growth)
    }

    /// Trains the collaborative model from every stored event now, puts it
    /// in use and persists it; waits for a training already running.
    /// Blocking: call it from a background or blocking thread. `fit` fits
    /// the personal-picks blend on the events (`recommend::blend::fit_for`:
    /// the ranking lives above the catalog, so it is handed in).
    pub fn train_collaborative(&self, fit: BlendFit) -> Result<Option<Arc<Model>>> {
        let _training = self.training.lock();
        let settings = self.behaviour_settings();
        if !settings.collaborative.enabled {
            return Ok(None);
        }
        // The watermark is read before the scan: events that arrive during
        // it may be in the model too, which only makes the next retrain
        // come a little early.
        let events = self.behaviour.read().events;
        let mut data = Interactions::new();
        self.store
            .for_each_event(self.id, |e| data.add(&e, &settings.weights))?;
        let data = data.finish();
        let mut model = train(&data, &settings.collaborative, events);
        if let Some(m) = model.take() {
            model = Some(if self.config.is_learned() {
                let started = std::time::Instant::now();
                let c = &settings.collaborative;
                let factors = data.learn_factors(&AlsSettings {
                    dimension: self.config.dimension,
                    iterations: c.als_iterations as usize,
                    alpha: c.als_alpha,
                    lambda: c.als_lambda,
                });
                let mut m = m.with_factors(self.config.dimension, factors);
                m.info.seconds += started.elapsed().as_secs_f64();
                m
            } else {
                m
            });
        }
        if let Some(m) = model.as_mut().filter(|_| settings.collaborative.fit_blend) {
            let started = std::time::Instant::now();
            m.info.blend = fit(self, &data, &settings);
            // The fit is part of what a training costs (the quiet rule
            // waits ten of them).
            m.info.seconds += started.elapsed().as_secs_f64();
        }
        let model = model.map(Arc::new);
        self.model_stale.store(false, Ordering::Relaxed);
        self.trainings.fetch_add(1, Ordering::Relaxed);
        if let Some(model) = &model {
            tracing::info!(
                catalog = %self.name,
                kind = model.info.kind.as_str(),
                items = model.items(),
                users = model.info.users,
                events,
                seconds = model.info.seconds,
                "collaborative model trained"
            );
            if self.store.read_only().is_none() {
                if let Err(e) = self.models.write(self.id, model) {
                    tracing::warn!(catalog = %self.name, error = %e, "could not persist the collaborative model (it is retrained at the next start)");
                }
            }
        } else if self.store.read_only().is_none() {
            // No interactions left: no stale file for the next start.
            self.models.remove_model(self.id);
        }
        *self.collaborative.write() = model.clone();
        if self.config.is_learned() {
            self.relearn_vectors(model.as_deref());
        }
        Ok(model)
    }

    /// With learned vectors: rebuilds the index with the factors of the
    /// model just put in use (the background rebuild, every vector
    /// replaced), waiting for a rebuild already running. Items written
    /// meanwhile are indexed with the new model's factors by the write
    /// path, and the rebuild's catch-up keeps them.
    fn relearn_vectors(&self, model: Option<&Model>) {
        while self.rebuilding.swap(true, Ordering::AcqRel) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.rebuild(Some(&|id: &str| learned_vector(&self.config, model, id)));
        self.rebuilding.store(false, Ordering::Release);
    }

    /// The personal-picks blend in use: the settings' weights, with the
    /// four feature weights fitted on this catalog's events when
    /// `collaborative.fit_blend` is on and the model in use carries a fit.
    pub fn blend(&self) -> Blend {
        self.blend_for(&self.behaviour_settings())
    }

    /// [`Catalog::blend`] under `settings` (an experiment arm's).
    pub fn blend_for(&self, settings: &BehaviourSettings) -> Blend {
        let mut blend = settings.blend;
        if let Some(f) = self
            .collaborative()
            .and_then(|m| m.info.blend)
            .filter(|_| settings.collaborative.fit_blend)
        {
            blend.similarity = f.similarity;
            blend.collaborative = f.collaborative;
            blend.popularity = f.popularity;
            blend.category = f.category;
        }
        blend
    }

    /// Runs `f` with a read view of the behaviour state.
    pub fn with_behaviour<R>(&self, f: impl FnOnce(&Behaviour) -> R) -> R {
        f(&self.behaviour.read())
    }

    /// The newest events of `user` (as many as the profile reads), newest
    /// first.
    pub fn recent_events(&self, user: &str) -> Result<Vec<Event>> {
        self.recent_events_n(user, self.behaviour_settings().profile_events)
    }

    /// The newest `limit` events of `user`, newest first.
    pub fn recent_events_n(&self, user: &str, limit: usize) -> Result<Vec<Event>> {
        self.store.recent_events(self.id, user, limit)
    }

    /// The stored user, if any (no error when unknown). Reads RocksDB
    /// without the users lock, so recommendations never wait for a
    /// settings change (which holds that lock while it rescans events).
    pub fn find_user(&self, id: &str) -> Result<Option<User>> {
        self.store.get_user(self.id, &self.config, id)
    }

    /// Nearest live items to a prepared query vector.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter,
        exclude: &[u32],
    ) -> (Vec<Hit>, Plan) {
        self.state.read().search(query, k, filter, exclude)
    }

    /// Runs `f` with a read view of the index (for recommenders that need an
    /// anchor and a search under one consistent state).
    pub fn with_index<R>(&self, f: impl FnOnce(&IndexState) -> R) -> R {
        f(&self.state.read())
    }

    /// Every live item, read from memory (tests compare it with storage).
    pub fn items(&self) -> Vec<Item> {
        self.state.read().items()
    }

    /// Starts a background rebuild if tombstones passed the threshold and
    /// none is running.
    pub fn maybe_rebuild(self: &Arc<Self>) {
        if !self.state.read().needs_rebuild() {
            return;
        }
        self.start_rebuild();
    }

    /// Starts a background freeze of the live graph when its delta (points
    /// written since the last freeze, scanned exactly by every search) is
    /// due one (`IndexState::freeze_due`) and none is running.
    ///
    /// The copy runs without any lock of ours, beside the writers that go
    /// on inserting into the same graph (`Graph::for_each_link`); it takes
    /// in the slots published when it started, and is installed under the
    /// write lock only if no rebuild has replaced the graph meanwhile. On a
    /// thread of normal priority: a freeze is short (it copies links, it
    /// does not build), and on the idle pool a saturated server would let
    /// the delta, and the cost of every search, grow without bound.
    pub fn maybe_freeze(self: &Arc<Self>) {
        if !self.state.read().freeze_due() || self.freezing.swap(true, Ordering::AcqRel) {
            return;
        }
        let catalog = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("freeze-{}", self.name))
            .spawn(move || {
                loop {
                    let job = catalog.state.read().freeze_job();
                    let started = Instant::now();
                    let slots = job.slots();
                    let frozen = job.run();
                    let installed = catalog.state.write().install_frozen(frozen);
                    if installed {
                        catalog.freezes.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(catalog = %catalog.name, slots, installed, seconds = started.elapsed().as_secs_f64(), "graph frozen");
                    // Writes that came during the copy may have made the
                    // next one due already.
                    if !installed || !catalog.state.read().freeze_due() {
                        break;
                    }
                }
                catalog.freezing.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::error!(catalog = %self.name, error = %e, "could not start a freeze thread");
            self.freezing.store(false, Ordering::Release);
        }
    }

    /// Starts a background rebuild unless one is running; returns whether
    /// it started.
    pub fn start_rebuild(self: &Arc<Self>) -> bool {
        if self.rebuilding.swap(true, Ordering::AcqRel) {
            return false;
        }
        let catalog = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("rebuild-{}", self.name))
            .spawn(move || {
                catalog.rebuild(None);
                catalog.rebuilding.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::error!(catalog = %self.name, error = %e, "could not start a rebuild thread");
            self.rebuilding.store(false, Ordering::Release);
            return false;
        }
        true
    }

    /// Whether dead points in the live index have reached twice the share
    /// that triggers a rebuild: writes keep replacing vectors faster than
    /// idle time rebuilds the graph, and every search pays for the dead
    /// points, so the rebuild must stop waiting for idle time.
    fn rebuild_is_urgent(&self) -> bool {
        let c = self.state.read().counts();
        c.tombstones as f64 >= 2.0 * self.settings.rebuild_tombstone_ratio * c.graph_points as f64
    }

    /// Brings a rebuild's `fresh` index up to date with the live one once:
    /// the difference is taken on this thread under the live read lock
    /// (released before the inserts), the graph inserts run in the pool
    /// `pool` picks, chosen again every [`REBUILD_CHUNK`] points like the
    /// build's (rayon's global pool if `None`). Returns how many items it
    /// brought over.
    fn catch_up(
        &self,
        fresh: &mut IndexState,
        pool: Option<&dyn Fn() -> &'static rayon::ThreadPool>,
    ) -> usize {
        let prepared = fresh.catch_up_with(&self.state.read());
        let n = prepared.len();
        let points = prepared.new_points();
        match pool {
            Some(pool) => {
                for chunk in points.chunks(REBUILD_CHUNK) {
                    pool().install(|| fresh.graph().insert(chunk));
                }
            }
            None => fresh.graph().insert(&points),
        }
        fresh.publish_upsert(prepared);
        n
    }

    /// Builds a compact index from a snapshot while queries and writes go
    /// on, catches up with writes made meanwhile, and swaps it in. With
    /// `vectors`, every item of the snapshot gets the vector it returns
    /// (learned vectors after a training).
    fn rebuild(&self, vectors: Option<&VectorOf<'_>>) {
        let started = Instant::now();
        tracing::info!(catalog = %self.name, "index rebuild started");
        let snapshot = self.state.read().snapshot();
        let n = snapshot.len();
        let patience = Duration::from_secs(self.settings.rebuild_idle_secs);
        let urgent = || started.elapsed() >= patience || self.rebuild_is_urgent();
        // Chosen, and counted, once per chunk of graph inserts.
        let pool = || {
            let now_urgent = urgent();
            self.rebuild_chunks[usize::from(now_urgent)].fetch_add(1, Ordering::Relaxed);
            rebuild_pool(now_urgent)
        };
        // The refresh runs here, at full priority, like the catch-up
        // below: it holds the live read lock (see there).
        let mut fresh = IndexState::build_from_snapshot(
            self.config,
            self.settings,
            snapshot,
            &mut |entries| {
                self.state.read().refresh_entries(entries);
                if let Some(vector_of) = vectors {
                    for (meta, vector) in entries.iter_mut() {
                        *vector = vector_of(&meta.id);
                    }
                }
            },
            &mut |graph, points| pool().install(|| graph.insert(points)),
        );
        // Catch up without the writers' turn first, in rounds until what
        // is left is small: the build took seconds to minutes, and the
        // writes made meanwhile may be thousands (soak: 1,208 items left
        // for the turn after one round; inserting them stalled writes for
        // seconds). The difference is taken on this thread, at full
        // priority: it holds the live index's read lock, and an
        // idle-policy thread holding it would hold up every writer and,
        // behind a waiting writer, every reader. Only the graph inserts
        // run in the pool.
        for _ in 0..CATCH_UP_ROUNDS {
            if self.catch_up(&mut fresh, Some(&pool)) <= CATCH_UP_UNDER_TURN {
                break;
            }
        }
        // The catch-up's points are the fresh graph's delta: frozen in
        // here, off the writers' turn, when there are enough of them.
        if fresh.freeze_due() {
            fresh.freeze();
        }
        // Take a turn so no write applies between catching up and swapping.
        let turn = self.sequencer.wait_turn(self.sequencer.ticket());
        let late = self.catch_up(&mut fresh, None);
        let mut state = self.state.write();
        fresh.continue_counts(&state);
        let old = std::mem::replace(&mut *state, fresh);
        drop(state);
        drop(turn);
        // Dropping an index frees every graph point one by one: with
        // glibc's `malloc_trim` after it, 1.5 s at 29,000 points in the
        // soak, on a normal-priority thread a stall every request felt.
        // On the idle pool it takes only idle time. An urgent rebuild
        // frees on the urgent pool, so that on a saturated server old
        // indexes cannot pile up waiting for idle time. jemalloc returns
        // the pages by itself once they have stayed free (src/lib.rs).
        rebuild_pool(urgent()).spawn(move || drop(old));
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        tracing::info!(catalog = %self.name, items = n, caught_up_under_turn = late, seconds = started.elapsed().as_secs_f64(), "index rebuilt");
        // The old snapshot's slots no longer match: publish the new graph.
        if let Err(e) = self.snapshot(true, true) {
            tracing::error!(catalog = %self.name, error = %e, "snapshot after a rebuild failed");
        }
    }

    /// Whether memory agrees with RocksDB item for item (a consistency
    /// check for tests and tools; reads the whole catalog).
    pub fn check_consistency(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let state = self.state.read();
        let mut stored = 0usize;
        self.store.for_each_item(self.id, &self.config, |item| {
            stored += 1;
            match state.get(&item.id) {
                None => problems.push(format!("{} stored but not indexed", item.id)),
                Some(view) => {
                    let vector = if self.config.is_learned() {
                        Vec::new()
                    } else {
                        state.vector(view.slot)
                    };
                    if view.meta.to_item(vector) != item {
                        problems.push(format!("{} differs between memory and storage", item.id));
                    }
                }
            }
        })?;
        if stored as u64 != state.counts().items {
            problems.push(format!(
                "{stored} stored items, {} indexed",
                state.counts().items
            ));
        }
        Ok(problems)
    }
}

/// The vector an item id gets in a relearning rebuild.
type VectorOf<'a> = dyn Fn(&str) -> Vec<f32> + 'a;

/// The vector a catalog with learned vectors indexes `id` with: the
/// model's factors, normalised (cosine), or zeros when the model has none
/// for it yet (then vector searches skip it, `index::IndexState::plan`).
fn learned_vector(config: &CatalogConfig, model: Option<&Model>, id: &str) -> Vec<f32> {
    model
        .and_then(|m| m.factor(id))
        .filter(|f| f.len() == config.dimension)
        .and_then(|f| config.prepare_vector("factors", f.to_vec()).ok())
        .unwrap_or_else(|| vec![0.0; config.dimension])
}

/// The index from the snapshot at `watermark` joined with the store: every
/// item unchanged since the watermark must sit in its snapshot slot; items
/// changed after it (the change log) are applied afresh from the store.
/// The outer error is the store's; the inner one says why the snapshot
/// cannot be used. Returns the index, how many changed ids were replayed,
/// and the highest change number logged.
fn open_from_snapshot(
    store: &Store,
    snapshots: &SnapshotDir,
    id: u32,
    config: CatalogConfig,
    settings: IndexSettings,
    watermark: u64,
) -> Result<FromSnapshot> {
    let started = Instant::now();
    // Reading the snapshot (checksums, hnsw_rs's reload: one core) and
    // scanning the store are independent: do them at the same time.
    let (loaded, scanned) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let t = Instant::now();
            (
                snapshots.read(id, watermark, &config, &settings.hnsw),
                t.elapsed(),
            )
        });
        let t = Instant::now();
        let scanned = store.changes_after(id, watermark).and_then(|changes| {
            let mut items = Vec::new();
            store.for_each_item(id, &config, |item| items.push(item))?;
            Ok((changes, items))
        });
        let scan_time = t.elapsed();
        let (loaded, read_time) = reader.join().expect("the snapshot reader does not panic");
        (
            loaded.map(|l| (l, read_time)),
            scanned.map(|s| (s, scan_time)),
        )
    });
    let ((changes, items), scan_time) = scanned?;
    let (loaded, read_time) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return Ok(Err(e.0)),
    };
    let changed: HashSet<&str> = changes.ids.iter().map(String::as_str).collect();
    let mut slot_of: std::collections::HashMap<&str, u32> = loaded
        .slots
        .iter()
        .enumerate()
        .filter_map(|(slot, id)| id.as_deref().map(|id| (id, slot as u32)))
        .collect();
    let mut placed = Vec::with_capacity(slot_of.len());
    let mut replay = Vec::new();
    let mut unknown: Option<String> = None;
    for item in items {
        if changed.contains(item.id.as_str()) {
            replay.push(item);
        } else {
            match slot_of.remove(item.id.as_str()) {
                Some(slot) => placed.push((slot, item)),
                None => {
                    unknown.get_or_insert(item.id);
                }
            }
        }
    }
    if let Some(item) = unknown {
        return Ok(Err(format!(
            "item {item:?} is stored, unchanged since the snapshot, but not in it"
        )));
    }
    if let Some((item, _)) = slot_of.iter().find(|(id, _)| !changed.contains(**id)) {
        return Ok(Err(format!(
            "the snapshot holds item {item:?}, which the store no longer has and no change removed"
        )));
    }
    let slots = loaded.slots.len();
    let t = Instant::now();
    let mut state = IndexState::from_parts(config, settings, loaded.graph, slots, placed);
    let build_time = t.elapsed();
    let t = Instant::now();
    if let Err(reason) = state.check_graph() {
        return Ok(Err(reason));
    }
    let check_time = t.elapsed();
    let replayed = changes.ids.len() as u64;
    let t = Instant::now();
    if !replay.is_empty() {
        let prepared = state.prepare_upsert(replay);
        state.graph().insert(&prepared.new_points());
        state.publish_upsert(prepared);
    }
    let replay_time = t.elapsed();
    let t = Instant::now();
    state.freeze();
    tracing::info!(
        catalog_id = id,
        read_snapshot = read_time.as_secs_f64(),
        scan_store = scan_time.as_secs_f64(),
        build_index = build_time.as_secs_f64(),
        check_graph = check_time.as_secs_f64(),
        replay = replay_time.as_secs_f64(),
        freeze = t.elapsed().as_secs_f64(),
        total = started.elapsed().as_secs_f64(),
        "snapshot load phases (seconds; the read and the scan overlap)"
    );
    Ok(Ok((state, replayed, changes.last_change)))
}

/// What the catalog's stored events imply under `settings`; categories
/// come from `state` (events on unknown items count for the item only).
fn behaviour_from_store(
    store: &Store,
    id: u32,
    settings: &BehaviourSettings,
    state: &IndexState,
) -> Result<Behaviour> {
    let mut behaviour = Behaviour::new(settings);
    store.for_each_event(id, |event| {
        let item = state.get(&event.item_id);
        behaviour.apply(
            &event,
            item.as_ref().and_then(|i| i.meta.category.as_deref()),
        );
    })?;
    Ok(behaviour)
}

/// Releases claimed event ids when dropped.
struct ReleaseClaims<'a> {
    set: &'a Mutex<HashSet<String>>,
    ids: Vec<String>,
}

impl Drop for ReleaseClaims<'_> {
    fn drop(&mut self) {
        let mut set = self.set.lock();
        for id in &self.ids {
            set.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventKind, Metric, VectorType};

    fn purchase(user: &str, item: &str, order: Option<&str>, at: i64) -> Event {
        Event {
            user_id: user.into(),
            item_id: item.into(),
            kind: EventKind::Purchase,
            timestamp_ms: at,
            session_id: None,
            order_id: order.map(String::from),
            quantity: 1,
            price: None,
            event_id: None,
            recommendation_id: None,
        }
    }

    /// Bought-together counts follow recorded purchases (views do not
    /// count) and are rebuilt from the stored events when reopened.
    #[test]
    fn copurchase_counts_follow_events_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = CatalogConfig::new(2, Metric::L2, VectorType::F32, 4).unwrap();
        let open = |store: &Arc<Store>| {
            Catalog::open(
                Arc::clone(store),
                SnapshotDir::new(dir.path()),
                CatalogName::parse("c").unwrap(),
                1,
                config,
                IndexSettings::default(),
                crate::analytics::Analytics::start(Arc::clone(store), Default::default()).unwrap(),
            )
            .unwrap()
        };
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let catalog = open(&store);
        let mut view = purchase("u1", "c", Some("o1"), 5);
        view.kind = EventKind::View;
        catalog
            .record_events(vec![
                purchase("u1", "a", Some("o1"), 1),
                purchase("u1", "b", Some("o1"), 1),
                purchase("u2", "a", Some("o2"), 2),
                purchase("u2", "b", None, 2),
                purchase("u3", "b", None, 3),
                view,
            ])
            .unwrap();
        let check = |c: &Catalog| {
            let partners = c.with_behaviour(|b| b.copurchase.partners("a"));
            assert_eq!(partners.len(), 1);
            assert_eq!(&*partners[0].0, "b");
            let s = partners[0].1;
            // Baskets: o1 {a, b}, o2 {a}, u2@2 {b}, u3@3 {b}.
            assert_eq!(s.together, 1);
            assert!((s.support - 0.25).abs() < 1e-12);
            assert!((s.confidence - 0.5).abs() < 1e-12);
            assert!((s.lift - 0.5 / 0.75).abs() < 1e-12);
        };
        check(&catalog);
        drop(catalog);
        drop(store);
        let store = Arc::new(Store::open(dir.path()).unwrap());
        check(&open(&store));
    }
}
