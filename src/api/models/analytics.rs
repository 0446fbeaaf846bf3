//! Wire types of experiments, impressions and analytics.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::SettingsWire;
use crate::error::{Error, Result};
use crate::experiments::results::{ArmResults, Results};
use crate::experiments::stats::Comparison;
use crate::experiments::{Arm, Experiment, ExperimentSpec, PrimaryMetric, Strategy, UnitKind};
use crate::model::analytics::Impression;
use crate::model::{BehaviourSettings, Surface};

/// What an arm serves.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyWire {
    /// `default` (today's ranking), `trending` (popularity only) or
    /// `none` (a holdout: an empty answer, still an exposure).
    pub kind: String,
    /// `default` only: behaviour settings overridden for this arm (any
    /// subset of `PUT .../settings`, except `collaborative` and
    /// `popularity_half_life_secs`, which shape catalog-wide state),
    /// applied at serving time over the catalog's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsWire>,
}

/// One arm.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArmWire {
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// Relative share of units, > 0.
    #[schema(exclusive_minimum = 0, maximum = 1000000)]
    pub weight: f64,
    pub strategy: StrategyWire,
}

/// `PUT /v1/catalogs/{catalog}/experiments/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentWire {
    /// `user`, `similar`, `upsell`, `cross-sell` or `trending`.
    pub surface: String,
    /// `user` (the request's `user_id`) or `session` (its `session_id`).
    pub unit: String,
    #[schema(min_items = 2, max_items = 16)]
    pub arms: Vec<ArmWire>,
    /// The name of the control arm.
    pub control: String,
    /// `conversion_rate`, `revenue_per_unit` or `ctr`.
    pub primary_metric: String,
}

fn parse_metric(field: &str, raw: &str) -> Result<PrimaryMetric> {
    match raw {
        "conversion_rate" => Ok(PrimaryMetric::ConversionRate),
        "revenue_per_unit" => Ok(PrimaryMetric::RevenuePerUnit),
        "ctr" => Ok(PrimaryMetric::Ctr),
        _ => Err(Error::invalid(
            field,
            "must be one of conversion_rate, revenue_per_unit, ctr",
        )),
    }
}

/// Applies an arm's settings override (its JSON text) over `current`.
pub fn arm_settings(json: &str, current: BehaviourSettings) -> Result<BehaviourSettings> {
    let patch: SettingsWire =
        serde_json::from_str(json).map_err(|e| Error::invalid("settings", e.to_string()))?;
    patch.apply_to(current)
}

impl ExperimentWire {
    /// Validates the body into a spec; `current` is the catalog's settings,
    /// over which each arm's override must be valid.
    pub fn into_spec(self, current: BehaviourSettings) -> Result<ExperimentSpec> {
        let surface = Surface::parse("surface", &self.surface).map_err(|_| {
            Error::invalid(
                "surface",
                "must be one of user, similar, upsell, cross-sell, trending",
            )
        })?;
        let unit = match self.unit.as_str() {
            "user" => UnitKind::User,
            "session" => UnitKind::Session,
            _ => return Err(Error::invalid("unit", "must be user or session")),
        };
        let mut arms = Vec::with_capacity(self.arms.len());
        for (i, arm) in self.arms.into_iter().enumerate() {
            let field = format!("arms[{i}].strategy");
            let strategy = match (arm.strategy.kind.as_str(), arm.strategy.settings) {
                ("default", None) => Strategy::Default { settings: None },
                ("default", Some(settings)) => {
                    if settings.collaborative.is_some() {
                        return Err(Error::invalid(
                            format!("{field}.settings.collaborative"),
                            "is catalog-wide (it shapes the trained model): set it with PUT .../settings",
                        ));
                    }
                    if settings.popularity_half_life_secs.is_some() {
                        return Err(Error::invalid(
                            format!("{field}.settings.popularity_half_life_secs"),
                            "is catalog-wide (it shapes the stored popularity): set it with PUT .../settings",
                        ));
                    }
                    let json =
                        serde_json::to_string(&settings).expect("settings serialise to JSON");
                    arm_settings(&json, current).map_err(|e| match e {
                        Error::InvalidField { field: f, reason } => Error::InvalidField {
                            field: format!("{field}.{f}"),
                            reason,
                        },
                        other => other,
                    })?;
                    Strategy::Default {
                        settings: Some(json),
                    }
                }
                ("trending", None) => Strategy::Trending,
                ("none", None) => Strategy::None,
                ("trending" | "none", Some(_)) => {
                    return Err(Error::invalid(
                        format!("{field}.settings"),
                        "only a default strategy takes settings",
                    ))
                }
                _ => {
                    return Err(Error::invalid(
                        format!("{field}.kind"),
                        "must be default, trending or none",
                    ))
                }
            };
            arms.push(Arm {
                name: arm.name,
                weight: arm.weight,
                strategy,
            });
        }
        Ok(ExperimentSpec {
            surface,
            unit,
            arms,
            control: self.control,
            primary_metric: parse_metric("primary_metric", &self.primary_metric)?,
        })
    }
}

/// One arm as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArmView {
    pub name: String,
    pub weight: f64,
    pub strategy: StrategyWire,
}

/// An experiment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentView {
    pub name: String,
    /// `running` or `stopped`.
    pub status: &'static str,
    pub surface: &'static str,
    pub unit: &'static str,
    pub arms: Vec<ArmView>,
    pub control: String,
    pub primary_metric: &'static str,
    /// RFC 3339.
    pub created_at: String,
    pub stopped_at: Option<String>,
}

pub(crate) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl ExperimentView {
    pub fn new(e: &Experiment) -> ExperimentView {
        ExperimentView {
            name: e.name.as_str().to_string(),
            status: e.status.as_str(),
            surface: e.surface.as_str(),
            unit: e.unit.as_str(),
            arms: e
                .arms
                .iter()
                .map(|a| ArmView {
                    name: a.name.clone(),
                    weight: a.weight,
                    strategy: StrategyWire {
                        kind: a.strategy.kind().to_string(),
                        settings: match &a.strategy {
                            Strategy::Default {
                                settings: Some(json),
                            } => serde_json::from_str(json).ok(),
                            _ => None,
                        },
                    },
                })
                .collect(),
            control: e.arms[e.control].name.clone(),
            primary_metric: e.primary_metric.as_str(),
            created_at: rfc3339(e.created_ms),
            stopped_at: e.stopped_ms.map(rfc3339),
        }
    }
}

/// `GET /v1/catalogs/{catalog}/experiments`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentListView {
    pub experiments: Vec<ExperimentView>,
}

/// The experiment and arm that served an answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentRefView {
    pub name: String,
    pub arm: String,
}

/// Treatment against control for one metric.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComparisonView {
    /// treatment - control, in the metric's units.
    pub difference: f64,
    /// treatment / control - 1 (null when the control's value is 0).
    pub lift: Option<f64>,
    /// 95 % interval of the difference, for one look at a fixed sample size.
    pub ci95: [f64; 2],
    /// 95 % interval of the lift (delta method).
    pub lift_ci95: Option<[f64; 2]>,
    /// Two-sided, for one look at a fixed sample size.
    pub p_value: f64,
    /// 95 % confidence sequence of the difference: valid however often it
    /// is looked at (null below 30 units per arm).
    pub always_valid_ci95: Option<[f64; 2]>,
    /// mSPRT p-value, valid however often it is looked at.
    pub always_valid_p_value: f64,
}

impl ComparisonView {
    fn new(c: &Comparison) -> ComparisonView {
        ComparisonView {
            difference: c.difference,
            lift: c.lift,
            ci95: [c.ci95.0, c.ci95.1],
            lift_ci95: c.lift_ci95.map(|(a, b)| [a, b]),
            p_value: c.p_value,
            always_valid_ci95: c.always_valid_ci95.map(|(a, b)| [a, b]),
            always_valid_p_value: c.always_valid_p_value,
        }
    }
}

/// One arm's results.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArmResultsView {
    pub name: String,
    /// Exposed units (users or sessions).
    pub units: u64,
    pub impressions: u64,
    pub clicks: u64,
    /// clicks / impressions.
    pub ctr: f64,
    pub add_to_carts: u64,
    /// Purchases attributed to the experiment's impressions.
    pub purchases: u64,
    /// Units that bought anything after their first exposure / units.
    pub conversion_rate: f64,
    /// Revenue of every purchase after the unit's first exposure.
    pub revenue: f64,
    pub revenue_per_unit: f64,
    /// revenue / orders after first exposure.
    pub aov: f64,
    pub orders: u64,
    pub attributed_revenue: f64,
    /// attributed_revenue / revenue.
    pub attributed_revenue_share: f64,
    /// Against the control (absent on the control): `ctr`,
    /// `conversion_rate`, `revenue_per_unit`; null when an arm has too
    /// few units to compare.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub vs_control: Option<std::collections::BTreeMap<&'static str, Option<ComparisonView>>>,
}

impl ArmResultsView {
    fn new(a: &ArmResults) -> ArmResultsView {
        let s = &a.stats;
        ArmResultsView {
            name: a.name.clone(),
            units: s.units,
            impressions: s.impressions,
            clicks: s.clicks,
            ctr: a.ctr,
            add_to_carts: s.add_to_carts,
            purchases: s.purchases,
            conversion_rate: a.conversion_rate,
            revenue: s.revenue,
            revenue_per_unit: a.revenue_per_unit,
            aov: a.aov,
            orders: s.orders,
            attributed_revenue: s.attributed_revenue,
            attributed_revenue_share: a.attributed_revenue_share,
            vs_control: (!a.vs_control.is_empty()).then(|| {
                a.vs_control
                    .iter()
                    .map(|(m, c)| (m.as_str(), c.as_ref().map(ComparisonView::new)))
                    .collect()
            }),
        }
    }
}

/// `GET .../experiments/{name}/results`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultsView {
    pub name: String,
    /// `running` or `stopped`.
    pub status: &'static str,
    pub surface: &'static str,
    pub primary_metric: &'static str,
    pub control: String,
    /// Units over all arms.
    pub sample_size: u64,
    pub arms: Vec<ArmResultsView>,
    /// In words, from the primary metric's always-valid p-value
    /// (Bonferroni over the treatment arms): `inconclusive`, or
    /// `<arm> better than <control> on <metric>` (or `worse`).
    pub verdict: String,
}

impl ResultsView {
    pub fn new(e: &Experiment, r: &Results) -> ResultsView {
        ResultsView {
            name: e.name.as_str().to_string(),
            status: e.status.as_str(),
            surface: e.surface.as_str(),
            primary_metric: e.primary_metric.as_str(),
            control: e.arms[e.control].name.clone(),
            sample_size: r.arms.iter().map(|a| a.stats.units).sum(),
            arms: r.arms.iter().map(ArmResultsView::new).collect(),
            verdict: r.verdict.clone(),
        }
    }
}

/// `GET .../recommendations/{recommendation_id}`: an impression.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImpressionView {
    pub recommendation_id: String,
    pub surface: &'static str,
    /// The user id, else the session id; null for neither.
    pub unit: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub experiment: Option<ExperimentRefView>,
    /// The request's item(s): similar's and upsell's item, cross-sell's cart.
    pub anchor: Vec<String>,
    /// The items shown, position 1 first.
    pub item_ids: Vec<String>,
    /// RFC 3339.
    pub at: String,
    /// Server-side time to compute the answer.
    pub latency_ms: f64,
}

impl ImpressionView {
    pub fn new(i: &Impression) -> ImpressionView {
        ImpressionView {
            recommendation_id: i.id.clone(),
            surface: i.surface.as_str(),
            unit: i.unit().map(str::to_string),
            user_id: i.user_id.clone(),
            session_id: i.session_id.clone(),
            experiment: i.experiment.as_ref().map(|x| ExperimentRefView {
                name: x.name.clone(),
                arm: x.arm.clone(),
            }),
            anchor: i.anchor.clone(),
            item_ids: i.items.iter().map(|s| s.to_string()).collect(),
            at: rfc3339(i.at_ms),
            latency_ms: f64::from(i.latency_us) / 1000.0,
        }
    }
}

/// `GET /v1/catalogs/{catalog}/analytics` query.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// One surface (`user`, `similar`, `upsell`, `cross-sell`,
    /// `trending`, `search`); all when absent.
    pub surface: Option<String>,
    /// RFC 3339; default 7 days before `to`.
    pub from: Option<String>,
    /// RFC 3339; default now.
    pub to: Option<String>,
    /// `hour` (default), `day` or `week`.
    pub bucket: Option<String>,
}

/// One time bucket of one surface.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsPointView {
    /// Start of the bucket, RFC 3339.
    pub start: String,
    pub impressions: u64,
    pub clicks: u64,
    pub ctr: f64,
    pub add_to_carts: u64,
    pub purchases: u64,
    pub attributed_revenue: f64,
    /// attributed_revenue / all purchase revenue in the bucket.
    pub revenue_share: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

/// One surface's series.
#[derive(Debug, Serialize, ToSchema)]
pub struct SurfaceSeriesView {
    pub surface: &'static str,
    pub points: Vec<AnalyticsPointView>,
}

/// Catalog-wide figures of one bucket: all revenue and orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrdersPointView {
    pub start: String,
    pub revenue: f64,
    pub orders_with_recommendation: u64,
    pub orders_without_recommendation: u64,
    /// Average order value of orders holding an attributed item.
    pub aov_with_recommendation: Option<f64>,
    pub aov_without_recommendation: Option<f64>,
    /// Events citing an unknown recommendation_id or one that did not
    /// show the item.
    pub unattributed: u64,
    /// Explicit feedback events of the bucket.
    pub ratings: u64,
    pub dislikes: u64,
    pub owns: u64,
    pub returns: u64,
}

/// `GET /v1/catalogs/{catalog}/analytics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsView {
    pub from: String,
    pub to: String,
    /// `hour`, `day` or `week`.
    pub bucket: &'static str,
    pub surfaces: Vec<SurfaceSeriesView>,
    pub orders: Vec<OrdersPointView>,
}
