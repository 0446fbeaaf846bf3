//! The recorder thread: applies impressions and event writes to the
//! counters, in arrival order, and writes each round in one batch.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::{hour_of, Message, Shared as Analytics};
use crate::error::Result;
use crate::experiments::results::ArmStats;
use crate::experiments::{Experiment, UnitKind};
use crate::model::analytics::{
    now_ms, Attribution, Bucket, ClickRecord, Exposure, Impression, OrderRecord,
};
use crate::model::{Event, EventKind};
use crate::storage::{Batch, Store};

/// How long a round gathers messages after its first one.
const ROUND_PAUSE: Duration = Duration::from_millis(5);
/// Most messages applied in one round (one RocksDB write).
const ROUND_MESSAGES: usize = 8192;
/// How often old impressions are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How often counted event-log entries are dropped (one range delete per
/// catalog; see `Batch::trim_event_log`).
const TRIM_EVERY: Duration = Duration::from_secs(300);
/// ...or sooner once a catalog has this many counted event writes
/// waiting to be dropped (at 100+ writes a second a trim every few
/// minutes would keep gigabytes of dead log; a few range deletes a
/// minute are harmless).
const TRIM_ENTRIES: u64 = 10_000;
/// Event writes replayed per round at open.
const REPLAY_ROUND: usize = 2000;

/// What the recorder holds of one catalog.
#[derive(Default)]
struct CatalogState {
    experiments: HashMap<String, Experiment>,
    /// Loaded on first use, kept for the catalog's life.
    arm_stats: HashMap<String, Vec<ArmStats>>,
    dirty_arms: HashSet<String>,
    // What this round changed (written at its end, then dropped):
    impressions: Vec<Arc<Impression>>,
    fresh: HashMap<String, Arc<Impression>>,
    exposures: HashMap<(String, String), Exposure>,
    buckets: HashMap<(i64, Option<u8>), Bucket>,
    orders: HashMap<String, OrderRecord>,
    /// `None`: deleted.
    clicks: HashMap<(String, String), Option<ClickRecord>>,
    watermark: Option<u64>,
    /// The newest watermark written, and the entry the log was last
    /// trimmed through.
    counted_through: Option<u64>,
    trimmed_through: Option<u64>,
}

struct Recorder {
    store: Arc<Store>,
    window_ms: i64,
    retention_ms: i64,
    catalogs: HashMap<u32, CatalogState>,
}

/// The recorder's periodic work, done between rounds and when idle.
struct Chores {
    last_retention: Option<Instant>,
    last_trim: Instant,
}

impl Chores {
    fn run(&mut self, recorder: &mut Recorder) {
        if self
            .last_retention
            .is_none_or(|t| t.elapsed() >= RETENTION_EVERY)
        {
            recorder.expire();
            self.last_retention = Some(Instant::now());
        }
        if self.last_trim.elapsed() >= TRIM_EVERY || recorder.untrimmed() >= TRIM_ENTRIES {
            recorder.trim();
            self.last_trim = Instant::now();
        }
    }
}

pub(super) fn run(analytics: Arc<Analytics>, receiver: mpsc::Receiver<Message>) {
    let mut recorder = Recorder {
        store: Arc::clone(&analytics.store),
        window_ms: analytics.settings.attribution_window_ms,
        retention_ms: analytics.settings.impression_retention_ms,
        catalogs: HashMap::new(),
    };
    let mut chores = Chores {
        last_retention: None,
        last_trim: Instant::now(),
    };
    loop {
        let message = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                chores.run(&mut recorder);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Let a round gather before applying it, unless someone waits on
        // it: woken for every impression, this thread cost the answers
        // ~10 % of their throughput on 2 cores (futex wake-ups and context
        // switches, not the writing); a pause makes ~200 rounds a second.
        if !matches!(message, Message::Barrier(_)) {
            std::thread::sleep(ROUND_PAUSE);
        }
        let mut barriers = Vec::new();
        let mut written: Vec<(u32, String)> = Vec::new();
        let mut next = Some(message);
        let mut applied = 0;
        while let Some(message) = next.take() {
            recorder.apply(&analytics, message, &mut barriers, &mut written);
            applied += 1;
            if applied >= ROUND_MESSAGES {
                break;
            }
            next = receiver.try_recv().ok();
        }
        recorder.flush(&analytics, &written);
        chores.run(&mut recorder);
        for b in barriers {
            let _ = b.send(());
        }
    }
}

impl Recorder {
    fn apply(
        &mut self,
        analytics: &Analytics,
        message: Message,
        barriers: &mut Vec<mpsc::SyncSender<()>>,
        written: &mut Vec<(u32, String)>,
    ) {
        match message {
            Message::Impression {
                catalog_id,
                impression,
            } => {
                written.push((catalog_id, impression.id.clone()));
                if let Err(e) = self.impression(analytics, catalog_id, impression) {
                    tracing::error!(catalog_id, error = %e, "analytics could not count an impression");
                }
            }
            Message::Events {
                catalog_id,
                number,
                events,
            } => {
                if let Err(e) = self.events(analytics, catalog_id, number, &events) {
                    tracing::error!(catalog_id, error = %e, "analytics could not count events");
                }
            }
            Message::Experiments {
                catalog_id,
                experiments,
            } => self.set_experiments(catalog_id, experiments),
            Message::Open {
                catalog_id,
                experiments,
            } => {
                self.set_experiments(catalog_id, experiments);
                if let Err(e) = self.replay(analytics, catalog_id) {
                    tracing::error!(catalog_id, error = %e, "analytics could not replay the event log");
                }
            }
            Message::Close { catalog_id } => {
                self.catalogs.remove(&catalog_id);
            }
            Message::Barrier(b) => barriers.push(b),
        }
    }

    fn set_experiments(&mut self, catalog_id: u32, experiments: Vec<Experiment>) {
        self.state(catalog_id).experiments = experiments
            .into_iter()
            .map(|e| (e.name.as_str().to_string(), e))
            .collect();
    }

    /// Counts the logged event writes the watermark does not cover.
    fn replay(&mut self, analytics: &Analytics, catalog_id: u32) -> Result<()> {
        let watermark = self.store.analytics_watermark(catalog_id)?;
        let store = Arc::clone(&self.store);
        let mut rounds = 0usize;
        let mut replayed = 0u64;
        store.for_each_logged_events(catalog_id, watermark, |number, events| {
            self.events(analytics, catalog_id, number, &events)?;
            replayed += 1;
            rounds += 1;
            if rounds >= REPLAY_ROUND {
                self.flush(analytics, &[]);
                rounds = 0;
            }
            Ok(())
        })?;
        if replayed > 0 {
            tracing::info!(
                catalog_id,
                writes = replayed,
                "analytics replayed event writes it had not counted"
            );
        }
        Ok(())
    }

    fn state(&mut self, catalog_id: u32) -> &mut CatalogState {
        self.catalogs.entry(catalog_id).or_default()
    }

    fn bucket(&mut self, catalog_id: u32, hour: i64, surface: Option<u8>) -> Result<&mut Bucket> {
        let store = Arc::clone(&self.store);
        let state = self.state(catalog_id);
        match state.buckets.entry((hour, surface)) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                Ok(e.insert(store.bucket(catalog_id, hour, surface)?.unwrap_or_default()))
            }
        }
    }

    fn exposure(
        &mut self,
        catalog_id: u32,
        experiment: &str,
        unit: &str,
    ) -> Result<Option<Exposure>> {
        let key = (experiment.to_string(), unit.to_string());
        if let Some(e) = self.state(catalog_id).exposures.get(&key) {
            return Ok(Some(*e));
        }
        self.store.exposure(catalog_id, experiment, unit)
    }

    fn set_exposure(&mut self, catalog_id: u32, experiment: &str, unit: &str, e: Exposure) {
        self.state(catalog_id)
            .exposures
            .insert((experiment.to_string(), unit.to_string()), e);
    }

    /// The arm stats of a running experiment, marked dirty; `None` when
    /// the experiment is unknown or stopped.
    fn arms(&mut self, catalog_id: u32, experiment: &str) -> Result<Option<&mut Vec<ArmStats>>> {
        let store = Arc::clone(&self.store);
        let state = self.state(catalog_id);
        let Some(arms) = state
            .experiments
            .get(experiment)
            .filter(|e| e.is_running())
            .map(|e| e.arms.len())
        else {
            return Ok(None);
        };
        if !state.arm_stats.contains_key(experiment) {
            let mut stats = store.arm_stats(catalog_id, experiment)?.unwrap_or_default();
            stats.resize(arms, ArmStats::default());
            state.arm_stats.insert(experiment.to_string(), stats);
        }
        state.dirty_arms.insert(experiment.to_string());
        Ok(state.arm_stats.get_mut(experiment))
    }

    fn impression(
        &mut self,
        analytics: &Analytics,
        catalog_id: u32,
        i: Arc<Impression>,
    ) -> Result<()> {
        {
            let state = self.state(catalog_id);
            state.impressions.push(Arc::clone(&i));
            state.fresh.insert(i.id.clone(), Arc::clone(&i));
        }
        analytics.count_impression(catalog_id);
        let b = self.bucket(catalog_id, hour_of(i.at_ms), Some(i.surface.code()))?;
        b.impressions += 1;
        b.record_latency(i.latency_us);
        analytics
            .totals
            .surface(i.surface)
            .impressions
            .fetch_add(1, Ordering::Relaxed);
        let Some(x) = &i.experiment else {
            return Ok(());
        };
        let Some(arm) = self
            .state(catalog_id)
            .experiments
            .get(&x.name)
            .filter(|e| e.is_running())
            .and_then(|e| e.arm_index(&x.arm))
        else {
            return Ok(());
        };
        let existing = self.exposure(catalog_id, &x.name, &x.unit)?;
        let Some(stats) = self.arms(catalog_id, &x.name)? else {
            return Ok(());
        };
        let mut e = match existing {
            Some(e) => e,
            None => {
                let s = &mut stats[arm];
                s.units += 1;
                s.ctr.add(0.0, 0.0);
                s.conversion.add(0.0, 0.0);
                s.revenue_per_unit.add(0.0, 0.0);
                Exposure {
                    arm: arm as u32,
                    first_ms: i.at_ms,
                    ..Exposure::default()
                }
            }
        };
        // A unit stays in the arm it was first counted in.
        let s = &mut stats[e.arm as usize];
        let before = (e.clicks as f64, e.impressions as f64);
        e.impressions += 1;
        s.impressions += 1;
        s.ctr
            .replace(before, (e.clicks as f64, e.impressions as f64));
        self.set_exposure(catalog_id, &x.name, &x.unit, e);
        Ok(())
    }

    /// Marks the hit at 1-based `position` of `i` engaged when the event
    /// came within the attribution window of the answer (the labels of
    /// the engagement model), and writes the impression again this round.
    fn mark_engaged(
        &mut self,
        analytics: &Analytics,
        catalog_id: u32,
        i: &Arc<Impression>,
        position: u32,
        at_ms: i64,
    ) {
        let p = position - 1;
        if at_ms - i.at_ms > self.window_ms || i.engaged.binary_search(&p).is_ok() {
            return;
        }
        let mut marked = Impression::clone(i);
        let at = marked.engaged.partition_point(|&q| q < p);
        marked.engaged.insert(at, p);
        let marked = Arc::new(marked);
        let state = self.state(catalog_id);
        state.impressions.push(Arc::clone(&marked));
        state.fresh.insert(marked.id.clone(), marked);
        analytics.count_engaged(catalog_id);
    }

    fn lookup(&mut self, catalog_id: u32, id: &str) -> Result<Option<Arc<Impression>>> {
        if let Some(i) = self.state(catalog_id).fresh.get(id) {
            return Ok(Some(Arc::clone(i)));
        }
        Ok(self.store.impression(catalog_id, id)?.map(Arc::new))
    }

    fn click(&mut self, catalog_id: u32, user: &str, item: &str) -> Result<Option<ClickRecord>> {
        let key = (user.to_string(), item.to_string());
        if let Some(c) = self.state(catalog_id).clicks.get(&key) {
            return Ok(c.clone());
        }
        self.store.click(catalog_id, user, item)
    }

    fn events(
        &mut self,
        analytics: &Analytics,
        catalog_id: u32,
        number: u64,
        events: &[Event],
    ) -> Result<()> {
        for e in events {
            self.event(analytics, catalog_id, e)?;
        }
        let state = self.state(catalog_id);
        state.watermark = Some(state.watermark.map_or(number, |w| w.max(number)));
        Ok(())
    }

    fn event(&mut self, analytics: &Analytics, catalog_id: u32, e: &Event) -> Result<()> {
        let hour = hour_of(e.timestamp_ms);
        let revenue = match e.kind {
            EventKind::Purchase => e.price.unwrap_or(0.0) * f64::from(e.quantity),
            _ => 0.0,
        };
        let mut attribution: Option<Attribution> = None;
        if let Some(i) = super::feedback_index(e.kind) {
            let b = self.bucket(catalog_id, hour, None)?;
            match i {
                0 => b.ratings += 1,
                1 => b.dislikes += 1,
                2 => b.owns += 1,
                _ => b.returns += 1,
            }
            analytics.totals.feedback[i].fetch_add(1, Ordering::Relaxed);
        }
        if e.kind.is_engagement() {
            if let Some(id) = &e.recommendation_id {
                let impression = self.lookup(catalog_id, id)?;
                let shown = impression
                    .as_ref()
                    .and_then(|i| super::attribute(i, id, &e.item_id));
                if let (Some(i), Some(a)) = (&impression, &shown) {
                    self.mark_engaged(analytics, catalog_id, i, a.position, e.timestamp_ms);
                }
                match shown {
                    Some(a) => attribution = Some(a),
                    None => {
                        self.bucket(catalog_id, hour, None)?.unattributed += 1;
                        analytics
                            .totals
                            .unattributed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else if e.kind == EventKind::Purchase {
                if let Some(c) = self.click(catalog_id, &e.user_id, &e.item_id)? {
                    let age = e.timestamp_ms - c.at_ms;
                    if (0..=self.window_ms).contains(&age) {
                        attribution = Some(c.attribution);
                        // One click earns one purchase.
                        self.state(catalog_id)
                            .clicks
                            .insert((e.user_id.clone(), e.item_id.clone()), None);
                    }
                }
            }
        }
        if let Some(a) = &attribution {
            let totals = analytics.totals.surface(a.surface);
            let b = self.bucket(catalog_id, hour, Some(a.surface.code()))?;
            match e.kind {
                EventKind::Click => {
                    b.clicks += 1;
                    totals.clicks.fetch_add(1, Ordering::Relaxed);
                }
                EventKind::AddToCart => {
                    b.add_to_carts += 1;
                    totals.add_to_carts.fetch_add(1, Ordering::Relaxed);
                }
                EventKind::Purchase => {
                    b.purchases += 1;
                    b.attributed_revenue += revenue;
                    totals.purchases.fetch_add(1, Ordering::Relaxed);
                    totals
                        .attributed_revenue_milli
                        .fetch_add((revenue * 1000.0).round() as u64, Ordering::Relaxed);
                }
                _ => {}
            }
            if e.kind == EventKind::Click {
                self.state(catalog_id).clicks.insert(
                    (e.user_id.clone(), e.item_id.clone()),
                    Some(ClickRecord {
                        at_ms: e.timestamp_ms,
                        attribution: a.clone(),
                    }),
                );
            }
            if let Some(x) = &a.experiment {
                let existing = self.exposure(catalog_id, &x.name, &x.unit)?;
                if let Some(stats) = self.arms(catalog_id, &x.name)? {
                    if let Some(mut exposure) = existing {
                        let s = &mut stats[exposure.arm as usize];
                        match e.kind {
                            EventKind::Click => {
                                s.clicks += 1;
                                let before = (exposure.clicks as f64, exposure.impressions as f64);
                                exposure.clicks += 1;
                                s.ctr.replace(
                                    before,
                                    (exposure.clicks as f64, exposure.impressions as f64),
                                );
                                self.set_exposure(catalog_id, &x.name, &x.unit, exposure);
                            }
                            EventKind::AddToCart => s.add_to_carts += 1,
                            EventKind::Purchase => {
                                s.purchases += 1;
                                s.attributed_revenue += revenue;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        if e.kind == EventKind::Purchase {
            self.purchase(
                analytics,
                catalog_id,
                e,
                hour,
                revenue,
                attribution.is_some(),
            )?;
        }
        Ok(())
    }

    fn purchase(
        &mut self,
        analytics: &Analytics,
        catalog_id: u32,
        e: &Event,
        hour: i64,
        revenue: f64,
        attributed: bool,
    ) -> Result<()> {
        analytics
            .totals
            .revenue_milli
            .fetch_add((revenue * 1000.0).round() as u64, Ordering::Relaxed);
        self.bucket(catalog_id, hour, None)?.revenue += revenue;
        // The order: by its id, else the user's purchases of that moment.
        let key = match &e.order_id {
            Some(o) => format!("o\0{o}"),
            None => format!("u\0{}\0{}", e.user_id, e.timestamp_ms),
        };
        let stored = match self.state(catalog_id).orders.get(&key) {
            Some(o) => Some(*o),
            None => self.store.order(catalog_id, &key)?,
        };
        let new_order = stored.is_none();
        let mut order = stored.unwrap_or(OrderRecord {
            hour,
            revenue: 0.0,
            with_recommendation: false,
        });
        if !new_order {
            let b = self.bucket(catalog_id, order.hour, None)?;
            if order.with_recommendation {
                b.orders_with_recommendation -= 1;
                b.revenue_with_recommendation -= order.revenue;
            } else {
                b.orders_without_recommendation -= 1;
                b.revenue_without_recommendation -= order.revenue;
            }
        }
        order.revenue += revenue;
        order.with_recommendation |= attributed;
        {
            let b = self.bucket(catalog_id, order.hour, None)?;
            if order.with_recommendation {
                b.orders_with_recommendation += 1;
                b.revenue_with_recommendation += order.revenue;
            } else {
                b.orders_without_recommendation += 1;
                b.revenue_without_recommendation += order.revenue;
            }
        }
        self.state(catalog_id).orders.insert(key, order);
        // Every running experiment this unit was exposed to, before.
        let experiments: Vec<(String, UnitKind)> = self
            .state(catalog_id)
            .experiments
            .values()
            .filter(|x| x.is_running())
            .map(|x| (x.name.as_str().to_string(), x.unit))
            .collect();
        for (name, unit_kind) in experiments {
            let unit = match unit_kind {
                UnitKind::User => Some(e.user_id.as_str()),
                UnitKind::Session => e.session_id.as_deref(),
            };
            let Some(unit) = unit else { continue };
            let Some(mut exposure) = self.exposure(catalog_id, &name, unit)? else {
                continue;
            };
            if e.timestamp_ms < exposure.first_ms {
                continue;
            }
            let Some(stats) = self.arms(catalog_id, &name)? else {
                continue;
            };
            let s = &mut stats[exposure.arm as usize];
            if !exposure.converted {
                exposure.converted = true;
                s.converted += 1;
                s.conversion.replace((0.0, 0.0), (1.0, 0.0));
            }
            let before = exposure.revenue;
            exposure.revenue += revenue;
            s.revenue += revenue;
            s.revenue_per_unit
                .replace((before, 0.0), (exposure.revenue, 0.0));
            if new_order {
                s.orders += 1;
            }
            self.set_exposure(catalog_id, &name, unit, exposure);
        }
        Ok(())
    }

    /// Writes what the round changed, in one batch.
    fn flush(&mut self, analytics: &Analytics, written: &[(u32, String)]) {
        let mut batch = Batch::new();
        let mut impressions = 0u64;
        for (&catalog_id, state) in &self.catalogs {
            for i in &state.impressions {
                batch.put_impression(catalog_id, i);
                impressions += 1;
            }
            for ((experiment, unit), e) in &state.exposures {
                batch.put_exposure(catalog_id, experiment, unit, e);
            }
            for ((hour, surface), b) in &state.buckets {
                batch.put_bucket(catalog_id, *hour, *surface, b);
            }
            for (key, o) in &state.orders {
                batch.put_order(catalog_id, key, o);
            }
            for ((user, item), c) in &state.clicks {
                match c {
                    Some(c) => batch.put_click(catalog_id, user, item, c),
                    None => batch.delete_click(catalog_id, user, item),
                }
            }
            for name in &state.dirty_arms {
                if let Some(arms) = state.arm_stats.get(name) {
                    batch.put_arm_stats(catalog_id, name, arms);
                }
            }
            if let Some(w) = state.watermark {
                batch.set_analytics_watermark(catalog_id, w);
            }
        }
        if !batch.is_empty() {
            if let Err(e) = self.store.write_unsynced(batch) {
                // Keep the round's changes and try again with the next one;
                // the watermark was not written, so a restart replays them.
                analytics
                    .totals
                    .write_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "analytics could not write its counters");
                return;
            }
        }
        analytics
            .totals
            .impressions_written
            .fetch_add(impressions, Ordering::Relaxed);
        for state in self.catalogs.values_mut() {
            state.impressions.clear();
            state.fresh.clear();
            state.exposures.clear();
            state.buckets.clear();
            state.orders.clear();
            state.clicks.clear();
            state.dirty_arms.clear();
            if let Some(w) = state.watermark.take() {
                state.counted_through = Some(w);
            }
        }
        if !written.is_empty() {
            let mut pending = analytics.pending.lock();
            for key in written {
                pending.remove(key);
            }
            drop(pending);
            analytics.queued.fetch_sub(written.len(), Ordering::AcqRel);
        }
    }

    /// The most counted event-log entries a catalog still keeps.
    fn untrimmed(&self) -> u64 {
        self.catalogs
            .values()
            .filter_map(|s| {
                let w = s.counted_through?;
                Some(w.saturating_sub(s.trimmed_through.unwrap_or(0)))
            })
            .max()
            .unwrap_or(0)
    }

    /// Drops the counted event-log entries: one range delete per catalog
    /// whose watermark moved since the last trim.
    fn trim(&mut self) {
        let mut batch = Batch::new();
        for (&catalog_id, state) in &self.catalogs {
            if let Some(w) = state
                .counted_through
                .filter(|w| state.trimmed_through < Some(*w))
            {
                batch.trim_event_log(catalog_id, w);
            }
        }
        if batch.is_empty() {
            return;
        }
        match self.store.write_unsynced(batch) {
            Ok(()) => {
                for state in self.catalogs.values_mut() {
                    state.trimmed_through = state.counted_through;
                }
            }
            // Harmless: the entries are below the watermark, never replayed.
            Err(e) => tracing::warn!(error = %e, "could not drop counted event-log entries"),
        }
    }

    /// Deletes impressions past the retention: one range delete per
    /// catalog.
    fn expire(&mut self) {
        let before = now_ms() - self.retention_ms;
        let mut batch = Batch::new();
        for &catalog_id in self.catalogs.keys() {
            batch.expire_impressions(catalog_id, before);
        }
        if !batch.is_empty() {
            if let Err(e) = self.store.write_unsynced(batch) {
                tracing::warn!(error = %e, "could not delete expired impressions");
            }
        }
    }
}
