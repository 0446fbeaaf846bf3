//! The only module that decides bytes on disk. Every value starts with a
//! format-version byte so the layout can change without a migration of the
//! whole store at once.
//!
//! Item layout (version 1): `[1u8][u32 LE vector byte length][vector bytes,
//! little-endian f32 or f16][bincode 2 of ItemMetaV1]`. The vector is kept
//! out of bincode so it decodes with one copy.

pub mod analytics;

use half::f16;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::{
    BehaviourSettings, Blend, CatalogConfig, CollaborativeSettings, CrossSellSettings,
    EngagementSettings, Event, EventKind, EventWeights, FeedbackSettings, Item, Metric, RankBy,
    RepurchaseSettings, User, VectorSource, VectorType,
};

const VERSION_1: u8 = 1;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn corrupt(what: &str, reason: impl Into<String>) -> Error {
    Error::Corruption {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// A catalog as stored: its numeric id and configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogRecord {
    pub id: u32,
    pub config: CatalogConfig,
}

#[derive(Serialize, Deserialize)]
struct CatalogRecordV1 {
    id: u32,
    dimension: u32,
    metric: u8,
    vector_type: u8,
    price_tiers: u8,
}

#[derive(Serialize, Deserialize)]
struct ItemMetaV1 {
    price: Option<f64>,
    category: Option<String>,
    brand: Option<String>,
    in_stock: bool,
    tags: Vec<String>,
    explicit_tier: Option<u8>,
    /// JSON text: bincode cannot carry a self-describing `serde_json::Value`.
    attributes_json: String,
}

#[derive(Serialize, Deserialize)]
struct UserMetaV1 {
    attributes_json: String,
}

fn with_version(payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(VERSION_1);
    out.extend_from_slice(&payload);
    out
}

fn check_version<'a>(what: &str, bytes: &'a [u8]) -> Result<&'a [u8]> {
    match bytes.split_first() {
        Some((&VERSION_1, rest)) => Ok(rest),
        Some((v, _)) => Err(corrupt(what, format!("unknown format version {v}"))),
        None => Err(corrupt(what, "empty value")),
    }
}

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::Cosine => 0,
        Metric::Dot => 1,
        Metric::L2 => 2,
    }
}

fn vector_type_code(t: VectorType) -> u8 {
    match t {
        VectorType::F32 => 0,
        VectorType::F16 => 1,
    }
}

/// A catalog record, version 2: version 1, then where the vectors come
/// from (0 supplied, 1 learned). Supplied-vector catalogs are still written
/// as version 1, so a store without learned catalogs stays readable by the
/// release before them.
#[derive(Serialize, Deserialize)]
struct CatalogRecordV2 {
    v1: CatalogRecordV1,
    vectors: u8,
}

const CATALOG_VERSION_2: u8 = 2;

pub fn encode_catalog(record: &CatalogRecord) -> Vec<u8> {
    let v1 = CatalogRecordV1 {
        id: record.id,
        dimension: record.config.dimension as u32,
        metric: metric_code(record.config.metric),
        vector_type: vector_type_code(record.config.vector_type),
        price_tiers: record.config.price_tiers,
    };
    match record.config.vectors {
        VectorSource::Supplied => with_version(
            bincode::serde::encode_to_vec(&v1, bincode_config())
                .expect("encoding to a Vec cannot fail"),
        ),
        VectorSource::Learned => {
            let mut out = vec![CATALOG_VERSION_2];
            out.extend(
                bincode::serde::encode_to_vec(
                    &CatalogRecordV2 { v1, vectors: 1 },
                    bincode_config(),
                )
                .expect("encoding to a Vec cannot fail"),
            );
            out
        }
    }
}

pub fn decode_catalog(bytes: &[u8]) -> Result<CatalogRecord> {
    let decode_err = |e: bincode::error::DecodeError| corrupt("catalog", e.to_string());
    let (v1, vectors) = match bytes.split_first() {
        Some((&CATALOG_VERSION_2, body)) => {
            let (v2, _): (CatalogRecordV2, usize) =
                bincode::serde::decode_from_slice(body, bincode_config()).map_err(decode_err)?;
            let vectors = match v2.vectors {
                0 => VectorSource::Supplied,
                1 => VectorSource::Learned,
                other => {
                    return Err(corrupt(
                        "catalog",
                        format!("unknown vector source code {other}"),
                    ))
                }
            };
            (v2.v1, vectors)
        }
        _ => {
            let body = check_version("catalog", bytes)?;
            let (v1, _): (CatalogRecordV1, usize) =
                bincode::serde::decode_from_slice(body, bincode_config()).map_err(decode_err)?;
            (v1, VectorSource::Supplied)
        }
    };
    let metric = match v1.metric {
        0 => Metric::Cosine,
        1 => Metric::Dot,
        2 => Metric::L2,
        other => return Err(corrupt("catalog", format!("unknown metric code {other}"))),
    };
    let vector_type = match v1.vector_type {
        0 => VectorType::F32,
        1 => VectorType::F16,
        other => {
            return Err(corrupt(
                "catalog",
                format!("unknown vector type code {other}"),
            ))
        }
    };
    let config = match vectors {
        VectorSource::Supplied => {
            CatalogConfig::new(v1.dimension as usize, metric, vector_type, v1.price_tiers)
        }
        VectorSource::Learned => {
            CatalogConfig::learned(v1.dimension as usize, vector_type, v1.price_tiers)
        }
    }
    .map_err(|e| corrupt("catalog", e.to_string()))?;
    Ok(CatalogRecord { id: v1.id, config })
}

/// Appends `vector` in the storage type, little-endian.
pub fn encode_vector(out: &mut Vec<u8>, vector: &[f32], vector_type: VectorType) {
    match vector_type {
        VectorType::F32 => {
            out.reserve(vector.len() * 4);
            for x in vector {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        VectorType::F16 => {
            out.reserve(vector.len() * 2);
            for x in vector {
                out.extend_from_slice(&f16::from_f32(*x).to_le_bytes());
            }
        }
    }
}

/// Decodes a vector stored by [`encode_vector`] back to f32.
pub fn decode_vector(bytes: &[u8], vector_type: VectorType, dimension: usize) -> Result<Vec<f32>> {
    let width = match vector_type {
        VectorType::F32 => 4,
        VectorType::F16 => 2,
    };
    if bytes.len() != width * dimension {
        return Err(corrupt(
            "vector",
            format!(
                "{} bytes for dimension {dimension} of {}",
                bytes.len(),
                vector_type.as_str()
            ),
        ));
    }
    Ok(match vector_type {
        VectorType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        VectorType::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    })
}

fn split_vector<'a>(what: &str, body: &'a [u8]) -> Result<(&'a [u8], &'a [u8])> {
    if body.len() < 4 {
        return Err(corrupt(what, "truncated vector length"));
    }
    let len = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let rest = &body[4..];
    if rest.len() < len {
        return Err(corrupt(what, "truncated vector"));
    }
    Ok(rest.split_at(len))
}

pub fn encode_item(item: &Item, vector_type: VectorType) -> Vec<u8> {
    let mut out = vec![VERSION_1, 0, 0, 0, 0];
    encode_vector(&mut out, &item.vector, vector_type);
    let len = (out.len() - 5) as u32;
    out[1..5].copy_from_slice(&len.to_le_bytes());
    let meta = ItemMetaV1 {
        price: item.price,
        category: item.category.clone(),
        brand: item.brand.clone(),
        in_stock: item.in_stock,
        tags: item.tags.clone(),
        explicit_tier: item.explicit_tier,
        attributes_json: Value::Object(item.attributes.clone()).to_string(),
    };
    bincode::serde::encode_into_std_write(&meta, &mut out, bincode_config())
        .expect("encoding to a Vec cannot fail");
    out
}

fn decode_attributes(what: &str, json: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(corrupt(what, "attributes are not an object")),
        Err(e) => Err(corrupt(what, e.to_string())),
    }
}

pub fn decode_item(id: &str, bytes: &[u8], config: &CatalogConfig) -> Result<Item> {
    let body = check_version("item", bytes)?;
    let (vector_bytes, meta_bytes) = split_vector("item", body)?;
    let vector = decode_vector(vector_bytes, config.vector_type, config.stored_dimension())?;
    let (meta, _): (ItemMetaV1, usize) =
        bincode::serde::decode_from_slice(meta_bytes, bincode_config())
            .map_err(|e| corrupt("item", e.to_string()))?;
    Ok(Item {
        id: id.to_string(),
        vector,
        price: meta.price,
        category: meta.category,
        brand: meta.brand,
        in_stock: meta.in_stock,
        tags: meta.tags,
        explicit_tier: meta.explicit_tier,
        attributes: decode_attributes("item", &meta.attributes_json)?,
    })
}

#[derive(Serialize, Deserialize)]
struct EventV1 {
    user_id: String,
    item_id: String,
    kind: u8,
    timestamp_ms: i64,
    session_id: Option<String>,
    order_id: Option<String>,
    quantity: u32,
    price: Option<f64>,
    event_id: Option<String>,
    recommendation_id: Option<String>,
}

/// An event kind's byte: the four of version 1, then 4 dislike, 5 own,
/// 6 return and `8 + stars` for a rating (9..=13). Version 1 of the event
/// value holds every kind: a reader that predates a kind refuses it as
/// corruption rather than misreading it.
fn event_kind_code(kind: EventKind) -> u8 {
    match kind {
        EventKind::View => 0,
        EventKind::Click => 1,
        EventKind::AddToCart => 2,
        EventKind::Purchase => 3,
        EventKind::Dislike => 4,
        EventKind::Own => 5,
        EventKind::Return => 6,
        EventKind::Rating(stars) => 8 + stars,
    }
}

fn event_kind_of(code: u8) -> Option<EventKind> {
    Some(match code {
        0 => EventKind::View,
        1 => EventKind::Click,
        2 => EventKind::AddToCart,
        3 => EventKind::Purchase,
        4 => EventKind::Dislike,
        5 => EventKind::Own,
        6 => EventKind::Return,
        c if (9..=13).contains(&c) => EventKind::Rating(c - 8),
        _ => return None,
    })
}

pub fn encode_event(event: &Event) -> Vec<u8> {
    let v1 = EventV1 {
        user_id: event.user_id.clone(),
        item_id: event.item_id.clone(),
        kind: event_kind_code(event.kind),
        timestamp_ms: event.timestamp_ms,
        session_id: event.session_id.clone(),
        order_id: event.order_id.clone(),
        quantity: event.quantity,
        price: event.price,
        event_id: event.event_id.clone(),
        recommendation_id: event.recommendation_id.clone(),
    };
    with_version(
        bincode::serde::encode_to_vec(&v1, bincode_config())
            .expect("encoding to a Vec cannot fail"),
    )
}

pub fn decode_event(bytes: &[u8]) -> Result<Event> {
    let body = check_version("event", bytes)?;
    let (v1, _): (EventV1, usize) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| corrupt("event", e.to_string()))?;
    let kind = event_kind_of(v1.kind)
        .ok_or_else(|| corrupt("event", format!("unknown event kind {}", v1.kind)))?;
    Ok(Event {
        user_id: v1.user_id,
        item_id: v1.item_id,
        kind,
        timestamp_ms: v1.timestamp_ms,
        session_id: v1.session_id,
        order_id: v1.order_id,
        quantity: v1.quantity,
        price: v1.price,
        event_id: v1.event_id,
        recommendation_id: v1.recommendation_id,
    })
}

#[derive(Serialize, Deserialize)]
struct BehaviourV1 {
    weights: [f64; 4],
    session_half_life_ms: i64,
    long_term_half_life_ms: i64,
    popularity_half_life_ms: i64,
    session_gap_ms: i64,
    purchase_exclusion_ms: Option<i64>,
    profile_events: u32,
    blend: [f64; 5],
    min_together: u32,
    min_lift: f64,
    upsell_affinity: f64,
}

/// Behaviour settings, version 2: version 1's fields, then the blend's
/// similarity and collaborative weights, the collaborative model's and
/// the repurchase settings. Version 1 values decode with those at their defaults.
#[derive(Serialize, Deserialize)]
struct BehaviourV2 {
    v1: BehaviourV1,
    blend_similarity: f64,
    blend_collaborative: f64,
    collaborative: CollaborativeV2,
    repurchase: RepurchaseV2,
    exclude_seen: bool,
}

#[derive(Serialize, Deserialize)]
struct RepurchaseV2 {
    enabled: bool,
    min_rate: f64,
    min_repeaters: u32,
    due_share: f64,
}

#[derive(Serialize, Deserialize)]
struct CollaborativeV2 {
    enabled: bool,
    half_life_ms: i64,
    ease_lambda: f64,
    ease_max_items: u64,
    neighbours: u64,
    shrinkage: f64,
    retrain_min_events: u64,
    retrain_share: f64,
    retrain_quiet_ms: i64,
}

const BEHAVIOUR_VERSION_2: u8 = 2;

/// Behaviour settings, version 3: version 2, then whether the blend is
/// fitted (`collaborative.fit_blend`) and the iALS settings. Version 2
/// values decode with those at their defaults.
#[derive(Serialize, Deserialize)]
struct BehaviourV3 {
    v2: BehaviourV2,
    fit_blend: bool,
    als_lambda: f64,
    als_alpha: f64,
    als_iterations: u32,
}

const BEHAVIOUR_VERSION_3: u8 = 3;

/// Behaviour settings, version 4: version 3, then the weights of the
/// explicit-feedback events, the feedback and the engagement settings.
/// Version 3 values decode with those at their defaults.
#[derive(Serialize, Deserialize)]
struct BehaviourV4 {
    v3: BehaviourV3,
    /// rating, dislike, own, return.
    feedback_weights: [f64; 4],
    dislike_neighbours: u32,
    return_min_purchases: u32,
    return_max_rate: f64,
    /// 0 score, 1 engagement.
    rank_by: u8,
    min_samples: u64,
    min_positives: u64,
    retrain_ms: i64,
    retrain_min_outcomes: u64,
}

const BEHAVIOUR_VERSION_4: u8 = 4;

pub fn encode_behaviour(s: &BehaviourSettings) -> Vec<u8> {
    let w = &s.weights;
    let b = &s.blend;
    let c = &s.collaborative;
    let v2 = BehaviourV2 {
        v1: BehaviourV1 {
            weights: [w.view, w.click, w.add_to_cart, w.purchase],
            session_half_life_ms: s.session_half_life_ms,
            long_term_half_life_ms: s.long_term_half_life_ms,
            popularity_half_life_ms: s.popularity_half_life_ms,
            session_gap_ms: s.session_gap_ms,
            purchase_exclusion_ms: s.purchase_exclusion_ms,
            profile_events: s.profile_events as u32,
            blend: [
                b.session,
                b.long_term,
                b.user_vector,
                b.popularity,
                b.category,
            ],
            min_together: s.cross_sell.min_together,
            min_lift: s.cross_sell.min_lift,
            upsell_affinity: s.upsell_affinity,
        },
        blend_similarity: b.similarity,
        blend_collaborative: b.collaborative,
        collaborative: CollaborativeV2 {
            enabled: c.enabled,
            half_life_ms: c.half_life_ms,
            ease_lambda: c.ease_lambda,
            ease_max_items: c.ease_max_items as u64,
            neighbours: c.neighbours as u64,
            shrinkage: c.shrinkage,
            retrain_min_events: c.retrain_min_events,
            retrain_share: c.retrain_share,
            retrain_quiet_ms: c.retrain_quiet_ms,
        },
        repurchase: RepurchaseV2 {
            enabled: s.repurchase.enabled,
            min_rate: s.repurchase.min_rate,
            min_repeaters: s.repurchase.min_repeaters,
            due_share: s.repurchase.due_share,
        },
        exclude_seen: s.exclude_seen,
    };
    let v3 = BehaviourV3 {
        v2,
        fit_blend: c.fit_blend,
        als_lambda: c.als_lambda,
        als_alpha: c.als_alpha,
        als_iterations: c.als_iterations,
    };
    let f = &s.feedback;
    let g = &s.engagement;
    let v4 = BehaviourV4 {
        v3,
        feedback_weights: [w.rating, w.dislike, w.own, w.return_],
        dislike_neighbours: f.dislike_neighbours,
        return_min_purchases: f.return_min_purchases,
        return_max_rate: f.return_max_rate,
        rank_by: match g.rank_by {
            RankBy::Score => 0,
            RankBy::Engagement => 1,
        },
        min_samples: g.min_samples,
        min_positives: g.min_positives,
        retrain_ms: g.retrain_ms,
        retrain_min_outcomes: g.retrain_min_outcomes,
    };
    let mut out = vec![BEHAVIOUR_VERSION_4];
    out.extend(
        bincode::serde::encode_to_vec(&v4, bincode_config())
            .expect("encoding to a Vec cannot fail"),
    );
    out
}

pub fn decode_behaviour(bytes: &[u8]) -> Result<BehaviourSettings> {
    let decode_err = |e: bincode::error::DecodeError| corrupt("behaviour settings", e.to_string());
    if let Some((&BEHAVIOUR_VERSION_4, body)) = bytes.split_first() {
        // Version 4 is version 3 plus fields: decode the version-3 part as
        // a version-3 value (one path for every older field), then add.
        let (v4, _): (BehaviourV4, usize) =
            bincode::serde::decode_from_slice(body, bincode_config()).map_err(decode_err)?;
        let mut v3 = vec![BEHAVIOUR_VERSION_3];
        v3.extend(
            bincode::serde::encode_to_vec(&v4.v3, bincode_config())
                .expect("encoding to a Vec cannot fail"),
        );
        let mut s = decode_behaviour(&v3)?;
        let [rating, dislike, own, return_] = v4.feedback_weights;
        s.weights.rating = rating;
        s.weights.dislike = dislike;
        s.weights.own = own;
        s.weights.return_ = return_;
        s.feedback = FeedbackSettings {
            dislike_neighbours: v4.dislike_neighbours,
            return_min_purchases: v4.return_min_purchases,
            return_max_rate: v4.return_max_rate,
        };
        s.engagement = EngagementSettings {
            rank_by: match v4.rank_by {
                0 => RankBy::Score,
                1 => RankBy::Engagement,
                other => {
                    return Err(corrupt(
                        "behaviour settings",
                        format!("unknown rank_by {other}"),
                    ))
                }
            },
            min_samples: v4.min_samples,
            min_positives: v4.min_positives,
            retrain_ms: v4.retrain_ms,
            retrain_min_outcomes: v4.retrain_min_outcomes,
        };
        s.validate()
            .map_err(|e| corrupt("behaviour settings", e.to_string()))?;
        return Ok(s);
    }
    let (v1, blend_similarity, blend_collaborative, collaborative, repurchase, exclude_seen) =
        match bytes.split_first() {
            Some((&version @ (BEHAVIOUR_VERSION_2 | BEHAVIOUR_VERSION_3), body)) => {
                let d = CollaborativeSettings::default();
                let (v2, fit_blend, als_lambda, als_alpha, als_iterations) =
                    if version == BEHAVIOUR_VERSION_3 {
                        let (v3, _): (BehaviourV3, usize) =
                            bincode::serde::decode_from_slice(body, bincode_config())
                                .map_err(decode_err)?;
                        (
                            v3.v2,
                            v3.fit_blend,
                            v3.als_lambda,
                            v3.als_alpha,
                            v3.als_iterations,
                        )
                    } else {
                        let (v2, _): (BehaviourV2, usize) =
                            bincode::serde::decode_from_slice(body, bincode_config())
                                .map_err(decode_err)?;
                        (v2, d.fit_blend, d.als_lambda, d.als_alpha, d.als_iterations)
                    };
                let c = v2.collaborative;
                let r = v2.repurchase;
                (
                    v2.v1,
                    v2.blend_similarity,
                    v2.blend_collaborative,
                    CollaborativeSettings {
                        enabled: c.enabled,
                        half_life_ms: c.half_life_ms,
                        ease_lambda: c.ease_lambda,
                        ease_max_items: usize::try_from(c.ease_max_items).unwrap_or(usize::MAX),
                        neighbours: usize::try_from(c.neighbours).unwrap_or(usize::MAX),
                        shrinkage: c.shrinkage,
                        retrain_min_events: c.retrain_min_events,
                        retrain_share: c.retrain_share,
                        retrain_quiet_ms: c.retrain_quiet_ms,
                        fit_blend,
                        als_lambda,
                        als_alpha,
                        als_iterations,
                    },
                    RepurchaseSettings {
                        enabled: r.enabled,
                        min_rate: r.min_rate,
                        min_repeaters: r.min_repeaters,
                        due_share: r.due_share,
                    },
                    v2.exclude_seen,
                )
            }
            _ => {
                let body = check_version("behaviour settings", bytes)?;
                let (v1, _): (BehaviourV1, usize) =
                    bincode::serde::decode_from_slice(body, bincode_config())
                        .map_err(decode_err)?;
                let d = BehaviourSettings::default();
                (
                    v1,
                    d.blend.similarity,
                    d.blend.collaborative,
                    d.collaborative,
                    d.repurchase,
                    d.exclude_seen,
                )
            }
        };
    let [view, click, add_to_cart, purchase] = v1.weights;
    let [session, long_term, user_vector, popularity, category] = v1.blend;
    let d = BehaviourSettings::default();
    let settings = BehaviourSettings {
        weights: EventWeights {
            view,
            click,
            add_to_cart,
            purchase,
            ..d.weights
        },
        session_half_life_ms: v1.session_half_life_ms,
        long_term_half_life_ms: v1.long_term_half_life_ms,
        popularity_half_life_ms: v1.popularity_half_life_ms,
        session_gap_ms: v1.session_gap_ms,
        purchase_exclusion_ms: v1.purchase_exclusion_ms,
        profile_events: v1.profile_events as usize,
        blend: Blend {
            session,
            long_term,
            user_vector,
            popularity,
            category,
            similarity: blend_similarity,
            collaborative: blend_collaborative,
        },
        cross_sell: CrossSellSettings {
            min_together: v1.min_together,
            min_lift: v1.min_lift,
        },
        upsell_affinity: v1.upsell_affinity,
        collaborative,
        repurchase,
        exclude_seen,
        feedback: d.feedback,
        engagement: d.engagement,
    };
    settings
        .validate()
        .map_err(|e| corrupt("behaviour settings", e.to_string()))?;
    Ok(settings)
}

/// A change-log entry: the ids of the items one write touched.
pub fn encode_change(ids: &[&str]) -> Vec<u8> {
    with_version(
        bincode::serde::encode_to_vec(ids, bincode_config())
            .expect("encoding to a Vec cannot fail"),
    )
}

pub fn decode_change(bytes: &[u8]) -> Result<Vec<String>> {
    let body = check_version("change", bytes)?;
    let (ids, _): (Vec<String>, usize) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| corrupt("change", e.to_string()))?;
    Ok(ids)
}

pub fn encode_user(user: &User, vector_type: VectorType) -> Vec<u8> {
    let mut out = vec![VERSION_1, 0, 0, 0, 0];
    match &user.vector {
        Some(v) => {
            encode_vector(&mut out, v, vector_type);
            let len = (out.len() - 5) as u32;
            out[1..5].copy_from_slice(&len.to_le_bytes());
        }
        // u32::MAX marks "no vector" (distinct from an empty one).
        None => out[1..5].copy_from_slice(&u32::MAX.to_le_bytes()),
    }
    let meta = UserMetaV1 {
        attributes_json: Value::Object(user.attributes.clone()).to_string(),
    };
    bincode::serde::encode_into_std_write(&meta, &mut out, bincode_config())
        .expect("encoding to a Vec cannot fail");
    out
}

pub fn decode_user(id: &str, bytes: &[u8], config: &CatalogConfig) -> Result<User> {
    let body = check_version("user", bytes)?;
    if body.len() < 4 {
        return Err(corrupt("user", "truncated vector length"));
    }
    let marker = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
    let (vector, meta_bytes) = if marker == u32::MAX {
        (None, &body[4..])
    } else {
        let (vector_bytes, meta_bytes) = split_vector("user", body)?;
        (
            Some(decode_vector(
                vector_bytes,
                config.vector_type,
                config.dimension,
            )?),
            meta_bytes,
        )
    };
    let (meta, _): (UserMetaV1, usize) =
        bincode::serde::decode_from_slice(meta_bytes, bincode_config())
            .map_err(|e| corrupt("user", e.to_string()))?;
    Ok(User {
        id: id.to_string(),
        vector,
        attributes: decode_attributes("user", &meta.attributes_json)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(vector_type: VectorType) -> CatalogConfig {
        CatalogConfig::new(3, Metric::L2, vector_type, 4).unwrap()
    }

    #[test]
    fn events_round_trip_and_damage_is_corruption() {
        let event = Event {
            user_id: "u1".into(),
            item_id: "SKU-1".into(),
            kind: EventKind::AddToCart,
            timestamp_ms: -1_234,
            session_id: Some("s".into()),
            order_id: None,
            quantity: 3,
            price: Some(9.5),
            event_id: Some("e".into()),
            recommendation_id: None,
        };
        let bytes = encode_event(&event);
        assert_eq!(decode_event(&bytes).unwrap(), event);
        for cut in 0..bytes.len() {
            assert!(decode_event(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Every kind, each rating value, round-trips; unknown codes are
        // corruption.
        let mut kinds = vec![
            EventKind::View,
            EventKind::Click,
            EventKind::AddToCart,
            EventKind::Purchase,
            EventKind::Dislike,
            EventKind::Own,
            EventKind::Return,
        ];
        kinds.extend(crate::model::RATING_RANGE.map(EventKind::Rating));
        let mut codes = std::collections::HashSet::new();
        for kind in kinds {
            let e = Event {
                kind,
                ..event.clone()
            };
            assert_eq!(decode_event(&encode_event(&e)).unwrap(), e);
            assert!(codes.insert(event_kind_code(kind)));
        }
        for unknown in [7, 8, 14, 255] {
            assert_eq!(event_kind_of(unknown), None);
        }
    }

    #[test]
    fn behaviour_settings_round_trip_and_invalid_ones_are_corruption() {
        let mut settings = BehaviourSettings {
            purchase_exclusion_ms: Some(86_400_000),
            profile_events: 50,
            ..BehaviourSettings::default()
        };
        settings.blend.category = 0.5;
        settings.cross_sell.min_together = 3;
        settings.blend.collaborative = 0.25;
        settings.collaborative.ease_max_items = 7;
        settings.collaborative.enabled = false;
        settings.exclude_seen = true;
        settings.collaborative.fit_blend = false;
        settings.collaborative.als_lambda = 3.5;
        settings.collaborative.als_iterations = 4;
        settings.weights.rating = 1.5;
        settings.weights.return_ = 7.0;
        settings.feedback.dislike_neighbours = 3;
        settings.feedback.return_max_rate = 0.5;
        settings.engagement.rank_by = RankBy::Engagement;
        settings.engagement.min_samples = 77;
        let bytes = encode_behaviour(&settings);
        assert_eq!(bytes[0], BEHAVIOUR_VERSION_4);
        assert_eq!(decode_behaviour(&bytes).unwrap(), settings);
        // Version 3 (before feedback and engagement) decodes with them at
        // their defaults.
        let v4: BehaviourV4 = bincode::serde::decode_from_slice(&bytes[1..], bincode_config())
            .unwrap()
            .0;
        let mut old3 = vec![BEHAVIOUR_VERSION_3];
        old3.extend(bincode::serde::encode_to_vec(&v4.v3, bincode_config()).unwrap());
        let decoded = decode_behaviour(&old3).unwrap();
        let d = BehaviourSettings::default();
        assert_eq!(decoded.feedback, d.feedback);
        assert_eq!(decoded.engagement, d.engagement);
        assert_eq!(decoded.weights.rating, d.weights.rating);
        assert_eq!(decoded.collaborative.als_iterations, 4);
        // Version 2 (before the fitted blend) decodes with it on.
        let v3: BehaviourV3 = bincode::serde::decode_from_slice(&bytes[1..], bincode_config())
            .unwrap()
            .0;
        let mut old2 = vec![BEHAVIOUR_VERSION_2];
        old2.extend(bincode::serde::encode_to_vec(&v3.v2, bincode_config()).unwrap());
        let decoded = decode_behaviour(&old2).unwrap();
        assert!(decoded.collaborative.fit_blend);
        assert_eq!(decoded.collaborative.ease_max_items, 7);
        assert_eq!(
            decoded.collaborative.als_lambda,
            CollaborativeSettings::default().als_lambda
        );
        // Version 1 (before the collaborative model) decodes with the new
        // fields at their defaults.
        let d = BehaviourSettings::default();
        let v1 = BehaviourV1 {
            weights: [1.0, 2.0, 4.0, 8.0],
            session_half_life_ms: d.session_half_life_ms,
            long_term_half_life_ms: d.long_term_half_life_ms,
            popularity_half_life_ms: d.popularity_half_life_ms,
            session_gap_ms: d.session_gap_ms,
            purchase_exclusion_ms: None,
            profile_events: 50,
            blend: [1.0, 1.0, 1.0, 3.0, 0.5],
            min_together: 1,
            min_lift: 1.0,
            upsell_affinity: 0.5,
        };
        let old = with_version(bincode::serde::encode_to_vec(&v1, bincode_config()).unwrap());
        let decoded = decode_behaviour(&old).unwrap();
        assert_eq!(decoded.profile_events, 50);
        assert_eq!(decoded.blend.category, 0.5);
        assert_eq!(decoded.blend.collaborative, d.blend.collaborative);
        assert_eq!(decoded.collaborative, d.collaborative);
        assert_eq!(decoded.repurchase, d.repurchase);
        for cut in 0..bytes.len() {
            assert!(decode_behaviour(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Bytes that decode to settings that fail validation are corrupt.
        let bad = encode_behaviour(&BehaviourSettings {
            profile_events: 0,
            ..BehaviourSettings::default()
        });
        assert!(matches!(
            decode_behaviour(&bad),
            Err(Error::Corruption { .. })
        ));
    }

    proptest! {
        #[test]
        fn items_round_trip(
            v in proptest::collection::vec(-1000.0f32..1000.0, 3),
            price in proptest::option::of(0.0f64..1e9),
            category in proptest::option::of("[a-z]{0,8}"),
            tags in proptest::collection::vec("[a-z0-9]{1,5}", 0..4),
            tier in proptest::option::of(1u8..10),
            in_stock: bool,
        ) {
            let mut attributes = Map::new();
            attributes.insert("color".into(), Value::from("red"));
            let item = Item { id: "x".into(), vector: v, price, category, brand: None, in_stock, tags, explicit_tier: tier, attributes };
            let back = decode_item("x", &encode_item(&item, VectorType::F32), &config(VectorType::F32)).unwrap();
            prop_assert_eq!(&back, &item);
            let half = decode_item("x", &encode_item(&item, VectorType::F16), &config(VectorType::F16)).unwrap();
            for (a, b) in half.vector.iter().zip(&item.vector) {
                prop_assert!((a - b).abs() <= b.abs() * 1e-3 + 1e-3);
            }
        }

        #[test]
        fn truncated_values_are_corruption_not_panics(cut in 0usize..40) {
            let item = Item { id: "x".into(), vector: vec![1.0, 2.0, 3.0], price: Some(1.0), category: Some("c".into()), brand: None, in_stock: true, tags: vec![], explicit_tier: None, attributes: Map::new() };
            let bytes = encode_item(&item, VectorType::F32);
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(decode_item("x", &bytes[..cut], &config(VectorType::F32)).is_err());
        }
    }

    #[test]
    fn users_with_and_without_vectors_round_trip() {
        let cfg = config(VectorType::F32);
        for vector in [None, Some(vec![1.0, 0.5, -2.0])] {
            let user = User {
                id: "u".into(),
                vector,
                attributes: Map::new(),
            };
            assert_eq!(
                decode_user("u", &encode_user(&user, VectorType::F32), &cfg).unwrap(),
                user
            );
        }
    }

    #[test]
    fn catalogs_round_trip_and_unknown_versions_are_corruption() {
        let record = CatalogRecord {
            id: 9,
            config: CatalogConfig::new(384, Metric::Cosine, VectorType::F16, 4).unwrap(),
        };
        let bytes = encode_catalog(&record);
        assert_eq!(decode_catalog(&bytes).unwrap(), record);
        let mut wrong = bytes.clone();
        wrong[0] = 99;
        assert!(matches!(
            decode_catalog(&wrong),
            Err(Error::Corruption { .. })
        ));
    }
}
