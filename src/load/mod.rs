//! `recstore load`: the offline bulk loader.
//!
//! It runs against a data directory no server holds (RocksDB's lock file
//! says so) and loads a whole set of files as **one new generation** of
//! the catalog, so that an interrupted load is never half-visible:
//!
//! 1. read and validate every input row (the API's own validation); by
//!    default stop at the first bad row with nothing written;
//! 2. reserve a fresh catalog id (the generation) in RocksDB;
//! 3. write the catalog's current records merged with the input (upsert:
//!    the input wins) under that id, with the WAL off in large batches,
//!    then flush, so the SST files are durable;
//! 4. build the HNSW graph over all items on every core and write its
//!    snapshot (watermark 0: no change after it);
//! 5. in one synced RocksDB batch, point the catalog's name at the new id,
//!    record the snapshot's watermark, and drop the old generation.
//!
//! Until step 5 the catalog is exactly as before; a load killed earlier
//! leaves records and a snapshot under an id no catalog owns, which the
//! next open of the store deletes (`collect_orphans`). Re-running a load
//! gives the same catalog (upsert semantics). The catalog's behaviour
//! events and settings move to the new generation with its records.
//!
//! **Events** (`--events`: NDJSON lines or CSV rows shaped like the
//! events of `POST /events`) are not a generation: they are validated
//! like the API's, deduplicated by `event_id` (within the input and
//! against the store), and written with the users they create in one
//! synced RocksDB batch, so a load of history is all or nothing. The whole
//! input is held in memory: split histories of many millions of events
//! into several loads.

pub mod input;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::api::models::{EventWire, ItemWire, UserWire};
use crate::config::{ConfigError, IndexSettings, LoadArgs, ServeArgs, Settings};
use crate::error::Error;
use crate::index::IndexState;
use crate::model::{CatalogConfig, CatalogName, Event, Item, User};
use crate::snapshot::{SnapshotDir, SnapshotError};
use crate::storage::codec::CatalogRecord;
use crate::storage::{Batch, Store};
use input::{read_file, Record};
pub use input::{Format, Location, Rejection};

/// Bytes per unlogged write batch.
const WRITE_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// What to load, and how.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub data_dir: PathBuf,
    pub catalog: CatalogName,
    /// Create the catalog with this configuration if it does not exist
    /// (if it does, the configuration must be the same).
    pub create: Option<CatalogConfig>,
    pub files: Vec<PathBuf>,
    /// Overrides the format taken from each file's extension.
    pub format: Option<Format>,
    /// For `.npy`/`.fvecs` input: a CSV whose row i holds vector i's id
    /// and attributes.
    pub meta: Option<PathBuf>,
    /// The files hold users rather than items.
    pub users: bool,
    /// The files hold behaviour events.
    pub events: bool,
    /// Load the good rows and list the bad ones in `rejects`, instead of
    /// stopping at the first bad row.
    pub skip_invalid: bool,
    pub rejects: PathBuf,
    pub index: IndexSettings,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
}

impl LoadOptions {
    /// Validates `recstore load`'s flags into load options, with the data directory and
    /// graph settings resolved exactly as `serve` resolves them, so the
    /// server accepts the snapshot the load writes.
    pub fn from_args(args: LoadArgs) -> Result<LoadOptions, ConfigError> {
        use crate::model::{CatalogConfig, CatalogName, Metric, VectorType};
        let settings = Settings::from_serve_args(ServeArgs {
            data_dir: args.data_dir,
            config: args.config,
            hnsw_m: args.hnsw_m,
            hnsw_ef_construction: args.hnsw_ef_construction,
            ..ServeArgs::default()
        })?;
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid { key, reason };
        let catalog =
            CatalogName::parse(&args.catalog).map_err(|e| invalid("catalog", e.to_string()))?;
        let learned = match args.vectors.as_deref() {
            None | Some("supplied") => false,
            Some("learned") => true,
            Some(other) => {
                return Err(invalid(
                    "vectors",
                    format!("{other:?} is not supplied or learned"),
                ))
            }
        };
        let vector_type = match args.vector_type.as_deref() {
            None | Some("f32") => VectorType::F32,
            Some("f16") => VectorType::F16,
            Some(other) => {
                return Err(invalid(
                    "vector_type",
                    format!("{other:?} is not f32 or f16"),
                ))
            }
        };
        let create = if args.create && learned {
            if args.metric.as_deref().is_some_and(|m| m != "cosine") {
                return Err(invalid(
                    "metric",
                    "learned vectors are compared by cosine".into(),
                ));
            }
            Some(
                CatalogConfig::learned(
                    args.dimension
                        .unwrap_or(crate::model::DEFAULT_LEARNED_DIMENSION),
                    vector_type,
                    args.price_tiers.unwrap_or(4),
                )
                .map_err(|e| invalid("create", e.to_string()))?,
            )
        } else if args.create {
            let dimension = args
                .dimension
                .ok_or_else(|| invalid("dimension", "--create needs --dimension".into()))?;
            let metric = match args.metric.as_deref() {
                Some("cosine") => Metric::Cosine,
                Some("dot") => Metric::Dot,
                Some("l2") => Metric::L2,
                Some(other) => {
                    return Err(invalid(
                        "metric",
                        format!("{other:?} is not cosine, dot or l2"),
                    ))
                }
                None => return Err(invalid("metric", "--create needs --metric".into())),
            };
            Some(
                CatalogConfig::new(
                    dimension,
                    metric,
                    vector_type,
                    args.price_tiers.unwrap_or(4),
                )
                .map_err(|e| invalid("create", e.to_string()))?,
            )
        } else {
            None
        };
        let format = match args.format.as_deref() {
            None => None,
            Some(raw) => Some(Format::parse(raw).ok_or_else(|| {
                invalid(
                    "format",
                    format!("{raw:?} is not ndjson, csv, npy or fvecs"),
                )
            })?),
        };
        Ok(LoadOptions {
            data_dir: settings.data_dir,
            catalog,
            create,
            files: args.files,
            format,
            meta: args.meta,
            users: args.users,
            events: args.events,
            skip_invalid: args.skip_invalid,
            rejects: args.rejects,
            index: settings.index,
            progress: !args.no_progress,
        })
    }
}

/// Seconds spent in each phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseSeconds {
    pub read: f64,
    pub write: f64,
    pub graph: f64,
    pub snapshot: f64,
    pub total: f64,
}

/// What a load did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub catalog: String,
    /// The catalog id now holding the catalog's records.
    pub generation: u32,
    pub created: bool,
    /// `"items"`, `"users"` or `"events"`.
    pub kind: &'static str,
    /// Rows read from the input, good or bad.
    pub rows: u64,
    /// Distinct records loaded from the input (a repeated id counts once).
    pub loaded: u64,
    pub rejected: u64,
    /// Events whose `event_id` was already stored or repeated in the input.
    pub duplicates: u64,
    /// Users created because events named them first.
    pub new_users: u64,
    /// Distinct item ids of loaded events that the catalog does not hold.
    pub unknown_items: u64,
    /// Where the rejects were listed (with `--skip-invalid` and rejects).
    pub rejects_file: Option<PathBuf>,
    pub catalog_items: u64,
    pub catalog_users: u64,
    pub seconds: PhaseSeconds,
    /// Items indexed per second of the whole load.
    pub vectors_per_second: f64,
    pub snapshot_bytes: u64,
    /// The process's peak resident memory (Linux), bytes.
    pub peak_rss_bytes: Option<u64>,
}

/// Why a load failed. Nothing was changed in the catalog.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{dir} is in use by another process (a running server?): stop it, or load online with POST /v1/catalogs/{{catalog}}/items:bulk")]
    Busy { dir: PathBuf },
    #[error("{0}")]
    Usage(String),
    #[error("bad input, nothing loaded: {0} (use --skip-invalid to load the other rows)")]
    Rejected(Rejection),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] Error),
    #[error("writing the index snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Runs a load; see the module documentation.
pub fn run(opts: &LoadOptions) -> Result<LoadSummary, LoadError> {
    let started = Instant::now();
    let mut seconds = PhaseSeconds::default();
    if opts.files.is_empty() {
        return Err(LoadError::Usage("no input files".into()));
    }
    let mut formats = Vec::new();
    for file in &opts.files {
        let format = opts.format.or_else(|| Format::from_path(file)).ok_or_else(|| {
            LoadError::Usage(format!(
                "cannot tell the format of {} from its extension; pass --format ndjson|csv|npy|fvecs",
                file.display()
            ))
        })?;
        formats.push(format);
    }
    if opts.meta.is_some() {
        let binary = formats
            .iter()
            .filter(|f| matches!(f, Format::Npy | Format::Fvecs))
            .count();
        if binary != 1 || opts.files.len() != 1 {
            return Err(LoadError::Usage(
                "--meta describes the rows of exactly one .npy or .fvecs file".into(),
            ));
        }
    }

    let store = open_store(&opts.data_dir)?;
    let snapshots = SnapshotDir::new(&opts.data_dir);
    let stored = store.catalogs()?;
    let next_id = store.next_catalog_id()?;
    let live: Vec<u32> = stored.iter().map(|(_, r)| r.id).collect();
    // Left by an interrupted load (or a raced delete): never visible, so
    // safe to drop now.
    store.collect_orphans(&live, next_id)?;
    snapshots.remove_orphans(&live);
    crate::collaborative::file::ModelDir::new(&opts.data_dir).remove_orphans(&live);
    let existing = stored
        .iter()
        .find(|(name, _)| *name == opts.catalog)
        .map(|(_, r)| *r);
    let config = match (existing, opts.create) {
        (Some(record), None) => record.config,
        (Some(record), Some(wanted)) => match record.config.difference(&wanted) {
            None => record.config,
            Some(difference) => {
                return Err(LoadError::Usage(format!(
                    "catalog {} exists with a different configuration: {difference}",
                    opts.catalog
                )))
            }
        },
        (None, Some(wanted)) => wanted,
        (None, None) => {
            return Err(LoadError::Usage(format!(
                "catalog {} does not exist; create it with --create --dimension D --metric cosine|dot|l2 [--vector-type f32|f16]",
                opts.catalog
            )))
        }
    };
    if opts.events {
        let Some(record) = existing else {
            return Err(LoadError::Usage(format!(
                "catalog {} does not exist; load its items first",
                opts.catalog
            )));
        };
        return load_events(opts, &formats, &store, record, started);
    }

    // 1. Read and validate.
    let read_started = Instant::now();
    let total_bytes: u64 = opts
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress_bar(opts.progress, total_bytes, "reading", true);
    let mut input = Input::default();
    for (file, format) in opts.files.iter().zip(&formats) {
        if opts.users {
            read_records::<UserWire>(opts, file, *format, &config, &bar, &mut input, |w, c| {
                w.into_user_at("", c).map(Loaded::User)
            })?;
        } else {
            read_records::<ItemWire>(opts, file, *format, &config, &bar, &mut input, |w, c| {
                w.into_item_at("", c).map(Loaded::Item)
            })?;
        }
        if let Some(first) = input.rejects.first() {
            if !opts.skip_invalid {
                bar.finish_and_clear();
                return Err(LoadError::Rejected(first.clone()));
            }
        }
    }
    bar.finish_and_clear();
    seconds.read = read_started.elapsed().as_secs_f64();
    let rejects_file = if input.rejects.is_empty() {
        None
    } else {
        write_rejects(&opts.rejects, &input.rejects)?;
        Some(opts.rejects.clone())
    };

    // 2. Reserve the new generation's id.
    let generation = next_id;
    let mut reserve = Batch::new();
    reserve.set_next_catalog_id(generation + 1);
    store.commit(reserve)?;

    // 3. Merge with the current records and write them, WAL off.
    let write_started = Instant::now();
    let mut items: HashMap<String, Item> = HashMap::new();
    let mut users: HashMap<String, User> = HashMap::new();
    if let Some(record) = existing {
        store.for_each_item(record.id, &config, |item| {
            items.insert(item.id.clone(), item);
        })?;
        store.for_each_user(record.id, &config, |user| {
            users.insert(user.id.clone(), user);
        })?;
    }
    let loaded = input.records.len() as u64;
    for record in input.records.into_values() {
        match record {
            Loaded::Item(item) => {
                items.insert(item.id.clone(), item);
            }
            Loaded::User(user) => {
                users.insert(user.id.clone(), user);
            }
        }
    }
    let mut items: Vec<Item> = items.into_values().collect();
    items.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let mut users: Vec<User> = users.into_values().collect();
    users.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let bar = progress_bar(
        opts.progress,
        (items.len() + users.len()) as u64,
        "writing",
        false,
    );
    let mut batch = Batch::new();
    for item in &items {
        batch.put_item(generation, &config, item);
        if batch.bytes() >= WRITE_BATCH_BYTES {
            store.write_without_wal(std::mem::take(&mut batch))?;
        }
        bar.inc(1);
    }
    for user in &users {
        batch.put_user(generation, &config, user);
        if batch.bytes() >= WRITE_BATCH_BYTES {
            store.write_without_wal(std::mem::take(&mut batch))?;
        }
        bar.inc(1);
    }
    // Behaviour belongs to the catalog, not to a generation: carry the
    // events (re-keyed) and the settings over.
    if let Some(record) = existing {
        let mut unique = event_unique_base();
        let mut failed = None;
        store.for_each_event(record.id, |event| {
            batch.put_event(generation, &event, unique);
            unique += 1;
            if batch.bytes() >= WRITE_BATCH_BYTES && failed.is_none() {
                if let Err(e) = store.write_without_wal(std::mem::take(&mut batch)) {
                    failed = Some(e);
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        if let Some(settings) = store.behaviour(record.id)? {
            batch.put_behaviour(generation, &settings);
        }
        // So are its experiments, impressions and analytics.
        store.copy_analytics(record.id, generation)?;
    }
    if !batch.is_empty() {
        store.write_without_wal(batch)?;
    }
    // The records were written without a WAL: flushing makes them durable
    // (SST files and the manifest are synced) before anything refers to them.
    store.flush()?;
    bar.finish_and_clear();
    seconds.write = write_started.elapsed().as_secs_f64();

    // 4. Build the graph and snapshot it. Not with learned vectors: they
    // come from the model, which the server trains from the events at its
    // start (the index is built then, from the model's factors).
    let graph_started = Instant::now();
    let (catalog_items, catalog_users) = (items.len() as u64, users.len() as u64);
    drop(users);
    let snapshot_bytes = if config.is_learned() {
        None
    } else {
        let bar = progress_bar(opts.progress, catalog_items, "indexing", false);
        let state = IndexState::build_with_progress(config, opts.index, items, &mut |n| bar.inc(n));
        bar.finish_and_clear();
        seconds.graph = graph_started.elapsed().as_secs_f64();
        let snapshot_started = Instant::now();
        let dumped = snapshots.dump(
            generation,
            0,
            &config,
            &opts.index.hnsw,
            &state.graph(),
            &state.slot_table(),
        )?;
        let written = snapshots.publish(dumped)?;
        seconds.snapshot = snapshot_started.elapsed().as_secs_f64();
        Some(written.bytes)
    };

    // 5. Publish: one synced batch switches the catalog to the new generation.
    let mut publish = Batch::new();
    publish.put_catalog(
        &opts.catalog,
        &CatalogRecord {
            id: generation,
            config,
        },
    );
    if snapshot_bytes.is_some() {
        publish.set_watermark(generation, 0);
    }
    if let Some(old) = existing {
        publish.delete_catalog_records(old.id);
    }
    store.commit(publish)?;
    if let Some(old) = existing {
        snapshots.remove_catalog(old.id);
        crate::collaborative::file::ModelDir::new(&opts.data_dir).remove_catalog(old.id);
    }
    drop(store);
    seconds.total = started.elapsed().as_secs_f64();
    Ok(LoadSummary {
        catalog: opts.catalog.to_string(),
        generation,
        created: existing.is_none(),
        kind: if opts.users { "users" } else { "items" },
        rows: input.rows,
        loaded,
        rejected: input.rejects.len() as u64,
        duplicates: 0,
        new_users: 0,
        unknown_items: 0,
        rejects_file,
        catalog_items,
        catalog_users,
        vectors_per_second: catalog_items as f64 / seconds.total.max(1e-9),
        seconds,
        snapshot_bytes: snapshot_bytes.unwrap_or(0),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// The first unique suffix for event keys written now: milliseconds
/// shifted, like a catalog's at open (see `storage::keys::event_key`).
fn event_unique_base() -> u64 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64))
        << 20
}

/// Loads behaviour events into the catalog `record` (see the module
/// documentation).
fn load_events(
    opts: &LoadOptions,
    formats: &[Format],
    store: &Store,
    record: CatalogRecord,
    started: Instant,
) -> Result<LoadSummary, LoadError> {
    let mut seconds = PhaseSeconds::default();
    if formats
        .iter()
        .any(|f| matches!(f, Format::Npy | Format::Fvecs))
        || opts.meta.is_some()
    {
        return Err(LoadError::Usage(
            "events load from NDJSON or CSV files only".into(),
        ));
    }
    let now_ms = event_unique_base() as i64 >> 20;
    let total_bytes: u64 = opts
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress_bar(opts.progress, total_bytes, "reading", true);
    let mut rows = 0u64;
    let mut events: Vec<Event> = Vec::new();
    let mut rejects: Vec<Rejection> = Vec::new();
    for (file, format) in opts.files.iter().zip(formats) {
        let skip = opts.skip_invalid;
        let mut on_row = |row: input::RowResult<EventWire>| -> bool {
            rows += 1;
            match row {
                Ok((location, wire)) => match wire.into_event_at("", now_ms) {
                    Ok(event) => events.push(event),
                    Err(e) => rejects.push(rejection(location, e)),
                },
                Err(r) => rejects.push(r),
            }
            skip || rejects.is_empty()
        };
        read_file::<EventWire>(file, *format, None, &mut |n| bar.inc(n), &mut on_row).map_err(
            |source| LoadError::Read {
                path: file.to_path_buf(),
                source,
            },
        )?;
        if let Some(first) = rejects.first() {
            if !opts.skip_invalid {
                bar.finish_and_clear();
                return Err(LoadError::Rejected(first.clone()));
            }
        }
    }
    bar.finish_and_clear();
    seconds.read = started.elapsed().as_secs_f64();
    let rejects_file = if rejects.is_empty() {
        None
    } else {
        write_rejects(&opts.rejects, &rejects)?;
        Some(opts.rejects.clone())
    };

    let write_started = Instant::now();
    let mut users = std::collections::HashSet::new();
    store.for_each_user_id(record.id, |u| {
        users.insert(u.to_string());
    })?;
    let mut seen_ids = std::collections::HashSet::new();
    let mut known_items: HashMap<String, bool> = HashMap::new();
    let (mut duplicates, mut new_users, mut accepted) = (0u64, 0u64, 0u64);
    let mut batch = Batch::new();
    let mut unique = event_unique_base();
    for event in &events {
        if let Some(id) = &event.event_id {
            if !seen_ids.insert(id.clone()) || store.has_event_id(record.id, id)? {
                duplicates += 1;
                continue;
            }
        }
        if !known_items.contains_key(&event.item_id) {
            let known = store
                .get_item(record.id, &record.config, &event.item_id)?
                .is_some();
            known_items.insert(event.item_id.clone(), known);
        }
        if users.insert(event.user_id.clone()) {
            batch.put_user(
                record.id,
                &record.config,
                &User {
                    id: event.user_id.clone(),
                    vector: None,
                    attributes: Default::default(),
                },
            );
            new_users += 1;
        }
        batch.put_event(record.id, event, unique);
        unique += 1;
        accepted += 1;
    }
    // One synced batch: the history is loaded whole or not at all.
    store.commit(batch)?;
    seconds.write = write_started.elapsed().as_secs_f64();
    seconds.total = started.elapsed().as_secs_f64();
    let mut catalog_items = 0u64;
    store.for_each_item(record.id, &record.config, |_| catalog_items += 1)?;
    Ok(LoadSummary {
        catalog: opts.catalog.to_string(),
        generation: record.id,
        created: false,
        kind: "events",
        rows,
        loaded: accepted,
        rejected: rejects.len() as u64,
        duplicates,
        new_users,
        unknown_items: known_items.values().filter(|k| !**k).count() as u64,
        rejects_file,
        catalog_items,
        catalog_users: users.len() as u64,
        vectors_per_second: 0.0,
        seconds,
        snapshot_bytes: 0,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// A validated input record (items and users share one map per load).
enum Loaded {
    Item(Item),
    User(User),
}

#[derive(Default)]
struct Input {
    rows: u64,
    /// By id: a later row with the same id replaces an earlier one.
    records: HashMap<String, Loaded>,
    rejects: Vec<Rejection>,
}

fn read_records<W: Record>(
    opts: &LoadOptions,
    file: &Path,
    format: Format,
    config: &CatalogConfig,
    bar: &ProgressBar,
    input: &mut Input,
    validate: impl Fn(W, &CatalogConfig) -> crate::Result<Loaded>,
) -> Result<(), LoadError> {
    let skip = opts.skip_invalid;
    let mut on_row = |row: input::RowResult<W>| -> bool {
        input.rows += 1;
        match row {
            Ok((location, wire)) => match validate(wire, config) {
                Ok(record) => {
                    let id = match &record {
                        Loaded::Item(i) => i.id.clone(),
                        Loaded::User(u) => u.id.clone(),
                    };
                    input.records.insert(id, record);
                }
                Err(e) => input.rejects.push(rejection(location, e)),
            },
            Err(rejection) => input.rejects.push(rejection),
        }
        skip || input.rejects.is_empty()
    };
    read_file::<W>(
        file,
        format,
        opts.meta.as_deref(),
        &mut |n| bar.inc(n),
        &mut on_row,
    )
    .map_err(|source| LoadError::Read {
        path: file.to_path_buf(),
        source,
    })
}

/// A validation error of a row, with the field it names.
fn rejection(location: Location, e: Error) -> Rejection {
    let (field, reason) = match e {
        Error::InvalidField { field, reason } => (Some(field), reason),
        Error::WrongDimension {
            field,
            expected,
            got,
        } => (
            Some(field),
            format!("expected a vector of dimension {expected}, got {got}"),
        ),
        other => (None, other.to_string()),
    };
    Rejection {
        location,
        field,
        reason,
    }
}

/// The rejects as NDJSON: `{"file", "line" | "row", "field", "reason"}`.
fn write_rejects(path: &Path, rejects: &[Rejection]) -> Result<(), LoadError> {
    let fail = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(fail)?);
    for r in rejects {
        let mut line = serde_json::json!({
            "file": r.location.file.display().to_string(),
            "field": r.field,
            "reason": r.reason,
        });
        if let Some(l) = r.location.line {
            line["line"] = l.into();
        }
        if let Some(row) = r.location.row {
            line["row"] = row.into();
        }
        writeln!(out, "{line}").map_err(fail)?;
    }
    out.flush().map_err(fail)
}

/// Opens the store, telling a lock held by another process apart.
fn open_store(dir: &Path) -> Result<Store, LoadError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|source| LoadError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    match Store::open(dir) {
        Ok(store) => Ok(store),
        Err(Error::Storage(e)) if e.to_string().contains("lock") => Err(LoadError::Busy {
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(e.into()),
    }
}

fn progress_bar(enabled: bool, len: u64, what: &'static str, bytes: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let template = if bytes {
        "{msg:>9} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}"
    } else {
        "{msg:>9} [{bar:40}] {human_pos}/{human_len} {per_sec} ETA {eta}"
    };
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        .with_style(
            ProgressStyle::with_template(template)
                .expect("valid progress template")
                .progress_chars("=> "),
        )
        .with_message(what);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Peak resident memory of this process, from /proc (Linux only).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
