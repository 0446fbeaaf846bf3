//! A/B experiments on a recommendation surface: what an experiment *is*
//! (arms, weights, what each arm serves, its control and primary metric),
//! how a unit (a user or a session) is assigned to an arm, and the
//! statistics that compare arms (`stats`).
//!
//! Must not: know about HTTP, RocksDB or ranking. The catalog stores
//! experiments (`storage::codec`), `api::recommend` serves an arm's
//! strategy, `analytics` counts what the arms' units did.

pub mod results;
pub mod stats;

use crate::error::{Error, Result};
use crate::model::Surface;

/// Most arms an experiment may have.
pub const MAX_ARMS: usize = 16;
/// Longest arm name, in bytes.
pub const MAX_ARM_NAME: usize = 64;

/// An experiment's name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.` (it is
/// part of URLs and of every assignment's hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExperimentName(String);

impl ExperimentName {
    pub fn parse(field: &str, raw: &str) -> Result<ExperimentName> {
        crate::model::check_name(field, raw).map(|()| ExperimentName(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies the unit that is assigned to an arm and measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    /// The request's `user_id` (the events' `user_id`).
    User,
    /// The request's `session_id` (the events' `session_id`).
    Session,
}

impl UnitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::User => "user",
            UnitKind::Session => "session",
        }
    }
}

/// The metric an experiment is decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrimaryMetric {
    /// Exposed units that bought anything after their first exposure.
    ConversionRate,
    /// Revenue after first exposure per exposed unit.
    RevenuePerUnit,
    /// Attributed clicks per impression.
    Ctr,
}

impl PrimaryMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            PrimaryMetric::ConversionRate => "conversion_rate",
            PrimaryMetric::RevenuePerUnit => "revenue_per_unit",
            PrimaryMetric::Ctr => "ctr",
        }
    }
}

/// What an arm serves.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Today's ranking, with the catalog's settings or with these
    /// overridden. The override is the JSON text of a settings patch (the
    /// body `PUT .../settings` takes), applied at serving time over the
    /// catalog's settings of the moment, so a change of the catalog's
    /// settings reaches every arm alike. `api` parses and applies it.
    Default { settings: Option<String> },
    /// Popularity only: the trending items, filter-aware.
    Trending,
    /// A holdout: an empty answer, still recorded as an exposure.
    None,
}

impl Strategy {
    pub fn kind(&self) -> &'static str {
        match self {
            Strategy::Default { .. } => "default",
            Strategy::Trending => "trending",
            Strategy::None => "none",
        }
    }
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    pub name: String,
    /// Relative share of units; > 0.
    pub weight: f64,
    pub strategy: Strategy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// An experiment, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub name: ExperimentName,
    pub surface: Surface,
    pub unit: UnitKind,
    pub arms: Vec<Arm>,
    /// Index of the control arm in `arms`.
    pub control: usize,
    pub primary_metric: PrimaryMetric,
    pub status: Status,
    /// Milliseconds since the epoch.
    pub created_ms: i64,
    pub stopped_ms: Option<i64>,
}

/// What `Experiment::new` is given (already parsed from JSON).
pub struct ExperimentSpec {
    pub surface: Surface,
    pub unit: UnitKind,
    pub arms: Vec<Arm>,
    pub control: String,
    pub primary_metric: PrimaryMetric,
}

impl Experiment {
    /// Validates a new, running experiment.
    pub fn new(name: ExperimentName, spec: ExperimentSpec, now_ms: i64) -> Result<Experiment> {
        if spec.surface == Surface::Search {
            return Err(Error::invalid(
                "surface",
                "must be one of user, similar, upsell, cross-sell, trending (search is logged, not experimented on)",
            ));
        }
        if spec.arms.len() < 2 || spec.arms.len() > MAX_ARMS {
            return Err(Error::invalid(
                "arms",
                format!("must hold 2 to {MAX_ARMS} arms"),
            ));
        }
        for (i, arm) in spec.arms.iter().enumerate() {
            let ok = !arm.name.is_empty()
                && arm.name.len() <= MAX_ARM_NAME
                && arm.name.chars().all(|c| !c.is_control());
            if !ok {
                return Err(Error::invalid(
                    format!("arms[{i}].name"),
                    format!("must be 1 to {MAX_ARM_NAME} bytes without control characters"),
                ));
            }
            if spec.arms[..i].iter().any(|a| a.name == arm.name) {
                return Err(Error::invalid(
                    format!("arms[{i}].name"),
                    format!("{:?} names two arms", arm.name),
                ));
            }
            if !arm.weight.is_finite() || arm.weight <= 0.0 || arm.weight > 1e6 {
                return Err(Error::invalid(
                    format!("arms[{i}].weight"),
                    "must be a number > 0 and <= 1e6",
                ));
            }
        }
        let control = spec
            .arms
            .iter()
            .position(|a| a.name == spec.control)
            .ok_or_else(|| {
                Error::invalid(
                    "control",
                    format!("{:?} is not the name of one of the arms", spec.control),
                )
            })?;
        Ok(Experiment {
            name,
            surface: spec.surface,
            unit: spec.unit,
            arms: spec.arms,
            control,
            primary_metric: spec.primary_metric,
            status: Status::Running,
            created_ms: now_ms,
            stopped_ms: None,
        })
    }

    /// Same definition (what a repeated `PUT` must match to be a no-op).
    pub fn same_definition(&self, other: &Experiment) -> bool {
        self.name == other.name
            && self.surface == other.surface
            && self.unit == other.unit
            && self.arms == other.arms
            && self.control == other.control
            && self.primary_metric == other.primary_metric
    }

    pub fn is_running(&self) -> bool {
        self.status == Status::Running
    }

    /// The arm a unit is in: a deterministic hash of (experiment name,
    /// unit id) into the arms by weight. Depends on nothing else, so it is
    /// sticky for the experiment's life, across restarts and servers.
    pub fn assign(&self, unit: &str) -> usize {
        let total: f64 = self.arms.iter().map(|a| a.weight).sum();
        let point = unit_point(self.name.as_str(), unit) * total;
        let mut upto = 0.0;
        for (i, arm) in self.arms.iter().enumerate() {
            upto += arm.weight;
            if point < upto {
                return i;
            }
        }
        self.arms.len() - 1
    }

    /// The index of an arm by name.
    pub fn arm_index(&self, name: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.name == name)
    }
}

/// A unit's point in `[0, 1)` for an experiment: FNV-1a (64 bit) of
/// `name \0 unit`, finished with SplitMix64's mixer so that nearby ids
/// spread. Fixed forever: changing it would move every running
/// experiment's units between arms.
pub fn unit_point(experiment: &str, unit: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in experiment
        .as_bytes()
        .iter()
        .chain(std::iter::once(&0u8))
        .chain(unit.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(name: &str, weight: f64) -> Arm {
        Arm {
            name: name.into(),
            weight,
            strategy: Strategy::Default { settings: None },
        }
    }

    fn spec(arms: Vec<Arm>, control: &str) -> ExperimentSpec {
        ExperimentSpec {
            surface: Surface::User,
            unit: UnitKind::User,
            arms,
            control: control.into(),
            primary_metric: PrimaryMetric::Ctr,
        }
    }

    fn field(e: Error) -> String {
        match e {
            Error::InvalidField { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validation_names_the_field() {
        let name = || ExperimentName::parse("name", "exp").unwrap();
        let bad =
            |arms, control| field(Experiment::new(name(), spec(arms, control), 0).unwrap_err());
        assert_eq!(bad(vec![arm("a", 1.0)], "a"), "arms");
        assert_eq!(
            bad(vec![arm("a", 1.0), arm("b", 0.0)], "a"),
            "arms[1].weight"
        );
        assert_eq!(
            bad(vec![arm("a", 1.0), arm("b", f64::NAN)], "a"),
            "arms[1].weight"
        );
        assert_eq!(bad(vec![arm("a", 1.0), arm("a", 1.0)], "a"), "arms[1].name");
        assert_eq!(bad(vec![arm("a", 1.0), arm("", 1.0)], "a"), "arms[1].name");
        assert_eq!(bad(vec![arm("a", 1.0), arm("b", 1.0)], "c"), "control");
        let mut s = spec(vec![arm("a", 1.0), arm("b", 1.0)], "a");
        s.surface = Surface::Search;
        assert_eq!(field(Experiment::new(name(), s, 0).unwrap_err()), "surface");
        assert_eq!(
            field(ExperimentName::parse("name", "a/b").unwrap_err()),
            "name"
        );
        let e = Experiment::new(name(), spec(vec![arm("a", 1.0), arm("b", 3.0)], "b"), 5).unwrap();
        assert_eq!((e.control, e.status, e.created_ms), (1, Status::Running, 5));
    }

    #[test]
    fn assignment_follows_the_weights_and_is_sticky() {
        let e = Experiment::new(
            ExperimentName::parse("name", "weights").unwrap(),
            spec(vec![arm("a", 1.0), arm("b", 3.0)], "a"),
            0,
        )
        .unwrap();
        let n = 40_000;
        let in_b = (0..n)
            .filter(|i| e.assign(&format!("user-{i}")) == 1)
            .count();
        // 3/4 expected; 4 sd of a binomial(40k, 0.75) is 0.0087.
        let share = in_b as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.0087, "{share}");
        for i in 0..100 {
            let u = format!("user-{i}");
            assert_eq!(e.assign(&u), e.assign(&u));
        }
        // Fixed values: a change to the hash would move live experiments'
        // units between arms.
        assert_eq!(unit_point("exp", "user-1"), unit_point("exp", "user-1"));
        let p = unit_point("exp", "user-1");
        assert!((0.0..1.0).contains(&p));
        assert_eq!(format!("{:.6}", unit_point("exp", "user-1")), PINNED_POINT);
        // Another experiment's split is independent of this one's.
        let other = (0..n)
            .filter(|i| {
                let u = format!("user-{i}");
                (unit_point("weights", &u) < 0.5) == (unit_point("other", &u) < 0.5)
            })
            .count() as f64
            / n as f64;
        assert!((other - 0.5).abs() < 0.01, "{other}");
    }

    const PINNED_POINT: &str = "0.292358";
}
