//! `/v1/catalogs/{catalog}/settings`: a catalog's behaviour settings
//! (event weights, half-lives, exclusion window, ranking blends).

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::SettingsWire;
use crate::api::{blocking_write, AppState};

/// `GET /settings`: every setting, defaults included.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/settings", tag = "settings", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::SettingsWire), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
) -> Result<Json<SettingsWire>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    Ok(Json(SettingsWire::from_settings(
        &catalog.behaviour_settings(),
    )))
}

/// `PUT /settings`: replaces the given fields, keeps the others. What
/// events imply (popularity, co-purchases) is recomputed under the new
/// settings from the stored events before this returns.
#[utoipa::path(put, path = "/v1/catalogs/{catalog}/settings", tag = "settings", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::SettingsWire, responses((status = 200, body = crate::api::models::SettingsWire), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<SettingsWire>,
) -> Result<Json<SettingsWire>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    let settings = body.apply_to(catalog.behaviour_settings())?;
    blocking_write(move || {
        catalog.set_behaviour(settings)?;
        Ok(Json(SettingsWire::from_settings(
            &catalog.behaviour_settings(),
        )))
    })
    .await
}
