//! recstore: a self-hosted recommendation store for online shops.
//!
//! The map (see ARCHITECTURE.md for the invariants):
//! - [`config`]: flags, environment and config file -> validated [`config::Settings`].
//! - [`server`]: the lifecycle; [`server::run`] serves on a bound listener.
//! - [`api`]: HTTP API v1: handlers, wire types, the one error -> status mapping.
//! - [`catalog`]: a catalog = stored records + in-memory index; the write path.
//! - [`index`]: slots, vectors, the HNSW graph, the attribute index, the filter planner.
//! - [`load`]: the offline bulk loader (`recstore load`).
//! - [`recommend`]: similar items and upsell over an index.
//! - [`snapshot`]: index snapshots on disk, written atomically and checksummed.
//! - [`storage`]: RocksDB, key layout, the versioned value codec, group commit.
//! - [`backup`]: consistent backups while serving, and restore.
//! - [`tls`]: optional HTTPS (rustls) under the same serve loop.
//! - [`error`]: the crate's error enum.

pub mod api;
pub mod backup;
pub mod catalog;
pub mod config;
pub mod error;
pub mod index;
pub mod load;
pub mod recommend;
pub mod server;
pub mod snapshot;
pub mod storage;
pub mod tls;

pub use error::{Error, Result};
