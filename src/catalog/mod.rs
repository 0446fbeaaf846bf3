//! A catalog: its stored records (through `storage`), its in-memory index
//! (`index`), and its users. The write path lives here and only here:
//! validate -> commit durably (grouped) -> apply to memory in commit order
//! -> schedule a background rebuild when tombstones pile up.
//!
//! Locking: `state` is a `parking_lot::RwLock` (a std-style blocking lock,
//! never held across `.await`; callers run on blocking threads). Searches
//! hold the read lock for the search; writers take the write lock only to
//! publish a change, after the slow parts (fsync, graph insertion) are done.

pub mod model;
pub mod registry;
pub mod sequencer;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::config::IndexSettings;
use crate::error::{Error, Result};
use crate::index::filter::Filter;
use crate::index::{Hit, IndexCounts, IndexState, ItemView, Plan};
use crate::storage::{wait_durable, Batch, Store};
use model::{CatalogConfig, CatalogName, Item, User};
use sequencer::Sequencer;

/// Counts shown by `GET /v1/catalogs/{catalog}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogCounts {
    pub index: IndexCounts,
    pub users: u64,
    pub rebuilds: u64,
    pub rebuilding: bool,
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
    rebuilds: AtomicU64,
}

impl Catalog {
    /// Opens a catalog, building its index from the store.
    pub fn open(
        store: Arc<Store>,
        name: CatalogName,
        id: u32,
        config: CatalogConfig,
        settings: IndexSettings,
    ) -> Result<Catalog> {
        let started = Instant::now();
        let mut items = Vec::new();
        store.for_each_item(id, &config, |item| items.push(item))?;
        let mut users = HashSet::new();
        store.for_each_user_id(id, |u| {
            users.insert(u.to_string());
        })?;
        let n = items.len();
        let state = IndexState::build(config, settings, items);
        tracing::info!(catalog = %name, items = n, users = users.len(), seconds = started.elapsed().as_secs_f64(), "catalog index built");
        Ok(Catalog {
            name,
            id,
            config,
            settings,
            store,
            state: RwLock::new(state),
            users: Mutex::new(users),
            sequencer: Sequencer::default(),
            rebuilding: AtomicBool::new(false),
            rebuilds: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &CatalogName {
        &self.name
    }

    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    pub fn counts(&self) -> CatalogCounts {
        CatalogCounts {
            index: self.state.read().counts(),
            users: self.users.lock().len() as u64,
            rebuilds: self.rebuilds.load(Ordering::Relaxed),
            rebuilding: self.rebuilding.load(Ordering::Relaxed),
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
        let (ticket, durable) = self.sequencer.submit(&self.store, batch)?;
        let committed = wait_durable(durable);
        let _turn = self.sequencer.wait_turn(ticket);
        committed?;
        let prepared = self.state.read().prepare_upsert(items);
        // Graph insertion is the slow part: done without the write lock.
        // Searches that meet the new points before publishing skip them.
        let graph = self.state.read().graph();
        graph.insert(&prepared.new_points());
        self.state.write().publish_upsert(prepared);
        drop(_turn);
        self.maybe_rebuild();
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
        let (ticket, durable) = self.sequencer.submit(&self.store, batch)?;
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
        let (ticket, durable) = self.sequencer.submit(&self.store, batch)?;
        let committed = wait_durable(durable);
        let _turn = self.sequencer.wait_turn(ticket);
        committed?;
        let mut known = self.users.lock();
        for user in users {
            known.insert(user.id);
        }
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
        let _turn = self.sequencer.wait_turn(ticket);
        committed?;
        self.users.lock().remove(id);
        Ok(())
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
                catalog.rebuild();
                catalog.rebuilding.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::error!(catalog = %self.name, error = %e, "could not start a rebuild thread");
            self.rebuilding.store(false, Ordering::Release);
            return false;
        }
        true
    }

    /// Builds a compact index from a snapshot while queries and writes go
    /// on, catches up with writes made meanwhile, and swaps it in.
    fn rebuild(&self) {
        let started = Instant::now();
        let snapshot = self.state.read().snapshot();
        let n = snapshot.len();
        let mut fresh = IndexState::build_from_snapshot(self.config, self.settings, snapshot);
        // Take a turn so no write applies between catching up and swapping.
        let turn = self.sequencer.wait_turn(self.sequencer.ticket());
        let catch_up = fresh.catch_up_with(&self.state.read());
        fresh.graph().insert(&catch_up.new_points());
        fresh.publish_upsert(catch_up);
        *self.state.write() = fresh;
        drop(turn);
        self.rebuilds.fetch_add(1, Ordering::Relaxed);
        tracing::info!(catalog = %self.name, items = n, seconds = started.elapsed().as_secs_f64(), "index rebuilt");
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
                    if view.meta.to_item(state.vector(view.slot)) != item {
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
