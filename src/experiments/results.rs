//! An experiment's results: per-arm counters (kept by `analytics`), the
//! rates they imply and each arm against the control.

use super::stats::{compare, mixing_variance, Comparison, Estimate, Sums, ALPHA};
use super::{Experiment, PrimaryMetric};

/// What one arm's units did, as `analytics` keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmStats {
    /// Exposed units.
    pub units: u64,
    pub impressions: u64,
    /// Attributed to the experiment's impressions.
    pub clicks: u64,
    pub add_to_carts: u64,
    pub purchases: u64,
    /// Units that bought anything after their first exposure.
    pub converted: u64,
    /// Revenue of every purchase after the unit's first exposure.
    pub revenue: f64,
    /// Orders after the unit's first exposure.
    pub orders: u64,
    /// Revenue of purchases attributed to the experiment's impressions.
    pub attributed_revenue: f64,
    /// Per unit: y = clicks, x = impressions.
    pub ctr: Sums,
    /// Per unit: y = 1 if converted.
    pub conversion: Sums,
    /// Per unit: y = revenue.
    pub revenue_per_unit: Sums,
}

/// One arm's results.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmResults {
    pub name: String,
    pub stats: ArmStats,
    pub ctr: f64,
    pub conversion_rate: f64,
    pub revenue_per_unit: f64,
    pub aov: f64,
    pub attributed_revenue_share: f64,
    /// Against the control, per metric; empty for the control itself.
    /// `None`: too few units to compare (fewer than 2 in an arm, or no
    /// impressions for ctr).
    pub vs_control: Vec<(PrimaryMetric, Option<Comparison>)>,
}

/// An experiment's results.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    pub arms: Vec<ArmResults>,
    pub verdict: String,
}

fn rate(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

fn estimate(stats: &ArmStats, metric: PrimaryMetric) -> Option<Estimate> {
    match metric {
        PrimaryMetric::Ctr => stats.ctr.ratio(),
        PrimaryMetric::ConversionRate => stats.conversion.mean(),
        PrimaryMetric::RevenuePerUnit => stats.revenue_per_unit.mean(),
    }
}

/// The metrics compared, the primary one first.
pub fn metrics(primary: PrimaryMetric) -> Vec<PrimaryMetric> {
    let mut all = vec![primary];
    for m in [
        PrimaryMetric::Ctr,
        PrimaryMetric::ConversionRate,
        PrimaryMetric::RevenuePerUnit,
    ] {
        if m != primary {
            all.push(m);
        }
    }
    all
}

/// Results of `experiment` from its arms' stats (one per arm, in order).
/// The verdict reads the primary metric's always-valid p-values, with a
/// Bonferroni correction over the treatment arms, so it may be read at
/// any time.
pub fn results(experiment: &Experiment, stats: &[ArmStats]) -> Results {
    let none = ArmStats::default();
    let stat = |i: usize| stats.get(i).unwrap_or(&none);
    let control = stat(experiment.control);
    let mut arms = Vec::with_capacity(experiment.arms.len());
    let treatments = experiment.arms.len().saturating_sub(1).max(1) as f64;
    let mut better = Vec::new();
    let mut worse = Vec::new();
    for (i, arm) in experiment.arms.iter().enumerate() {
        let s = stat(i).clone();
        let mut vs_control = Vec::new();
        if i != experiment.control {
            for metric in metrics(experiment.primary_metric) {
                let comparison = match (estimate(control, metric), estimate(&s, metric)) {
                    (Some(c), Some(t)) => Some(compare(c, t, mixing_variance(c, t))),
                    _ => None,
                };
                if metric == experiment.primary_metric {
                    if let Some(c) = &comparison {
                        if c.always_valid_p_value < ALPHA / treatments {
                            if c.difference > 0.0 {
                                better.push(arm.name.clone());
                            } else {
                                worse.push(arm.name.clone());
                            }
                        }
                    }
                }
                vs_control.push((metric, comparison));
            }
        }
        arms.push(ArmResults {
            name: arm.name.clone(),
            ctr: rate(s.clicks as f64, s.impressions as f64),
            conversion_rate: rate(s.converted as f64, s.units as f64),
            revenue_per_unit: rate(s.revenue, s.units as f64),
            aov: rate(s.revenue, s.orders as f64),
            attributed_revenue_share: rate(s.attributed_revenue, s.revenue),
            stats: s,
            vs_control,
        });
    }
    let control_name = &experiment.arms[experiment.control].name;
    let metric = experiment.primary_metric.as_str();
    let mut parts = Vec::new();
    for arm in &better {
        parts.push(format!("{arm} better than {control_name} on {metric}"));
    }
    for arm in &worse {
        parts.push(format!("{arm} worse than {control_name} on {metric}"));
    }
    let verdict = if parts.is_empty() {
        "inconclusive".to_string()
    } else {
        parts.join("; ")
    };
    Results { arms, verdict }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::{Arm, ExperimentName, ExperimentSpec, Strategy, UnitKind};
    use crate::model::Surface;

    fn experiment() -> Experiment {
        let arm = |name: &str| Arm {
            name: name.into(),
            weight: 1.0,
            strategy: Strategy::Default { settings: None },
        };
        Experiment::new(
            ExperimentName::parse("name", "e").unwrap(),
            ExperimentSpec {
                surface: Surface::User,
                unit: UnitKind::User,
                arms: vec![arm("control"), arm("b")],
                control: "control".into(),
                primary_metric: PrimaryMetric::ConversionRate,
            },
            0,
        )
        .unwrap()
    }

    fn arm_with(units: u64, converted: u64) -> ArmStats {
        let mut s = ArmStats {
            units,
            converted,
            ..ArmStats::default()
        };
        for u in 0..units {
            let y = if u < converted { 1.0 } else { 0.0 };
            s.conversion.add(y, 0.0);
            s.revenue_per_unit.add(10.0 * y, 0.0);
            s.revenue += 10.0 * y;
            s.orders += y as u64;
            s.ctr.add(0.0, 0.0);
        }
        s
    }

    #[test]
    fn a_clear_difference_is_named_and_a_small_one_is_not() {
        let e = experiment();
        let r = results(&e, &[arm_with(5000, 500), arm_with(5000, 700)]);
        assert_eq!(r.verdict, "b better than control on conversion_rate");
        assert!(r.arms[0].vs_control.is_empty());
        let (metric, c) = &r.arms[1].vs_control[0];
        assert_eq!(*metric, PrimaryMetric::ConversionRate);
        let c = c.unwrap();
        assert!((c.difference - 0.04).abs() < 1e-12);
        assert!((r.arms[1].conversion_rate - 0.14).abs() < 1e-12);
        assert!((r.arms[1].aov - 10.0).abs() < 1e-12);
        // ctr has no impressions to compare.
        assert!(r.arms[1]
            .vs_control
            .iter()
            .any(|(m, c)| *m == PrimaryMetric::Ctr && c.is_none()));
        let r = results(&e, &[arm_with(200, 20), arm_with(200, 24)]);
        assert_eq!(r.verdict, "inconclusive");
        let r = results(&e, &[]);
        assert_eq!(r.verdict, "inconclusive");
        assert_eq!(r.arms.len(), 2);
    }
}
