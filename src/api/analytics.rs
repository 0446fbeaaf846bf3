//! `/v1/catalogs/{catalog}/analytics` (hourly counters per surface) and
//! `/v1/catalogs/{catalog}/recommendations/{recommendation_id}` (one
//! impression, for support and debugging).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;

use crate::analytics::{hour_of, HOUR_MS};
use crate::api::error::ApiError;
use crate::api::extract::{ApiPath, ApiQuery};
use crate::api::models::analytics::{
    rfc3339, AnalyticsPointView, AnalyticsQuery, AnalyticsView, ImpressionView, OrdersPointView,
    SurfaceSeriesView,
};
use crate::api::models::parse_time;
use crate::api::{blocking, now_ms, AppState};
use crate::error::Error;
use crate::model::analytics::Bucket;
use crate::model::Surface;

/// Longest span one analytics query may cover, in hours (two years).
const MAX_SPAN_HOURS: i64 = 2 * 366 * 24;

/// An impression by its `recommendation_id` (404 when never made,
/// dropped from a full queue, or past the retention).
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/recommendations/{recommendation_id}", tag = "analytics", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("recommendation_id" = String, Path, description = "The `recommendation_id` of an answer")), responses((status = 200, body = crate::api::models::analytics::ImpressionView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn recommendation(
    State(state): State<AppState>,
    ApiPath((catalog, id)): ApiPath<(String, String)>,
) -> Result<Json<ImpressionView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    blocking(
        move || match catalog.analytics().impression(catalog.id(), &id)? {
            Some(i) => Ok(Json(ImpressionView::new(&i))),
            None => Err(Error::RecommendationNotFound { id }.into()),
        },
    )
    .await
}

/// A time series per surface: impressions, clicks, CTR, attributed
/// add-to-carts, purchases and revenue, revenue share and latency; and
/// catalog-wide orders with and without a recommended item.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/analytics", tag = "analytics", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("surface" = Option<String>, Query, description = "One surface; all when absent"), ("from" = Option<String>, Query, description = "RFC 3339; default 7 days before `to`"), ("to" = Option<String>, Query, description = "RFC 3339; default now"), ("bucket" = Option<String>, Query, description = "`hour` (default), `day` or `week`")), responses((status = 200, body = crate::api::models::analytics::AnalyticsView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn analytics(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiQuery(query): ApiQuery<AnalyticsQuery>,
) -> Result<Json<AnalyticsView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    let surface = query
        .surface
        .as_deref()
        .map(|s| Surface::parse("surface", s))
        .transpose()?;
    let to = match &query.to {
        Some(t) => parse_time("to", t)?,
        None => now_ms(),
    };
    let from = match &query.from {
        Some(t) => parse_time("from", t)?,
        None => to - 7 * 24 * HOUR_MS,
    };
    if from > to {
        return Err(Error::invalid("from", "must not be after to").into());
    }
    let (bucket, hours): (&'static str, i64) = match query.bucket.as_deref() {
        None | Some("hour") => ("hour", 1),
        Some("day") => ("day", 24),
        Some("week") => ("week", 168),
        Some(_) => return Err(Error::invalid("bucket", "must be hour, day or week").into()),
    };
    let (from_hour, to_hour) = (hour_of(from), hour_of(to));
    if to_hour - from_hour > MAX_SPAN_HOURS {
        return Err(Error::invalid("from", "the span from..to may cover at most two years").into());
    }
    blocking(move || {
        let buckets = catalog
            .analytics()
            .buckets(catalog.id(), from_hour, to_hour)?;
        // Buckets start at multiples of their size since the epoch (UTC).
        let start_of = |hour: i64| hour.div_euclid(hours) * hours;
        let mut per_surface: BTreeMap<Surface, BTreeMap<i64, Bucket>> = BTreeMap::new();
        let mut wide: BTreeMap<i64, Bucket> = BTreeMap::new();
        for (hour, s, b) in &buckets {
            let target = match s {
                Some(s) if surface.is_none_or(|want| want == *s) => {
                    per_surface.entry(*s).or_default()
                }
                Some(_) => continue,
                None => &mut wide,
            };
            target.entry(start_of(*hour)).or_default().merge(b);
        }
        let revenue_of = |start: i64| wide.get(&start).map_or(0.0, |b| b.revenue);
        let rate = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let surfaces = Surface::ALL
            .into_iter()
            .filter(|s| surface.is_none_or(|want| want == *s))
            .map(|s| SurfaceSeriesView {
                surface: s.as_str(),
                points: per_surface
                    .get(&s)
                    .map(|series| {
                        series
                            .iter()
                            .map(|(start, b)| AnalyticsPointView {
                                start: rfc3339(start * HOUR_MS),
                                impressions: b.impressions,
                                clicks: b.clicks,
                                ctr: rate(b.clicks as f64, b.impressions as f64),
                                add_to_carts: b.add_to_carts,
                                purchases: b.purchases,
                                attributed_revenue: b.attributed_revenue,
                                revenue_share: rate(b.attributed_revenue, revenue_of(*start)),
                                latency_p50_ms: b.latency_quantile_ms(0.5),
                                latency_p99_ms: b.latency_quantile_ms(0.99),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        let orders = wide
            .iter()
            .map(|(start, b)| OrdersPointView {
                start: rfc3339(start * HOUR_MS),
                revenue: b.revenue,
                orders_with_recommendation: b.orders_with_recommendation,
                orders_without_recommendation: b.orders_without_recommendation,
                aov_with_recommendation: (b.orders_with_recommendation > 0)
                    .then(|| b.revenue_with_recommendation / b.orders_with_recommendation as f64),
                aov_without_recommendation: (b.orders_without_recommendation > 0).then(|| {
                    b.revenue_without_recommendation / b.orders_without_recommendation as f64
                }),
                unattributed: b.unattributed,
                ratings: b.ratings,
                dislikes: b.dislikes,
                owns: b.owns,
                returns: b.returns,
            })
            .collect();
        Ok(Json(AnalyticsView {
            from: rfc3339(from),
            to: rfc3339(to),
            bucket,
            surfaces,
            orders,
        }))
    })
    .await
}
