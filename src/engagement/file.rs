//! The engagement scorer on disk: `DATA_DIR/models/<catalog id>/engagement.bin`,
//! next to the collaborative model (`collaborative::file::ModelDir` writes
//! it atomically). A version byte, bincode 2 of [`Stored`], a CRC-32.
//! Like the collaborative model it is a cache of what the impressions
//! imply: a missing, damaged or foreign file means "train again".
//!
//! The model's types derive serde for this file only; the layout is
//! pinned by the version byte and [`FEATURE_VERSION`], and a test decodes
//! what it encodes.

use serde::{Deserialize, Serialize};

use super::{Model, Prior, Scorer, FEATURE_VERSION};

pub const FILE_NAME: &str = "engagement.bin";
const VERSION_1: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Stored {
    feature_version: u16,
    prior: Prior,
    model: Option<Model>,
    watermark_ms: i64,
    trained_at_ms: i64,
    /// Per item: id, hits shown, hits engaged.
    items: Vec<(String, u32, u32)>,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
}

pub fn encode(scorer: &Scorer) -> Vec<u8> {
    let stored = Stored {
        feature_version: FEATURE_VERSION,
        prior: scorer.prior.clone(),
        model: scorer.model.clone(),
        watermark_ms: scorer.watermark_ms,
        trained_at_ms: scorer.trained_at_ms,
        items: {
            let mut items: Vec<(String, u32, u32)> = scorer
                .items
                .iter()
                .map(|(id, &(n, k))| (id.clone(), n, k))
                .collect();
            items.sort();
            items
        },
    };
    let mut out = vec![VERSION_1];
    out.extend(
        bincode::serde::encode_to_vec(&stored, config()).expect("encoding to a Vec cannot fail"),
    );
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode(bytes: &[u8]) -> Result<Scorer, String> {
    if bytes.len() < 5 {
        return Err("engagement model file too short".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("engagement model file fails its checksum".into());
    }
    match body.split_first() {
        Some((&VERSION_1, rest)) => {
            let (stored, used): (Stored, usize) =
                bincode::serde::decode_from_slice(rest, config()).map_err(|e| e.to_string())?;
            if used != rest.len() {
                return Err("engagement model file has trailing bytes".into());
            }
            if stored.feature_version != FEATURE_VERSION {
                return Err(format!(
                    "engagement model of feature layout {} (this build uses {FEATURE_VERSION})",
                    stored.feature_version
                ));
            }
            Ok(Scorer {
                prior: stored.prior,
                model: stored.model,
                watermark_ms: stored.watermark_ms,
                trained_at_ms: stored.trained_at_ms,
                items: stored
                    .items
                    .into_iter()
                    .map(|(id, n, k)| (id, (n, k)))
                    .collect(),
            })
        }
        Some((v, _)) => Err(format!("unknown engagement model file version {v}")),
        None => Err("empty engagement model file".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let scorer = Scorer {
            prior: Prior::default(),
            model: None,
            watermark_ms: 42,
            trained_at_ms: 43,
            items: [("a".to_string(), (3, 1))].into_iter().collect(),
        };
        let bytes = encode(&scorer);
        assert_eq!(decode(&bytes).unwrap(), scorer);
        let mut bad = bytes.clone();
        bad[3] ^= 1;
        assert!(decode(&bad).is_err());
        assert!(decode(&bytes[..3]).is_err());
    }
}
