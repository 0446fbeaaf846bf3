//! The collaborative model on disk: `DATA_DIR/models/<catalog id>/collaborative.bin`,
//! `[version 2][bincode 2 of the model][CRC-32 LE of all before it]`
//! (version 1, without the fitted blend, is still read),
//! replaced atomically (temporary file, fsync, rename, fsync the folder).
//!
//! A cache, like the index snapshots: anything unreadable is reported and
//! the model is retrained from the events. It lives outside RocksDB because
//! it can be large (items x neighbours x 8 bytes: 800 MB at 1M items and
//! 100 neighbours) and is rewritten whole; backups leave it out (a restored
//! store retrains).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::collaborative::{FittedBlend, Model, ModelKind, TrainingInfo};

const VERSION_1: u8 = 1;
/// Version 1's fields, then the fitted blend and the item factors.
const VERSION_2: u8 = 2;
const FILE_NAME: &str = "collaborative.bin";

#[derive(Serialize, Deserialize)]
struct ModelV1 {
    kind: u8,
    events: u64,
    users: u64,
    interactions: u64,
    trained_at_ms: i64,
    seconds: f64,
    regularisation: f64,
    ids: Vec<String>,
    offsets: Vec<u32>,
    targets: Vec<u32>,
    weights: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct ModelV2 {
    v1: ModelV1,
    blend: Option<BlendV2>,
    /// Item factors: dimension and `items x dimension` values.
    factors: Option<(u32, Vec<f32>)>,
}

#[derive(Serialize, Deserialize)]
struct BlendV2 {
    weights: [f64; 4],
    users: u32,
    held_out: u32,
    /// recall@10: fitted, settings, collaborative, similarity, popularity,
    /// category.
    recalls: [f64; 6],
}

/// The models folder of a store.
#[derive(Debug, Clone)]
pub struct ModelDir {
    root: PathBuf,
}

impl ModelDir {
    /// Models of the store in `data_dir` (kept in `data_dir/models`).
    pub fn new(data_dir: &Path) -> ModelDir {
        ModelDir {
            root: data_dir.join("models"),
        }
    }

    /// The file of a catalog's model.
    pub fn path(&self, catalog_id: u32) -> PathBuf {
        self.root.join(catalog_id.to_string()).join(FILE_NAME)
    }

    /// Writes the model durably, replacing the previous one.
    pub fn write(&self, catalog_id: u32, model: &Model) -> std::io::Result<u64> {
        self.write_file(catalog_id, FILE_NAME, &encode(model))
    }

    /// Writes one of a catalog's model files durably (temp file, fsync,
    /// rename, fsync the folder), replacing the previous one.
    pub fn write_file(&self, catalog_id: u32, name: &str, bytes: &[u8]) -> std::io::Result<u64> {
        let dir = self.root.join(catalog_id.to_string());
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            File::open(&self.root)?.sync_all()?;
        }
        let tmp = dir.join(format!("{name}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(name))?;
        File::open(&dir)?.sync_all()?;
        Ok(bytes.len() as u64)
    }

    /// The bytes of one of a catalog's model files, `Ok(None)` when absent.
    pub fn read_file(&self, catalog_id: u32, name: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.root.join(catalog_id.to_string()).join(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    /// Removes the collaborative model's file only (no interactions left).
    pub fn remove_model(&self, catalog_id: u32) {
        let path = self.path(catalog_id);
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a model file");
            }
        }
    }

    /// The stored model: `Ok(None)` when there is none, `Err` with the
    /// reason when the file cannot be used.
    pub fn read(&self, catalog_id: u32) -> Result<Option<Model>, String> {
        match self.read_file(catalog_id, FILE_NAME)? {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Removes a catalog's model (deleted, or replaced by a load).
    pub fn remove_catalog(&self, catalog_id: u32) {
        crate::snapshot::remove_catalog_dir(&self.root, catalog_id, "model");
    }

    /// Removes the models of catalog ids no catalog owns.
    pub fn remove_orphans(&self, live_ids: &[u32]) {
        crate::snapshot::remove_orphan_dirs(&self.root, live_ids, "model");
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// The file's bytes.
pub fn encode(model: &Model) -> Vec<u8> {
    let p = model.parts();
    let i = &model.info;
    let v1 = ModelV1 {
        kind: match i.kind {
            ModelKind::Ease => 0,
            ModelKind::ItemKnn => 1,
        },
        events: i.events,
        users: i.users,
        interactions: i.interactions,
        trained_at_ms: i.trained_at_ms,
        seconds: i.seconds,
        regularisation: i.regularisation,
        ids: p.ids.iter().map(|s| s.to_string()).collect(),
        offsets: p.offsets.to_vec(),
        targets: p.targets.to_vec(),
        weights: p.weights.to_vec(),
    };
    let v2 = ModelV2 {
        v1,
        blend: i.blend.map(|b| BlendV2 {
            weights: [b.similarity, b.collaborative, b.popularity, b.category],
            users: b.users,
            held_out: b.held_out,
            recalls: [
                b.recall,
                b.settings_recall,
                b.collaborative_only,
                b.similarity_only,
                b.popularity_only,
                b.category_only,
            ],
        }),
        factors: p.factors.map(|f| (f.dimension as u32, f.values.clone())),
    };
    let mut out = vec![VERSION_2];
    out.extend(
        bincode::serde::encode_to_vec(&v2, bincode_config())
            .expect("encoding to a Vec cannot fail"),
    );
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A model from the file's bytes, checked.
pub fn decode(bytes: &[u8]) -> Result<Model, String> {
    if bytes.len() < 5 {
        return Err("the model file is truncated".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("the model file's checksum does not match".into());
    }
    let (v1, blend, factors) = match body.split_first() {
        Some((&VERSION_1, rest)) => (decode_exactly::<ModelV1>(rest)?, None, None),
        Some((&VERSION_2, rest)) => {
            let v2 = decode_exactly::<ModelV2>(rest)?;
            (v2.v1, v2.blend, v2.factors)
        }
        Some((v, _)) => return Err(format!("unknown model file version {v}")),
        None => return Err("the model file is empty".into()),
    };
    let kind = match v1.kind {
        0 => ModelKind::Ease,
        1 => ModelKind::ItemKnn,
        k => return Err(format!("unknown model kind {k}")),
    };
    let blend = blend.map(|b| {
        let [similarity, collaborative, popularity, category] = b.weights;
        let [recall, settings_recall, collaborative_only, similarity_only, popularity_only, category_only] =
            b.recalls;
        FittedBlend {
            similarity,
            collaborative,
            popularity,
            category,
            users: b.users,
            held_out: b.held_out,
            recall,
            settings_recall,
            collaborative_only,
            similarity_only,
            popularity_only,
            category_only,
        }
    });
    if blend.is_some_and(|b| {
        ![b.similarity, b.collaborative, b.popularity, b.category]
            .iter()
            .all(|w| w.is_finite() && *w >= 0.0)
    }) {
        return Err("the fitted blend's weights are not finite and >= 0".into());
    }
    let info = TrainingInfo {
        kind,
        events: v1.events,
        users: v1.users,
        interactions: v1.interactions,
        trained_at_ms: v1.trained_at_ms,
        seconds: v1.seconds,
        regularisation: v1.regularisation,
        blend,
    };
    let ids: Vec<Arc<str>> = v1.ids.into_iter().map(Arc::from).collect();
    let items = ids.len();
    let model = Model::from_parts(info, ids, v1.offsets, v1.targets, v1.weights)?;
    match factors {
        None => Ok(model),
        Some((d, values)) if d > 0 && values.len() == d as usize * items => {
            if values.iter().any(|x| !x.is_finite()) {
                return Err("an item factor is not finite".into());
            }
            Ok(model.with_factors(d as usize, values))
        }
        Some(_) => Err("the item factors do not match the items".into()),
    }
}

/// Decodes `T` from all of `bytes`.
fn decode_exactly<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(bytes, bincode_config())
        .map_err(|e| format!("undecodable model file: {e}"))?;
    if used != bytes.len() {
        return Err("trailing bytes in the model file".into());
    }
    Ok(value)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let info = TrainingInfo {
            kind: ModelKind::Ease,
            events: 42,
            users: 3,
            interactions: 7,
            trained_at_ms: 1_700_000_000_000,
            seconds: 0.5,
            regularisation: 200.0,
            blend: Some(FittedBlend {
                similarity: 0.2,
                collaborative: 1.0,
                popularity: 0.05,
                category: 0.0,
                users: 300,
                held_out: 700,
                recall: 0.5,
                settings_recall: 0.45,
                collaborative_only: 0.48,
                similarity_only: 0.3,
                popularity_only: 0.2,
                category_only: 0.1,
            }),
        };
        let ids: Vec<Arc<str>> = ["a", "b", "c"].into_iter().map(Arc::from).collect();
        Model::from_rows(
            info,
            ids,
            vec![vec![(1, 0.5), (2, 0.25)], vec![], vec![(0, 1.0)]],
            10,
        )
        .with_factors(2, vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5])
    }

    #[test]
    fn a_model_round_trips_and_any_damage_is_refused() {
        let m = model();
        let bytes = encode(&m);
        assert_eq!(decode(&bytes).unwrap(), m);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad).is_err(), "flipped byte {at}");
        }
        let dir = tempfile::tempdir().unwrap();
        let models = ModelDir::new(dir.path());
        assert_eq!(models.read(7), Ok(None));
        models.write(7, &m).unwrap();
        assert_eq!(models.read(7).unwrap(), Some(m));
        models.remove_orphans(&[8]);
        assert_eq!(models.read(7), Ok(None));
    }

    #[test]
    fn a_version_1_file_still_reads_without_a_fitted_blend() {
        let m = model();
        let p = m.parts();
        let v1 = ModelV1 {
            kind: 0,
            events: m.info.events,
            users: m.info.users,
            interactions: m.info.interactions,
            trained_at_ms: m.info.trained_at_ms,
            seconds: m.info.seconds,
            regularisation: m.info.regularisation,
            ids: p.ids.iter().map(|s| s.to_string()).collect(),
            offsets: p.offsets.to_vec(),
            targets: p.targets.to_vec(),
            weights: p.weights.to_vec(),
        };
        let mut bytes = vec![VERSION_1];
        bytes.extend(bincode::serde::encode_to_vec(&v1, bincode_config()).unwrap());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let read = decode(&bytes).unwrap();
        assert_eq!(read.info.blend, None);
        assert_eq!(read.factor_dimension(), None);
        assert_eq!(read.parts().weights, p.weights);
    }
}
