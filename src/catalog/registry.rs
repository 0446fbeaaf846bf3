//! The set of catalogs: creation, deletion, lookup, and opening them all
//! at start (in the background, so `/healthz` answers while indexes build
//! and `/readyz` tells when they are done).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::analytics::Analytics;
use crate::catalog::IndexSource;
use crate::catalog::{Catalog, CatalogCounts};
use crate::config::{AnalyticsSettings, IndexSettings};
use crate::error::{Error, Result};
use crate::model::{CatalogConfig, CatalogName};
use crate::snapshot::SnapshotDir;
use crate::storage::codec::CatalogRecord;
use crate::storage::{Batch, Store};

enum Entry {
    Loading(CatalogRecord),
    Ready(Arc<Catalog>),
    Failed(CatalogRecord, String),
}

impl Entry {
    fn record(&self) -> CatalogRecord {
        match self {
            Entry::Loading(r) | Entry::Failed(r, _) => *r,
            Entry::Ready(c) => CatalogRecord {
                id: c.id,
                config: c.config,
            },
        }
    }
}

/// What [`Catalogs::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    AlreadyExisted,
}

/// A catalog's state as listed.
#[derive(Debug, Clone)]
pub enum CatalogStatus {
    Loading,
    Ready(CatalogCounts),
    Failed(String),
}

/// Every catalog of the store.
pub struct Catalogs {
    store: Arc<Store>,
    analytics: Arc<Analytics>,
    snapshots: SnapshotDir,
    settings: IndexSettings,
    entries: RwLock<BTreeMap<CatalogName, Entry>>,
    /// Serialises create and delete; holds the next catalog id.
    admin: Mutex<u32>,
    /// Held while a backup runs (one at a time).
    backup: Mutex<()>,
}

impl Catalogs {
    /// Reads the catalog list; every catalog starts `Loading` until
    /// [`Catalogs::load_all`] has built its index.
    pub fn open(
        store: Arc<Store>,
        settings: IndexSettings,
        analytics: AnalyticsSettings,
    ) -> Result<Catalogs> {
        let stored = store.catalogs()?;
        let next_id = store.next_catalog_id()?;
        let live: Vec<u32> = stored.iter().map(|(_, r)| r.id).collect();
        let snapshots = SnapshotDir::new(store.path());
        // Housekeeping writes; a read-only store keeps its leftovers.
        if store.read_only().is_none() {
            store.collect_orphans(&live, next_id)?;
            snapshots.remove_orphans(&live);
            crate::collaborative::file::ModelDir::new(store.path()).remove_orphans(&live);
        }
        let entries = stored
            .into_iter()
            .map(|(name, record)| (name, Entry::Loading(record)))
            .collect();
        let analytics = Analytics::start(Arc::clone(&store), analytics)?;
        Ok(Catalogs {
            analytics,
            store,
            snapshots,
            settings,
            entries: RwLock::new(entries),
            admin: Mutex::new(next_id),
            backup: Mutex::new(()),
        })
    }

    /// Builds the index of every loading catalog (blocking).
    pub fn load_all(&self) {
        let loading: Vec<(CatalogName, CatalogRecord)> = self
            .entries
            .read()
            .iter()
            .filter_map(|(name, e)| match e {
                Entry::Loading(r) => Some((name.clone(), *r)),
                _ => None,
            })
            .collect();
        for (name, record) in loading {
            // A bug while opening one catalog (a panic in a dependency)
            // fails that catalog, visibly, instead of leaving it loading
            // forever.
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Catalog::open(
                    Arc::clone(&self.store),
                    self.snapshots.clone(),
                    name.clone(),
                    record.id,
                    record.config,
                    self.settings,
                    Arc::clone(&self.analytics),
                )
            }))
            .unwrap_or_else(|_| {
                Err(Error::Corruption {
                    what: format!("catalog {name}"),
                    reason: "opening the catalog panicked (see the log)".into(),
                })
            });
            let mut entries = self.entries.write();
            // The catalog may have been deleted (or re-created) meanwhile.
            let still_same =
                matches!(entries.get(&name), Some(Entry::Loading(r)) if r.id == record.id);
            if !still_same {
                continue;
            }
            let entry = match opened {
                Ok(catalog) => {
                    let catalog = Arc::new(catalog);
                    // A rebuilt index is snapshotted at once, so the next
                    // start (even after a crash) can skip the build.
                    if matches!(catalog.source(), IndexSource::Rebuilt { .. })
                        && catalog.counts().index.items > 0
                        && self.store.read_only().is_none()
                    {
                        catalog.spawn_snapshot(true);
                    }
                    Entry::Ready(catalog)
                }
                Err(e) => {
                    tracing::error!(catalog = %name, error = %e, "catalog failed to open");
                    Entry::Failed(record, e.to_string())
                }
            };
            entries.insert(name, entry);
        }
    }

    /// The catalogs not open yet, by name: `None` while loading, the
    /// reason when opening failed. Empty when every catalog is ready.
    pub fn not_ready(&self) -> Vec<(CatalogName, Option<String>)> {
        self.entries
            .read()
            .iter()
            .filter_map(|(name, e)| match e {
                Entry::Ready(_) => None,
                Entry::Loading(_) => Some((name.clone(), None)),
                Entry::Failed(_, reason) => Some((name.clone(), Some(reason.clone()))),
            })
            .collect()
    }

    /// Creates a catalog, or confirms an identical one exists.
    pub fn create(&self, name: &CatalogName, config: CatalogConfig) -> Result<Created> {
        let mut next_id = self.admin.lock();
        if let Some(entry) = self.entries.read().get(name) {
            let existing = entry.record().config;
            return match existing.difference(&config) {
                None => Ok(Created::AlreadyExisted),
                Some(difference) => Err(Error::CatalogConfigConflict {
                    name: name.to_string(),
                    difference,
                }),
            };
        }
        let id = *next_id;
        let record = CatalogRecord { id, config };
        let mut batch = Batch::new();
        batch.set_next_catalog_id(id + 1);
        batch.put_catalog(name, &record);
        self.store.commit(batch)?;
        *next_id = id + 1;
        let catalog = Catalog::open(
            Arc::clone(&self.store),
            self.snapshots.clone(),
            name.clone(),
            id,
            config,
            self.settings,
            Arc::clone(&self.analytics),
        )?;
        self.entries
            .write()
            .insert(name.clone(), Entry::Ready(Arc::new(catalog)));
        Ok(Created::New)
    }

    /// Deletes a catalog with all its items and users.
    pub fn delete(&self, name: &CatalogName) -> Result<()> {
        let _admin = self.admin.lock();
        let record = match self.entries.read().get(name) {
            Some(entry) => entry.record(),
            None => {
                return Err(Error::CatalogNotFound {
                    name: name.to_string(),
                })
            }
        };
        let mut batch = Batch::new();
        batch.delete_catalog(name, record.id);
        // The recorder forgets the catalog before its records go, so it
        // does not write them back (a straggler's would be an orphan,
        // collected at the next start).
        self.analytics.close_catalog(record.id);
        self.analytics.sync();
        self.store.commit(batch)?;
        self.entries.write().remove(name);
        self.snapshots.remove_catalog(record.id);
        crate::collaborative::file::ModelDir::new(self.store.path()).remove_catalog(record.id);
        Ok(())
    }

    /// An open catalog.
    pub fn get(&self, name: &str) -> Result<Arc<Catalog>> {
        let not_found = || Error::CatalogNotFound {
            name: name.to_string(),
        };
        let parsed = CatalogName::parse(name).map_err(|_| not_found())?;
        match self.entries.read().get(&parsed) {
            Some(Entry::Ready(c)) => Ok(Arc::clone(c)),
            Some(Entry::Loading(_)) => Err(Error::CatalogLoading {
                name: name.to_string(),
            }),
            Some(Entry::Failed(_, reason)) => Err(Error::Corruption {
                what: format!("catalog {name}"),
                reason: reason.clone(),
            }),
            None => Err(not_found()),
        }
    }

    /// The analytics recorder every catalog reports to.
    pub fn analytics(&self) -> &Arc<Analytics> {
        &self.analytics
    }

    /// Every catalog with its configuration and status, by name.
    pub fn list(&self) -> Vec<(CatalogName, CatalogConfig, CatalogStatus)> {
        self.entries
            .read()
            .iter()
            .map(|(name, e)| {
                let status = match e {
                    Entry::Loading(_) => CatalogStatus::Loading,
                    Entry::Ready(c) => CatalogStatus::Ready(c.counts()),
                    Entry::Failed(_, reason) => CatalogStatus::Failed(reason.clone()),
                };
                (name.clone(), e.record().config, status)
            })
            .collect()
    }

    /// The status of one catalog.
    pub fn status(&self, name: &str) -> Result<(CatalogConfig, CatalogStatus)> {
        let parsed = CatalogName::parse(name).map_err(|_| Error::CatalogNotFound {
            name: name.to_string(),
        })?;
        self.list()
            .into_iter()
            .find(|(n, _, _)| *n == parsed)
            .map(|(_, config, status)| (config, status))
            .ok_or_else(|| Error::CatalogNotFound {
                name: name.to_string(),
            })
    }

    /// The catalogs that are open (not loading, not failed).
    pub fn ready(&self) -> Vec<Arc<Catalog>> {
        self.entries
            .read()
            .values()
            .filter_map(|e| match e {
                Entry::Ready(c) => Some(Arc::clone(c)),
                _ => None,
            })
            .collect()
    }

    /// Runs `f` with catalogs neither created nor deleted and no index
    /// snapshot published by any catalog (each one's snapshot lock held),
    /// after refreshing every catalog's snapshot: what a consistent backup
    /// needs ([`crate::backup`]). Refuses while a catalog is loading.
    pub fn while_frozen<T>(
        &self,
        f: impl FnOnce(&Store, &[Arc<Catalog>]) -> Result<T>,
    ) -> Result<T> {
        let _admin = self.admin.lock();
        if let Some((name, _)) = self.not_ready().into_iter().next() {
            return Err(Error::CatalogLoading {
                name: name.to_string(),
            });
        }
        let ready = self.ready();
        for catalog in &ready {
            // A fresh snapshot makes the restored store open with little to
            // replay; failing it only makes that replay longer.
            if let Err(e) = catalog.snapshot(true, false) {
                tracing::warn!(catalog = %catalog.name(), error = %e, "snapshot before a backup failed; the backup holds an older one");
            }
        }
        let _held: Vec<_> = ready.iter().map(|c| c.hold_snapshots()).collect();
        f(&self.store, &ready)
    }

    /// One backup at a time: held for a whole backup, from checking its
    /// name to renaming its folder. 409 `conflict` while one runs.
    pub fn lock_backups(&self) -> Result<parking_lot::MutexGuard<'_, ()>> {
        self.backup.try_lock().ok_or_else(|| Error::Conflict {
            field: "backup".into(),
            reason: "a backup is already running".into(),
        })
    }

    /// The store every catalog lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Snapshots every open catalog whose index changed since its last
    /// snapshot (called at shutdown, so the next start skips the builds).
    pub fn snapshot_all(&self) {
        if self.store.read_only().is_some() {
            return;
        }
        for catalog in self.ready() {
            if let Err(e) = catalog.snapshot(true, false) {
                tracing::error!(catalog = %catalog.name(), error = %e, "snapshot at shutdown failed; the next start rebuilds or replays more");
            }
        }
    }

    /// Stops the analytics recorder (it writes what it holds) and flushes
    /// the store (called at shutdown).
    pub fn flush(&self) -> Result<()> {
        self.analytics.shutdown();
        self.store.flush()
    }
}
