//! The statistics that compare an arm with the control.
//!
//! Every metric is a per-unit quantity (a unit is what was randomised, a
//! user or a session), so units, not impressions, are the independent
//! observations:
//! - a mean over units (`conversion_rate`: 0/1 per unit;
//!   `revenue_per_unit`): the sample mean, its variance `s^2 / n`;
//! - a ratio of sums over units (`ctr`: clicks / impressions): the delta
//!   method, `Var(R) = (s_y^2 - 2 R s_xy + R^2 s_x^2) / (n x_bar^2)`, which
//!   accounts for one unit's impressions not being independent.
//!
//! Two tests of "treatment - control":
//! - **fixed horizon**: Welch's z-test, a 95 % interval and a two-sided
//!   p-value. Valid when looked at once, at a sample size fixed in
//!   advance.
//! - **always valid**: the mixture sequential probability ratio test
//!   (mSPRT) with a normal mixture over the difference, as in Johari,
//!   Koomen, Pekelis and Walsh, *Always Valid Inference: Continuous
//!   Monitoring of A/B Tests* (Operations Research, 2022), with the
//!   variance estimated from the data as in the asymptotic confidence
//!   sequences of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas
//!   (*Time-uniform central limit theory and asymptotic confidence
//!   sequences*, 2021). For an estimate `d` with variance `V` and mixing
//!   variance `tau^2`, the likelihood ratio is
//!   `L = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))`; the
//!   p-value `min(1, 1/L)` and the interval `{d : L < 1/alpha}`, i.e.
//!   `d +- sqrt(V (V + tau^2) / tau^2 * (2 ln(1/alpha) + ln((V + tau^2) / V)))`,
//!   hold at every sample size at once, so a test checked after every
//!   batch keeps its error rate. `tau^2` is the variance the difference
//!   would have at [`REFERENCE_UNITS`] units per arm: the interval is
//!   tightest relative to the fixed one around that size. Below
//!   [`MIN_UNITS`] units in either arm the always-valid p-value is 1 (the
//!   variance estimate is too rough for the asymptotics).

/// The tests' level: 95 % intervals, significance at 0.05.
pub const ALPHA: f64 = 0.05;
/// The normal quantile of `1 - ALPHA / 2`.
const Z95: f64 = 1.959_963_984_540_054;
/// Units per arm below which the always-valid test says nothing.
pub const MIN_UNITS: u64 = 30;
/// Units per arm the mixing variance is tuned for.
pub const REFERENCE_UNITS: f64 = 1000.0;

/// Sums over an arm's units of a per-unit value `y` and, for a ratio
/// metric, its per-unit denominator `x`: enough to update one unit's
/// values in place and to compute means, ratios and their variances.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    pub n: u64,
    pub y: f64,
    pub yy: f64,
    pub x: f64,
    pub xx: f64,
    pub xy: f64,
}

impl Sums {
    /// Adds a new unit with values `(y, x)`.
    pub fn add(&mut self, y: f64, x: f64) {
        self.n += 1;
        self.y += y;
        self.yy += y * y;
        self.x += x;
        self.xx += x * x;
        self.xy += x * y;
    }

    /// Replaces one unit's values `old` by `new`.
    pub fn replace(&mut self, old: (f64, f64), new: (f64, f64)) {
        let ((y0, x0), (y1, x1)) = (old, new);
        self.y += y1 - y0;
        self.yy += y1 * y1 - y0 * y0;
        self.x += x1 - x0;
        self.xx += x1 * x1 - x0 * x0;
        self.xy += x1 * y1 - x0 * y0;
    }

    /// The mean of `y` over units and the variance of that mean.
    pub fn mean(&self) -> Option<Estimate> {
        if self.n < 2 {
            return None;
        }
        let n = self.n as f64;
        let mean = self.y / n;
        let s2 = ((self.yy - self.y * mean) / (n - 1.0)).max(0.0);
        Some(Estimate {
            value: mean,
            variance: s2 / n,
            units: self.n,
        })
    }

    /// `sum y / sum x` and its delta-method variance.
    pub fn ratio(&self) -> Option<Estimate> {
        if self.n < 2 || self.x <= 0.0 {
            return None;
        }
        let n = self.n as f64;
        let r = self.y / self.x;
        let (my, mx) = (self.y / n, self.x / n);
        let syy = (self.yy - n * my * my) / (n - 1.0);
        let sxx = (self.xx - n * mx * mx) / (n - 1.0);
        let sxy = (self.xy - n * mx * my) / (n - 1.0);
        let var = ((syy - 2.0 * r * sxy + r * r * sxx) / (n * mx * mx)).max(0.0);
        Some(Estimate {
            value: r,
            variance: var,
            units: self.n,
        })
    }
}

/// An arm's estimate of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    /// Variance of `value` (not of one unit).
    pub variance: f64,
    pub units: u64,
}

/// Treatment against control for one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// treatment - control.
    pub difference: f64,
    /// treatment / control - 1; `None` when the control's value is 0.
    pub lift: Option<f64>,
    /// 95 % interval of the difference (fixed horizon).
    pub ci95: (f64, f64),
    /// 95 % interval of the lift (fixed horizon, delta method).
    pub lift_ci95: Option<(f64, f64)>,
    pub p_value: f64,
    /// Always-valid 95 % interval of the difference (a confidence
    /// sequence); `None` below [`MIN_UNITS`] units per arm.
    pub always_valid_ci95: Option<(f64, f64)>,
    pub always_valid_p_value: f64,
}

/// Standard normal upper tail `P(Z > z)`, through `erfc` (Numerical
/// Recipes' Chebyshev fit, fractional error below 1.2e-7).
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The mSPRT's p-value and the confidence sequence's half-width for an
/// estimate `d` with variance `v` and mixing variance `tau2`.
pub fn msprt(d: f64, v: f64, tau2: f64) -> (f64, Option<f64>) {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(tau2) {
        return (1.0, None);
    }
    if !positive(v) {
        // No spread at all: the values are what they are.
        return (if d == 0.0 { 1.0 } else { 0.0 }, Some(0.0));
    }
    let ln_l = 0.5 * (v / (v + tau2)).ln() + d * d * tau2 / (2.0 * v * (v + tau2));
    let p = (-ln_l).exp().min(1.0);
    let half = (v * (v + tau2) / tau2 * (2.0 * (1.0 / ALPHA).ln() + ((v + tau2) / v).ln())).sqrt();
    (p, Some(half))
}

/// Compares `treatment` with `control`. `tau2` is the mixing variance
/// (see [`mixing_variance`]).
pub fn compare(control: Estimate, treatment: Estimate, tau2: f64) -> Comparison {
    let d = treatment.value - control.value;
    let v = control.variance + treatment.variance;
    let se = v.sqrt();
    let p_value = if se > 0.0 {
        (2.0 * normal_upper_tail((d / se).abs())).min(1.0)
    } else if d == 0.0 {
        1.0
    } else {
        0.0
    };
    let (lift, lift_ci95) = if control.value != 0.0 {
        let lift = treatment.value / control.value - 1.0;
        let c2 = control.value * control.value;
        let var = treatment.variance / c2
            + treatment.value * treatment.value * control.variance / (c2 * c2);
        let h = Z95 * var.sqrt();
        (Some(lift), Some((lift - h, lift + h)))
    } else {
        (None, None)
    };
    let burned_in = control.units >= MIN_UNITS && treatment.units >= MIN_UNITS;
    let (always_valid_p_value, always_valid_ci95) = if burned_in {
        let (p, half) = msprt(d, v, tau2);
        (p, half.map(|h| (d - h, d + h)))
    } else {
        (1.0, None)
    };
    Comparison {
        difference: d,
        lift,
        ci95: (d - Z95 * se, d + Z95 * se),
        lift_ci95,
        p_value,
        always_valid_ci95,
        always_valid_p_value,
    }
}

/// The mSPRT's mixing variance for two arms: the variance their
/// difference would have at [`REFERENCE_UNITS`] units each, from the
/// per-unit variances the estimates imply.
pub fn mixing_variance(control: Estimate, treatment: Estimate) -> f64 {
    (control.variance * control.units as f64 + treatment.variance * treatment.units as f64)
        / REFERENCE_UNITS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn the_normal_tail_matches_tables() {
        close(normal_upper_tail(0.0), 0.5, 1e-7);
        close(normal_upper_tail(1.959964), 0.025, 1e-7);
        close(normal_upper_tail(-1.0), 0.841_344_7, 1e-7);
        close(normal_upper_tail(3.0), 0.001_349_9, 1e-7);
    }

    #[test]
    fn a_comparison_worked_by_hand() {
        // Control 0.10 and treatment 0.13, each with a standard error of
        // 0.01: d = 0.03, se = 0.0141421, z = 2.12132, p = 0.033895;
        // the interval 0.03 -+ 1.959964 * 0.0141421.
        let c = Estimate {
            value: 0.10,
            variance: 1e-4,
            units: 1000,
        };
        let t = Estimate {
            value: 0.13,
            variance: 1e-4,
            units: 1000,
        };
        let out = compare(c, t, 2e-4);
        close(out.difference, 0.03, 1e-12);
        close(out.p_value, 0.033_895, 2e-6);
        close(out.ci95.0, 0.002_282, 1e-6);
        close(out.ci95.1, 0.057_718, 1e-6);
        close(out.lift.unwrap(), 0.3, 1e-12);
        // The lift's variance: 1e-4/0.01 + 0.0169 * 1e-4 / 1e-4 = 0.0269.
        close(
            out.lift_ci95.unwrap().1,
            0.3 + 1.959964 * 0.0269f64.sqrt(),
            1e-6,
        );
        // mSPRT with V = tau^2 = 2e-4: ln L = 0.5 ln 0.5 + 9e-4 * 2e-4 /
        // (2 * 2e-4 * 4e-4) = 0.778426, p = 1/L = 0.459128; half-width
        // sqrt(4e-4 * (2 ln 20 + ln 2)) = 0.051709.
        close(out.always_valid_p_value, 0.459_128, 1e-6);
        let (lo, hi) = out.always_valid_ci95.unwrap();
        close(hi - 0.03, 0.051_709, 1e-6);
        close(0.03 - lo, 0.051_709, 1e-6);
    }

    #[test]
    fn the_always_valid_interval_contains_the_fixed_one() {
        for (v, tau2) in [(1e-4, 1e-6), (1e-4, 1e-4), (1e-6, 1e-4), (3.0, 0.5)] {
            let c = Estimate {
                value: 1.0,
                variance: v / 2.0,
                units: 100,
            };
            let t = Estimate {
                value: 1.2,
                variance: v / 2.0,
                units: 100,
            };
            let out = compare(c, t, tau2);
            let (lo, hi) = out.always_valid_ci95.unwrap();
            assert!(lo < out.ci95.0 && hi > out.ci95.1, "{out:?}");
            assert!(out.always_valid_p_value >= out.p_value, "{out:?}");
        }
    }

    #[test]
    fn sums_give_means_ratios_and_their_variances() {
        let mut s = Sums::default();
        for (y, x) in [(1.0, 4.0), (0.0, 2.0), (2.0, 6.0), (1.0, 4.0)] {
            s.add(y, x);
        }
        let m = s.mean().unwrap();
        // y = 1, 0, 2, 1: mean 1, s^2 = 2/3, variance of the mean 1/6.
        close(m.value, 1.0, 1e-12);
        close(m.variance, 1.0 / 6.0, 1e-12);
        // R = 4/16 = 0.25; every unit has y = x/4 - ... : y - R x =
        // 0, -0.5, 0.5, 0: s^2 = 0.5/3, over n x_bar^2 = 4 * 16.
        let r = s.ratio().unwrap();
        close(r.value, 0.25, 1e-12);
        close(r.variance, (0.5 / 3.0) / 64.0, 1e-12);
        // Replacing a unit's values equals having added the new ones.
        let mut a = s;
        a.replace((0.0, 2.0), (3.0, 5.0));
        let mut b = Sums::default();
        for (y, x) in [(1.0, 4.0), (3.0, 5.0), (2.0, 6.0), (1.0, 4.0)] {
            b.add(y, x);
        }
        close(a.yy, b.yy, 1e-12);
        close(a.xy, b.xy, 1e-12);
        assert!(Sums::default().mean().is_none());
    }

    #[test]
    fn degenerate_inputs_stay_finite() {
        let z = Estimate {
            value: 0.0,
            variance: 0.0,
            units: 100,
        };
        let out = compare(z, z, 0.0);
        assert_eq!((out.p_value, out.always_valid_p_value), (1.0, 1.0));
        assert!(out.lift.is_none());
        let small = Estimate {
            value: 0.1,
            variance: 0.01,
            units: 5,
        };
        let out = compare(small, small, 0.01);
        assert!(out.always_valid_ci95.is_none() && out.always_valid_p_value == 1.0);
    }
}
