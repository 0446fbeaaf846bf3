//! `/v1/catalogs/{catalog}/engagement-model`: the engagement score's model
//! (or prior) in use and its quality, and training it now.

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::ApiPath;
use crate::api::models::engagement::EngagementModelView;
use crate::api::{blocking, blocking_exempt, AppState};

/// `GET /engagement-model`: what scores hits now, its features and
/// weights, and its quality on the held-out recent slice.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/engagement-model", tag = "model", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::engagement::EngagementModelView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
) -> Result<Json<EngagementModelView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    blocking(move || {
        Ok(Json(EngagementModelView::new(
            &catalog.engagement(),
            catalog.engagement_training(),
            catalog.engagement_trainings(),
        )))
    })
    .await
}

/// `POST /engagement-model/train` (admin key): trains from the stored
/// impressions now and answers once the result is in use, with its
/// quality (or why the prior stays). Off the request pools, like the
/// collaborative model's training.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/engagement-model/train", tag = "model", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::engagement::EngagementModelView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn train(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
) -> Result<Json<EngagementModelView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    blocking_exempt(move || {
        // The recorder may still hold impressions and outcomes of the
        // last moments: count them first.
        catalog.analytics().sync();
        let trained = catalog.train_engagement()?;
        Ok(Json(EngagementModelView::trained(
            &trained,
            catalog.engagement_trainings(),
        )))
    })
    .await
}
