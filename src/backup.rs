//! Backups and restore.
//!
//! A backup is a folder shaped like a data directory: a RocksDB checkpoint
//! at its root, each catalog's current index snapshot under `snapshots/`,
//! and `BACKUP.json` naming what it holds. It is taken while the server
//! serves; restoring it is copying it into an empty data directory
//! ([`restore`]), after which the server opens it like any other.
//!
//! **Consistency.** The checkpoint is one point in time of RocksDB (it
//! flushes the memtables and copies the WAL tail). Each catalog's snapshot
//! lock is held from before the snapshot files are copied until after the
//! checkpoint, so no snapshot is published and no watermark recorded in
//! between: the copied snapshot is exactly the one the checkpoint records,
//! and the restored server loads it and replays the changes after it from
//! the checkpoint. Writes go on meanwhile (they do not need that lock).
//! Should a snapshot still not match, the restored server rebuilds that
//! index from RocksDB, which is always correct: the index is derived state.
//!
//! **Atomic publication.** The backup is assembled in `<name>.partial`,
//! fsynced, then renamed to `<name>`: a folder with the final name is
//! complete. Files are hard-linked when the backup folder shares the data
//! directory's file system (SST and snapshot files are immutable once
//! written, and RocksDB copies the files it still appends to), copied
//! otherwise. A restore always copies, so the restored store never shares
//! a file with its backup.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::catalog::registry::Catalogs;
use crate::error::{Error, Result};
use crate::storage::Store;

/// The manifest file at a backup's root.
pub const MANIFEST: &str = "BACKUP.json";
const FORMAT: u32 = 1;

/// `BACKUP.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub recstore_version: String,
    pub created_at_ms: i64,
    pub catalogs: Vec<BackedUpCatalog>,
}

/// One catalog in a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackedUpCatalog {
    pub name: String,
    pub id: u32,
    pub items: u64,
    pub users: u64,
    /// The index snapshot included (its watermark), if the catalog had one.
    pub snapshot_watermark: Option<u64>,
}

/// What [`create`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
    pub catalogs: Vec<BackedUpCatalog>,
}

/// Checks a backup name: a single path segment of letters, digits, `-`,
/// `_` and `.`, not starting with a dot, at most 128 bytes.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && !name.ends_with(".partial")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            "must be 1 to 128 letters, digits, '-', '_' or '.', not starting with '.' \
             nor ending in '.partial'",
        ))
    }
}

/// The default name: `backup-` and the UTC time, to the second.
pub fn default_name() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "backup-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a backup of every catalog to `root/name` while serving.
pub fn create(catalogs: &Catalogs, root: &Path, name: &str) -> Result<Report> {
    check_name(name)?;
    if let Some(reason) = catalogs.store().read_only() {
        // A checkpoint flushes the memtables first; a read-only store's
        // folder can be copied as it is instead.
        return Err(Error::ReadOnly {
            reason: reason.to_string(),
        });
    }
    // Held to the end: another backup must not see, or remove, this one's
    // `.partial` folder, nor take its name before the rename.
    let _one_at_a_time = catalogs.lock_backups()?;
    let started = Instant::now();
    fs::create_dir_all(root).map_err(io(root))?;
    let target = root.join(name);
    if target.exists() {
        return Err(Error::Conflict {
            field: "name".into(),
            reason: format!("a backup named {name:?} exists already"),
        });
    }
    let partial = root.join(format!("{name}.partial"));
    if partial.exists() {
        // Left by a backup that failed or was killed half-way.
        fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    let result = catalogs.while_frozen(|store, held| {
        store.checkpoint(&partial)?;
        let mut listed = Vec::new();
        for catalog in held {
            let counts = catalog.counts();
            let recorded = store.watermark(catalog.id())?;
            let snapshot = recorded
                .map(|w| (w, catalog.snapshot_path(w)))
                .filter(|(_, path)| path.is_dir());
            if let Some((_, from)) = &snapshot {
                let to = partial
                    .join("snapshots")
                    .join(catalog.id().to_string())
                    .join(from.file_name().expect("a snapshot folder has a name"));
                copy_dir(from, &to, true)?;
            }
            listed.push(BackedUpCatalog {
                name: catalog.name().to_string(),
                id: catalog.id(),
                items: counts.index.items,
                users: counts.users,
                snapshot_watermark: snapshot.map(|(w, _)| w),
            });
        }
        Ok(listed)
    });
    let listed = match result {
        Ok(listed) => listed,
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    let finish = || -> Result<u64> {
        let manifest = Manifest {
            format: FORMAT,
            recstore_version: env!("CARGO_PKG_VERSION").into(),
            created_at_ms: time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
            catalogs: listed.clone(),
        };
        let path = partial.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&manifest).expect("the manifest serialises");
        fs::write(&path, json).map_err(io(&path))?;
        let bytes = sync_tree(&partial)?;
        fs::rename(&partial, &target).map_err(io(&target))?;
        sync_dir(root)?;
        Ok(bytes)
    };
    match finish() {
        Ok(bytes) => Ok(Report {
            name: name.to_string(),
            path: target,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            catalogs: listed,
        }),
        Err(e) => {
            let _ = fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

/// What [`restore`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub data_dir: PathBuf,
    pub bytes: u64,
    pub catalogs: Vec<BackedUpCatalog>,
}

/// Copies the backup in `from` into `data_dir`, which must not exist or be
/// empty, then opens the result to check it is a readable store holding
/// the catalogs the manifest lists.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Restored> {
    let manifest_path = from.join(MANIFEST);
    let text = fs::read(&manifest_path).map_err(|source| Error::Io {
        path: manifest_path.clone(),
        source: std::io::Error::new(
            source.kind(),
            format!("not a recstore backup (no readable {MANIFEST}): {source}"),
        ),
    })?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| Error::Corruption {
        what: manifest_path.display().to_string(),
        reason: e.to_string(),
    })?;
    if manifest.format != FORMAT {
        return Err(Error::Corruption {
            what: manifest_path.display().to_string(),
            reason: format!(
                "backup format {} is not the one this recstore reads ({FORMAT})",
                manifest.format
            ),
        });
    }
    if data_dir.exists() {
        let empty = fs::read_dir(data_dir)
            .map_err(io(data_dir))?
            .next()
            .is_none();
        if !empty {
            return Err(Error::Conflict {
                field: "data_dir".into(),
                reason: format!(
                    "{} is not empty: restore into a new folder (move the old one aside first)",
                    data_dir.display()
                ),
            });
        }
        fs::remove_dir(data_dir).map_err(io(data_dir))?;
    }
    let staging = PathBuf::from(format!("{}.restoring", data_dir.display()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    let copied = (|| -> Result<u64> {
        copy_dir(from, &staging, false)?;
        fs::remove_file(staging.join(MANIFEST)).map_err(io(&staging))?;
        let bytes = sync_tree(&staging)?;
        // Open it before publishing: a backup RocksDB cannot read is not
        // restored.
        let store = Store::open(&staging)?;
        let stored: Vec<String> = store
            .catalogs()?
            .into_iter()
            .map(|(name, _)| name.to_string())
            .collect();
        for catalog in &manifest.catalogs {
            if !stored.contains(&catalog.name) {
                return Err(Error::Corruption {
                    what: "backup".into(),
                    reason: format!(
                        "the manifest lists catalog {:?}, which the store does not hold",
                        catalog.name
                    ),
                });
            }
        }
        drop(store);
        Ok(bytes)
    })();
    let bytes = match copied {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    fs::rename(&staging, data_dir).map_err(io(data_dir))?;
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(Restored {
        data_dir: data_dir.to_path_buf(),
        bytes,
        catalogs: manifest.catalogs,
    })
}

/// Copies `from` into a new `to`, recursively; with `link`, hard-links
/// each file instead, copying only when linking fails (across file
/// systems).
fn copy_dir(from: &Path, to: &Path, link: bool) -> Result<()> {
    fs::create_dir_all(to).map_err(io(to))?;
    for entry in fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let source = entry.path();
        let dest = to.join(entry.file_name());
        if entry.file_type().map_err(io(&source))?.is_dir() {
            copy_dir(&source, &dest, link)?;
        } else if !(link && fs::hard_link(&source, &dest).is_ok()) {
            fs::copy(&source, &dest).map_err(io(&source))?;
        }
    }
    Ok(())
}

/// Fsyncs every file and folder under `root`; returns the bytes of files.
fn sync_tree(root: &Path) -> Result<u64> {
    let mut bytes = 0;
    for entry in fs::read_dir(root).map_err(io(root))? {
        let entry = entry.map_err(io(root))?;
        let path = entry.path();
        if entry.file_type().map_err(io(&path))?.is_dir() {
            bytes += sync_tree(&path)?;
        } else {
            let file = fs::File::open(&path).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            bytes += file.metadata().map_err(io(&path))?.len();
        }
    }
    sync_dir(root)?;
    Ok(bytes)
}

fn sync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}
