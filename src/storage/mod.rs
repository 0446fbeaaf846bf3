//! RocksDB, the source of truth. Owns column families, key layout
//! (`keys`), the value codec (`codec`) and the group-commit writer.
//!
//! Must not: know about HTTP, the graph, or ranking. Everything in memory
//! (`catalog`, `index`) is derived from what this module stores.

mod analytics;
pub mod codec;
pub mod keys;

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBWithThreadMode, Direction, IteratorMode,
    MultiThreaded, Options, WriteBatch, WriteBufferManager, WriteOptions,
};

use crate::error::{Error, Result};
use crate::model::{BehaviourSettings, CatalogConfig, CatalogName, Event, Item, User};
use codec::CatalogRecord;
use keys::{
    ALL_CFS, CF_CATALOGS, CF_CHANGES, CF_EVENTS, CF_EVENT_IDS, CF_ITEMS, CF_META, CF_USERS,
    NEXT_CATALOG_ID,
};

type Db = DBWithThreadMode<MultiThreaded>;

/// Most bytes merged into one synced write. Past this a group is cut so a
/// giant batch does not delay small writers behind it for long.
const MAX_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// One write to apply; built through [`Batch`], which owns the key layout.
enum Op {
    Put {
        cf: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: &'static str,
        key: Vec<u8>,
    },
    DeleteRange {
        cf: &'static str,
        from: Vec<u8>,
        to: Vec<u8>,
    },
}

/// A set of writes that become durable together or not at all.
#[derive(Default)]
pub struct Batch {
    ops: Vec<Op>,
    bytes: usize,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    fn push(&mut self, op: Op) {
        self.bytes += match &op {
            Op::Put { key, value, .. } => key.len() + value.len(),
            Op::Delete { key, .. } => key.len(),
            Op::DeleteRange { from, to, .. } => from.len() + to.len(),
        };
        self.ops.push(op);
    }

    pub fn put_item(&mut self, catalog_id: u32, config: &CatalogConfig, item: &Item) {
        self.push(Op::Put {
            cf: CF_ITEMS,
            key: keys::record_key(catalog_id, &item.id),
            value: codec::encode_item(item, config.vector_type),
        });
    }

    pub fn delete_item(&mut self, catalog_id: u32, id: &str) {
        self.push(Op::Delete {
            cf: CF_ITEMS,
            key: keys::record_key(catalog_id, id),
        });
    }

    pub fn put_user(&mut self, catalog_id: u32, config: &CatalogConfig, user: &User) {
        self.push(Op::Put {
            cf: CF_USERS,
            key: keys::record_key(catalog_id, &user.id),
            value: codec::encode_user(user, config.vector_type),
        });
    }

    pub fn delete_user(&mut self, catalog_id: u32, id: &str) {
        self.push(Op::Delete {
            cf: CF_USERS,
            key: keys::record_key(catalog_id, id),
        });
    }

    pub fn put_catalog(&mut self, name: &CatalogName, record: &CatalogRecord) {
        self.push(Op::Put {
            cf: CF_CATALOGS,
            key: name.as_str().as_bytes().to_vec(),
            value: codec::encode_catalog(record),
        });
    }

    pub fn set_next_catalog_id(&mut self, next: u32) {
        self.push(Op::Put {
            cf: CF_META,
            key: NEXT_CATALOG_ID.to_vec(),
            value: next.to_le_bytes().to_vec(),
        });
    }

    /// Stores an event (and its client id, for deduplication).
    pub fn put_event(&mut self, catalog_id: u32, event: &Event, unique: u64) {
        self.push(Op::Put {
            cf: CF_EVENTS,
            key: keys::event_key(catalog_id, &event.user_id, event.timestamp_ms, unique),
            value: codec::encode_event(event),
        });
        if let Some(event_id) = &event.event_id {
            self.push(Op::Put {
                cf: CF_EVENT_IDS,
                key: keys::record_key(catalog_id, event_id),
                value: Vec::new(),
            });
        }
    }

    /// Stores a catalog's behaviour settings.
    pub fn put_behaviour(&mut self, catalog_id: u32, settings: &BehaviourSettings) {
        self.push(Op::Put {
            cf: CF_META,
            key: keys::behaviour_key(catalog_id),
            value: codec::encode_behaviour(settings),
        });
    }

    /// Records that change number `change` of the catalog touched `ids`
    /// (in the same atomic batch as the change itself).
    pub fn log_change(&mut self, catalog_id: u32, change: u64, ids: &[&str]) {
        self.push(Op::Put {
            cf: CF_CHANGES,
            key: keys::change_key(catalog_id, change),
            value: codec::encode_change(ids),
        });
    }

    /// Records the change number the catalog's index snapshot reflects and
    /// drops the change log up to it (the snapshot covers it).
    pub fn set_watermark(&mut self, catalog_id: u32, watermark: u64) {
        self.push(Op::Put {
            cf: CF_META,
            key: keys::watermark_key(catalog_id),
            value: watermark.to_le_bytes().to_vec(),
        });
        if let Some(end) = watermark.checked_add(1) {
            self.push(Op::DeleteRange {
                cf: CF_CHANGES,
                from: keys::change_key(catalog_id, 0),
                to: keys::change_key(catalog_id, end),
            });
        }
    }

    /// Deletes the catalog record and every item and user of the catalog.
    pub fn delete_catalog(&mut self, name: &CatalogName, catalog_id: u32) {
        self.push(Op::Delete {
            cf: CF_CATALOGS,
            key: name.as_str().as_bytes().to_vec(),
        });
        self.delete_catalog_records(catalog_id);
    }

    /// Deletes every record (items, users, change log, watermark) of a
    /// catalog id; its catalog entry is left alone.
    pub fn delete_catalog_records(&mut self, catalog_id: u32) {
        for cf in keys::CATALOG_CFS {
            let (from, to) = keys::catalog_range(catalog_id);
            self.push(Op::DeleteRange { cf, from, to });
        }
        self.push(Op::Delete {
            cf: CF_META,
            key: keys::watermark_key(catalog_id),
        });
        self.push(Op::Delete {
            cf: CF_META,
            key: keys::behaviour_key(catalog_id),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of keys and values in the batch.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

struct CommitRequest {
    batch: Batch,
    done: mpsc::SyncSender<Result<(), rocksdb::Error>>,
}

/// What kind of failure a RocksDB error is, for the operator and the
/// client: a full disk and a read-only file system need different action
/// than a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    DiskFull,
    ReadOnly,
    Other,
}

/// Classifies a RocksDB error by the OS error it carries (RocksDB reports
/// errno as text: "No space left on device", "Read-only file system").
pub fn fault(e: &rocksdb::Error) -> Fault {
    let message = e.to_string();
    if message.contains("No space left on device") || message.contains("Disk quota exceeded") {
        Fault::DiskFull
    } else if message.contains("Read-only file system") || message.contains("Permission denied") {
        Fault::ReadOnly
    } else {
        Fault::Other
    }
}

/// RocksDB properties read by [`Store::stats`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    pub sst_bytes: u64,
    pub live_data_bytes: u64,
    pub memtable_bytes: u64,
    /// What the shared block cache holds, the memtables' reservations
    /// included: stays within [`StoreOptions::memory_budget_bytes`].
    pub block_cache_bytes: u64,
    pub pending_compaction_bytes: u64,
    pub running_compactions: u64,
    pub running_flushes: u64,
    /// Background flush or compaction failures (a full disk shows here).
    pub background_errors: u64,
    /// RocksDB stopped writes (compaction far behind, or an error).
    pub write_stopped: bool,
    /// Bytes per second writes are slowed to (0: not slowed).
    pub delayed_write_rate: u64,
}

/// The store: a RocksDB database plus the thread that commits writes.
///
/// Durability: every [`Store::commit`] returns only after its batch is in
/// the WAL and the WAL is fsynced. Concurrent commits are grouped by one
/// writer thread into a single synced write (group commit): an fsync costs
/// ~3.7 ms here, one synced batch of 1,000 items ~4 ms, so grouping keeps
/// durable throughput high under load. The writer applies requests in the
/// order they were submitted, which `catalog` relies on for ordering.
pub struct Store {
    db: Arc<Db>,
    path: std::path::PathBuf,
    /// `None` while dropping, and for a read-only store.
    queue: Option<mpsc::Sender<CommitRequest>>,
    writer: Option<thread::JoinHandle<()>>,
    /// Set when the data directory could only be opened read-only.
    read_only: Option<String>,
    /// The last commit's error, until a commit succeeds again.
    last_failure: Arc<parking_lot::Mutex<Option<String>>>,
    /// The one block cache every column family shares; the write buffers
    /// are charged to it too (see [`StoreOptions`]).
    cache: Cache,
}

/// How much memory RocksDB may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// One budget for the block cache and the write buffers (memtables)
    /// of every column family together. Without it each of the seven
    /// column families kept its own 32 MiB block cache and up to two
    /// 64 MiB memtables: ~1.1 GiB at worst, reached slowly, so a server
    /// under steady writes grew for hours (the soak's memtables went 30 →
    /// 84 MiB in 25 minutes). With it the memtables are flushed, largest
    /// first, once they hold half the budget, and their memory is charged
    /// to the cache, which evicts blocks to stay within the budget.
    pub memory_budget_bytes: usize,
    /// Click records older than this are dropped when RocksDB compacts
    /// them (a purchase can no longer be attributed to them).
    pub attribution_window_ms: i64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            memory_budget_bytes: crate::config::Defaults::ROCKSDB_MEMORY_MIB << 20,
            attribution_window_ms: crate::config::Defaults::ATTRIBUTION_WINDOW_SECS as i64 * 1000,
        }
    }
}

impl Drop for Store {
    /// Stops the commit thread and waits for it, so the database (and its
    /// lock file) is closed when the store is gone: a restart in the same
    /// process can open it again at once.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `path` with the default options.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens (or creates) the store in `path`.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        let cache = Cache::new_lru_cache(options.memory_budget_bytes);
        // allow_stall = false: past the budget RocksDB flushes, it does
        // not stop writers.
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            options.memory_budget_bytes / 2,
            false,
            cache.clone(),
        );
        opts.set_write_buffer_manager(&write_buffers);
        let mut tables = BlockBasedOptions::default();
        tables.set_block_cache(&cache);
        // Most point reads look for keys that are absent (an event id
        // seen for the first time, a new user or item). Once the store
        // outgrows memory, each would read a data block per level from
        // disk; ten bits a key answer "absent" from memory for 99 % of
        // them. While everything is cached it saves nothing
        // (BENCHMARKS.md, "Issue #6"). Index and filter blocks stay with
        // the table readers, outside `rocksdb_memory_mib` (~1.2 MiB of
        // filter per million keys), so lookups need not take the cache's
        // lock for them.
        tables.set_bloom_filter(10.0, false);
        let cfs = || {
            ALL_CFS.iter().map(|name| {
                let mut cf = Options::default();
                cf.set_block_based_table_factory(&tables);
                if *name == keys::CF_ANALYTICS {
                    // Expired click records go when RocksDB compacts them,
                    // not by a scan (see `analytics`).
                    let window = options.attribution_window_ms;
                    cf.set_compaction_filter(
                        "expired_clicks",
                        move |_level, key: &[u8], value: &[u8]| {
                            let expired = keys::is_click_key(key)
                                && codec::analytics::click_time(value).is_some_and(|at| {
                                    at < crate::model::analytics::now_ms() - window
                                });
                            if expired {
                                rocksdb::compaction_filter::Decision::Remove
                            } else {
                                rocksdb::compaction_filter::Decision::Keep
                            }
                        },
                    );
                }
                ColumnFamilyDescriptor::new(*name, cf)
            })
        };
        let db = match Db::open_cf_descriptors(&opts, path, cfs()) {
            Ok(db) => db,
            // A data directory on a read-only file system (a replica's
            // volume, a disk the kernel remounted read-only after errors)
            // is served read-only rather than not at all.
            Err(e) if fault(&e) == Fault::ReadOnly && path.join("CURRENT").is_file() => {
                let db = Db::open_cf_descriptors_read_only(&opts, path, cfs(), false)?;
                tracing::warn!(path = %path.display(), error = %e, "the data directory is read-only: serving reads, refusing every write with 503 read_only");
                return Ok(Store {
                    db: Arc::new(db),
                    path: path.to_path_buf(),
                    queue: None,
                    writer: None,
                    read_only: Some(e.to_string()),
                    last_failure: Arc::default(),
                    cache,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let db = Arc::new(db);
        let (queue, requests) = mpsc::channel::<CommitRequest>();
        let writer_db = Arc::clone(&db);
        let last_failure = Arc::new(parking_lot::Mutex::new(None));
        let writer_failure = Arc::clone(&last_failure);
        let writer = thread::Builder::new()
            .name("recstore-commit".into())
            .spawn(move || commit_loop(&writer_db, requests, &writer_failure))
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store {
            db,
            path: path.to_path_buf(),
            queue: Some(queue),
            writer: Some(writer),
            read_only: None,
            last_failure,
            cache,
        })
    }

    /// Why the store refuses writes, when it was opened read-only.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// The error of the last write, while writes fail (a full disk).
    pub fn write_failure(&self) -> Option<String> {
        self.last_failure.lock().clone()
    }

    fn writable(&self) -> Result<()> {
        match &self.read_only {
            None => Ok(()),
            Some(reason) => Err(Error::ReadOnly {
                reason: reason.clone(),
            }),
        }
    }

    /// The folder the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a RocksDB checkpoint (a consistent copy, hard-linked where
    /// the file system allows) into `path`, which must not exist.
    pub fn checkpoint(&self, path: &Path) -> Result<()> {
        // A checkpoint flushes the memtables first, which a read-only
        // database cannot: copy the data directory itself instead.
        self.writable()?;
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&*self.db)?;
        checkpoint.create_checkpoint(path)?;
        Ok(())
    }

    /// RocksDB's own figures that tell an operator whether the store keeps
    /// up, summed over the column families (for `/metrics`).
    pub fn stats(&self) -> StoreStats {
        let sum = |property: &str| -> u64 {
            ALL_CFS
                .iter()
                .filter_map(|name| self.db.cf_handle(name))
                .filter_map(|cf| self.db.property_int_value_cf(&cf, property).ok().flatten())
                .sum()
        };
        let db_wide = |property: &str| -> u64 {
            self.db
                .property_int_value(property)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        StoreStats {
            sst_bytes: sum("rocksdb.total-sst-files-size"),
            live_data_bytes: sum("rocksdb.estimate-live-data-size"),
            memtable_bytes: sum("rocksdb.cur-size-all-mem-tables"),
            block_cache_bytes: self.cache.get_usage() as u64,
            pending_compaction_bytes: sum("rocksdb.estimate-pending-compaction-bytes"),
            running_compactions: db_wide("rocksdb.num-running-compactions"),
            running_flushes: db_wide("rocksdb.num-running-flushes"),
            background_errors: db_wide("rocksdb.background-errors"),
            write_stopped: db_wide("rocksdb.is-write-stopped") != 0,
            delayed_write_rate: db_wide("rocksdb.actual-delayed-write-rate"),
        }
    }

    /// Hands `batch` to the commit thread and returns a receiver that
    /// reports when it is durable. Batches are written in submission order.
    pub fn submit(&self, batch: Batch) -> Result<mpsc::Receiver<Result<(), rocksdb::Error>>> {
        self.writable()?;
        let (done, wait) = mpsc::sync_channel(1);
        self.queue
            .as_ref()
            .ok_or(Error::ShuttingDown)?
            .send(CommitRequest { batch, done })
            .map_err(|_| Error::ShuttingDown)?;
        Ok(wait)
    }

    /// Writes `batch` with the WAL off, bypassing the commit thread: for
    /// the offline loader only, which writes records nobody can see yet
    /// and makes them durable with [`Store::flush`] before publishing them.
    pub fn write_without_wal(&self, batch: Batch) -> Result<()> {
        self.writable()?;
        let mut opts = WriteOptions::default();
        opts.disable_wal(true);
        let mut write = WriteBatch::default();
        for op in &batch.ops {
            apply_op(&self.db, &mut write, op);
        }
        self.db.write_opt(write, &opts)?;
        Ok(())
    }

    /// Writes `batch` durably (blocking).
    pub fn commit(&self, batch: Batch) -> Result<()> {
        let wait = self.submit(batch)?;
        wait_durable(wait)
    }

    fn cf(&self, name: &str) -> Arc<rocksdb::BoundColumnFamily<'_>> {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// The next catalog id to hand out.
    pub fn next_catalog_id(&self) -> Result<u32> {
        match self.db.get_cf(&self.cf(CF_META), NEXT_CATALOG_ID)? {
            None => Ok(1),
            Some(bytes) => {
                let raw: [u8; 4] = bytes.as_slice().try_into().map_err(|_| Error::Corruption {
                    what: "meta".into(),
                    reason: "next catalog id is not 4 bytes".into(),
                })?;
                Ok(u32::from_le_bytes(raw))
            }
        }
    }

    /// Every stored catalog.
    pub fn catalogs(&self) -> Result<Vec<(CatalogName, CatalogRecord)>> {
        let mut out = Vec::new();
        for entry in self
            .db
            .iterator_cf(&self.cf(CF_CATALOGS), IteratorMode::Start)
        {
            let (key, value) = entry?;
            let name = std::str::from_utf8(&key)
                .ok()
                .and_then(|s| CatalogName::parse(s).ok())
                .ok_or_else(|| Error::Corruption {
                    what: "catalog".into(),
                    reason: "invalid catalog name key".into(),
                })?;
            out.push((name, codec::decode_catalog(&value)?));
        }
        Ok(out)
    }

    /// Deletes records of catalog ids that no catalog owns any more (left by
    /// a write that raced a catalog deletion). Cheap: range tombstones.
    pub fn collect_orphans(&self, live_ids: &[u32], next_id: u32) -> Result<()> {
        let mut batch = Batch::new();
        for id in 1..next_id {
            if !live_ids.contains(&id) {
                batch.delete_catalog_records(id);
            }
        }
        if !batch.is_empty() {
            self.commit(batch)?;
        }
        Ok(())
    }

    /// The change number the catalog's index snapshot reflects, if one was
    /// ever recorded.
    pub fn watermark(&self, catalog_id: u32) -> Result<Option<u64>> {
        match self
            .db
            .get_cf(&self.cf(CF_META), keys::watermark_key(catalog_id))?
        {
            None => Ok(None),
            Some(bytes) => {
                let raw: [u8; 8] = bytes.as_slice().try_into().map_err(|_| Error::Corruption {
                    what: "meta".into(),
                    reason: "watermark is not 8 bytes".into(),
                })?;
                Ok(Some(u64::from_le_bytes(raw)))
            }
        }
    }

    /// The highest number among a catalog's entries in a column family
    /// keyed by [`keys::change_key`] (the change log, the event log), if
    /// any entry is left: one reverse seek.
    pub(crate) fn last_numbered(&self, cf: &str, catalog_id: u32) -> Result<Option<u64>> {
        let (_, to) = keys::catalog_range(catalog_id);
        let mut iter = self
            .db
            .iterator_cf(&self.cf(cf), IteratorMode::From(&to, Direction::Reverse));
        match iter.next() {
            Some(entry) => {
                let (key, _) = entry?;
                Ok(keys::split_change_key(&key)
                    .filter(|(id, _)| *id == catalog_id)
                    .map(|(_, n)| n))
            }
            None => Ok(None),
        }
    }

    /// The catalog's change-log entries numbered above `after`: the ids
    /// they touched (deduplicated, in first-seen order) and the highest
    /// change number in the log (whether above `after` or not).
    pub fn changes_after(&self, catalog_id: u32, after: u64) -> Result<ChangesAfter> {
        let mut out = ChangesAfter::default();
        let mut seen = std::collections::HashSet::new();
        let (_, to) = keys::catalog_range(catalog_id);
        let cf = self.cf(CF_CHANGES);
        // The last entry first: it bounds the numbers already used.
        out.last_change = self.last_numbered(CF_CHANGES, catalog_id)?;
        let Some(from) = after.checked_add(1) else {
            return Ok(out);
        };
        let from = keys::change_key(catalog_id, from);
        for entry in self
            .db
            .iterator_cf(&cf, IteratorMode::From(&from, Direction::Forward))
        {
            let (key, value) = entry?;
            if key.as_ref() >= to.as_slice() {
                break;
            }
            if keys::split_change_key(&key).is_none() {
                return Err(Error::Corruption {
                    what: "changes".into(),
                    reason: "change key is not 12 bytes".into(),
                });
            }
            out.entries += 1;
            for id in codec::decode_change(&value)? {
                if seen.insert(id.clone()) {
                    out.ids.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Calls `f` for each stored item of the catalog, in id order.
    pub fn for_each_item(
        &self,
        catalog_id: u32,
        config: &CatalogConfig,
        mut f: impl FnMut(Item),
    ) -> Result<()> {
        self.for_each_record(CF_ITEMS, catalog_id, |id, value| {
            f(codec::decode_item(id, value, config)?);
            Ok(())
        })
    }

    /// Calls `f` for each stored user of the catalog, in id order.
    pub fn for_each_user(
        &self,
        catalog_id: u32,
        config: &CatalogConfig,
        mut f: impl FnMut(User),
    ) -> Result<()> {
        self.for_each_record(CF_USERS, catalog_id, |id, value| {
            f(codec::decode_user(id, value, config)?);
            Ok(())
        })
    }

    /// Calls `f` with the id of each stored user of the catalog.
    pub fn for_each_user_id(&self, catalog_id: u32, mut f: impl FnMut(&str)) -> Result<()> {
        self.for_each_record(CF_USERS, catalog_id, |id, _| {
            f(id);
            Ok(())
        })
    }

    fn for_each_record(
        &self,
        cf: &str,
        catalog_id: u32,
        mut f: impl FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let (from, to) = keys::catalog_range(catalog_id);
        let iter = self
            .db
            .iterator_cf(&self.cf(cf), IteratorMode::From(&from, Direction::Forward));
        for entry in iter {
            let (key, value) = entry?;
            if key.as_ref() >= to.as_slice() {
                break;
            }
            let (_, id) = keys::split_record_key(&key).ok_or_else(|| Error::Corruption {
                what: cf.to_string(),
                reason: "record key is not utf-8".into(),
            })?;
            f(id, &value)?;
        }
        Ok(())
    }

    /// Whether an event with this client id was stored.
    pub fn has_event_id(&self, catalog_id: u32, event_id: &str) -> Result<bool> {
        Ok(self
            .db
            .get_pinned_cf(
                &self.cf(CF_EVENT_IDS),
                keys::record_key(catalog_id, event_id),
            )?
            .is_some())
    }

    /// Calls `f` for each stored event of the catalog (grouped by user, in
    /// time order within a user).
    pub fn for_each_event(&self, catalog_id: u32, mut f: impl FnMut(Event)) -> Result<()> {
        let (from, to) = keys::catalog_range(catalog_id);
        let iter = self.db.iterator_cf(
            &self.cf(CF_EVENTS),
            IteratorMode::From(&from, Direction::Forward),
        );
        for entry in iter {
            let (key, value) = entry?;
            if key.as_ref() >= to.as_slice() {
                break;
            }
            f(codec::decode_event(&value)?);
        }
        Ok(())
    }

    /// The newest `limit` events of one user, newest first.
    pub fn recent_events(
        &self,
        catalog_id: u32,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let (from, to) = keys::user_events_range(catalog_id, user_id);
        let iter = self.db.iterator_cf(
            &self.cf(CF_EVENTS),
            IteratorMode::From(&to, Direction::Reverse),
        );
        let mut out = Vec::new();
        for entry in iter {
            if out.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            if key.as_ref() < from.as_slice() {
                break;
            }
            out.push(codec::decode_event(&value)?);
        }
        Ok(out)
    }

    /// A catalog's behaviour settings, if they were ever set.
    pub fn behaviour(&self, catalog_id: u32) -> Result<Option<BehaviourSettings>> {
        match self
            .db
            .get_pinned_cf(&self.cf(CF_META), keys::behaviour_key(catalog_id))?
        {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode_behaviour(&bytes)?)),
        }
    }

    /// Reads one user.
    pub fn get_user(
        &self,
        catalog_id: u32,
        config: &CatalogConfig,
        id: &str,
    ) -> Result<Option<User>> {
        match self
            .db
            .get_pinned_cf(&self.cf(CF_USERS), keys::record_key(catalog_id, id))?
        {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode_user(id, &bytes, config)?)),
        }
    }

    /// Reads one item straight from RocksDB (tests and tools use it to
    /// check that memory agrees with disk).
    pub fn get_item(
        &self,
        catalog_id: u32,
        config: &CatalogConfig,
        id: &str,
    ) -> Result<Option<Item>> {
        match self
            .db
            .get_pinned_cf(&self.cf(CF_ITEMS), keys::record_key(catalog_id, id))?
        {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode_item(id, &bytes, config)?)),
        }
    }

    /// Flushes memtables so the next start replays little WAL.
    pub fn flush(&self) -> Result<()> {
        if self.read_only.is_some() {
            return Ok(());
        }
        for name in ALL_CFS {
            self.db.flush_cf(&self.cf(name))?;
        }
        Ok(())
    }
}

/// What [`Store::changes_after`] found.
#[derive(Debug, Default)]
pub struct ChangesAfter {
    /// Ids touched by the entries after the asked number.
    pub ids: Vec<String>,
    /// How many entries that was.
    pub entries: u64,
    /// The highest change number in the catalog's log.
    pub last_change: Option<u64>,
}

/// Blocks until a submitted batch is durable.
pub fn wait_durable(wait: mpsc::Receiver<Result<(), rocksdb::Error>>) -> Result<()> {
    match wait.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Storage(e)),
        Err(_) => Err(Error::ShuttingDown),
    }
}

fn apply_op(db: &Db, write: &mut WriteBatch, op: &Op) {
    match op {
        Op::Put { cf, key, value } => {
            write.put_cf(&db.cf_handle(cf).expect("cf exists"), key, value)
        }
        Op::Delete { cf, key } => write.delete_cf(&db.cf_handle(cf).expect("cf exists"), key),
        Op::DeleteRange { cf, from, to } => {
            write.delete_range_cf(&db.cf_handle(cf).expect("cf exists"), from, to)
        }
    }
}

fn commit_loop(
    db: &Db,
    requests: mpsc::Receiver<CommitRequest>,
    last_failure: &parking_lot::Mutex<Option<String>>,
) {
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        let mut bytes = group[0].batch.bytes;
        while bytes < MAX_GROUP_BYTES {
            match requests.try_recv() {
                Ok(next) => {
                    bytes += next.batch.bytes;
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let mut write = WriteBatch::default();
        for request in &group {
            for op in &request.batch.ops {
                apply_op(db, &mut write, op);
            }
        }
        let outcome = db.write_opt(write, &sync);
        match &outcome {
            Err(e) => {
                tracing::error!(error = %e, writes = group.len(), "group commit failed");
                *last_failure.lock() = Some(e.to_string());
            }
            Ok(()) => {
                if last_failure.lock().is_some() {
                    tracing::info!("writes succeed again");
                    *last_failure.lock() = None;
                }
            }
        }
        for request in group {
            // The submitter may have gone (its request was cancelled); the
            // write is durable either way.
            let _ = request.done.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Metric, VectorType};

    /// Writes `items` items of 384 f32 (1.5 KiB each) in synced batches of
    /// 500, as a writer that the flushes keep up with: each batch waits
    /// until no flush is pending or running, and the figures are read once
    /// the last one is done. RocksDB does not stall writers past the budget
    /// (`allow_stall` is off), so a writer faster than the disk grows the
    /// live memtable while the previous one is still being flushed; on a
    /// loaded machine that made the bound below depend on timing.
    fn write_items(store: &Store, items: usize) -> StoreStats {
        let config = CatalogConfig::new(384, Metric::L2, VectorType::F32, 4).unwrap();
        for start in (0..items).step_by(500) {
            let mut batch = Batch::new();
            for i in start..(start + 500).min(items) {
                let item = Item {
                    id: format!("item-{i}"),
                    vector: (0..384).map(|d| (i * 384 + d) as f32).collect(),
                    price: None,
                    category: None,
                    brand: None,
                    in_stock: true,
                    tags: Vec::new(),
                    explicit_tier: None,
                    attributes: Default::default(),
                };
                batch.put_item(1, &config, &item);
            }
            store.commit(batch).unwrap();
            settle(store);
        }
        store.stats()
    }

    /// Waits until no flush is pending or running. Pending is read first:
    /// a flush moves from pending to running, never back. The bound is
    /// generous for a loaded CI machine; it is not a timing.
    fn settle(store: &Store) {
        let pending = || -> u64 {
            ALL_CFS
                .iter()
                .filter_map(|name| store.db.cf_handle(name))
                .filter_map(|cf| {
                    store
                        .db
                        .property_int_value_cf(&cf, "rocksdb.mem-table-flush-pending")
                        .ok()
                        .flatten()
                })
                .sum()
        };
        for _ in 0..1200 {
            if pending() == 0 && store.stats().running_flushes == 0 {
                return;
            }
            thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("RocksDB's flushes did not finish in 60 s");
    }

    #[test]
    fn the_memory_budget_bounds_the_memtables() {
        // 20,000 items are ~31 MiB of memtable. Under an 8 MiB budget the
        // write buffers are flushed once they hold 4 MiB.
        let budget = 8 << 20;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            dir.path(),
            StoreOptions {
                memory_budget_bytes: budget,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let stats = write_items(&store, 20_000);
        assert!(
            stats.memtable_bytes <= budget as u64 / 2 + (1 << 20),
            "memtables hold {} bytes under a budget of {budget}",
            stats.memtable_bytes
        );
        assert!(
            stats.sst_bytes > 16 << 20,
            "the rest was flushed: {stats:?}"
        );
        assert!(stats.block_cache_bytes <= budget as u64 + (1 << 20));

        // The default budget keeps the same writes in memory: the bound
        // above comes from the budget, not from the data.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stats = write_items(&store, 20_000);
        assert!(stats.memtable_bytes > 16 << 20, "{stats:?}");
    }
}
