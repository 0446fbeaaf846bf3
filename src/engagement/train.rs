//! Fitting the engagement model: L2-penalised logistic regression by
//! Newton's method (iteratively reweighted least squares), on the older
//! labelled hits, judged on the newest ones.
//!
//! The columns are an intercept, the standardised features and one
//! indicator per position slot after the first. With at most a few dozen
//! columns the Hessian is tiny: each iteration is one pass over the
//! samples (`O(n d²)`) and a Cholesky solve of `d x d`.

use std::time::Instant;

use super::quality::quality;
use super::{sigmoid, slot, Model, Prior, Quality, TrainingInfo, FEATURE_COUNT, FEATURE_VERSION};
use super::{FEATURES, POSITIONS};
use crate::model::Surface;

/// Most labelled hits one training reads (the newest).
pub const MAX_SAMPLES: usize = 1_000_000;
/// Share of the labelled hits, the newest, held out to judge the model.
pub const HELD_OUT_SHARE: f64 = 0.2;
/// L2 penalty on every coefficient but the intercept (standardised
/// scale): enough to keep constant or collinear columns finite, small
/// against thousands of samples.
pub const L2: f64 = 1.0;
const MAX_ITERATIONS: u32 = 50;
const TOLERANCE: f64 = 1e-8;

/// One labelled hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    /// The item, as an index the caller assigns (the item-record features
    /// are computed here, from the training data).
    pub item: u32,
    pub surface: Surface,
    /// 0-based position shown.
    pub position: usize,
    pub x: [f32; FEATURE_COUNT],
    pub engaged: bool,
}

/// Why no model came out of a training.
#[derive(Debug, Clone, PartialEq)]
pub enum NotEnough {
    Samples { have: u64, need: u64 },
    Positives { have: u64, need: u64 },
}

impl std::fmt::Display for NotEnough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotEnough::Samples { have, need } => {
                write!(f, "{have} labelled hits, {need} needed")
            }
            NotEnough::Positives { have, need } => {
                write!(f, "{have} engaged hits, {need} needed")
            }
        }
    }
}

/// Which feature columns a fit uses.
fn all_features() -> Vec<usize> {
    (0..FEATURE_COUNT).collect()
}

/// The similarity-only baseline: similarity, its flag, and position.
fn similarity_only() -> Vec<usize> {
    ["similarity", "has_similarity"]
        .iter()
        .map(|n| FEATURES.iter().position(|f| f == n).expect("a feature"))
        .collect()
}

/// Trains on `samples` (any order): the newest [`HELD_OUT_SHARE`] judge,
/// the rest fit. `prior` is judged on the same slice.
pub fn train(
    mut samples: Vec<Sample>,
    prior: &Prior,
    min_samples: u64,
    min_positives: u64,
    now_ms: i64,
    watermark_ms: i64,
) -> Result<Model, NotEnough> {
    let started = Instant::now();
    samples.sort_by_key(|s| s.at_ms);
    if samples.len() > MAX_SAMPLES {
        samples.drain(..samples.len() - MAX_SAMPLES);
    }
    let n = samples.len() as u64;
    let positives = samples.iter().filter(|s| s.engaged).count() as u64;
    if n < min_samples.max(10) {
        return Err(NotEnough::Samples {
            have: n,
            need: min_samples.max(10),
        });
    }
    if positives < min_positives.max(2) {
        return Err(NotEnough::Positives {
            have: positives,
            need: min_positives.max(2),
        });
    }
    let held = ((samples.len() as f64 * HELD_OUT_SHARE).ceil() as usize).max(1);
    let split = samples.len() - held;
    let base_rate = set_item_features(&mut samples, split);
    let (fit_on, judge) = samples.split_at(split);
    let (mean, scale) = standardisation(fit_on);
    let (coef, iterations) = fit(fit_on, &mean, &scale, &all_features());
    let model = model_of(&coef, &mean, &scale, &all_features());
    let baseline = {
        let cols = similarity_only();
        let (c, _) = fit(fit_on, &mean, &scale, &cols);
        model_of(&c, &mean, &scale, &cols)
    };
    let y: Vec<bool> = judge.iter().map(|s| s.engaged).collect();
    let p_model: Vec<f64> = judge
        .iter()
        .map(|s| model.probability(model.item_logit(&s.x), s.position))
        .collect();
    let p_prior: Vec<f64> = judge
        .iter()
        .map(|s| prior.probability(s.surface, s.position))
        .collect();
    let p_base: Vec<f64> = judge
        .iter()
        .map(|s| baseline.probability(baseline.item_logit(&s.x), s.position))
        .collect();
    let mut model = model;
    model.item_base_rate = base_rate;
    model.info = TrainingInfo {
        samples: fit_on.len() as u64,
        positives: fit_on.iter().filter(|s| s.engaged).count() as u64,
        held_out: judge.len() as u64,
        trained_at_ms: now_ms,
        watermark_ms,
        seconds: started.elapsed().as_secs_f64(),
        iterations,
        quality: quality(&p_model, &y),
        prior_quality: quality(&p_prior, &y),
        baseline_auc: super::quality::auc(&p_base, &y),
    };
    Ok(model)
}

/// Counts per item: (shown, engaged).
pub fn item_counts(samples: &[Sample]) -> std::collections::HashMap<u32, (u32, u32)> {
    let mut counts = std::collections::HashMap::new();
    for s in samples {
        let c: &mut (u32, u32) = counts.entry(s.item).or_default();
        c.0 = c.0.saturating_add(1);
        c.1 = c.1.saturating_add(u32::from(s.engaged));
    }
    counts
}

/// Overwrites the item-record feature (`item_engagement`)
/// from the data itself, as a served hit would have seen them: each of
/// the first `split` samples (the fit, in time order) sees the counts of
/// the samples before it (ordered target statistics: a hit's own click
/// never leaks into its feature, and leave-one-out's give-away, a lower
/// share for exactly the engaged hits, cannot arise); the held-out ones
/// see the fit's final counts, as served hits see the counts frozen at
/// the last training. Returns the fit's base rate.
fn set_item_features(samples: &mut [Sample], split: usize) -> f64 {
    let positives = samples[..split].iter().filter(|s| s.engaged).count();
    let base_rate = positives as f64 / split.max(1) as f64;
    let at = |name: &str| FEATURES.iter().position(|f| *f == name).expect("a feature");
    let engagement = at("item_engagement");
    let mut counts: std::collections::HashMap<u32, (u32, u32)> = std::collections::HashMap::new();
    for (i, s) in samples.iter_mut().enumerate() {
        let (n, k) = counts.get(&s.item).copied().unwrap_or((0, 0));
        s.x[engagement] = super::item_features(n, k, base_rate) as f32;
        if i < split {
            let c = counts.entry(s.item).or_default();
            c.0 = c.0.saturating_add(1);
            c.1 = c.1.saturating_add(u32::from(s.engaged));
        }
    }
    base_rate
}

/// Mean and standard deviation of each feature (0 deviation: the
/// feature is left out of the fit).
fn standardisation(samples: &[Sample]) -> (Vec<f64>, Vec<f64>) {
    let n = samples.len().max(1) as f64;
    let mut mean = vec![0.0; FEATURE_COUNT];
    for s in samples {
        for (m, &x) in mean.iter_mut().zip(&s.x) {
            *m += f64::from(x);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = [0.0; FEATURE_COUNT];
    for s in samples {
        for ((v, &x), m) in var.iter_mut().zip(&s.x).zip(&mean) {
            *v += (f64::from(x) - m).powi(2);
        }
    }
    let scale = var
        .iter()
        .map(|v| {
            let sd = (v / n).sqrt();
            if sd > 1e-9 {
                sd
            } else {
                0.0
            }
        })
        .collect();
    (mean, scale)
}

/// The design row of a sample: intercept, the chosen standardised
/// features, then the position indicators of slots 1.. (slot 0 is the
/// reference).
fn row(s: &Sample, mean: &[f64], scale: &[f64], cols: &[usize], out: &mut Vec<f64>) {
    out.clear();
    out.push(1.0);
    for &j in cols {
        out.push(if scale[j] > 0.0 {
            (f64::from(s.x[j]) - mean[j]) / scale[j]
        } else {
            0.0
        });
    }
    let slot = slot(s.position);
    for p in 1..POSITIONS {
        out.push(f64::from(u8::from(slot == p)));
    }
}

/// The penalised negative log-likelihood of `coef`.
fn objective(samples: &[Sample], mean: &[f64], scale: &[f64], cols: &[usize], coef: &[f64]) -> f64 {
    let mut x = Vec::with_capacity(coef.len());
    let mut loss = 0.0;
    for s in samples {
        row(s, mean, scale, cols, &mut x);
        let z: f64 = x.iter().zip(coef).map(|(a, b)| a * b).sum();
        // ln(1 + e^z) - y z, computed without overflow.
        let softplus = if z > 0.0 {
            z + (-z).exp().ln_1p()
        } else {
            z.exp().ln_1p()
        };
        loss += softplus - if s.engaged { z } else { 0.0 };
    }
    loss + 0.5 * L2 * coef[1..].iter().map(|c| c * c).sum::<f64>()
}

/// Newton's method with step halving; returns the coefficients and the
/// iterations taken.
fn fit(samples: &[Sample], mean: &[f64], scale: &[f64], cols: &[usize]) -> (Vec<f64>, u32) {
    let d = 1 + cols.len() + POSITIONS - 1;
    let mut coef = vec![0.0; d];
    // Start at the base rate: fewer iterations, and the same optimum.
    let rate = samples.iter().filter(|s| s.engaged).count() as f64 / samples.len().max(1) as f64;
    let rate = rate.clamp(1e-6, 1.0 - 1e-6);
    coef[0] = (rate / (1.0 - rate)).ln();
    let mut current = objective(samples, mean, scale, cols, &coef);
    let mut x = Vec::with_capacity(d);
    let mut iterations = 0;
    for _ in 0..MAX_ITERATIONS {
        iterations += 1;
        let mut grad = vec![0.0; d];
        let mut hess = vec![0.0; d * d];
        for s in samples {
            row(s, mean, scale, cols, &mut x);
            let z: f64 = x.iter().zip(&coef).map(|(a, b)| a * b).sum();
            let p = sigmoid(z);
            let r = p - f64::from(u8::from(s.engaged));
            let w = (p * (1.0 - p)).max(1e-12);
            for i in 0..d {
                if x[i] == 0.0 {
                    continue;
                }
                grad[i] += r * x[i];
                let wx = w * x[i];
                for j in 0..=i {
                    hess[i * d + j] += wx * x[j];
                }
            }
        }
        for i in 1..d {
            grad[i] += L2 * coef[i];
            hess[i * d + i] += L2;
        }
        hess[0] += 1e-9;
        let Some(step) = cholesky_solve(&mut hess, &grad, d) else {
            break;
        };
        // Step halving keeps every iteration downhill.
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..30 {
            let next: Vec<f64> = coef.iter().zip(&step).map(|(c, s)| c - t * s).collect();
            let value = objective(samples, mean, scale, cols, &next);
            if value.is_finite() && value <= current + 1e-12 {
                accepted = Some((next, value));
                break;
            }
            t /= 2.0;
        }
        let Some((next, value)) = accepted else { break };
        let moved = next
            .iter()
            .zip(&coef)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        coef = next;
        current = value;
        if moved < TOLERANCE {
            break;
        }
    }
    (coef, iterations)
}

/// Solves `H s = g` for a symmetric positive definite `H` given by its
/// lower triangle (overwritten by its Cholesky factor).
fn cholesky_solve(h: &mut [f64], g: &[f64], d: usize) -> Option<Vec<f64>> {
    for j in 0..d {
        let mut sum = h[j * d + j];
        for k in 0..j {
            sum -= h[j * d + k] * h[j * d + k];
        }
        if sum <= 0.0 || !sum.is_finite() {
            return None;
        }
        let diag = sum.sqrt();
        h[j * d + j] = diag;
        for i in j + 1..d {
            let mut s = h[i * d + j];
            for k in 0..j {
                s -= h[i * d + k] * h[j * d + k];
            }
            h[i * d + j] = s / diag;
        }
    }
    // L y = g, then L^T s = y.
    let mut y = vec![0.0; d];
    for i in 0..d {
        let mut s = g[i];
        for k in 0..i {
            s -= h[i * d + k] * y[k];
        }
        y[i] = s / h[i * d + i];
    }
    let mut s = vec![0.0; d];
    for i in (0..d).rev() {
        let mut v = y[i];
        for k in i + 1..d {
            v -= h[k * d + i] * s[k];
        }
        s[i] = v / h[i * d + i];
    }
    Some(s)
}

/// An empty training record (tests build models by hand).
#[cfg(test)]
pub(crate) fn tests_info() -> TrainingInfo {
    model_of(
        &[0.0; 1 + POSITIONS - 1],
        &[0.0; FEATURE_COUNT],
        &[0.0; FEATURE_COUNT],
        &[],
    )
    .info
}

/// The model of a fit over `cols`: features outside them weigh 0.
fn model_of(coef: &[f64], mean: &[f64], scale: &[f64], cols: &[usize]) -> Model {
    let mut weights = vec![0.0; FEATURE_COUNT];
    for (k, &j) in cols.iter().enumerate() {
        weights[j] = coef[1 + k];
    }
    let mut positions = vec![0.0; POSITIONS];
    positions[1..].copy_from_slice(&coef[1 + cols.len()..]);
    Model {
        feature_version: FEATURE_VERSION,
        mean: mean.to_vec(),
        scale: scale.to_vec(),
        intercept: coef[0],
        weights,
        positions,
        item_base_rate: 0.0,
        info: TrainingInfo {
            samples: 0,
            positives: 0,
            held_out: 0,
            trained_at_ms: 0,
            watermark_ms: 0,
            seconds: 0.0,
            iterations: 0,
            quality: Quality::default(),
            prior_quality: Quality::default(),
            baseline_auc: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    /// Hits whose true log-odds are `-3 + 2 * similarity + popularity -
    /// 0.2 * position`; the other features are noise.
    fn synthetic(n: usize, seed: u64) -> Vec<Sample> {
        let mut rng = Rng(seed);
        (0..n)
            .map(|i| {
                let mut x = [0f32; FEATURE_COUNT];
                for v in x.iter_mut() {
                    *v = rng.next() as f32;
                }
                let position = (rng.next() * 10.0) as usize;
                let z = -3.0 + 2.0 * f64::from(x[0]) + f64::from(x[2]) - 0.2 * position as f64;
                Sample {
                    at_ms: i as i64,
                    item: (i % 500) as u32,
                    surface: Surface::Similar,
                    position,
                    x,
                    engaged: rng.next() < sigmoid(z),
                }
            })
            .collect()
    }

    #[test]
    fn recovers_known_log_odds_and_is_calibrated_on_held_out_hits() {
        // Enough hits that the rare clicks far down the list (about 1 %
        // at position 10) pin its offset down.
        let samples = synthetic(100_000, 7);
        let model = train(samples, &Prior::default(), 100, 10, 0, 0).unwrap();
        // Weights are per standard deviation: uniform(0,1) has sd 0.2887.
        let sd = (1.0f64 / 12.0).sqrt();
        assert!(
            (model.weights[0] / sd - 2.0).abs() < 0.3,
            "{:?}",
            model.weights
        );
        assert!(
            (model.weights[2] / sd - 1.0).abs() < 0.3,
            "{:?}",
            model.weights
        );
        assert!(model.weights[3].abs() / sd < 0.3);
        for p in 1..10 {
            let expected = -0.2 * p as f64;
            assert!(
                (model.positions[p] - expected).abs() < 0.25,
                "{p}: {:?}",
                model.positions
            );
        }
        let q = &model.info.quality;
        assert!(q.ece < 0.02, "{q:?}");
        assert!(q.auc.unwrap() > model.info.baseline_auc.unwrap());
        assert!(q.log_loss < model.info.prior_quality.log_loss);
        assert_eq!(model.info.held_out, 20_000);
    }

    #[test]
    fn refuses_too_little_data_and_survives_constant_features() {
        let few = synthetic(50, 1);
        assert!(matches!(
            train(few, &Prior::default(), 100, 1, 0, 0),
            Err(NotEnough::Samples { have: 50, .. })
        ));
        let mut none_engaged = synthetic(500, 2);
        none_engaged.iter_mut().for_each(|s| s.engaged = false);
        assert!(matches!(
            train(none_engaged, &Prior::default(), 100, 5, 0, 0),
            Err(NotEnough::Positives { have: 0, .. })
        ));
        // Every feature constant, every position the same.
        let mut flat = synthetic(4_000, 3);
        let mut rng = Rng(5);
        for s in flat.iter_mut() {
            s.x = [0.5; FEATURE_COUNT];
            s.position = 0;
            // Independent draws: no pattern for the item's record to find.
            s.engaged = rng.next() < 0.1;
        }
        for s in flat.iter_mut() {
            s.item = 0;
        }
        let m = train(flat, &Prior::default(), 100, 5, 0, 0).unwrap();
        // One item whose record is its base rate all along: nothing to
        // learn from any feature.
        assert!(m.weights.iter().all(|w| w.abs() < 0.25), "{:?}", m.weights);
        assert!((m.item_base_rate - 0.1).abs() < 0.02);
        // Held out, it predicts the base rate.
        let q = &m.info.quality;
        let n: u64 = q.reliability.iter().map(|b| b.count).sum();
        let mean: f64 = q
            .reliability
            .iter()
            .map(|b| b.predicted * b.count as f64)
            .sum::<f64>()
            / n as f64;
        assert!((mean - 0.1).abs() < 0.02, "{mean}");
    }

    #[test]
    fn an_items_record_is_learned_without_its_own_outcome() {
        // 200 items, each with a hidden appeal; every other feature is
        // noise. Only the item's record (from earlier hits) can tell them
        // apart, and it must help on the held-out hits.
        let mut rng = Rng(11);
        let appeal: Vec<f64> = (0..200).map(|_| 3.0 * rng.next() - 1.5).collect();
        let samples: Vec<Sample> = (0..60_000)
            .map(|i| {
                let item = (rng.next() * 200.0) as usize;
                let mut x = [0f32; FEATURE_COUNT];
                x[0] = rng.next() as f32;
                Sample {
                    at_ms: i,
                    item: item as u32,
                    surface: Surface::User,
                    position: 0,
                    x,
                    engaged: rng.next() < sigmoid(-2.0 + appeal[item]),
                }
            })
            .collect();
        let m = train(samples, &Prior::default(), 100, 10, 0, 0).unwrap();
        let at = |n: &str| FEATURES.iter().position(|f| *f == n).unwrap();
        assert!(m.weights[at("item_engagement")] > 0.3, "{:?}", m.weights);
        assert!(m.info.quality.auc.unwrap() > 0.65, "{:?}", m.info.quality);
        assert!(m.info.quality.ece < 0.02, "{:?}", m.info.quality);
    }

    #[test]
    fn cholesky_solves_a_small_system() {
        // [[4, 2], [2, 3]] s = [2, 1] -> s = [0.5, 0].
        let mut h = vec![4.0, 0.0, 2.0, 3.0];
        let s = cholesky_solve(&mut h, &[2.0, 1.0], 2).unwrap();
        assert!((s[0] - 0.5).abs() < 1e-12 && s[1].abs() < 1e-12);
        let mut singular = vec![0.0, 0.0, 0.0, 0.0];
        assert!(cholesky_solve(&mut singular, &[1.0, 1.0], 2).is_none());
    }
}
