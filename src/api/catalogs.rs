//! `/v1/catalogs` and `/v1/catalogs/{catalog}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::{
    CatalogDeletedView, CatalogListView, CatalogPut, CatalogView, CountsView, IndexView,
};
use crate::api::{blocking_write, AppState};
use crate::catalog::registry::{CatalogStatus, Created};
use crate::catalog::IndexSource;
use crate::model::{CatalogConfig, CatalogName};

fn view(name: &str, config: CatalogConfig, status: CatalogStatus) -> CatalogView {
    let (status, error, counts, index) = match status {
        CatalogStatus::Loading => ("loading", None, None, None),
        CatalogStatus::Failed(reason) => ("failed", Some(reason), None, None),
        CatalogStatus::Ready(c) => {
            let (source, rebuild_reason, replayed) = match &c.source {
                IndexSource::Snapshot { replayed, .. } => ("snapshot", None, Some(*replayed)),
                IndexSource::Rebuilt { reason } => ("rebuild", Some(reason.clone()), None),
            };
            (
                "ready",
                None,
                Some(CountsView {
                    items: c.index.items,
                    users: c.users,
                    graph_points: c.index.graph_points,
                    tombstones: c.index.tombstones,
                    rebuilds: c.rebuilds,
                    rebuilding: c.rebuilding,
                    items_without_vectors: config.is_learned().then_some(c.index.unlearned),
                }),
                Some(IndexView {
                    source,
                    rebuild_reason,
                    replayed,
                    open_seconds: c.open_seconds,
                    snapshot_watermark: c.snapshot_watermark,
                    changes_since_snapshot: c.changes_since_snapshot,
                    delta: c.index.delta,
                    freezes: c.freezes,
                }),
            )
        }
    };
    CatalogView {
        name: name.to_string(),
        dimension: config.dimension,
        vectors: config.vectors.as_str(),
        metric: config.metric.as_str(),
        vector_type: config.vector_type.as_str(),
        price_tiers: config.price_tiers,
        status,
        error,
        counts,
        index,
    }
}

/// `PUT /v1/catalogs/{catalog}`: 201 created, 200 identical, 409 different.
#[utoipa::path(put, path = "/v1/catalogs/{catalog}", tag = "catalogs", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::CatalogPut, responses((status = 200, description = "Exists with this configuration", body = crate::api::models::CatalogView), (status = 201, description = "Created", body = crate::api::models::CatalogView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<CatalogPut>,
) -> Result<(StatusCode, Json<CatalogView>), ApiError> {
    let name = CatalogName::parse(&name)?;
    let config = body.into_config()?;
    blocking_write(move || {
        let created = state.catalogs.create(&name, config)?;
        let (config, status) = state.catalogs.status(name.as_str())?;
        let code = match created {
            Created::New => StatusCode::CREATED,
            Created::AlreadyExisted => StatusCode::OK,
        };
        Ok((code, Json(view(name.as_str(), config, status))))
    })
    .await
}

/// `GET /v1/catalogs`.
#[utoipa::path(get, path = "/v1/catalogs", tag = "catalogs", responses((status = 200, body = crate::api::models::CatalogListView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn list(State(state): State<AppState>) -> Json<CatalogListView> {
    let catalogs: Vec<CatalogView> = state
        .catalogs
        .list()
        .into_iter()
        .map(|(name, config, status)| view(name.as_str(), config, status))
        .collect();
    Json(CatalogListView { catalogs })
}

/// `GET /v1/catalogs/{catalog}`.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}", tag = "catalogs", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::CatalogView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<CatalogView>, ApiError> {
    let (config, status) = state.catalogs.status(&name)?;
    Ok(Json(view(&name, config, status)))
}

/// `DELETE /v1/catalogs/{catalog}`.
#[utoipa::path(delete, path = "/v1/catalogs/{catalog}", tag = "catalogs", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), responses((status = 200, body = crate::api::models::CatalogDeletedView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<CatalogDeletedView>, ApiError> {
    let parsed = CatalogName::parse(&name)
        .map_err(|_| crate::error::Error::CatalogNotFound { name: name.clone() })?;
    blocking_write(move || {
        state.catalogs.delete(&parsed)?;
        Ok(Json(CatalogDeletedView {
            deleted: parsed.as_str().to_string(),
        }))
    })
    .await
}
