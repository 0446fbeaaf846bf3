//! `/v1/catalogs/{catalog}/experiments`: A/B experiments on a surface
//! (see `experiments`), and their results.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::analytics::{
    ExperimentListView, ExperimentView, ExperimentWire, ResultsView,
};
use crate::api::{blocking, blocking_write, now_ms, AppState};
use crate::experiments::results::results as experiment_results;
use crate::experiments::{Experiment, ExperimentName};

/// `PUT`: starts an experiment (201), or confirms an identical one (200).
/// Another definition under the name, or a second running experiment on
/// the surface, is 409 `conflict`.
#[utoipa::path(put, path = "/v1/catalogs/{catalog}/experiments/{name}", tag = "experiments", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("name" = String, Path, description = "Experiment name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::analytics::ExperimentWire, responses((status = 201, description = "Started", body = crate::api::models::analytics::ExperimentView), (status = 200, description = "An identical experiment exists", body = crate::api::models::analytics::ExperimentView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn put(
    State(state): State<AppState>,
    ApiPath((catalog, name)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ExperimentWire>,
) -> Result<(StatusCode, Json<ExperimentView>), ApiError> {
    let catalog = state.catalog(&catalog)?;
    let name = ExperimentName::parse("name", &name)?;
    let spec = body.into_spec(catalog.behaviour_settings())?;
    let experiment = Experiment::new(name, spec, now_ms())?;
    blocking_write(move || {
        let (experiment, created) = catalog.put_experiment(experiment)?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, Json(ExperimentView::new(&experiment))))
    })
    .await
}

/// `GET` one experiment.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/experiments/{name}", tag = "experiments", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("name" = String, Path, description = "Experiment name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::analytics::ExperimentView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath((catalog, name)): ApiPath<(String, String)>,
) -> Result<Json<ExperimentView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    Ok(Json(ExperimentView::new(&catalog.experiment(&name)?)))
}

/// Every experiment of the catalog, running and stopped, by name.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/experiments", tag = "experiments", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::analytics::ExperimentListView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
) -> Result<Json<ExperimentListView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    Ok(Json(ExperimentListView {
        experiments: catalog
            .experiments()
            .iter()
            .map(ExperimentView::new)
            .collect(),
    }))
}

/// Stops an experiment: it keeps its results and no longer assigns
/// (requests are served today's ranking). Stopping a stopped one is a
/// no-op.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/experiments/{name}/stop", tag = "experiments", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("name" = String, Path, description = "Experiment name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::analytics::ExperimentView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn stop(
    State(state): State<AppState>,
    ApiPath((catalog, name)): ApiPath<(String, String)>,
) -> Result<Json<ExperimentView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    let name = ExperimentName::parse("name", &name)?;
    blocking_write(move || {
        let stopped = catalog.stop_experiment(&name, now_ms())?;
        Ok(Json(ExperimentView::new(&stopped)))
    })
    .await
}

/// Per-arm results with each treatment against the control: fixed-horizon
/// and always-valid intervals and p-values (README, "Experiments").
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/experiments/{name}/results", tag = "experiments", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("name" = String, Path, description = "Experiment name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::analytics::ResultsView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn results(
    State(state): State<AppState>,
    ApiPath((catalog, name)): ApiPath<(String, String)>,
) -> Result<Json<ResultsView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    let experiment = catalog.experiment(&name)?;
    blocking(move || {
        let stats = catalog.arm_stats(&experiment)?;
        let results = experiment_results(&experiment, &stats);
        Ok(Json(ResultsView::new(&experiment, &results)))
    })
    .await
}
