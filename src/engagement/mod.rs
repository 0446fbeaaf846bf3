//! The engagement score: the probability that the unit a hit was shown to
//! clicks it (or adds it to the cart, or buys it) citing the answer within
//! the attribution window. Pure: features in, probabilities out; the
//! features are computed by `recommend::rerank` from what recstore
//! already knows, the labels by the recorder (`analytics`), the training
//! scan by `catalog`.
//!
//! **The model** is a logistic regression, `p = σ(b + w·z(x) + π[pos])`:
//! `z` standardises each feature with the training mean and deviation,
//! and `π` is one logit offset per position shown (1 to 10, one shared
//! term for 11 and beyond; position 1 is the reference, 0). Position is a
//! feature of training, so what the weights learn is the item's appeal
//! with the position effect taken out; when scoring, the offset of the
//! slot the hit is served in is added back, so the score is the
//! probability *at that slot*, and reordering by the item part (`b +
//! w·z(x)`) is ordering by the score at any one slot (the position-based
//! model of click logs, in logit space). Fitted by Newton's method (IRLS)
//! with an L2 penalty on the weights (`train`).
//!
//! **Before a model** (too few labelled hits, `EngagementSettings`), the
//! score is a prior: the surface's observed rate per hit shown, smoothed
//! toward [`DEFAULT_RATE`] with [`PRIOR_STRENGTH`] pseudo-hits, times a
//! position factor `1 / log2(pos + 1)` normalised to mean 1 over positions
//! 1 to 10 (the usual DCG-like fall-off), also smoothed toward the factor
//! observed per position once there is data. Answers say which one served
//! (`engagement_source`).
//!
//! Must not: know HTTP, RocksDB, the index or a catalog.

pub mod file;
pub mod quality;
pub mod train;

use serde::{Deserialize, Serialize};

use crate::model::Surface;

/// The features, in order (the version of the layout is
/// [`FEATURE_VERSION`]): what `GET .../engagement-model` names.
pub const FEATURES: [&str; 22] = [
    "similarity",
    "has_similarity",
    "profile_similarity",
    "has_profile",
    "popularity",
    "category_affinity",
    "copurchase_confidence",
    "copurchase_log_lift",
    "price_vs_anchor",
    "price_gap_anchor",
    "has_anchor_price",
    "price_vs_usual",
    "price_gap_usual",
    "has_usual_price",
    "recency",
    "return_rate",
    "like_disliked",
    "surface_similar",
    "surface_upsell",
    "surface_user",
    "surface_cross_sell",
    "item_engagement",
];

/// Number of features.
pub const FEATURE_COUNT: usize = FEATURES.len();

/// Bumped whenever [`FEATURES`] changes: impressions logged with another
/// layout are not trained on, and a stored model of another layout is
/// dropped.
pub const FEATURE_VERSION: u16 = 4;

/// Pseudo-hits at the base rate an item's own engaged share starts from
/// (`item_engagement`): an item shown twenty times moves halfway.
pub const ITEM_PRIOR_HITS: f64 = 20.0;

/// The item's own record as a feature: the log-odds of its smoothed
/// engaged share against the base rate (0 for an item never shown).
/// (How often it was shown is deliberately not a feature: in training it
/// grows with each hit's place in the log, when serving it is frozen at
/// the last training's total, so the model would learn time, not the
/// item. The smoothing already weighs the record by its size.)
pub fn item_features(shown: u32, engaged: u32, base_rate: f64) -> f64 {
    let base = base_rate.clamp(1e-6, 1.0 - 1e-6);
    let rate = (f64::from(engaged) + ITEM_PRIOR_HITS * base) / (f64::from(shown) + ITEM_PRIOR_HITS);
    let logit = |p: f64| (p / (1.0 - p)).ln();
    logit(rate.clamp(1e-6, 1.0 - 1e-6)) - logit(base)
}

/// Positions with their own logit offset; later ones share the last.
pub const POSITIONS: usize = 11;

/// The rate per hit shown assumed before any impression was labelled:
/// a typical click-through of one product card in a recommendation
/// widget.
pub const DEFAULT_RATE: f64 = 0.02;

/// Pseudo-hits of [`DEFAULT_RATE`] the prior starts from: a surface's
/// own rate takes over once it has shown a few hundred hits.
pub const PRIOR_STRENGTH: f64 = 200.0;

/// The logistic function: in [0, 1] for any input (NaN, "no
/// information", is 0.5).
pub fn sigmoid(z: f64) -> f64 {
    if z.is_nan() {
        0.5
    } else if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The slot index of a 0-based position.
pub fn slot(position: usize) -> usize {
    position.min(POSITIONS - 1)
}

/// What one hit looks like to the model (see [`FEATURES`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Features {
    /// Similarity of the hit to the anchor (similar, upsell; the closest
    /// cart item for cross-sell) or, without one, to the user's profile.
    pub similarity: Option<f64>,
    /// Similarity to the user's profile vector, when they have one.
    pub profile_similarity: Option<f64>,
    /// `ln(1 + popularity now)`.
    pub popularity: f64,
    /// The user's share of activity in the hit's category.
    pub category_affinity: f64,
    /// Bought-together confidence and `ln(lift)` with the anchor(s).
    pub copurchase_confidence: f64,
    pub copurchase_log_lift: f64,
    /// `ln(price / anchor's price)`; its absolute value is a feature too
    /// (the distance from the price the shopper is looking at, either way).
    pub price_vs_anchor: Option<f64>,
    /// `ln(price / the user's usual price)` (mean of their items'), and
    /// its absolute value.
    pub price_vs_usual: Option<f64>,
    /// `ln(1 + hours since the item's last event)`, a week when none.
    pub recency: f64,
    /// Returns / purchases, when there are enough purchases to say.
    pub return_rate: f64,
    /// Among the nearest neighbours of an item the user disliked.
    pub like_disliked: bool,
    pub surface: Option<Surface>,
    /// The item's own engaged share when shown (see [`item_features`]).
    pub item_engagement: f64,
}

impl Features {
    /// The feature vector, in [`FEATURES`] order; every value finite.
    pub fn to_vec(&self) -> [f32; FEATURE_COUNT] {
        // Finite in f32 too: a huge f64 would round to infinity.
        let f = |x: f64| {
            if x.is_finite() {
                x.clamp(-1e30, 1e30) as f32
            } else {
                0.0
            }
        };
        let opt = |x: Option<f64>| (f(x.unwrap_or(0.0)), f32::from(u8::from(x.is_some())));
        let (sim, has_sim) = opt(self.similarity);
        let (profile, has_profile) = opt(self.profile_similarity);
        let (anchor, has_anchor) = opt(self.price_vs_anchor);
        let (usual, has_usual) = opt(self.price_vs_usual);
        let s = |want: Surface| f32::from(u8::from(self.surface == Some(want)));
        [
            sim,
            has_sim,
            profile,
            has_profile,
            f(self.popularity),
            f(self.category_affinity),
            f(self.copurchase_confidence),
            f(self.copurchase_log_lift),
            anchor,
            anchor.abs(),
            has_anchor,
            usual,
            usual.abs(),
            has_usual,
            f(self.recency),
            f(self.return_rate),
            f32::from(u8::from(self.like_disliked)),
            s(Surface::Similar),
            s(Surface::Upsell),
            s(Surface::User),
            s(Surface::CrossSell),
            f(self.item_engagement),
        ]
    }
}

/// How good a model (or the prior) is on the held-out recent slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Quality {
    pub samples: u64,
    pub positives: u64,
    pub log_loss: f64,
    pub brier: f64,
    /// `None` when the slice holds one class only.
    pub auc: Option<f64>,
    /// Expected calibration error over [`quality::BINS`] equal-count bins.
    pub ece: f64,
    pub reliability: Vec<quality::Bin>,
}

/// The prior (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    /// Smoothed rate per hit shown, by surface code.
    pub surface_rates: Vec<f64>,
    /// Multiplier per position slot, mean 1 over the first ten.
    pub position_factors: Vec<f64>,
}

impl Default for Prior {
    fn default() -> Self {
        Prior {
            surface_rates: vec![DEFAULT_RATE; Surface::ALL.len()],
            position_factors: default_position_factors(),
        }
    }
}

/// `1 / log2(pos + 1)`, scaled to mean 1 over positions 1 to 10.
pub fn default_position_factors() -> Vec<f64> {
    let raw: Vec<f64> = (0..POSITIONS)
        .map(|p| 1.0 / ((p + 2) as f64).log2())
        .collect();
    let mean = raw[..10].iter().sum::<f64>() / 10.0;
    raw.iter().map(|r| r / mean).collect()
}

impl Prior {
    /// The prior from hits shown and engaged, by surface code and by slot.
    pub fn fit(shown: &[[u64; POSITIONS]], engaged: &[[u64; POSITIONS]]) -> Prior {
        let default = default_position_factors();
        let mut surface_rates = vec![DEFAULT_RATE; Surface::ALL.len()];
        for (code, rate) in surface_rates.iter_mut().enumerate() {
            let n: u64 = shown.get(code).map_or(0, |s| s.iter().sum());
            let k: u64 = engaged.get(code).map_or(0, |s| s.iter().sum());
            // No data: the default exactly (not a rounding of it), so a
            // training over nothing changes no answer.
            if n > 0 {
                *rate = (k as f64 + PRIOR_STRENGTH * DEFAULT_RATE) / (n as f64 + PRIOR_STRENGTH);
            }
        }
        // Position factors: each slot's rate relative to the overall rate,
        // smoothed toward the default curve.
        let (mut n_all, mut k_all) = (0u64, 0u64);
        let mut by_slot = [(0u64, 0u64); POSITIONS];
        for (s, e) in shown.iter().zip(engaged) {
            for p in 0..POSITIONS {
                by_slot[p].0 += s[p];
                by_slot[p].1 += e[p];
                n_all += s[p];
                k_all += e[p];
            }
        }
        let overall =
            (k_all as f64 + PRIOR_STRENGTH * DEFAULT_RATE) / (n_all as f64 + PRIOR_STRENGTH);
        let position_factors = (0..POSITIONS)
            .map(|p| {
                let (n, k) = by_slot[p];
                if n == 0 {
                    return default[p];
                }
                let expected = overall * default[p];
                let rate = (k as f64 + PRIOR_STRENGTH * expected) / (n as f64 + PRIOR_STRENGTH);
                rate / overall
            })
            .collect();
        Prior {
            surface_rates,
            position_factors,
        }
    }

    /// The prior probability of a hit of `surface` at 0-based `position`.
    pub fn probability(&self, surface: Surface, position: usize) -> f64 {
        let rate = self
            .surface_rates
            .get(surface.code() as usize)
            .copied()
            .unwrap_or(DEFAULT_RATE);
        let factor = self
            .position_factors
            .get(slot(position))
            .copied()
            .unwrap_or(1.0);
        (rate * factor).clamp(0.0, 1.0)
    }
}

/// A trained model (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub feature_version: u16,
    /// Standardisation: `z = (x - mean) / scale`.
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub intercept: f64,
    /// Per feature, on the standardised scale.
    pub weights: Vec<f64>,
    /// Logit offset per position slot (slot 0 is 0).
    pub positions: Vec<f64>,
    /// The engaged share of the hits it was fitted on: what an item's own
    /// share is smoothed toward.
    pub item_base_rate: f64,
    pub info: TrainingInfo,
}

/// What a training saw and how the result did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Labelled hits trained on and held out.
    pub samples: u64,
    pub positives: u64,
    pub held_out: u64,
    pub trained_at_ms: i64,
    /// Impressions shown before this time were used (their outcomes were
    /// final: older than the attribution window).
    pub watermark_ms: i64,
    pub seconds: f64,
    pub iterations: u32,
    /// The model on the held-out recent slice.
    pub quality: Quality,
    /// The same slice scored by the prior, and by a model of similarity
    /// and position only (the baseline the features must beat).
    pub prior_quality: Quality,
    pub baseline_auc: Option<f64>,
}

impl Model {
    /// The item part of the logit: everything but the position.
    pub fn item_logit(&self, x: &[f32]) -> f64 {
        let mut z = self.intercept;
        for (i, &v) in x.iter().enumerate().take(self.weights.len()) {
            let s = self.scale[i];
            if s > 0.0 {
                z += self.weights[i] * ((f64::from(v) - self.mean[i]) / s);
            }
        }
        z
    }

    /// The probability at 0-based `position` of a hit with item logit `z`.
    pub fn probability(&self, item_logit: f64, position: usize) -> f64 {
        let offset = self.positions.get(slot(position)).copied().unwrap_or(0.0);
        sigmoid(item_logit + offset)
    }
}

/// What scores hits: the prior, and the model once there is one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scorer {
    pub prior: Prior,
    pub model: Option<Model>,
    /// Impressions shown before this were scanned by the last training
    /// (with or without a model as the result).
    pub watermark_ms: i64,
    pub trained_at_ms: i64,
    /// Per item: hits shown and engaged among the labelled impressions up
    /// to the watermark (the `item_engagement` feature).
    pub items: std::collections::HashMap<String, (u32, u32)>,
}

/// Where a score came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Prior,
    Model,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Prior => "prior",
            Source::Model => "model",
        }
    }
}

impl Scorer {
    pub fn source(&self) -> Source {
        if self.model.is_some() {
            Source::Model
        } else {
            Source::Prior
        }
    }

    /// The item's own-record feature (0 without a model: the prior needs
    /// none).
    pub fn item_features(&self, id: &str) -> f64 {
        match (&self.model, self.items.get(id)) {
            (Some(m), Some(&(shown, engaged))) => item_features(shown, engaged, m.item_base_rate),
            _ => 0.0,
        }
    }

    /// What orders hits by engagement: the model's item logit, or the
    /// prior's (which does not tell items apart: 0).
    pub fn item_logit(&self, x: &[f32]) -> f64 {
        self.model.as_ref().map_or(0.0, |m| m.item_logit(x))
    }

    /// The score of a hit with item logit `z` (from [`Scorer::item_logit`])
    /// served at 0-based `position` of a `surface` answer.
    pub fn probability(&self, z: f64, surface: Surface, position: usize) -> f64 {
        match &self.model {
            Some(m) => m.probability(z, position),
            None => self.prior.probability(surface, position),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_features() -> impl Strategy<Value = Features> {
        let f = || {
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(f64::INFINITY),
                -1e6..1e6f64
            ]
        };
        (
            proptest::option::of(f()),
            f(),
            f(),
            f(),
            f(),
            proptest::option::of(f()),
            proptest::option::of(f()),
            f(),
            f(),
            any::<bool>(),
            0usize..6,
        )
            .prop_map(
                |(sim, pop, cat, conf, lift, anchor, usual, rec, ret, dis, s)| Features {
                    similarity: sim,
                    profile_similarity: sim.map(|v| -v),
                    popularity: pop,
                    category_affinity: cat,
                    copurchase_confidence: conf,
                    copurchase_log_lift: lift,
                    price_vs_anchor: anchor,
                    price_vs_usual: usual,
                    recency: rec,
                    return_rate: ret,
                    like_disliked: dis,
                    surface: Surface::ALL.get(s).copied(),
                    item_engagement: pop,
                },
            )
    }

    proptest! {
        #[test]
        fn every_score_is_a_finite_probability(
            features in any_features(),
            weights in proptest::collection::vec(any::<f64>(), FEATURE_COUNT),
            mean in proptest::collection::vec(-1e9..1e9f64, FEATURE_COUNT),
            scale in proptest::collection::vec(prop_oneof![Just(0.0), 1e-9..1e9f64], FEATURE_COUNT),
            intercept in any::<f64>(),
            positions in proptest::collection::vec(any::<f64>(), POSITIONS),
            position in 0usize..100_000,
            rates in proptest::collection::vec(0.0..1.0f64, Surface::ALL.len()),
        ) {
            let x = features.to_vec();
            prop_assert!(x.iter().all(|v| v.is_finite()));
            let model = Model {
                feature_version: FEATURE_VERSION,
                mean,
                scale,
                intercept,
                weights,
                positions,
                item_base_rate: 0.05,
                info: train::tests_info(),
            };
            let surface = features.surface.unwrap_or(Surface::User);
            for scorer in [
                Scorer { model: Some(model.clone()), ..Scorer::default() },
                Scorer {
                    prior: Prior { surface_rates: rates.clone(), ..Prior::default() },
                    ..Scorer::default()
                },
            ] {
                let z = scorer.item_logit(&x);
                let p = scorer.probability(z, surface, position);
                prop_assert!(p.is_finite() && (0.0..=1.0).contains(&p), "{p}");
            }
        }
    }

    #[test]
    fn sigmoid_is_finite_and_symmetric() {
        for z in [-1e308, -800.0, -1.0, 0.0, 1.0, 800.0, 1e308] {
            let p = sigmoid(z);
            assert!(p.is_finite() && (0.0..=1.0).contains(&p), "{z} {p}");
            assert!((sigmoid(-z) - (1.0 - p)).abs() < 1e-12);
        }
        assert_eq!(sigmoid(0.0), 0.5);
    }

    #[test]
    fn the_default_prior_falls_with_position_and_averages_the_default_rate() {
        let prior = Prior::default();
        let f = &prior.position_factors;
        assert!(f.windows(2).all(|w| w[0] > w[1]));
        let mean = f[..10].iter().sum::<f64>() / 10.0;
        assert!((mean - 1.0).abs() < 1e-12);
        // 1 / log2(2) = 1 against a mean of 1/log2(p+1) over 1..=10.
        let raw_mean: f64 = (2..12).map(|p| 1.0 / (p as f64).log2()).sum::<f64>() / 10.0;
        assert!((f[0] - 1.0 / raw_mean).abs() < 1e-12);
        let p1 = prior.probability(Surface::Similar, 0);
        assert!((p1 - DEFAULT_RATE / raw_mean).abs() < 1e-12);
        // Past the tenth position every slot is the eleventh.
        assert_eq!(
            prior.probability(Surface::User, 10),
            prior.probability(Surface::User, 500)
        );
    }

    #[test]
    fn the_prior_follows_a_surfaces_own_rate_once_it_has_data() {
        let mut shown = vec![[0u64; POSITIONS]; Surface::ALL.len()];
        let mut engaged = vec![[0u64; POSITIONS]; Surface::ALL.len()];
        // 2,000 upsell hits at position 1, 200 engaged: 10 %.
        shown[Surface::Upsell.code() as usize][0] = 2_000;
        engaged[Surface::Upsell.code() as usize][0] = 200;
        let prior = Prior::fit(&shown, &engaged);
        let upsell = prior.surface_rates[Surface::Upsell.code() as usize];
        // (200 + 200 * 0.02) / (2000 + 200) = 204 / 2200.
        assert!((upsell - 204.0 / 2200.0).abs() < 1e-12);
        assert_eq!(
            prior.surface_rates[Surface::Similar.code() as usize],
            DEFAULT_RATE
        );
        // No data: the default, exactly (a training over nothing must
        // not change an answer in its last digit).
        assert_eq!(Prior::fit(&[], &[]), Prior::default());
        let nothing = vec![[0u64; POSITIONS]; Surface::ALL.len()];
        assert_eq!(Prior::fit(&nothing, &nothing), Prior::default());
    }

    #[test]
    fn an_items_own_record_moves_it_from_the_base_rate() {
        assert_eq!(item_features(0, 0, 0.1), 0.0);
        // Shown 20 times, engaged 6: (6 + 2) / 40 = 0.2 against 0.1.
        let logit = |p: f64| (p / (1.0 - p)).ln();
        assert!((item_features(20, 6, 0.1) - (logit(0.2) - logit(0.1))).abs() < 1e-12);
        assert!(item_features(1_000, 0, 0.1) < -2.0);
        assert!(item_features(u32::MAX, u32::MAX, 0.0).is_finite());
    }

    #[test]
    fn features_are_finite_and_flag_what_is_missing() {
        let x = Features {
            similarity: Some(f64::NAN),
            price_vs_anchor: Some(0.5),
            surface: Some(Surface::CrossSell),
            ..Features::default()
        }
        .to_vec();
        assert!(x.iter().all(|v| v.is_finite()));
        let at = |name: &str| x[FEATURES.iter().position(|f| *f == name).unwrap()];
        assert_eq!((at("similarity"), at("has_similarity")), (0.0, 1.0));
        assert_eq!((at("profile_similarity"), at("has_profile")), (0.0, 0.0));
        assert_eq!(
            (
                at("price_vs_anchor"),
                at("price_gap_anchor"),
                at("has_anchor_price")
            ),
            (0.5, 0.5, 1.0)
        );
        assert_eq!((at("price_vs_usual"), at("has_usual_price")), (0.0, 0.0));
        assert_eq!(at("surface_cross_sell"), 1.0);
        assert_eq!(
            at("surface_user") + at("surface_similar") + at("surface_upsell"),
            0.0
        );
        let negative = Features {
            price_vs_usual: Some(-2.0),
            ..Features::default()
        }
        .to_vec();
        assert_eq!(
            negative[FEATURES
                .iter()
                .position(|f| *f == "price_gap_usual")
                .unwrap()],
            2.0
        );
    }
}
