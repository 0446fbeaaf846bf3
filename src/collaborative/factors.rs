//! Item factors learned from behaviour alone: implicit alternating least
//! squares (iALS; Hu, Koren and Volinsky, "Collaborative Filtering for
//! Implicit Feedback Datasets", ICDM 2008).
//!
//! A catalog created with `"vectors": "learned"` has no vectors of its
//! own; its items' vectors are these factors (see `catalog`), indexed by
//! the same HNSW machinery, so similar, upsell and cross-sell work from
//! the order history alone.
//!
//! **What is solved.** With `p_ui = 1` when user `u` touched item `i` (the
//! binary matrix of `train::Interactions`) and 0 otherwise, confidence
//! `c_ui = 1 + alpha · p_ui`, find user factors `x_u` and item factors
//! `y_i` of `dimension` numbers minimising
//! `Σ_ui c_ui (p_ui - x_u·y_i)² + lambda (Σ |x_u|² + Σ |y_i|²)`.
//! Each half-step holds one side fixed and solves every row of the other
//! exactly: `x_u = (YᵀY + alpha · Y_uᵀY_u + lambda·I)⁻¹ (1 + alpha) Y_uᵀ1`,
//! `Y_u` the factors of `u`'s items (the "YᵀY trick": the zeros cost one
//! shared `d x d` Gram matrix, not a pass over every item). The small
//! `d x d` systems are factorised by `faer`'s Cholesky (positive definite
//! for `lambda > 0`). Cost per iteration: `Σ_u |items of u| · d²` plus one
//! `d³/3` solve per user and per item; memory `(users + items) · d` f64.
//!
//! Deterministic: the start is a fixed pseudo-random function of the item
//! position, the solves are exact and run in order, so the same
//! interactions give the same factors.

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};

/// The iALS settings (a catalog's come from its `collaborative` settings;
/// the defaults were picked on the Online Retail history: BENCHMARKS.md,
/// "Learned vectors").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlsSettings {
    pub dimension: usize,
    pub iterations: usize,
    /// Confidence of an observed interaction over an unobserved one.
    pub alpha: f64,
    /// L2 regularisation of both sides.
    pub lambda: f64,
}

impl AlsSettings {
    /// The shipped settings for `dimension` factors.
    pub fn new(dimension: usize) -> AlsSettings {
        let d = crate::model::CollaborativeSettings::default();
        AlsSettings {
            dimension,
            iterations: d.als_iterations as usize,
            alpha: d.als_alpha,
            lambda: d.als_lambda,
        }
    }
}

/// Item factors, `n_items x dimension`, row-major (`f32`, as the index
/// stores vectors): what [`ials`] learns. Items without interactions get
/// a zero row.
pub fn ials(n_items: usize, users: &[Vec<u32>], settings: &AlsSettings) -> Vec<f32> {
    let d = settings.dimension;
    if n_items == 0 || d == 0 {
        return Vec::new();
    }
    let mut by_item: Vec<Vec<u32>> = vec![Vec::new(); n_items];
    for (u, items) in users.iter().enumerate() {
        for &i in items {
            by_item[i as usize].push(u as u32);
        }
    }
    // A small deterministic start (splitmix64 of the position), scaled
    // so that x·y starts near 0.
    let scale = 0.1 / (d as f64).sqrt();
    let mut y = Mat::<f64>::from_fn(n_items, d, |i, k| {
        if by_item[i].is_empty() {
            0.0
        } else {
            scale * (unit(splitmix64((i * d + k) as u64)) - 0.5)
        }
    });
    for _ in 0..settings.iterations {
        let x = half_step(users, &y, settings);
        y = half_step(&by_item, &x, settings);
    }
    let mut out = Vec::with_capacity(n_items * d);
    for i in 0..n_items {
        for k in 0..d {
            out.push(y[(i, k)] as f32);
        }
    }
    out
}

/// Solves every row of one side with the other side `fixed`: row `r`
/// touched the rows `rows[r]` of `fixed`.
fn half_step(rows: &[Vec<u32>], fixed: &Mat<f64>, s: &AlsSettings) -> Mat<f64> {
    let d = s.dimension;
    let gram = fixed.transpose() * fixed;
    // The fixed side row-major, so a row's factors are contiguous (faer's
    // matrices are column-major).
    let n = fixed.nrows();
    let mut by_row = vec![0.0f64; n * d];
    for i in 0..n {
        for k in 0..d {
            by_row[i * d + k] = fixed[(i, k)];
        }
    }
    let mut gram_lower = vec![0.0f64; d * d];
    for k in 0..d {
        for l in 0..=k {
            gram_lower[k * d + l] = gram[(k, l)];
        }
    }
    let mut out = Mat::<f64>::zeros(rows.len(), d);
    // The row's system in plain slices (faer's element indexing checks
    // bounds on every access), handed to faer whole for the Cholesky.
    let mut acc = vec![0.0f64; d * d];
    let mut rhs = vec![0.0f64; d];
    for (r, touched) in rows.iter().enumerate() {
        if touched.is_empty() {
            continue;
        }
        // A = G + alpha · Σ y yᵀ + lambda·I and b = (1 + alpha) · Σ y, by
        // rank-one updates of the lower triangle (all the Cholesky reads):
        // small faer products per row cost more in their set-up than in
        // their arithmetic.
        acc.copy_from_slice(&gram_lower);
        rhs.fill(0.0);
        for &t in touched {
            let y = &by_row[t as usize * d..(t as usize + 1) * d];
            for k in 0..d {
                let yk = s.alpha * y[k];
                let row = &mut acc[k * d..k * d + k + 1];
                for (cell, yl) in row.iter_mut().zip(y) {
                    *cell += yk * yl;
                }
                rhs[k] += (1.0 + s.alpha) * y[k];
            }
        }
        for k in 0..d {
            acc[k * d + k] += s.lambda;
        }
        let a = Mat::<f64>::from_fn(d, d, |k, l| if l <= k { acc[k * d + l] } else { 0.0 });
        let b = Mat::<f64>::from_fn(d, 1, |k, _| rhs[k]);
        // Positive definite for lambda > 0; a failure would mean
        // non-finite input and leaves the row at zero rather than panic.
        let Ok(llt) = a.llt(Side::Lower) else {
            continue;
        };
        let solved = llt.solve(&b);
        for k in 0..d {
            out[(r, k)] = solved[(k, 0)];
        }
    }
    out
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `[0, 1)` from the top 53 bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(f: &[f32], d: usize, i: usize) -> &[f32] {
        &f[i * d..(i + 1) * d]
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb)
    }

    /// One half-step worked by hand: one fixed row `y = [1, 0]`, one user
    /// who touched it, alpha 1, lambda 1: `A = yᵀy + 1·yᵀy + I =
    /// [[3, 0], [0, 1]]`, `b = 2·y = [2, 0]`, so `x = [2/3, 0]`.
    #[test]
    fn a_half_step_solves_the_weighted_normal_equations() {
        let fixed = Mat::<f64>::from_fn(1, 2, |_, k| if k == 0 { 1.0 } else { 0.0 });
        let s = AlsSettings {
            dimension: 2,
            iterations: 1,
            alpha: 1.0,
            lambda: 1.0,
        };
        let x = half_step(&[vec![0], vec![]], &fixed, &s);
        assert!((x[(0, 0)] - 2.0 / 3.0).abs() < 1e-12, "{:?}", x[(0, 0)]);
        assert!(x[(0, 1)].abs() < 1e-12);
        // A user without items keeps a zero row.
        assert_eq!((x[(1, 0)], x[(1, 1)]), (0.0, 0.0));
    }

    /// Two groups of shoppers, each buying three of its own four items
    /// (every such basket five times, and one shopper of both): items of
    /// one group end up closer to each other than to the other group's;
    /// an item nobody touched is zero.
    #[test]
    fn items_bought_by_the_same_people_get_close_factors() {
        let mut users: Vec<Vec<u32>> = Vec::new();
        for u in 0..40u32 {
            let base = (u % 2) * 4;
            let skipped = (u / 2) % 4;
            users.push((0..4).filter(|&k| k != skipped).map(|k| base + k).collect());
        }
        users.push(vec![0, 4]);
        let group = |i: usize| i / 4;
        for d in [2, 8] {
            let f = ials(9, &users, &AlsSettings::new(d));
            assert_eq!(f.len(), 9 * d);
            let (mut within, mut across) = (f64::INFINITY, f64::NEG_INFINITY);
            for i in 0..8 {
                for j in 0..8 {
                    let c = cosine(row(&f, d, i), row(&f, d, j));
                    if i == j {
                        continue;
                    } else if group(i) == group(j) {
                        within = within.min(c);
                    } else {
                        across = across.max(c);
                    }
                }
            }
            // Every item's nearest neighbours are its own group's.
            assert!(within > across, "d {d}: within {within} across {across}");
            if d == 2 {
                assert!(within > 0.9, "two factors for two groups: {within}");
            }
            assert!(row(&f, d, 8).iter().all(|x| *x == 0.0));
        }
        let d = 8;
        let f = ials(9, &users, &AlsSettings::new(d));
        // Deterministic.
        assert_eq!(f, ials(9, &users, &AlsSettings::new(d)));
    }
}
