//! `/v1/catalogs/{catalog}/settings`: a catalog's behaviour settings
//! (event weights, half-lives, exclusion window, ranking blends).

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::SettingsWire;
use crate::api::{blocking, AppState};

/// `GET /settings`: every setting, defaults included.
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
pub async fn put(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<SettingsWire>,
) -> Result<Json<SettingsWire>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    let settings = body.apply_to(catalog.behaviour_settings())?;
    blocking(move || {
        catalog.set_behaviour(settings)?;
        Ok(Json(SettingsWire::from_settings(
            &catalog.behaviour_settings(),
        )))
    })
    .await
}
