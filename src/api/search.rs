//! `POST /v1/catalogs/{catalog}/search`: nearest neighbours of a vector.

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::{check_k, parse_filter, HitsResponse, SearchRequest};
use crate::api::{blocking, AppState};

pub async fn search(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<SearchRequest>,
) -> Result<Json<HitsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    let k = check_k(body.k)?;
    let filter = parse_filter(body.filter)?;
    let query = catalog.config().prepare_vector("vector", body.vector)?;
    let with_attributes = body.with_attributes;
    blocking(move || {
        let (hits, plan) = catalog.search(&query, k, &filter, &[]);
        tracing::debug!(?plan, hits = hits.len(), "search");
        Ok(Json(HitsResponse::new(&hits, with_attributes)))
    })
    .await
}
