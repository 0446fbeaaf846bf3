//! recstore: a self-hosted recommendation store for online shops.
//!
//! The map (see ARCHITECTURE.md for the invariants):
//! - [`config`]: flags, environment and config file -> validated [`config::Settings`].
//! - [`server`]: the lifecycle; [`server::run`] serves on a bound listener.
//! - [`api`]: HTTP API v1: handlers, wire types, the one error -> status mapping.
//! - [`catalog`]: a catalog = stored records + in-memory index; the write path.
//! - [`collaborative`]: the item-item model learned from the events (EASE or item-kNN), the blend's fit data and iALS item factors, trained in the background.
//! - [`index`]: slots, vectors, the HNSW graph, the attribute index, the filter planner.
//! - [`load`]: the offline bulk loader (`recstore load`).
//! - [`recommend`]: similar items, upsell, personal picks, cross-sell and trending over an index, the behaviour state and the collaborative model.
//! - [`snapshot`]: index snapshots on disk, written atomically and checksummed.
//! - [`storage`]: RocksDB, key layout, the versioned value codec, group commit.
//! - [`backup`]: consistent backups while serving, and restore.
//! - [`tls`]: optional HTTPS (rustls) under the same serve loop.
//! - [`model`]: the domain types (catalog configuration, items, users, events, settings) every layer may use.
//! - [`error`]: the crate's error enum.

pub mod analytics;
pub mod api;
pub mod backup;
pub mod behaviour;
pub mod catalog;
pub mod collaborative;
pub mod config;
pub mod engagement;
pub mod error;
pub mod experiments;
pub mod index;
pub mod load;
pub mod model;
pub mod recommend;
pub mod server;
pub mod snapshot;
pub mod storage;
#[cfg(test)]
mod testing;
pub mod tls;

pub use error::{Error, Result};

/// jemalloc for every allocation the Rust code makes, in every binary
/// built on this library (the tests too, so `/metrics`' heap figures are
/// the same in them). glibc's malloc made the soak's memory climb and
/// stall: it keeps freed memory in up to 8 arenas per core, so RSS rose
/// after each rebuild (two graphs exist until the swap), and handing it
/// back took `malloc_trim`, which walks every arena under its lock; run
/// from a rebuild's `SCHED_IDLE` thread, a lock holder could be preempted
/// while request threads waited on that arena. jemalloc serves most
/// calls from a per-thread cache without a lock, and its background
/// thread returns pages that stayed free for 10 s (its decay), so memory
/// falls back after a peak without anyone trimming. RocksDB's C++ code
/// still uses glibc's malloc; its memtables and block cache are bounded
/// by `rocksdb_memory_mib`, and `/metrics` reports both heaps.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
