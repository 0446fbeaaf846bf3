//! Wire types of `/v1/catalogs/{catalog}/engagement-model`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::catalog::engagement::EngagementTraining;
use crate::engagement::quality::Bin;
use crate::engagement::{Quality, Scorer, FEATURES};
use crate::model::Surface;

use super::analytics::rfc3339;

/// One feature of the model: its weight per standard deviation, and the
/// mean and deviation it is standardised with.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureView {
    pub name: &'static str,
    pub weight: f64,
    pub mean: f64,
    pub scale: f64,
}

/// A row of the reliability table: one decile of the held-out hits by
/// predicted score.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReliabilityView {
    pub count: u64,
    pub predicted: f64,
    pub observed: f64,
    pub low: f64,
    pub high: f64,
}

impl ReliabilityView {
    fn of(b: &Bin) -> ReliabilityView {
        ReliabilityView {
            count: b.count,
            predicted: b.predicted,
            observed: b.observed,
            low: b.low,
            high: b.high,
        }
    }
}

/// How well scores match outcomes on the held-out recent slice.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualityView {
    pub samples: u64,
    pub positives: u64,
    pub log_loss: f64,
    pub brier: f64,
    /// `null` when the slice holds one class only.
    pub auc: Option<f64>,
    /// Expected calibration error over the ten deciles.
    pub expected_calibration_error: f64,
    pub reliability: Vec<ReliabilityView>,
}

impl QualityView {
    fn of(q: &Quality) -> QualityView {
        QualityView {
            samples: q.samples,
            positives: q.positives,
            log_loss: q.log_loss,
            brier: q.brier,
            auc: q.auc,
            expected_calibration_error: q.ece,
            reliability: q.reliability.iter().map(ReliabilityView::of).collect(),
        }
    }
}

/// The prior: a rate per surface and a factor per position.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriorView {
    /// Surface name -> smoothed engaged share of hits shown.
    #[schema(value_type = Object)]
    pub surface_rates: serde_json::Map<String, serde_json::Value>,
    /// Positions 1 to 10, then one factor for 11 and beyond.
    pub position_factors: Vec<f64>,
}

/// `GET /engagement-model`, and the answer of `POST .../train`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngagementModelView {
    /// `model` or `prior`: what scores hits now.
    pub source: &'static str,
    /// The model's features (empty without a model).
    pub features: Vec<FeatureView>,
    pub intercept: Option<f64>,
    /// Logit offsets of positions 1 to 10 and 11+ (position 1 is 0).
    pub position_offsets: Vec<f64>,
    pub prior: PriorView,
    /// Labelled hits the model was fitted on and held out.
    pub training_samples: Option<u64>,
    pub training_positives: Option<u64>,
    pub held_out: Option<u64>,
    pub training_seconds: Option<f64>,
    pub iterations: Option<u32>,
    /// The last training (with or without a model as its result).
    pub last_trained: Option<String>,
    /// Impressions shown before this time were read by it.
    pub watermark: Option<String>,
    /// The model on the newest 20 % of the labelled hits, which it was
    /// not fitted on.
    pub quality: Option<QualityView>,
    /// The same slice scored by the prior.
    pub prior_quality: Option<QualityView>,
    /// AUC of a model of similarity and position only, fitted and judged
    /// the same way: the baseline the features beat.
    pub baseline_auc: Option<f64>,
    /// Why the prior is in use (after a training that found too little).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_enough: Option<String>,
    /// Impressions the training read, and undecodable ones it skipped
    /// (`POST .../train` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impressions_read: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impressions_unreadable: Option<u64>,
    pub training: bool,
    pub trainings: u64,
}

impl EngagementModelView {
    pub fn new(scorer: &Scorer, training: bool, trainings: u64) -> EngagementModelView {
        let m = scorer.model.as_ref();
        let mut rates = serde_json::Map::new();
        for s in Surface::ALL {
            if s == Surface::Search {
                continue;
            }
            let rate = scorer.prior.surface_rates.get(s.code() as usize).copied();
            rates.insert(s.as_str().to_string(), serde_json::json!(rate));
        }
        EngagementModelView {
            source: scorer.source().as_str(),
            features: m.map_or_else(Vec::new, |m| {
                FEATURES
                    .iter()
                    .enumerate()
                    .map(|(i, name)| FeatureView {
                        name,
                        weight: m.weights[i],
                        mean: m.mean[i],
                        scale: m.scale[i],
                    })
                    .collect()
            }),
            intercept: m.map(|m| m.intercept),
            position_offsets: m.map_or_else(Vec::new, |m| m.positions.clone()),
            prior: PriorView {
                surface_rates: rates,
                position_factors: scorer.prior.position_factors.clone(),
            },
            training_samples: m.map(|m| m.info.samples),
            training_positives: m.map(|m| m.info.positives),
            held_out: m.map(|m| m.info.held_out),
            training_seconds: m.map(|m| m.info.seconds),
            iterations: m.map(|m| m.info.iterations),
            last_trained: (scorer.trained_at_ms > 0).then(|| rfc3339(scorer.trained_at_ms)),
            watermark: (scorer.trained_at_ms > 0).then(|| rfc3339(scorer.watermark_ms.max(0))),
            quality: m.map(|m| QualityView::of(&m.info.quality)),
            prior_quality: m.map(|m| QualityView::of(&m.info.prior_quality)),
            baseline_auc: m.and_then(|m| m.info.baseline_auc),
            not_enough: None,
            impressions_read: None,
            impressions_unreadable: None,
            training,
            trainings,
        }
    }

    pub fn trained(t: &EngagementTraining, trainings: u64) -> EngagementModelView {
        let mut view = EngagementModelView::new(&t.scorer, false, trainings);
        view.not_enough = t.not_enough.as_ref().map(|w| w.to_string());
        view.impressions_read = Some(t.impressions);
        view.impressions_unreadable = Some(t.unreadable);
        view
    }
}
