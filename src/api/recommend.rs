//! `POST /v1/catalogs/{catalog}/recommend/*`. Every response carries a
//! `recommendation_id` that later events can cite, and each hit a
//! `reason`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::{
    check_k, parse_filter, parse_time, CategoryView, CrossSellWire, RecommendationsResponse,
    SimilarRequest, TrendingWire, UpsellWire, UserRecommendWire,
};
use crate::api::{blocking, now_ms, AppState};
use crate::error::Error;
use crate::model::check_id;
use crate::recommend::cross_sell::{CrossSellRequest, MAX_CART_ITEMS};
use crate::recommend::personal::UserRequest;
use crate::recommend::upsell::UpsellRequest;
use crate::recommend::{context_of, Recommendation};

/// A new recommendation id: `r-` + the time in ms + a per-process random
/// part + a counter, all hex. Unique without coordination.
fn recommendation_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("r-{:x}-{:08x}-{n:x}", now_ms(), seed as u32)
}

fn respond(picks: &[Recommendation], with_attributes: bool) -> Json<RecommendationsResponse> {
    Json(RecommendationsResponse::new(
        recommendation_id(),
        picks,
        with_attributes,
    ))
}

/// The request's `at`, or now.
fn moment(at: Option<&str>) -> Result<i64, Error> {
    match at {
        Some(raw) => parse_time("at", raw),
        None => Ok(now_ms()),
    }
}

fn check_user(user_id: Option<&String>) -> Result<(), Error> {
    match user_id {
        Some(id) => check_id("user_id", id),
        None => Ok(()),
    }
}

/// Similar items: never the item itself.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/similar", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::SimilarRequest, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn similar(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<SimilarRequest>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_id("item_id", &body.item_id)?;
    check_user(body.user_id.as_ref())?;
    let k = check_k(body.k)?;
    let filter = parse_filter(body.filter)?;
    let with_attributes = body.with_attributes;
    blocking(move || {
        let context = context_of(&catalog, body.user_id.as_deref(), now_ms())?;
        let picks = crate::recommend::similar::similar(
            &catalog,
            &body.item_id,
            k,
            filter,
            &context,
            now_ms(),
        )?;
        Ok(respond(&picks, with_attributes))
    })
    .await
}

/// Upsell: pricier items in the anchor's price band, ranked by similarity
/// (and the user's affinity, given a user).
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/upsell", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::UpsellWire, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn upsell(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<UpsellWire>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_id("item_id", &body.item_id)?;
    check_user(body.user_id.as_ref())?;
    let request = UpsellRequest {
        k: check_k(body.k)?,
        same_category: body.same_category,
        min_price_ratio: body.min_price_ratio,
        max_price_ratio: body.max_price_ratio,
        tiers_up: body.tiers_up,
        filter: parse_filter(body.filter)?,
    };
    request.validate()?;
    let with_attributes = body.with_attributes;
    blocking(move || {
        let context = context_of(&catalog, body.user_id.as_deref(), now_ms())?;
        let picks = crate::recommend::upsell::upsell(
            &catalog,
            &body.item_id,
            &request,
            &context,
            now_ms(),
        )?;
        Ok(respond(&picks, with_attributes))
    })
    .await
}

/// Personal picks for a user; trending items on a cold start.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/user", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::UserRecommendWire, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn user(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<UserRecommendWire>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_id("user_id", &body.user_id)?;
    let request = UserRequest {
        k: check_k(body.k)?,
        filter: parse_filter(body.filter)?,
        now_ms: moment(body.at.as_deref())?,
        user_id: body.user_id,
    };
    let with_attributes = body.with_attributes;
    blocking(move || {
        let picks = crate::recommend::personal::recommend_user(&catalog, &request)?;
        Ok(respond(&picks, with_attributes))
    })
    .await
}

/// Complements of a cart (or one item).
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/cross-sell", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::CrossSellWire, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn cross_sell(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<CrossSellWire>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    if body.item_ids.is_empty() || body.item_ids.len() > MAX_CART_ITEMS {
        return Err(Error::invalid(
            "item_ids",
            format!("must hold 1 to {MAX_CART_ITEMS} item ids"),
        )
        .into());
    }
    for (i, id) in body.item_ids.iter().enumerate() {
        check_id(&format!("item_ids[{i}]"), id)?;
    }
    check_user(body.user_id.as_ref())?;
    let request = CrossSellRequest {
        k: check_k(body.k)?,
        filter: parse_filter(body.filter)?,
        now_ms: moment(body.at.as_deref())?,
        item_ids: body.item_ids,
        user_id: body.user_id,
    };
    let with_attributes = body.with_attributes;
    blocking(move || {
        let picks = crate::recommend::cross_sell::cross_sell(&catalog, &request)?;
        Ok(respond(&picks, with_attributes))
    })
    .await
}

/// The most popular items now (time-decayed), filter-aware, and the most
/// popular categories.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/trending", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::TrendingWire, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn trending(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<TrendingWire>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_user(body.user_id.as_ref())?;
    let k = check_k(body.k)?;
    let filter = parse_filter(body.filter)?;
    let now = moment(body.at.as_deref())?;
    let with_attributes = body.with_attributes;
    blocking(move || {
        let context = context_of(&catalog, body.user_id.as_deref(), now)?;
        let picks = crate::recommend::personal::trending(&catalog, &context, k, filter, now);
        let categories = catalog.with_behaviour(|b| {
            b.categories
                .top(now, k, |_| true)
                .into_iter()
                .filter(|(_, score)| *score > 0.0)
                .map(|(category, score)| CategoryView {
                    category: category.to_string(),
                    score,
                })
                .collect()
        });
        let mut answer = respond(&picks, with_attributes);
        answer.categories = Some(categories);
        Ok(answer)
    })
    .await
}
