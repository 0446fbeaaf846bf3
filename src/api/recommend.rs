//! `POST /v1/catalogs/{catalog}/recommend/*`.

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::{check_k, parse_filter, HitsResponse, SimilarRequest, UpsellWire};
use crate::api::{blocking, AppState};
use crate::catalog::model::check_id;
use crate::recommend::upsell::UpsellRequest;

/// Similar items: never the item itself.
pub async fn similar(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<SimilarRequest>,
) -> Result<Json<HitsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_id("item_id", &body.item_id)?;
    let k = check_k(body.k)?;
    let filter = parse_filter(body.filter)?;
    let with_attributes = body.with_attributes;
    blocking(move || {
        let hits = crate::recommend::similar::similar(&catalog, &body.item_id, k, &filter)?;
        Ok(Json(HitsResponse::new(&hits, with_attributes)))
    })
    .await
}

/// Upsell: pricier items in the anchor's price band, ranked by similarity.
pub async fn upsell(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<UpsellWire>,
) -> Result<Json<HitsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_id("item_id", &body.item_id)?;
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
        let hits = crate::recommend::upsell::upsell(&catalog, &body.item_id, &request)?;
        Ok(Json(HitsResponse::new(&hits, with_attributes)))
    })
    .await
}
