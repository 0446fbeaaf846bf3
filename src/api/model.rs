//! `/v1/catalogs/{catalog}/model`: the collaborative model learned from the
//! catalog's events (what it is, how fresh), and training it now.

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::ApiPath;
use crate::api::models::ModelView;
use crate::api::{blocking, blocking_exempt, AppState};

/// `GET /model`: the model in use, if any, and the events it saw.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/model", tag = "model", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::ModelView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
) -> Result<Json<ModelView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    blocking(move || Ok(Json(ModelView::new(&catalog.model_status())))).await
}

/// `POST /model/train`: trains the model from every stored event now and
/// answers once it is in use (waiting for a training already running).
/// Training runs off the request pools: it may take seconds to minutes on
/// a large catalog, and reads and writes go on meanwhile.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/model/train", tag = "model", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::ModelView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn train(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
) -> Result<Json<ModelView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    blocking_exempt(move || {
        catalog.train_collaborative(crate::recommend::blend::fit_for)?;
        Ok(Json(ModelView::new(&catalog.model_status())))
    })
    .await
}
