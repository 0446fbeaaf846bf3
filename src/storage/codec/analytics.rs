//! Bytes of the experiments and analytics records: experiment
//! definitions, impressions, the event log and the counters `analytics`
//! derives. Same rules as the rest of the codec: a version byte, then
//! bincode 2 of a storage-private struct.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{bincode_config, check_version, corrupt, decode_event, encode_event, with_version};
use crate::error::Result;
use crate::experiments::results::ArmStats;
use crate::experiments::stats::Sums;
use crate::experiments::{
    Arm, Experiment, ExperimentName, PrimaryMetric, Status, Strategy, UnitKind,
};
use crate::model::analytics::{
    Attribution, Bucket, ClickRecord, ExperimentExposure, Exposure, Impression, OrderRecord,
};
use crate::model::{Event, Surface};

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    with_version(
        bincode::serde::encode_to_vec(value, bincode_config())
            .expect("encoding to a Vec cannot fail"),
    )
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T> {
    let body = check_version(what, bytes)?;
    let (value, _): (T, usize) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| corrupt(what, e.to_string()))?;
    Ok(value)
}

fn surface_of(what: &str, code: u8) -> Result<Surface> {
    Surface::from_code(code).ok_or_else(|| corrupt(what, format!("unknown surface {code}")))
}

#[derive(Serialize, Deserialize)]
struct ArmV1 {
    name: String,
    weight: f64,
    /// 0 default, 1 trending, 2 none.
    strategy: u8,
    /// JSON text of the settings override of a default strategy.
    settings: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ExperimentV1 {
    surface: u8,
    /// 0 user, 1 session.
    unit: u8,
    arms: Vec<ArmV1>,
    control: u32,
    /// 0 conversion_rate, 1 revenue_per_unit, 2 ctr.
    primary_metric: u8,
    stopped: bool,
    created_ms: i64,
    stopped_ms: Option<i64>,
}

pub fn encode_experiment(e: &Experiment) -> Vec<u8> {
    encode(&ExperimentV1 {
        surface: e.surface.code(),
        unit: match e.unit {
            UnitKind::User => 0,
            UnitKind::Session => 1,
        },
        arms: e
            .arms
            .iter()
            .map(|a| {
                let (strategy, settings) = match &a.strategy {
                    Strategy::Default { settings } => (0, settings.clone()),
                    Strategy::Trending => (1, None),
                    Strategy::None => (2, None),
                };
                ArmV1 {
                    name: a.name.clone(),
                    weight: a.weight,
                    strategy,
                    settings,
                }
            })
            .collect(),
        control: e.control as u32,
        primary_metric: match e.primary_metric {
            PrimaryMetric::ConversionRate => 0,
            PrimaryMetric::RevenuePerUnit => 1,
            PrimaryMetric::Ctr => 2,
        },
        stopped: e.status == Status::Stopped,
        created_ms: e.created_ms,
        stopped_ms: e.stopped_ms,
    })
}

pub fn decode_experiment(name: &str, bytes: &[u8]) -> Result<Experiment> {
    const WHAT: &str = "experiment";
    let v: ExperimentV1 = decode(WHAT, bytes)?;
    let arms = v
        .arms
        .into_iter()
        .map(|a| {
            let strategy = match a.strategy {
                0 => Strategy::Default {
                    settings: a.settings,
                },
                1 => Strategy::Trending,
                2 => Strategy::None,
                other => return Err(corrupt(WHAT, format!("unknown strategy {other}"))),
            };
            Ok(Arm {
                name: a.name,
                weight: a.weight,
                strategy,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if v.control as usize >= arms.len() {
        return Err(corrupt(WHAT, "control arm out of range"));
    }
    Ok(Experiment {
        name: ExperimentName::parse("name", name).map_err(|e| corrupt(WHAT, e.to_string()))?,
        surface: surface_of(WHAT, v.surface)?,
        unit: match v.unit {
            0 => UnitKind::User,
            1 => UnitKind::Session,
            other => return Err(corrupt(WHAT, format!("unknown unit {other}"))),
        },
        arms,
        control: v.control as usize,
        primary_metric: match v.primary_metric {
            0 => PrimaryMetric::ConversionRate,
            1 => PrimaryMetric::RevenuePerUnit,
            2 => PrimaryMetric::Ctr,
            other => return Err(corrupt(WHAT, format!("unknown metric {other}"))),
        },
        status: if v.stopped {
            Status::Stopped
        } else {
            Status::Running
        },
        created_ms: v.created_ms,
        stopped_ms: v.stopped_ms,
    })
}

#[derive(Serialize, Deserialize)]
struct ExposureRefV1 {
    name: String,
    arm: String,
    unit: String,
}

fn exposure_ref(e: &Option<ExperimentExposure>) -> Option<ExposureRefV1> {
    e.as_ref().map(|e| ExposureRefV1 {
        name: e.name.clone(),
        arm: e.arm.clone(),
        unit: e.unit.clone(),
    })
}

fn exposure_of(e: Option<ExposureRefV1>) -> Option<ExperimentExposure> {
    e.map(|e| ExperimentExposure {
        name: e.name,
        arm: e.arm,
        unit: e.unit,
    })
}

#[derive(Serialize, Deserialize)]
struct ImpressionV1 {
    surface: u8,
    user_id: Option<String>,
    session_id: Option<String>,
    experiment: Option<ExposureRefV1>,
    anchor: Vec<String>,
    items: Vec<String>,
    at_ms: i64,
    latency_us: u32,
}

/// Impressions, version 2: version 1, then what the engagement score
/// needs: each hit's features (row-major, `feature_count` per hit, as the
/// bits of f16 values: half the bytes, and the three significant digits a
/// feature needs; values beyond f16's range are clamped to it), the
/// score served, and the positions (0-based) engaged with so far.
#[derive(Serialize, Deserialize)]
struct ImpressionV2 {
    v1: ImpressionV1,
    feature_version: u16,
    feature_count: u16,
    features: Vec<u16>,
    engagement: Vec<f32>,
    engaged: Vec<u32>,
}

const IMPRESSION_VERSION_2: u8 = 2;

pub fn encode_impression(i: &Impression) -> Vec<u8> {
    let v2 = ImpressionV2 {
        v1: ImpressionV1 {
            surface: i.surface.code(),
            user_id: i.user_id.clone(),
            session_id: i.session_id.clone(),
            experiment: exposure_ref(&i.experiment),
            anchor: i.anchor.clone(),
            items: i.items.iter().map(|s| s.to_string()).collect(),
            at_ms: i.at_ms,
            latency_us: i.latency_us,
        },
        feature_version: i.feature_version,
        feature_count: i.feature_count,
        features: i
            .features
            .iter()
            .map(|&x| half::f16::from_f32(x.clamp(-65_504.0, 65_504.0)).to_bits())
            .collect(),
        engagement: i.engagement.clone(),
        engaged: i.engaged.clone(),
    };
    let mut out = vec![IMPRESSION_VERSION_2];
    out.extend(
        bincode::serde::encode_to_vec(&v2, bincode_config())
            .expect("encoding to a Vec cannot fail"),
    );
    out
}

pub fn decode_impression(id: &str, bytes: &[u8]) -> Result<Impression> {
    const WHAT: &str = "impression";
    let v2 = match bytes.split_first() {
        Some((&IMPRESSION_VERSION_2, body)) => {
            let (v2, _): (ImpressionV2, usize) =
                bincode::serde::decode_from_slice(body, bincode_config())
                    .map_err(|e| corrupt(WHAT, e.to_string()))?;
            v2
        }
        _ => ImpressionV2 {
            v1: decode(WHAT, bytes)?,
            feature_version: 0,
            feature_count: 0,
            features: Vec::new(),
            engagement: Vec::new(),
            engaged: Vec::new(),
        },
    };
    let v = v2.v1;
    let n = v.items.len();
    if v2.features.len() != n * usize::from(v2.feature_count)
        || !(v2.engagement.is_empty() || v2.engagement.len() == n)
        || v2.engaged.iter().any(|&p| p as usize >= n)
    {
        return Err(corrupt(
            WHAT,
            "features, scores or outcomes do not match its items",
        ));
    }
    Ok(Impression {
        id: id.to_string(),
        surface: surface_of(WHAT, v.surface)?,
        user_id: v.user_id,
        session_id: v.session_id,
        experiment: exposure_of(v.experiment),
        anchor: v.anchor,
        items: v.items.into_iter().map(Arc::from).collect(),
        at_ms: v.at_ms,
        latency_us: v.latency_us,
        feature_version: v2.feature_version,
        feature_count: v2.feature_count,
        features: v2
            .features
            .iter()
            .map(|&b| half::f16::from_bits(b).to_f32())
            .collect(),
        engagement: v2.engagement,
        engaged: v2.engaged,
    })
}

/// One event batch of the event log: each event length-prefixed in the
/// event codec.
pub fn encode_event_batch(events: &[Event]) -> Vec<u8> {
    let encoded: Vec<Vec<u8>> = events.iter().map(encode_event).collect();
    encode(&encoded)
}

pub fn decode_event_batch(bytes: &[u8]) -> Result<Vec<Event>> {
    let encoded: Vec<Vec<u8>> = decode("event log", bytes)?;
    encoded.iter().map(|e| decode_event(e)).collect()
}

#[derive(Serialize, Deserialize)]
struct AttributionV1 {
    recommendation_id: String,
    surface: u8,
    position: u32,
    experiment: Option<ExposureRefV1>,
}

#[derive(Serialize, Deserialize)]
struct ClickV1 {
    at_ms: i64,
    attribution: AttributionV1,
}

pub fn encode_click(c: &ClickRecord) -> Vec<u8> {
    encode(&ClickV1 {
        at_ms: c.at_ms,
        attribution: AttributionV1 {
            recommendation_id: c.attribution.recommendation_id.clone(),
            surface: c.attribution.surface.code(),
            position: c.attribution.position,
            experiment: exposure_ref(&c.attribution.experiment),
        },
    })
}

pub fn decode_click(bytes: &[u8]) -> Result<ClickRecord> {
    let v: ClickV1 = decode("click", bytes)?;
    Ok(ClickRecord {
        at_ms: v.at_ms,
        attribution: Attribution {
            recommendation_id: v.attribution.recommendation_id,
            surface: surface_of("click", v.attribution.surface)?,
            position: v.attribution.position,
            experiment: exposure_of(v.attribution.experiment),
        },
    })
}

/// The time of a stored click record without decoding it all (the
/// compaction filter's question): the version byte, then bincode's
/// zig-zag varint of `at_ms`.
pub fn click_time(bytes: &[u8]) -> Option<i64> {
    let body = check_version("click", bytes).ok()?;
    let (at_ms, _): (i64, usize) =
        bincode::serde::decode_from_slice(body, bincode_config()).ok()?;
    Some(at_ms)
}

#[derive(Serialize, Deserialize)]
struct ExposureV1 {
    arm: u32,
    first_ms: i64,
    impressions: u64,
    clicks: u64,
    converted: bool,
    revenue: f64,
}

pub fn encode_exposure(e: &Exposure) -> Vec<u8> {
    encode(&ExposureV1 {
        arm: e.arm,
        first_ms: e.first_ms,
        impressions: e.impressions,
        clicks: e.clicks,
        converted: e.converted,
        revenue: e.revenue,
    })
}

pub fn decode_exposure(bytes: &[u8]) -> Result<Exposure> {
    let v: ExposureV1 = decode("exposure", bytes)?;
    Ok(Exposure {
        arm: v.arm,
        first_ms: v.first_ms,
        impressions: v.impressions,
        clicks: v.clicks,
        converted: v.converted,
        revenue: v.revenue,
    })
}

#[derive(Serialize, Deserialize)]
struct OrderV1 {
    hour: i64,
    revenue: f64,
    with_recommendation: bool,
}

pub fn encode_order(o: &OrderRecord) -> Vec<u8> {
    encode(&OrderV1 {
        hour: o.hour,
        revenue: o.revenue,
        with_recommendation: o.with_recommendation,
    })
}

pub fn decode_order(bytes: &[u8]) -> Result<OrderRecord> {
    let v: OrderV1 = decode("order", bytes)?;
    Ok(OrderRecord {
        hour: v.hour,
        revenue: v.revenue,
        with_recommendation: v.with_recommendation,
    })
}

type SumsV1 = [f64; 5];

fn sums_v1(s: &Sums) -> (u64, SumsV1) {
    (s.n, [s.y, s.yy, s.x, s.xx, s.xy])
}

fn sums_of((n, [y, yy, x, xx, xy]): (u64, SumsV1)) -> Sums {
    Sums {
        n,
        y,
        yy,
        x,
        xx,
        xy,
    }
}

#[derive(Serialize, Deserialize)]
struct ArmStatsV1 {
    counts: [u64; 7],
    revenue: f64,
    attributed_revenue: f64,
    ctr: (u64, SumsV1),
    conversion: (u64, SumsV1),
    revenue_per_unit: (u64, SumsV1),
}

pub fn encode_arm_stats(arms: &[ArmStats]) -> Vec<u8> {
    let v: Vec<ArmStatsV1> = arms
        .iter()
        .map(|a| ArmStatsV1 {
            counts: [
                a.units,
                a.impressions,
                a.clicks,
                a.add_to_carts,
                a.purchases,
                a.converted,
                a.orders,
            ],
            revenue: a.revenue,
            attributed_revenue: a.attributed_revenue,
            ctr: sums_v1(&a.ctr),
            conversion: sums_v1(&a.conversion),
            revenue_per_unit: sums_v1(&a.revenue_per_unit),
        })
        .collect();
    encode(&v)
}

pub fn decode_arm_stats(bytes: &[u8]) -> Result<Vec<ArmStats>> {
    let v: Vec<ArmStatsV1> = decode("arm stats", bytes)?;
    Ok(v.into_iter()
        .map(|a| {
            let [units, impressions, clicks, add_to_carts, purchases, converted, orders] = a.counts;
            ArmStats {
                units,
                impressions,
                clicks,
                add_to_carts,
                purchases,
                converted,
                revenue: a.revenue,
                orders,
                attributed_revenue: a.attributed_revenue,
                ctr: sums_of(a.ctr),
                conversion: sums_of(a.conversion),
                revenue_per_unit: sums_of(a.revenue_per_unit),
            }
        })
        .collect())
}

#[derive(Serialize, Deserialize)]
struct BucketV1 {
    counts: [u64; 7],
    attributed_revenue: f64,
    revenue: f64,
    revenue_with: f64,
    revenue_without: f64,
    latency: Vec<u64>,
}

/// Buckets, version 2: version 1, then the explicit-feedback events of
/// the hour (ratings, dislikes, owns, returns).
#[derive(Serialize, Deserialize)]
struct BucketV2 {
    v1: BucketV1,
    feedback: [u64; 4],
}

const BUCKET_VERSION_2: u8 = 2;

pub fn encode_bucket(b: &Bucket) -> Vec<u8> {
    let v2 = BucketV2 {
        v1: BucketV1 {
            counts: [
                b.impressions,
                b.clicks,
                b.add_to_carts,
                b.purchases,
                b.orders_with_recommendation,
                b.orders_without_recommendation,
                b.unattributed,
            ],
            attributed_revenue: b.attributed_revenue,
            revenue: b.revenue,
            revenue_with: b.revenue_with_recommendation,
            revenue_without: b.revenue_without_recommendation,
            latency: b.latency.clone(),
        },
        feedback: [b.ratings, b.dislikes, b.owns, b.returns],
    };
    let mut out = vec![BUCKET_VERSION_2];
    out.extend(
        bincode::serde::encode_to_vec(&v2, bincode_config())
            .expect("encoding to a Vec cannot fail"),
    );
    out
}

pub fn decode_bucket(bytes: &[u8]) -> Result<Bucket> {
    const WHAT: &str = "analytics bucket";
    let (v, feedback) = match bytes.split_first() {
        Some((&BUCKET_VERSION_2, body)) => {
            let (v2, _): (BucketV2, usize) =
                bincode::serde::decode_from_slice(body, bincode_config())
                    .map_err(|e| corrupt(WHAT, e.to_string()))?;
            (v2.v1, v2.feedback)
        }
        _ => (decode::<BucketV1>(WHAT, bytes)?, [0; 4]),
    };
    let [impressions, clicks, add_to_carts, purchases, with, without, unattributed] = v.counts;
    let [ratings, dislikes, owns, returns] = feedback;
    Ok(Bucket {
        impressions,
        clicks,
        add_to_carts,
        purchases,
        attributed_revenue: v.attributed_revenue,
        latency: v.latency,
        revenue: v.revenue,
        orders_with_recommendation: with,
        revenue_with_recommendation: v.revenue_with,
        orders_without_recommendation: without,
        revenue_without_recommendation: v.revenue_without,
        unattributed,
        ratings,
        dislikes,
        owns,
        returns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let i = Impression {
            id: "r-1".into(),
            surface: Surface::CrossSell,
            user_id: Some("u".into()),
            session_id: None,
            experiment: Some(ExperimentExposure {
                name: "e".into(),
                arm: "b".into(),
                unit: "u".into(),
            }),
            anchor: vec!["a".into()],
            items: vec![Arc::from("x"), Arc::from("y")],
            at_ms: 1_700_000_000_000,
            latency_us: 1234,
            feature_version: 1,
            feature_count: 2,
            // Exact in f16, so the round trip is exact.
            features: vec![0.5, 1.0, -2.0, 3.0],
            engagement: vec![0.1, 0.05],
            engaged: vec![1],
        };
        assert_eq!(decode_impression("r-1", &encode_impression(&i)).unwrap(), i);
        // Stored as f16: beyond its range, clamped (never infinite).
        let big = Impression {
            features: vec![1e9, -1e9, 0.1, 2.0],
            ..i.clone()
        };
        let back = decode_impression("r-1", &encode_impression(&big)).unwrap();
        assert_eq!(back.features[..2], [65_504.0, -65_504.0]);
        assert!((back.features[2] - 0.1).abs() < 1e-4);
        // Features that do not match the items are corruption.
        let bad = Impression {
            features: vec![1.0],
            ..i.clone()
        };
        assert!(decode_impression("r-1", &encode_impression(&bad)).is_err());
        // Version 1 (before the engagement score) decodes without them.
        let v1 = encode(&ImpressionV1 {
            surface: i.surface.code(),
            user_id: i.user_id.clone(),
            session_id: None,
            experiment: exposure_ref(&i.experiment),
            anchor: i.anchor.clone(),
            items: vec!["x".into(), "y".into()],
            at_ms: i.at_ms,
            latency_us: i.latency_us,
        });
        let old = decode_impression("r-1", &v1).unwrap();
        assert_eq!((old.feature_count, old.engaged.len()), (0, 0));
        assert_eq!(old.items, i.items);
        let c = ClickRecord {
            at_ms: -5,
            attribution: Attribution {
                recommendation_id: "r".into(),
                surface: Surface::User,
                position: 3,
                experiment: None,
            },
        };
        let bytes = encode_click(&c);
        assert_eq!(decode_click(&bytes).unwrap(), c);
        assert_eq!(click_time(&bytes), Some(-5));
        let mut b = Bucket::default();
        b.record_latency(77);
        b.revenue = 3.5;
        b.unattributed = 2;
        assert_eq!(decode_bucket(&encode_bucket(&b)).unwrap(), b);
        let mut a = ArmStats::default();
        a.ctr.add(1.0, 3.0);
        a.units = 1;
        assert_eq!(
            decode_arm_stats(&encode_arm_stats(&[a.clone()])).unwrap(),
            vec![a]
        );
        assert!(decode_bucket(&[9, 1, 2]).is_err());
        assert!(decode_impression("x", &[]).is_err());
    }
}
