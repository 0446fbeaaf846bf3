//! Index snapshots on disk: a catalog's HNSW graph and slot table, written
//! atomically and checked on load, so a start can skip the graph build.
//!
//! Layout: `<data_dir>/snapshots/<catalog id>/snap-<watermark>/` holding
//! hnsw_rs's dump (`graph.hnsw.graph`, `graph.hnsw.data`), `slots.bin` (the
//! external id of every slot, `None` for dead ones: the tombstones) and
//! `MANIFEST` (what the snapshot is for, and each file's length and CRC-32),
//! the manifest itself ending in its own CRC-32.
//!
//! **Atomic publication.** hnsw_rs writes its dump with truncate and
//! without fsync, so it is pointed at a fresh `tmp-*` folder; every file is
//! fsynced, the folder renamed to `snap-<watermark>` and the parent fsynced.
//! A crash at any point leaves either no new snapshot or a complete one.
//! Only after that does `catalog` record the watermark in RocksDB, and a
//! snapshot is used only when its watermark equals the recorded one, so a
//! snapshot published but not yet recorded (or an old one left behind) is
//! never mistaken for the current state.
//!
//! **Never serve from a wrong index.** [`SnapshotDir::read`] refuses a
//! snapshot whose manifest or files do not check out, whose configuration
//! differs from the catalog's, or whose graph parameters differ from the
//! settings; `catalog` then rebuilds from RocksDB and says why in the log.
//!
//! Must not: touch RocksDB (`catalog` joins snapshots with the store).

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::HnswSettings;
use crate::index::graph::{Graph, DUMP_FILES};
use crate::model::CatalogConfig;

const FORMAT_VERSION: u8 = 1;
const MANIFEST: &str = "MANIFEST";
const SLOTS: &str = "slots.bin";

/// Why a snapshot could not be written or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SnapshotError(pub String);

impl std::fmt::Debug for LoadedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedSnapshot")
            .field("graph_points", &self.graph.len())
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl SnapshotError {
    fn io(what: &str, path: &Path, e: std::io::Error) -> SnapshotError {
        SnapshotError(format!("{what} {}: {e}", path.display()))
    }
}

type Result<T> = std::result::Result<T, SnapshotError>;

/// What a snapshot was taken of, as recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ManifestV1 {
    catalog_id: u32,
    watermark: u64,
    dimension: u32,
    metric: String,
    vector_type: String,
    m: u32,
    ef_construction: u32,
    slots: u64,
    live: u64,
    files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FileEntry {
    name: String,
    bytes: u64,
    crc32: u32,
}

/// A snapshot read back: the graph and the id of every slot.
pub struct LoadedSnapshot {
    pub graph: Graph,
    /// Slot `s` holds item `slots[s]`, or nothing (a dead point) if `None`.
    pub slots: Vec<Option<String>>,
}

/// Facts about a published snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub watermark: u64,
    pub bytes: u64,
}

/// The snapshots folder of a store.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    root: PathBuf,
}

impl SnapshotDir {
    /// Snapshots of the store in `data_dir` (kept in `data_dir/snapshots`).
    pub fn new(data_dir: &Path) -> SnapshotDir {
        SnapshotDir {
            root: data_dir.join("snapshots"),
        }
    }

    fn catalog_dir(&self, catalog_id: u32) -> PathBuf {
        self.root.join(catalog_id.to_string())
    }

    /// The folder of the snapshot with `watermark` (tests corrupt files in it).
    pub fn snapshot_path(&self, catalog_id: u32, watermark: u64) -> PathBuf {
        self.catalog_dir(catalog_id)
            .join(format!("snap-{watermark:020}"))
    }

    /// Dumps `graph` and `slots`, taken at `watermark`, into a temporary
    /// folder. The caller guarantees that nothing changes `graph` while
    /// this runs and that `slots` describes exactly its points; once it
    /// returns, the graph may change again. Nothing is durable or visible
    /// until [`SnapshotDir::publish`].
    ///
    /// Why two steps: the catalog holds the writers' turn while the graph
    /// is dumped, and every write waits that long. Checksums, fsyncs and
    /// the rename only read the dumped files, so they run after the turn.
    pub fn dump(
        &self,
        catalog_id: u32,
        watermark: u64,
        config: &CatalogConfig,
        hnsw: &HnswSettings,
        graph: &Graph,
        slots: &[Option<Arc<str>>],
    ) -> Result<Dumped> {
        if graph.len() != slots.len() {
            return Err(SnapshotError(format!(
                "the graph has {} points but the slot table {} slots",
                graph.len(),
                slots.len()
            )));
        }
        let catalog_dir = self.catalog_dir(catalog_id);
        create_dir_durably(&self.root)?;
        create_dir_durably(&catalog_dir)?;
        let tmp = catalog_dir.join(format!("tmp-{watermark:020}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| SnapshotError::io("removing", &tmp, e))?;
        }
        fs::create_dir(&tmp).map_err(|e| SnapshotError::io("creating", &tmp, e))?;
        let manifest = ManifestV1 {
            catalog_id,
            watermark,
            dimension: config.dimension as u32,
            metric: config.metric.as_str().to_string(),
            vector_type: config.vector_type.as_str().to_string(),
            m: hnsw.m as u32,
            ef_construction: hnsw.ef_construction as u32,
            slots: slots.len() as u64,
            live: slots.iter().filter(|s| s.is_some()).count() as u64,
            files: Vec::new(),
        };
        match dump_into(&tmp, graph, slots) {
            Ok(()) => Ok(Dumped { tmp, manifest }),
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// Makes a [`SnapshotDir::dump`] durable (checksums, fsyncs, the
    /// manifest) and publishes it under its watermark.
    pub fn publish(&self, dumped: Dumped) -> Result<Written> {
        let Dumped { tmp, manifest } = dumped;
        let catalog_dir = self.catalog_dir(manifest.catalog_id);
        let target = self.snapshot_path(manifest.catalog_id, manifest.watermark);
        let written = match finish_into(&tmp, manifest) {
            Ok(w) => w,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        if target.exists() {
            // The same watermark again (nothing changed in between): the
            // new copy replaces the old one.
            fs::remove_dir_all(&target).map_err(|e| SnapshotError::io("removing", &target, e))?;
        }
        fs::rename(&tmp, &target).map_err(|e| SnapshotError::io("publishing", &target, e))?;
        sync_dir(&catalog_dir)?;
        Ok(written)
    }

    /// Reads the snapshot of `catalog_id` at `watermark`, checking every
    /// file against the manifest and the manifest against the catalog.
    pub fn read(
        &self,
        catalog_id: u32,
        watermark: u64,
        config: &CatalogConfig,
        hnsw: &HnswSettings,
    ) -> Result<LoadedSnapshot> {
        let dir = self.snapshot_path(catalog_id, watermark);
        if !dir.is_dir() {
            return Err(SnapshotError(format!("{} is missing", dir.display())));
        }
        let manifest = read_manifest(&dir.join(MANIFEST))?;
        let expected = ManifestV1 {
            catalog_id,
            watermark,
            dimension: config.dimension as u32,
            metric: config.metric.as_str().to_string(),
            vector_type: config.vector_type.as_str().to_string(),
            m: hnsw.m as u32,
            ef_construction: hnsw.ef_construction as u32,
            slots: manifest.slots,
            live: manifest.live,
            files: manifest.files.clone(),
        };
        if manifest != expected {
            return Err(SnapshotError(format!(
                "the snapshot was taken for {manifest:?}, not for catalog {catalog_id} at change {watermark} with {config:?} and {hnsw:?}"
            )));
        }
        let mut names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        let mut wanted: Vec<&str> = files_of(manifest.slots);
        wanted.sort_unstable();
        if names != wanted {
            return Err(SnapshotError(format!("the manifest lists files {names:?}")));
        }
        let started = std::time::Instant::now();
        for entry in &manifest.files {
            let path = dir.join(&entry.name);
            let (bytes, crc32) = checksum(&path)?;
            if (bytes, crc32) != (entry.bytes, entry.crc32) {
                return Err(SnapshotError(format!(
                    "{} has {bytes} bytes with CRC-32 {crc32:08x}, the manifest says {} bytes with {:08x}",
                    path.display(),
                    entry.bytes,
                    entry.crc32
                )));
            }
        }
        let checked = started.elapsed();
        let slots_path = dir.join(SLOTS);
        let body =
            fs::read(&slots_path).map_err(|e| SnapshotError::io("reading", &slots_path, e))?;
        let slots: Vec<Option<String>> = match body.split_first() {
            Some((&FORMAT_VERSION, rest)) => {
                bincode::serde::decode_from_slice(rest, bincode::config::standard())
                    .map_err(|e| SnapshotError(format!("decoding the slot table: {e}")))?
                    .0
            }
            _ => return Err(SnapshotError("unknown slot table format".into())),
        };
        if slots.len() as u64 != manifest.slots {
            return Err(SnapshotError(format!(
                "the slot table has {} slots, the manifest says {}",
                slots.len(),
                manifest.slots
            )));
        }
        let slots_read = started.elapsed();
        let graph = if slots.is_empty() {
            Graph::new(config.vector_type, config.metric, hnsw, 0)
        } else {
            Graph::load(&dir, config.vector_type, config.metric, hnsw).map_err(SnapshotError)?
        };
        tracing::info!(
            checksums = checked.as_secs_f64(),
            slot_table = (slots_read - checked).as_secs_f64(),
            graph = (started.elapsed() - slots_read).as_secs_f64(),
            "snapshot read phases (seconds)"
        );
        if graph.len() != slots.len() {
            return Err(SnapshotError(format!(
                "the graph has {} points, the slot table {} slots",
                graph.len(),
                slots.len()
            )));
        }
        Ok(LoadedSnapshot { graph, slots })
    }

    /// Removes every snapshot of the catalog except the one at `keep`, and
    /// any unfinished temporary folder. Best effort: a leftover folder only
    /// costs disk, never correctness.
    pub fn prune(&self, catalog_id: u32, keep: Option<u64>) {
        let dir = self.catalog_dir(catalog_id);
        let keep = keep.map(|w| format!("snap-{w:020}"));
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if Some(&name) != keep.as_ref() {
                if let Err(e) = fs::remove_dir_all(entry.path()) {
                    tracing::warn!(path = %entry.path().display(), error = %e, "could not remove an old snapshot");
                }
            }
        }
    }

    /// Removes every snapshot of a catalog (deleted, or replaced by a load).
    pub fn remove_catalog(&self, catalog_id: u32) {
        remove_catalog_dir(&self.root, catalog_id, "snapshots");
    }

    /// Removes the snapshots of catalog ids no catalog owns.
    pub fn remove_orphans(&self, live_ids: &[u32]) {
        remove_orphan_dirs(&self.root, live_ids, "snapshots");
    }
}

/// Removes `root/<catalog id>` (a deleted catalog's derived files: its
/// snapshots, its model). Best effort: a leftover costs disk only.
pub(crate) fn remove_catalog_dir(root: &Path, catalog_id: u32, what: &str) {
    let dir = root.join(catalog_id.to_string());
    if dir.exists() {
        if let Err(e) = fs::remove_dir_all(&dir) {
            tracing::warn!(path = %dir.display(), error = %e, "could not remove the {what} of a deleted catalog");
        }
    }
}

/// Removes every entry of `root` that is not the folder of a live catalog
/// id. Best effort, like [`remove_catalog_dir`].
pub(crate) fn remove_orphan_dirs(root: &Path, live_ids: &[u32], what: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        match name.parse::<u32>() {
            Ok(id) if live_ids.contains(&id) => {}
            _ => {
                if let Err(e) = fs::remove_dir_all(entry.path()) {
                    tracing::warn!(path = %entry.path().display(), error = %e, "could not remove orphan {what}");
                }
            }
        }
    }
}

/// A snapshot dumped into its temporary folder, not yet durable nor
/// published ([`SnapshotDir::dump`]).
pub struct Dumped {
    tmp: PathBuf,
    /// The manifest without its file list.
    manifest: ManifestV1,
}

/// The graph files and the slot table, as [`SnapshotDir::dump`] writes them.
fn dump_into(dir: &Path, graph: &Graph, slots: &[Option<Arc<str>>]) -> Result<()> {
    // hnsw_rs cannot dump a graph without points (no entry point): an
    // empty catalog's snapshot is the slot table alone.
    if !slots.is_empty() {
        graph.dump(dir).map_err(SnapshotError)?;
    }
    let ids: Vec<Option<&str>> = slots.iter().map(|s| s.as_deref()).collect();
    let mut body = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(&ids, &mut body, bincode::config::standard())
        .map_err(|e| SnapshotError(format!("encoding the slot table: {e}")))?;
    let slots_path = dir.join(SLOTS);
    fs::write(&slots_path, &body).map_err(|e| SnapshotError::io("writing", &slots_path, e))?;
    Ok(())
}

/// Checksums and syncs the dumped files and writes the manifest.
fn finish_into(dir: &Path, mut manifest: ManifestV1) -> Result<Written> {
    let mut total = 0;
    for name in files_of(manifest.slots) {
        let path = dir.join(name);
        let (bytes, crc32) = checksum(&path)?;
        sync_file(&path)?;
        total += bytes;
        manifest.files.push(FileEntry {
            name: name.to_string(),
            bytes,
            crc32,
        });
    }
    let mut bytes = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(&manifest, &mut bytes, bincode::config::standard())
        .map_err(|e| SnapshotError(format!("encoding the manifest: {e}")))?;
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let path = dir.join(MANIFEST);
    let mut file = File::create(&path).map_err(|e| SnapshotError::io("creating", &path, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| SnapshotError::io("writing", &path, e))?;
    sync_dir(dir)?;
    Ok(Written {
        watermark: manifest.watermark,
        bytes: total + bytes.len() as u64,
    })
}

/// The files a snapshot of `slots` slots consists of.
fn files_of(slots: u64) -> Vec<&'static str> {
    if slots == 0 {
        vec![SLOTS]
    } else {
        DUMP_FILES.iter().copied().chain([SLOTS]).collect()
    }
}

fn read_manifest(path: &Path) -> Result<ManifestV1> {
    let bytes = fs::read(path).map_err(|e| SnapshotError::io("reading", path, e))?;
    if bytes.len() < 5 {
        return Err(SnapshotError(format!("{} is truncated", path.display())));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    if crc32fast::hash(body) != stored {
        return Err(SnapshotError(format!(
            "{} fails its checksum",
            path.display()
        )));
    }
    match body.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            bincode::serde::decode_from_slice(rest, bincode::config::standard())
                .map(|(m, _)| m)
                .map_err(|e| SnapshotError(format!("decoding {}: {e}", path.display())))
        }
        _ => Err(SnapshotError(format!(
            "{} has an unknown format",
            path.display()
        ))),
    }
}

/// Length and CRC-32 of a file, streamed.
fn checksum(path: &Path) -> Result<(u64, u32)> {
    let file = File::open(path).map_err(|e| SnapshotError::io("opening", path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| SnapshotError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hasher.finalize()))
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| SnapshotError::io("syncing", path, e))
}

fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| SnapshotError::io("syncing folder", path, e))
}

/// Creates `path` if missing and makes its entry in the parent durable.
fn create_dir_durably(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(path).map_err(|e| SnapshotError::io("creating", path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IndexSettings;
    use crate::index::filter::Filter;
    use crate::index::IndexState;
    use crate::model::{Item, Metric, VectorType};

    /// A small deterministic generator (no external randomness in tests).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        }
    }

    fn items(from: usize, n: usize, dim: usize, rng: &mut Rng) -> Vec<Item> {
        (from..from + n)
            .map(|i| Item {
                id: format!("item-{i}"),
                vector: (0..dim).map(|_| rng.next()).collect(),
                price: Some(i as f64),
                category: None,
                brand: None,
                in_stock: true,
                tags: vec![],
                explicit_tier: None,
                attributes: Default::default(),
            })
            .collect()
    }

    /// Every live item with its slot, as a snapshot load places them.
    fn placed_of(state: &IndexState) -> Vec<(u32, Item)> {
        state
            .items()
            .into_iter()
            .map(|item| (state.get(&item.id).unwrap().slot, item))
            .collect()
    }

    fn config(vector_type: VectorType) -> CatalogConfig {
        CatalogConfig::new(8, Metric::L2, vector_type, 4).unwrap()
    }

    fn snapshot_of(dir: &SnapshotDir, state: &IndexState, watermark: u64) -> Written {
        let dumped = dir
            .dump(
                1,
                watermark,
                state.config(),
                &IndexSettings::default().hnsw,
                &state.graph(),
                &state.slot_table(),
            )
            .unwrap();
        dir.publish(dumped).unwrap()
    }

    #[test]
    fn a_snapshot_round_trips_and_answers_the_same() {
        for vector_type in [VectorType::F32, VectorType::F16] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = SnapshotDir::new(tmp.path());
            let settings = IndexSettings {
                exact_scan_threshold: 0,
                ..IndexSettings::default()
            };
            let mut rng = Rng(42);
            let mut state =
                IndexState::build(config(vector_type), settings, items(0, 1500, 8, &mut rng));
            state.delete(&["item-3".to_string(), "item-700".to_string()]);
            snapshot_of(&dir, &state, 7);
            let loaded = dir
                .read(1, 7, &config(vector_type), &settings.hnsw)
                .unwrap();
            assert_eq!(loaded.slots.len(), 1500);
            assert_eq!(loaded.slots[3], None);
            assert_eq!(loaded.slots[4].as_deref(), Some("item-4"));
            let placed = placed_of(&state);
            let back =
                IndexState::from_parts(config(vector_type), settings, loaded.graph, 1500, placed);
            back.check_graph().unwrap();
            for q in 0..20 {
                let query: Vec<f32> = (0..8).map(|_| rng.next()).collect();
                let ids = |s: &IndexState| -> Vec<String> {
                    s.search(&query, 10, &Filter::default(), &[])
                        .0
                        .iter()
                        .map(|h| h.meta.id.to_string())
                        .collect()
                };
                assert_eq!(ids(&state), ids(&back), "query {q}, {vector_type:?}");
            }
        }
    }

    /// The catalog dumps under the writers' turn and publishes after it:
    /// a dump is invisible until published (the previous snapshot stays
    /// the one a start reads), and writes to the graph between the dump
    /// and the publish do not reach the published snapshot.
    #[test]
    fn a_dump_is_published_as_it_was_dumped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(tmp.path());
        let settings = IndexSettings::default();
        let mut rng = Rng(11);
        let cfg = config(VectorType::F32);
        let mut state = IndexState::build(cfg, settings, items(0, 600, 8, &mut rng));
        snapshot_of(&dir, &state, 5);
        let slots = state.slot_table();
        let placed = placed_of(&state);
        let dumped = dir
            .dump(1, 9, &cfg, &settings.hnsw, &state.graph(), &slots)
            .unwrap();
        // A write lands after the turn, before the publish.
        let prepared = state.prepare_upsert(items(600, 50, 8, &mut rng));
        state.graph().insert(&prepared.new_points());
        state.publish_upsert(prepared);
        assert!(
            dir.read(1, 9, &cfg, &settings.hnsw).is_err(),
            "not yet published"
        );
        assert_eq!(
            dir.read(1, 5, &cfg, &settings.hnsw).unwrap().slots.len(),
            600
        );

        let written = dir.publish(dumped).unwrap();
        assert_eq!(written.watermark, 9);
        let loaded = dir.read(1, 9, &cfg, &settings.hnsw).unwrap();
        assert_eq!(
            loaded.slots.len(),
            600,
            "the dump's slots, not the later write's"
        );
        let back = IndexState::from_parts(cfg, settings, loaded.graph, 600, placed);
        back.check_graph().unwrap();
        assert_eq!(back.counts().items, 600);
    }

    /// hnsw_rs's reload divides the level scale by ln M a second time
    /// (DEPENDENCIES.md); `Graph::dump` patches the dump so it does not.
    #[test]
    fn a_reloaded_graph_draws_levels_at_the_original_scale() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(tmp.path());
        let settings = IndexSettings::default();
        let mut rng = Rng(7);
        let state = IndexState::build(
            config(VectorType::F32),
            settings,
            items(0, 500, 8, &mut rng),
        );
        let expected = 1.0 / (settings.hnsw.m as f64).ln();
        assert!((state.graph().level_scale() - expected).abs() < 1e-12);
        let mut current = state;
        // Two dump/reload cycles: the bug would compound.
        for (round, watermark) in [(0, 1), (1, 2)] {
            snapshot_of(&dir, &current, watermark);
            let loaded = dir
                .read(1, watermark, &config(VectorType::F32), &settings.hnsw)
                .unwrap();
            assert!(
                (loaded.graph.level_scale() - expected).abs() < 1e-12,
                "round {round}: reloaded scale {} instead of {expected}",
                loaded.graph.level_scale()
            );
            let placed = placed_of(&current);
            let slots = current.counts().graph_points as usize;
            current = IndexState::from_parts(
                config(VectorType::F32),
                settings,
                loaded.graph,
                slots,
                placed,
            );
        }
        // New points reach the upper layers at the rate 1/M predicts
        // (about 1 in 32 at M 32, ~94 of 3,000, binomial sd ~10; at the
        // buggy scale about 1 in 2,000).
        let before = current.graph().upper_layer_points();
        let new = items(500, 3000, 8, &mut rng);
        let prepared = current.prepare_upsert(new);
        current.graph().insert(&prepared.new_points());
        current.publish_upsert(prepared);
        let promoted = (current.graph().upper_layer_points() - before) as f64;
        let predicted = 3000.0 / settings.hnsw.m as f64;
        assert!(
            (predicted * 0.5..=predicted * 1.6).contains(&promoted),
            "{promoted} of 3000 new points above layer 0, {predicted:.0} predicted"
        );
    }

    /// An empty catalog (all items deleted, or none loaded) snapshots and
    /// loads too: hnsw_rs cannot dump a graph without points.
    #[test]
    fn an_empty_index_snapshots_and_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(tmp.path());
        let settings = IndexSettings::default();
        let mut rng = Rng(5);
        let mut state = IndexState::build(config(VectorType::F16), settings, vec![]);
        snapshot_of(&dir, &state, 1);
        let loaded = dir
            .read(1, 1, &config(VectorType::F16), &settings.hnsw)
            .unwrap();
        assert!(loaded.slots.is_empty() && loaded.graph.is_empty());
        // Items added to a reloaded empty graph are found.
        state = IndexState::from_parts(config(VectorType::F16), settings, loaded.graph, 0, vec![]);
        state.check_graph().unwrap();
        let new = items(0, 50, 8, &mut rng);
        let query = new[7].vector.clone();
        let prepared = state.prepare_upsert(new);
        state.graph().insert(&prepared.new_points());
        state.publish_upsert(prepared);
        let (hits, _) = state.search(&query, 1, &Filter::default(), &[]);
        assert_eq!(&*hits[0].meta.id, "item-7");
    }

    /// A graph that belongs to other vectors (same ids and slots) fails
    /// the check a loaded snapshot must pass.
    #[test]
    fn a_graph_of_other_vectors_fails_the_check() {
        let settings = IndexSettings::default();
        let mut rng = Rng(3);
        let ours = IndexState::build(
            config(VectorType::F32),
            settings,
            items(0, 800, 8, &mut rng),
        );
        let theirs = IndexState::build(
            config(VectorType::F32),
            settings,
            items(0, 800, 8, &mut rng),
        );
        let placed = placed_of(&ours);
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(tmp.path());
        snapshot_of(&dir, &theirs, 1);
        let graph = dir
            .read(1, 1, &config(VectorType::F32), &settings.hnsw)
            .unwrap()
            .graph;
        let mixed = IndexState::from_parts(config(VectorType::F32), settings, graph, 800, placed);
        let err = mixed.check_graph().unwrap_err();
        assert!(err.contains("is not the stored one"), "{err}");
    }

    #[test]
    fn damaged_stale_or_foreign_snapshots_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(tmp.path());
        let settings = IndexSettings::default();
        let mut rng = Rng(9);
        let state = IndexState::build(
            config(VectorType::F32),
            settings,
            items(0, 300, 8, &mut rng),
        );
        snapshot_of(&dir, &state, 5);
        let cfg = config(VectorType::F32);
        assert!(dir.read(1, 5, &cfg, &settings.hnsw).is_ok());
        // Another watermark, catalog, configuration or graph parameters.
        assert!(dir
            .read(1, 6, &cfg, &settings.hnsw)
            .unwrap_err()
            .0
            .contains("missing"));
        assert!(dir.read(2, 5, &cfg, &settings.hnsw).is_err());
        assert!(dir
            .read(1, 5, &config(VectorType::F16), &settings.hnsw)
            .is_err());
        let mut other = settings.hnsw;
        other.m = 8;
        assert!(dir.read(1, 5, &cfg, &other).is_err());
        // One flipped byte in any file, or a truncated file.
        let path = dir.snapshot_path(1, 5);
        for name in [
            "graph.hnsw.graph",
            "graph.hnsw.data",
            "slots.bin",
            "MANIFEST",
        ] {
            let file = path.join(name);
            let original = fs::read(&file).unwrap();
            let mut bad = original.clone();
            let at = bad.len() / 2;
            bad[at] ^= 0x40;
            fs::write(&file, &bad).unwrap();
            let err = dir.read(1, 5, &cfg, &settings.hnsw).unwrap_err();
            assert!(err.0.contains(name) || name == "MANIFEST", "{name}: {err}");
            fs::write(&file, &original[..original.len() - 1]).unwrap();
            assert!(
                dir.read(1, 5, &cfg, &settings.hnsw).is_err(),
                "{name} truncated"
            );
            fs::write(&file, &original).unwrap();
            assert!(dir.read(1, 5, &cfg, &settings.hnsw).is_ok());
        }
        // Pruning keeps only the named snapshot.
        snapshot_of(&dir, &state, 9);
        dir.prune(1, Some(9));
        assert!(dir.read(1, 5, &cfg, &settings.hnsw).is_err());
        assert!(dir.read(1, 9, &cfg, &settings.hnsw).is_ok());
        dir.remove_orphans(&[2]);
        assert!(dir.read(1, 9, &cfg, &settings.hnsw).is_err());
    }
}
