//! Configuration in two stages: raw values from flags, environment and an
//! optional TOML file are merged once into a validated [`Settings`]; the
//! rest of the program only ever sees `Settings`.
//!
//! Precedence, highest first: command-line flag, environment variable,
//! config file, built-in default. Every default lives in [`Defaults`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// Built-in defaults, in one place.
pub struct Defaults;

impl Defaults {
    pub const DATA_DIR: &'static str = "./data";
    pub const BACKUP_DIR: &'static str = "./backups";
    pub const LISTEN: &'static str = "127.0.0.1:7720";
    pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
    /// Items, users, events or ids in one JSON write. Bigger loads go
    /// through `items:bulk` (streamed) or `recstore load` (offline).
    pub const MAX_BATCH_ITEMS: usize = 10_000;
    /// Requests handled at once; one more is refused with 503 at once
    /// rather than queued (load shedding). At ~0.3 ms of CPU per search on
    /// 2 cores, 256 waiting requests are ~40 ms of queue: the latency
    /// stays bounded while the excess is told to come back.
    pub const MAX_IN_FLIGHT: usize = 256;
    /// A request still running after this many seconds is answered with
    /// 503 `timeout` (`items:bulk` streams are exempt).
    pub const REQUEST_TIMEOUT_SECS: u64 = 30;
    /// RocksDB's memory: block cache and write buffers together (half of
    /// it for the write buffers). Enough for a catalog of a few hundred
    /// thousand items to keep its hot blocks cached; reads of items are
    /// rare anyway, since the index holds every vector in memory.
    pub const ROCKSDB_MEMORY_MIB: usize = 128;
    pub const REBUILD_TOMBSTONE_RATIO: f64 = 0.20;
    /// Below this many tombstones a rebuild is never worth it.
    pub const REBUILD_MIN_TOMBSTONES: usize = 1_000;
    /// A background rebuild runs on idle CPU only for this many seconds
    /// (or until the dead points reach twice the trigger ratio); after
    /// that it competes with requests on half the cores, so a server
    /// saturated by requests still clears its dead points. The soak on 2
    /// vCPUs at 70 % of capacity rebuilt 20,000 128-d items on idle time
    /// in about two minutes (RELIABILITY.md); a million items take ~15
    /// CPU-minutes.
    pub const REBUILD_IDLE_SECS: u64 = 600;
    pub const MODEL_CHECK_SECS: u64 = 1;
    /// Filters matching at most this many items are answered by an exact
    /// scan instead of the graph. Measured crossover at 384-d f32 on the
    /// 2-core machine (BENCHMARKS.md, planner): exact 0.83 ms vs graph
    /// 1.22 ms at 2,000 matches, 1.14 ms vs 0.85 ms at 4,000. See
    /// ARCHITECTURE.md, "The filter planner".
    pub const EXACT_SCAN_THRESHOLD: usize = 3_000;
    /// A catalog snapshots its index once this many item changes have
    /// accumulated since the last snapshot (0: only at shutdown, after
    /// rebuilds and after loads)...
    pub const SNAPSHOT_MIN_CHANGES: u64 = 10_000;
    /// ...and at least this many seconds have passed since it: a snapshot
    /// holds writes back while the graph is dumped.
    pub const SNAPSHOT_MIN_INTERVAL_SECS: u64 = 60;
    /// 32, not hnsw_rs's usual 16: measured on the 1M x 128 synthetic set
    /// (BENCHMARKS.md, "Where #5's goals stand"), M 16 reaches recall@10
    /// 0.73 at ef_search 64 and 0.92 even at 512, M 32 0.95 at 64, for 13 %
    /// more build time and 4 % more memory; on 100k x 384, 0.999 vs 0.985
    /// at the same latency.
    pub const HNSW_M: usize = 32;
    pub const HNSW_EF_CONSTRUCTION: usize = 128;
    pub const HNSW_EF_SEARCH: usize = 64;
    /// A purchase without a `recommendation_id` is attributed to a click
    /// on the same item from a recommendation by the same user this long
    /// before it (README, "Attribution").
    pub const ATTRIBUTION_WINDOW_SECS: u64 = 24 * 3600;
    /// Impressions older than this are deleted (range deletes, hourly).
    pub const IMPRESSION_RETENTION_DAYS: u64 = 90;
    /// Impressions waiting for the recorder; past this they are dropped
    /// and counted (`recstore_impressions_dropped_total`), so logging
    /// never blocks an answer. ~1 KiB each at k 10.
    pub const IMPRESSION_QUEUE: usize = 65_536;
}

/// The `recstore` command line.
#[derive(Debug, Parser)]
#[command(
    name = "recstore",
    version,
    about = "A self-hosted recommendation store for online shops"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands of `recstore`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Bulk-load items, users or behaviour events from files into a catalog, offline (no
    /// server may hold the data directory). Exit code: 0 all loaded,
    /// 2 loaded with rejected rows (--skip-invalid), 1 failed (nothing
    /// changed).
    Load(LoadArgs),
    /// Restore a backup written by POST /v1/admin/backup into an empty (or
    /// new) data directory, offline; then start the server on it.
    Restore(RestoreArgs),
    /// Print the OpenAPI 3 document of the HTTP API (as served at
    /// /openapi.json and committed as openapi.json).
    Openapi,
}

/// Flags of `recstore restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup folder (holding BACKUP.json).
    #[arg(long)]
    pub from: PathBuf,
    /// Data directory to restore into; must not exist or be empty [default: ./data].
    #[arg(long, env = "RECSTORE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML config file (the server's): its data_dir applies.
    #[arg(long, env = "RECSTORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl RestoreArgs {
    /// The data directory, resolved exactly as `serve` resolves it.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        Ok(Settings::from_serve_args(ServeArgs {
            data_dir: self.data_dir.clone(),
            config: self.config.clone(),
            ..ServeArgs::default()
        })?
        .data_dir)
    }
}

/// Flags of `recstore load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Folder holding the RocksDB store [default: ./data].
    #[arg(long, env = "RECSTORE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML config file (the server's): its data_dir and hnsw_* settings apply.
    #[arg(long, env = "RECSTORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The catalog to load into.
    #[arg(long)]
    pub catalog: String,
    /// Create the catalog if it does not exist (needs --dimension and
    /// --metric, or --vectors learned).
    #[arg(long)]
    pub create: bool,
    /// supplied (items carry vectors) or learned (items come without;
    /// their vectors are learned from the events), for a created catalog
    /// [default: supplied].
    #[arg(long, requires = "create")]
    pub vectors: Option<String>,
    /// Vector dimension of a created catalog (with --vectors learned: the
    /// number of factors [default: 32]).
    #[arg(long, requires = "create")]
    pub dimension: Option<usize>,
    /// cosine, dot or l2, for a created catalog.
    #[arg(long, requires = "create")]
    pub metric: Option<String>,
    /// f32 or f16, for a created catalog [default: f32].
    #[arg(long, requires = "create")]
    pub vector_type: Option<String>,
    /// Price tiers of a created catalog [default: 4].
    #[arg(long, requires = "create")]
    pub price_tiers: Option<u8>,
    /// ndjson, csv, npy or fvecs; by default taken from each file's extension.
    #[arg(long)]
    pub format: Option<String>,
    /// For one .npy or .fvecs file: a CSV whose row i holds vector i's id
    /// and attributes (without it, ids are row numbers).
    #[arg(long)]
    pub meta: Option<PathBuf>,
    /// The files hold users instead of items.
    #[arg(long)]
    pub users: bool,
    /// The files hold behaviour events (NDJSON or CSV shaped like those of
    /// POST /events), e.g. a shop's order history: loaded in one atomic
    /// write, deduplicated by event_id, creating unknown users.
    #[arg(long, conflicts_with_all = ["users", "meta", "create"])]
    pub events: bool,
    /// Load the valid rows and list the invalid ones in --rejects,
    /// instead of stopping at the first invalid row with nothing loaded.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Where --skip-invalid lists rejected rows (NDJSON).
    #[arg(long, default_value = "rejects.ndjson")]
    pub rejects: PathBuf,
    /// HNSW links per node; must match the server's [default: 32].
    #[arg(long, env = "RECSTORE_HNSW_M")]
    pub hnsw_m: Option<usize>,
    /// HNSW build beam width; must match the server's [default: 128].
    #[arg(long, env = "RECSTORE_HNSW_EF_CONSTRUCTION")]
    pub hnsw_ef_construction: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bars (they are drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Input files (NDJSON, CSV, .npy, .fvecs; events: NDJSON, CSV).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Raw flags of `recstore serve`; every one is optional so that the
/// config file can fill what the command line leaves out.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Folder holding the RocksDB store [default: ./data].
    #[arg(long, env = "RECSTORE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Folder POST /v1/admin/backup writes backups into [default: ./backups].
    #[arg(long, env = "RECSTORE_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:7720].
    #[arg(long, env = "RECSTORE_LISTEN")]
    pub listen: Option<String>,
    /// TOML config file; its keys are the long flag names with underscores.
    #[arg(long, env = "RECSTORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Largest accepted request body in bytes [default: 67108864].
    #[arg(long, env = "RECSTORE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most items, users, events or ids in one JSON write [default: 10000].
    #[arg(long, env = "RECSTORE_MAX_BATCH_ITEMS")]
    pub max_batch_items: Option<usize>,
    /// Requests handled at once; beyond it, 503 `overloaded` [default: 256].
    #[arg(long, env = "RECSTORE_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Seconds before a request is answered with 503 `timeout` [default: 30].
    #[arg(long, env = "RECSTORE_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// MiB RocksDB may hold: block cache and write buffers together [default: 128].
    #[arg(long, env = "RECSTORE_ROCKSDB_MEMORY_MIB")]
    pub rocksdb_memory_mib: Option<usize>,
    /// Fraction of dead graph points that triggers a background rebuild [default: 0.2].
    #[arg(long, env = "RECSTORE_REBUILD_TOMBSTONE_RATIO")]
    pub rebuild_tombstone_ratio: Option<f64>,
    /// Minimum number of dead graph points before a rebuild is considered [default: 1000].
    #[arg(long, env = "RECSTORE_REBUILD_MIN_TOMBSTONES")]
    pub rebuild_min_tombstones: Option<usize>,
    /// Seconds a background rebuild runs on idle CPU only before it competes with requests (0: from the start) [default: 600].
    #[arg(long, env = "RECSTORE_REBUILD_IDLE_SECS")]
    pub rebuild_idle_secs: Option<u64>,
    /// Seconds between checks whether a catalog's collaborative model is due for retraining (0: only when asked, POST .../model/train) [default: 1].
    #[arg(long, env = "RECSTORE_MODEL_CHECK_SECS")]
    pub model_check_secs: Option<u64>,
    /// Filters matching at most this many items use an exact scan [default: 3000].
    #[arg(long, env = "RECSTORE_EXACT_SCAN_THRESHOLD")]
    pub exact_scan_threshold: Option<usize>,
    /// Item changes after which the index is snapshotted; 0 = only at shutdown and after rebuilds [default: 10000].
    #[arg(long, env = "RECSTORE_SNAPSHOT_MIN_CHANGES")]
    pub snapshot_min_changes: Option<u64>,
    /// Least seconds between two periodic snapshots of a catalog [default: 60].
    #[arg(long, env = "RECSTORE_SNAPSHOT_MIN_INTERVAL_SECS")]
    pub snapshot_min_interval_secs: Option<u64>,
    /// Seconds after a click from a recommendation within which the same user's purchase of the item is attributed to it [default: 86400].
    #[arg(long, env = "RECSTORE_ATTRIBUTION_WINDOW_SECS")]
    pub attribution_window_secs: Option<u64>,
    /// Days impressions are kept [default: 90].
    #[arg(long, env = "RECSTORE_IMPRESSION_RETENTION_DAYS")]
    pub impression_retention_days: Option<u64>,
    /// Impressions waiting to be written before new ones are dropped (and counted) [default: 65536].
    #[arg(long, env = "RECSTORE_IMPRESSION_QUEUE")]
    pub impression_queue: Option<usize>,
    /// HNSW links per node [default: 32].
    #[arg(long, env = "RECSTORE_HNSW_M")]
    pub hnsw_m: Option<usize>,
    /// HNSW beam width while building [default: 128].
    #[arg(long, env = "RECSTORE_HNSW_EF_CONSTRUCTION")]
    pub hnsw_ef_construction: Option<usize>,
    /// HNSW beam width while searching (raised to the fetch size) [default: 64].
    #[arg(long, env = "RECSTORE_HNSW_EF_SEARCH")]
    pub hnsw_ef_search: Option<usize>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "RECSTORE_LOG_JSON")]
    pub log_json: bool,
    /// Admin API key (every operation); with it set, requests without a
    /// key are refused. Prefer the environment variable to the flag: a
    /// flag shows in the process list.
    #[arg(long, env = "RECSTORE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Read-only API key (queries and GETs); needs an admin key.
    #[arg(long, env = "RECSTORE_READ_API_KEY", hide_env_values = true)]
    pub read_api_key: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "RECSTORE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "RECSTORE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

/// The config file's shape. Unknown keys are an error, so a typo is caught
/// at start rather than silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub backup_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub max_batch_items: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    pub rocksdb_memory_mib: Option<usize>,
    pub rebuild_tombstone_ratio: Option<f64>,
    pub rebuild_min_tombstones: Option<usize>,
    pub rebuild_idle_secs: Option<u64>,
    pub model_check_secs: Option<u64>,
    pub exact_scan_threshold: Option<usize>,
    pub snapshot_min_changes: Option<u64>,
    pub snapshot_min_interval_secs: Option<u64>,
    pub attribution_window_secs: Option<u64>,
    pub impression_retention_days: Option<u64>,
    pub impression_queue: Option<usize>,
    pub hnsw_m: Option<usize>,
    pub hnsw_ef_construction: Option<usize>,
    pub hnsw_ef_search: Option<usize>,
    pub log_json: Option<bool>,
    pub api_key: Option<String>,
    pub read_api_key: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// The API keys requests must carry; none configured: no check at all.
#[derive(Clone, Default, PartialEq)]
pub struct ApiKeys {
    /// Every operation.
    pub admin: Option<String>,
    /// Queries and reads only.
    pub read: Option<String>,
}

impl ApiKeys {
    /// Shortest key accepted: 16 characters of a random token resist
    /// guessing; shorter ones are likely placeholders like "secret".
    pub const MIN_LEN: usize = 16;

    pub fn enabled(&self) -> bool {
        self.admin.is_some()
    }

    fn validate(self) -> Result<ApiKeys, ConfigError> {
        for (key, value) in [("api_key", &self.admin), ("read_api_key", &self.read)] {
            if let Some(v) = value {
                if v.chars().count() < Self::MIN_LEN
                    || v.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(ConfigError::Invalid {
                        key,
                        reason: format!(
                            "must be at least {} characters, without spaces or control characters",
                            Self::MIN_LEN
                        ),
                    });
                }
            }
        }
        if self.read.is_some() && self.admin.is_none() {
            return Err(ConfigError::Invalid {
                key: "read_api_key",
                reason: "needs api_key (the admin key) too: otherwise nobody could write".into(),
            });
        }
        if self.read.is_some() && self.read == self.admin {
            return Err(ConfigError::Invalid {
                key: "read_api_key",
                reason: "must differ from api_key".into(),
            });
        }
        Ok(self)
    }
}

/// Never prints the keys themselves.
impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("admin", &self.admin.as_ref().map(|_| "<set>"))
            .field("read", &self.read.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// HNSW graph parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HnswSettings {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

/// Index maintenance and query planning knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexSettings {
    pub hnsw: HnswSettings,
    pub rebuild_tombstone_ratio: f64,
    pub rebuild_min_tombstones: usize,
    pub rebuild_idle_secs: u64,
    /// Seconds between retraining checks of the collaborative models; 0:
    /// never automatically.
    pub model_check_secs: u64,
    pub exact_scan_threshold: usize,
    pub snapshot_min_changes: u64,
    pub snapshot_min_interval_secs: u64,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            hnsw: HnswSettings {
                m: Defaults::HNSW_M,
                ef_construction: Defaults::HNSW_EF_CONSTRUCTION,
                ef_search: Defaults::HNSW_EF_SEARCH,
            },
            rebuild_tombstone_ratio: Defaults::REBUILD_TOMBSTONE_RATIO,
            rebuild_min_tombstones: Defaults::REBUILD_MIN_TOMBSTONES,
            rebuild_idle_secs: Defaults::REBUILD_IDLE_SECS,
            model_check_secs: Defaults::MODEL_CHECK_SECS,
            exact_scan_threshold: Defaults::EXACT_SCAN_THRESHOLD,
            snapshot_min_changes: Defaults::SNAPSHOT_MIN_CHANGES,
            snapshot_min_interval_secs: Defaults::SNAPSHOT_MIN_INTERVAL_SECS,
        }
    }
}

/// Impression logging and attribution (see `analytics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyticsSettings {
    pub attribution_window_ms: i64,
    pub impression_retention_ms: i64,
    pub impression_queue: usize,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            attribution_window_ms: Defaults::ATTRIBUTION_WINDOW_SECS as i64 * 1000,
            impression_retention_ms: Defaults::IMPRESSION_RETENTION_DAYS as i64 * 86_400_000,
            impression_queue: Defaults::IMPRESSION_QUEUE,
        }
    }
}

/// What one request may ask for and how long it may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch_items: usize,
    pub max_in_flight: usize,
    pub request_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: Defaults::MAX_BODY_BYTES,
            max_batch_items: Defaults::MAX_BATCH_ITEMS,
            max_in_flight: Defaults::MAX_IN_FLIGHT,
            request_timeout: std::time::Duration::from_secs(Defaults::REQUEST_TIMEOUT_SECS),
        }
    }
}

/// Validated server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub listen: SocketAddr,
    pub limits: Limits,
    pub index: IndexSettings,
    pub store: crate::storage::StoreOptions,
    pub analytics: AnalyticsSettings,
    pub log_json: bool,
    pub api_keys: ApiKeys,
    /// Serve HTTPS with these files.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Settings {
    /// Settings for a store in `data_dir` with every other value at its
    /// default, but backups in `data_dir/backups` (self-contained, for
    /// tests and embedding; a real deployment keeps backups elsewhere).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir: PathBuf = data_dir.into();
        Settings {
            backup_dir: data_dir.join("backups"),
            data_dir,
            listen: Defaults::LISTEN
                .parse()
                .expect("default listen address parses"),
            limits: Limits::default(),
            index: IndexSettings::default(),
            store: crate::storage::StoreOptions::default(),
            analytics: AnalyticsSettings::default(),
            log_json: false,
            api_keys: ApiKeys::default(),
            tls: None,
        }
    }

    /// Merges flags (which already include the environment) with the config
    /// file they name, and validates the result.
    pub fn from_serve_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_config_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(Defaults::DATA_DIR));
        let backup_dir = args
            .backup_dir
            .or(file.backup_dir)
            .unwrap_or_else(|| PathBuf::from(Defaults::BACKUP_DIR));
        let listen_raw = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| Defaults::LISTEN.to_string());
        let listen: SocketAddr = listen_raw.parse().map_err(|_| ConfigError::Invalid {
            key: "listen",
            reason: format!("{listen_raw:?} is not an address such as 127.0.0.1:7720"),
        })?;
        let max_body_bytes = args
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(Defaults::MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "max_body_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        let max_batch_items = args
            .max_batch_items
            .or(file.max_batch_items)
            .unwrap_or(Defaults::MAX_BATCH_ITEMS);
        let max_in_flight = args
            .max_in_flight
            .or(file.max_in_flight)
            .unwrap_or(Defaults::MAX_IN_FLIGHT);
        let request_timeout_secs = args
            .request_timeout_secs
            .or(file.request_timeout_secs)
            .unwrap_or(Defaults::REQUEST_TIMEOUT_SECS);
        let rocksdb_memory_mib = args
            .rocksdb_memory_mib
            .or(file.rocksdb_memory_mib)
            .unwrap_or(Defaults::ROCKSDB_MEMORY_MIB);
        for (key, value, range) in [
            ("max_batch_items", max_batch_items as u64, 1..=10_000_000),
            ("max_in_flight", max_in_flight as u64, 1..=100_000),
            ("request_timeout_secs", request_timeout_secs, 1..=86_400),
            // Below 8 MiB the memtables would flush every few writes.
            ("rocksdb_memory_mib", rocksdb_memory_mib as u64, 8..=1 << 20),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("must be in {}..={}", range.start(), range.end()),
                });
            }
        }
        let rebuild_tombstone_ratio = args
            .rebuild_tombstone_ratio
            .or(file.rebuild_tombstone_ratio)
            .unwrap_or(Defaults::REBUILD_TOMBSTONE_RATIO);
        if !(rebuild_tombstone_ratio > 0.0 && rebuild_tombstone_ratio <= 1.0) {
            return Err(ConfigError::Invalid {
                key: "rebuild_tombstone_ratio",
                reason: "must be in (0, 1]".into(),
            });
        }
        let rebuild_min_tombstones = args
            .rebuild_min_tombstones
            .or(file.rebuild_min_tombstones)
            .unwrap_or(Defaults::REBUILD_MIN_TOMBSTONES);
        let rebuild_idle_secs = args
            .rebuild_idle_secs
            .or(file.rebuild_idle_secs)
            .unwrap_or(Defaults::REBUILD_IDLE_SECS);
        let model_check_secs = args
            .model_check_secs
            .or(file.model_check_secs)
            .unwrap_or(Defaults::MODEL_CHECK_SECS);
        let exact_scan_threshold = args
            .exact_scan_threshold
            .or(file.exact_scan_threshold)
            .unwrap_or(Defaults::EXACT_SCAN_THRESHOLD);
        let snapshot_min_changes = args
            .snapshot_min_changes
            .or(file.snapshot_min_changes)
            .unwrap_or(Defaults::SNAPSHOT_MIN_CHANGES);
        let snapshot_min_interval_secs = args
            .snapshot_min_interval_secs
            .or(file.snapshot_min_interval_secs)
            .unwrap_or(Defaults::SNAPSHOT_MIN_INTERVAL_SECS);
        let attribution_window_secs = args
            .attribution_window_secs
            .or(file.attribution_window_secs)
            .unwrap_or(Defaults::ATTRIBUTION_WINDOW_SECS);
        if !(1..=365 * 86_400).contains(&attribution_window_secs) {
            return Err(ConfigError::Invalid {
                key: "attribution_window_secs",
                reason: "must be 1 to 31536000 (a year)".into(),
            });
        }
        let impression_retention_days = args
            .impression_retention_days
            .or(file.impression_retention_days)
            .unwrap_or(Defaults::IMPRESSION_RETENTION_DAYS);
        if !(1..=36_500).contains(&impression_retention_days) {
            return Err(ConfigError::Invalid {
                key: "impression_retention_days",
                reason: "must be 1 to 36500".into(),
            });
        }
        let impression_queue = args
            .impression_queue
            .or(file.impression_queue)
            .unwrap_or(Defaults::IMPRESSION_QUEUE);
        // 0 records no impression (each is dropped and counted): for a
        // node that only serves, and to measure what logging costs.
        if impression_queue > 10_000_000 {
            return Err(ConfigError::Invalid {
                key: "impression_queue",
                reason: "must be 0 to 10000000".into(),
            });
        }
        let m = args.hnsw_m.or(file.hnsw_m).unwrap_or(Defaults::HNSW_M);
        // hnsw_rs calls process::exit above 256 links; refuse it here instead.
        if !(4..=128).contains(&m) {
            return Err(ConfigError::Invalid {
                key: "hnsw_m",
                reason: "must be in 4..=128".into(),
            });
        }
        let ef_construction = args
            .hnsw_ef_construction
            .or(file.hnsw_ef_construction)
            .unwrap_or(Defaults::HNSW_EF_CONSTRUCTION);
        let ef_search = args
            .hnsw_ef_search
            .or(file.hnsw_ef_search)
            .unwrap_or(Defaults::HNSW_EF_SEARCH);
        for (key, value) in [
            ("hnsw_ef_construction", ef_construction),
            ("hnsw_ef_search", ef_search),
        ] {
            if !(1..=10_000).contains(&value) {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be in 1..=10000".into(),
                });
            }
        }
        Ok(Settings {
            data_dir,
            backup_dir,
            listen,
            limits: Limits {
                max_body_bytes,
                max_batch_items,
                max_in_flight,
                request_timeout: std::time::Duration::from_secs(request_timeout_secs),
            },
            index: IndexSettings {
                hnsw: HnswSettings {
                    m,
                    ef_construction,
                    ef_search,
                },
                rebuild_tombstone_ratio,
                rebuild_min_tombstones,
                rebuild_idle_secs,
                model_check_secs,
                exact_scan_threshold,
                snapshot_min_changes,
                snapshot_min_interval_secs,
            },
            store: crate::storage::StoreOptions {
                memory_budget_bytes: rocksdb_memory_mib << 20,
                attribution_window_ms: attribution_window_secs as i64 * 1000,
            },
            analytics: AnalyticsSettings {
                attribution_window_ms: attribution_window_secs as i64 * 1000,
                impression_retention_ms: impression_retention_days as i64 * 86_400_000,
                impression_queue,
            },
            log_json: args.log_json || file.log_json.unwrap_or(false),
            api_keys: ApiKeys {
                admin: args.api_key.or(file.api_key),
                read: args.read_api_key.or(file.read_api_key),
            }
            .validate()?,
            tls: match (
                args.tls_cert.or(file.tls_cert),
                args.tls_key.or(file.tls_key),
            ) {
                (None, None) => None,
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (Some(_), None) => {
                    return Err(ConfigError::Invalid {
                        key: "tls_key",
                        reason: "tls_cert needs tls_key (the certificate's private key)".into(),
                    })
                }
                (None, Some(_)) => {
                    return Err(ConfigError::Invalid {
                        key: "tls_cert",
                        reason: "tls_key needs tls_cert (the certificate chain)".into(),
                    })
                }
            },
        })
    }
}

fn read_config_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        path: path.to_path_buf(),
        reason: source.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}
