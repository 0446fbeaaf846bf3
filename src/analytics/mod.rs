//! Recommendation analytics: what was shown (impressions), what followed
//! (attribution of clicks, add-to-carts and purchases), what the
//! experiments' arms did, and hourly counters per surface.
//!
//! One background thread, the *recorder*, is the only writer of all of
//! it. Requests hand it impressions (never blocking: past
//! `impression_queue` waiting ones, new ones are dropped and counted);
//! the catalog hands it every event write after it is durable, under the
//! write's sequencer turn, so the recorder sees impressions and events in
//! the order they happened. It applies each to its counters and writes
//! them in one RocksDB batch per round (WAL, no fsync; see
//! `Store::write_unsynced`), together with its watermark: the number of
//! the last event write counted. Event writes are also logged durably
//! with the events themselves (`event_log`), so a crash loses no event's
//! contribution: at open the recorder replays the log past its watermark.
//! Impressions are best-effort: the ones not yet written when the process
//! dies are lost (and the events citing them count as unattributed).
//!
//! Must not: block a request, or be read by ranking.

mod recorder;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::AnalyticsSettings;
use crate::error::{Error, Result};
use crate::experiments::results::ArmStats;
use crate::experiments::Experiment;
use crate::model::analytics::{Attribution, Bucket, Impression};
use crate::model::{Event, EventKind, Surface};
use crate::storage::Store;

/// Milliseconds in an hour bucket.
pub const HOUR_MS: i64 = 3_600_000;

enum Message {
    Impression {
        catalog_id: u32,
        impression: Arc<Impression>,
    },
    Events {
        catalog_id: u32,
        number: u64,
        events: Vec<Event>,
    },
    Experiments {
        catalog_id: u32,
        experiments: Vec<Experiment>,
    },
    Open {
        catalog_id: u32,
        experiments: Vec<Experiment>,
    },
    Close {
        catalog_id: u32,
    },
    Barrier(mpsc::SyncSender<()>),
}

/// Totals since the process started, per surface, for `/metrics`.
#[derive(Default)]
pub struct SurfaceTotals {
    pub impressions: AtomicU64,
    pub clicks: AtomicU64,
    pub add_to_carts: AtomicU64,
    pub purchases: AtomicU64,
    /// Attributed revenue in thousandths (atomics hold integers).
    pub attributed_revenue_milli: AtomicU64,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Totals {
    pub surfaces: [SurfaceTotals; 6],
    pub impressions_dropped: AtomicU64,
    pub impressions_written: AtomicU64,
    pub unattributed: AtomicU64,
    pub revenue_milli: AtomicU64,
    pub write_errors: AtomicU64,
    /// Explicit feedback events counted: rating, dislike, own, return.
    pub feedback: [AtomicU64; 4],
}

/// The index of an explicit-feedback kind in [`Totals::feedback`].
pub fn feedback_index(kind: EventKind) -> Option<usize> {
    match kind {
        EventKind::Rating(_) => Some(0),
        EventKind::Dislike => Some(1),
        EventKind::Own => Some(2),
        EventKind::Return => Some(3),
        _ => None,
    }
}

impl Totals {
    pub fn surface(&self, s: Surface) -> &SurfaceTotals {
        &self.surfaces[s.code() as usize]
    }
}

/// What the handle and the recorder thread share. The thread holds only
/// this, never the handle, so the handle's `Drop` always runs elsewhere
/// and can wait for the thread (and the store it holds) to end.
pub struct Shared {
    store: Arc<Store>,
    settings: AnalyticsSettings,
    /// Impressions handed over and not yet written, for lookups by id.
    pending: Mutex<HashMap<(u32, String), Arc<Impression>>>,
    queued: AtomicUsize,
    totals: Totals,
    /// Impressions recorded and hits marked engaged per catalog since the
    /// process started: the engagement model retrains when enough new
    /// ones arrived.
    activity: Mutex<HashMap<u32, (u64, u64)>>,
}

/// The recorder's handle (see the module documentation).
pub struct Analytics {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Message>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::ops::Deref for Analytics {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Shared {
    /// Counters for `/metrics`.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Impressions recorded and hits marked engaged for `catalog_id` since
    /// the process started.
    pub fn activity(&self, catalog_id: u32) -> (u64, u64) {
        self.activity
            .lock()
            .get(&catalog_id)
            .copied()
            .unwrap_or((0, 0))
    }

    fn count_impression(&self, catalog_id: u32) {
        self.activity.lock().entry(catalog_id).or_default().0 += 1;
    }

    fn count_engaged(&self, catalog_id: u32) {
        self.activity.lock().entry(catalog_id).or_default().1 += 1;
    }

    /// The attribution window, in milliseconds.
    pub fn window_ms(&self) -> i64 {
        self.settings.attribution_window_ms
    }
}

/// How long a read waits for the recorder to catch up before answering
/// with what is written.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

impl Analytics {
    /// Starts the recorder thread.
    pub fn start(store: Arc<Store>, settings: AnalyticsSettings) -> Result<Arc<Analytics>> {
        let (sender, receiver) = mpsc::channel();
        let shared = Arc::new(Shared {
            store,
            settings,
            pending: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            totals: Totals::default(),
            activity: Mutex::new(HashMap::new()),
        });
        let analytics = Arc::new(Analytics {
            shared: Arc::clone(&shared),
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(None),
        });
        let thread = std::thread::Builder::new()
            .name("recstore-analytics".into())
            .spawn(move || recorder::run(shared, receiver))
            .map_err(|source| Error::Io {
                path: "recstore-analytics".into(),
                source,
            })?;
        *analytics.thread.lock() = Some(thread);
        Ok(analytics)
    }

    fn send(&self, message: Message) -> bool {
        match &*self.sender.lock() {
            Some(s) => s.send(message).is_ok(),
            None => false,
        }
    }

    pub fn settings(&self) -> &AnalyticsSettings {
        &self.settings
    }

    /// Impressions waiting to be written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Hands an impression to the recorder, or drops (and counts) it when
    /// the queue is full. Never blocks.
    pub fn record_impression(&self, catalog_id: u32, impression: Impression) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.settings.impression_queue {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.totals
                .impressions_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let impression = Arc::new(impression);
        self.pending
            .lock()
            .insert((catalog_id, impression.id.clone()), Arc::clone(&impression));
        if !self.send(Message::Impression {
            catalog_id,
            impression,
        }) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Hands the recorder a durable event write (called under its turn,
    /// so writes arrive in commit order). `number` is its event-log number.
    pub fn record_events(&self, catalog_id: u32, number: u64, events: Vec<Event>) {
        self.send(Message::Events {
            catalog_id,
            number,
            events,
        });
    }

    /// A catalog opened: the recorder replays its event log past the
    /// watermark before anything sent later.
    pub fn open_catalog(&self, catalog_id: u32, experiments: Vec<Experiment>) {
        self.send(Message::Open {
            catalog_id,
            experiments,
        });
    }

    /// A catalog's set of experiments changed (sent before the catalog
    /// serves the new set, so no impression names an unknown experiment).
    pub fn experiments_changed(&self, catalog_id: u32, experiments: Vec<Experiment>) {
        self.send(Message::Experiments {
            catalog_id,
            experiments,
        });
    }

    /// A catalog was deleted: forget its state.
    pub fn close_catalog(&self, catalog_id: u32) {
        self.send(Message::Close { catalog_id });
    }

    /// Waits (bounded) until everything handed over before this call is
    /// written: what reads of results and analytics do first, so an
    /// acknowledged event is in the next answer.
    pub fn sync(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.send(Message::Barrier(tx)) {
            let _ = rx.recv_timeout(SYNC_TIMEOUT);
        }
    }

    /// The impression with this recommendation id, written or waiting.
    pub fn impression(&self, catalog_id: u32, id: &str) -> Result<Option<Impression>> {
        if let Some(i) = self.pending.lock().get(&(catalog_id, id.to_string())) {
            return Ok(Some((**i).clone()));
        }
        self.store.impression(catalog_id, id)
    }

    /// What an event carrying a `recommendation_id` is attributed to:
    /// `Some(None)` when the id is unknown or its impression did not show
    /// the item, `None` when the event carries no id or is a view.
    pub fn attribution_of(
        &self,
        catalog_id: u32,
        event: &Event,
    ) -> Result<Option<Option<Attribution>>> {
        let Some(id) = &event.recommendation_id else {
            return Ok(None);
        };
        if event.kind == EventKind::View {
            return Ok(None);
        }
        let found = self
            .pending
            .lock()
            .get(&(catalog_id, id.clone()))
            .map(|i| attribute(i, id, &event.item_id));
        let found = match found {
            Some(a) => a,
            None => self
                .store
                .impression(catalog_id, id)?
                .and_then(|i| attribute(&i, id, &event.item_id)),
        };
        Ok(Some(found))
    }

    /// An experiment's per-arm counters, after the recorder caught up.
    pub fn arm_stats(&self, catalog_id: u32, experiment: &Experiment) -> Result<Vec<ArmStats>> {
        self.sync();
        let mut stats = self
            .store
            .arm_stats(catalog_id, experiment.name.as_str())?
            .unwrap_or_default();
        stats.resize(experiment.arms.len(), ArmStats::default());
        Ok(stats)
    }

    /// Hour buckets from `from_hour` to `to_hour` inclusive, after the
    /// recorder caught up: `(hour, surface or None for catalog-wide, bucket)`.
    pub fn buckets(
        &self,
        catalog_id: u32,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<(i64, Option<Surface>, Bucket)>> {
        self.sync();
        let mut out = Vec::new();
        self.store
            .buckets(catalog_id, from_hour, to_hour, |hour, code, bucket| {
                let surface = Surface::from_code(code);
                if surface.is_some() || code == u8::MAX {
                    out.push((hour, surface, bucket));
                }
            })?;
        Ok(out)
    }

    /// Stops the recorder after it has written everything handed over.
    pub fn shutdown(&self) {
        self.sender.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Analytics {
    /// Stops the recorder and waits for it, so the store it holds is
    /// closed when this returns (a test reopening the folder needs that).
    fn drop(&mut self) {
        self.sender.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

/// The attribution of a click/cart/purchase of `item` citing impression `i`.
fn attribute(i: &Impression, id: &str, item: &str) -> Option<Attribution> {
    i.position_of(item).map(|position| Attribution {
        recommendation_id: id.to_string(),
        surface: i.surface,
        position,
        experiment: i.experiment.clone(),
    })
}

/// The hour bucket of a time.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}
