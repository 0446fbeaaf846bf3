//! How good probabilities are against outcomes: log loss, Brier score,
//! AUC, expected calibration error and the reliability table. Each is the
//! textbook definition; the unit tests work examples by hand.

use serde::{Deserialize, Serialize};

use super::Quality;

/// Bins of the reliability table and of the ECE: equal-count bins of the
/// predictions sorted (deciles).
pub const BINS: usize = 10;

/// Probabilities are clamped to `[EPS, 1 - EPS]` in the log loss, so one
/// confident miss costs `ln(1 / EPS)` (about 34.5) and not infinity.
const EPS: f64 = 1e-15;

/// One row of the reliability table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub count: u64,
    /// Mean predicted probability of the bin's hits.
    pub predicted: f64,
    /// Share of them engaged with.
    pub observed: f64,
    /// Lowest and highest prediction in the bin.
    pub low: f64,
    pub high: f64,
}

/// `-mean(y ln p + (1 - y) ln(1 - p))`.
pub fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    if p.is_empty() {
        return 0.0;
    }
    let sum: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    sum / p.len() as f64
}

/// `mean((p - y)^2)`.
pub fn brier(p: &[f64], y: &[bool]) -> f64 {
    if p.is_empty() {
        return 0.0;
    }
    let sum: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &y)| (p - f64::from(u8::from(y))).powi(2))
        .sum();
    sum / p.len() as f64
}

/// The area under the ROC curve: the chance that a random positive is
/// ranked above a random negative, ties counting half (the Mann-Whitney
/// U statistic over midranks). `None` with one class only.
pub fn auc(p: &[f64], y: &[bool]) -> Option<f64> {
    let positives = y.iter().filter(|&&y| y).count();
    let negatives = y.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    // Sum of the positives' midranks (1-based).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let midrank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = order[i..=j].iter().filter(|&&k| y[k]).count();
        rank_sum += midrank * tied_positives as f64;
        i = j + 1;
    }
    let np = positives as f64;
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * negatives as f64))
}

/// The reliability table: the hits sorted by prediction and cut into
/// [`BINS`] bins of (nearly) equal count; fewer bins with fewer hits.
pub fn reliability(p: &[f64], y: &[bool]) -> Vec<Bin> {
    let n = p.len();
    if n == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let bins = BINS.min(n);
    (0..bins)
        .map(|b| {
            let (from, to) = (b * n / bins, (b + 1) * n / bins);
            let part = &order[from..to];
            let count = part.len() as f64;
            Bin {
                count: part.len() as u64,
                predicted: part.iter().map(|&i| p[i]).sum::<f64>() / count,
                observed: part.iter().filter(|&&i| y[i]).count() as f64 / count,
                low: p[part[0]],
                high: p[part[part.len() - 1]],
            }
        })
        .collect()
}

/// The expected calibration error: `Σ (n_b / n) |predicted_b - observed_b|`
/// over the reliability table's bins.
pub fn ece(table: &[Bin]) -> f64 {
    let n: u64 = table.iter().map(|b| b.count).sum();
    if n == 0 {
        return 0.0;
    }
    table
        .iter()
        .map(|b| b.count as f64 / n as f64 * (b.predicted - b.observed).abs())
        .sum()
}

/// Every measure at once.
pub fn quality(p: &[f64], y: &[bool]) -> Quality {
    let table = reliability(p, y);
    Quality {
        samples: p.len() as u64,
        positives: y.iter().filter(|&&y| y).count() as u64,
        log_loss: log_loss(p, y),
        brier: brier(p, y),
        auc: auc(p, y),
        ece: ece(&table),
        reliability: table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_loss_and_brier_by_hand() {
        let p = [0.9, 0.2, 0.6, 0.5];
        let y = [true, false, false, true];
        // -(ln 0.9 + ln 0.8 + ln 0.4 + ln 0.5) / 4
        let expected = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln() + 0.5f64.ln()) / 4.0;
        assert!((log_loss(&p, &y) - expected).abs() < 1e-12);
        assert!((log_loss(&p, &y) - 0.4844852).abs() < 1e-6);
        // (0.01 + 0.04 + 0.36 + 0.25) / 4 = 0.165
        assert!((brier(&p, &y) - 0.165).abs() < 1e-12);
        // A certain miss is costly but finite.
        let worst = log_loss(&[0.0], &[true]);
        assert!(worst.is_finite() && worst > 30.0);
    }

    #[test]
    fn auc_by_hand_with_ties() {
        // Positives 0.8, 0.4; negatives 0.4, 0.1. Pairs: (0.8>0.4) 1,
        // (0.8>0.1) 1, (0.4=0.4) 0.5, (0.4>0.1) 1 -> 3.5 / 4.
        let p = [0.8, 0.4, 0.4, 0.1];
        let y = [true, true, false, false];
        assert!((auc(&p, &y).unwrap() - 0.875).abs() < 1e-12);
        assert_eq!(auc(&[0.1, 0.9], &[false, true]), Some(1.0));
        assert_eq!(auc(&[0.1, 0.9], &[true, false]), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(auc(&[0.5, 0.5], &[true, true]), None);
    }

    #[test]
    fn reliability_and_ece_by_hand() {
        // 20 hits: ten predicted 0.1 of which one engaged, ten predicted
        // 0.5 of which three engaged. Ten bins of two each.
        let mut p = vec![0.1; 10];
        p.extend([0.5; 10]);
        let mut y = vec![false; 20];
        y[0] = true;
        y[10] = true;
        y[11] = true;
        y[12] = true;
        let table = reliability(&p, &y);
        assert_eq!(table.len(), 10);
        assert!(table.iter().all(|b| b.count == 2));
        let low: f64 = table[..5].iter().map(|b| b.observed).sum::<f64>() / 5.0;
        let high: f64 = table[5..].iter().map(|b| b.observed).sum::<f64>() / 5.0;
        assert!((low - 0.1).abs() < 1e-12 && (high - 0.3).abs() < 1e-12);
        // Per bin |0.1 - o| and |0.5 - o|, weighted 1/10 each.
        let expected: f64 = table
            .iter()
            .map(|b| (b.predicted - b.observed).abs() / 10.0)
            .sum();
        assert!((ece(&table) - expected).abs() < 1e-12);
        // Perfectly calibrated bins: ECE 0.
        let p = [0.5, 0.5, 0.0, 0.0];
        let y = [true, false, false, false];
        let t = reliability(&p, &y);
        assert_eq!(t.len(), 4);
        let q = quality(&p, &y);
        assert_eq!(q.samples, 4);
        assert_eq!(q.positives, 1);
        // Bins of one: |0 - 0| twice, then 0.5 vs 0 or 1 twice -> 0.25.
        assert!((q.ece - 0.25).abs() < 1e-12);
        assert!(reliability(&[], &[]).is_empty());
        assert_eq!(ece(&[]), 0.0);
    }
}
