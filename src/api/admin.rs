//! `/v1/admin/*`: operations on the whole store (admin key).

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::ApiJson;
use crate::api::models::{BackedUpCatalogView, BackupRequest, BackupView};
use crate::api::{blocking_exempt, AppState};
use crate::backup;

/// `POST /v1/admin/backup`: writes a consistent backup of every catalog
/// into the configured backup folder while serving. 409 when the name is
/// taken or a backup is running; 503 while a catalog is loading.
#[utoipa::path(post, path = "/v1/admin/backup", tag = "admin", request_body = crate::api::models::BackupRequest, responses((status = 200, body = crate::api::models::BackupView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn backup(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BackupRequest>,
) -> Result<Json<BackupView>, ApiError> {
    let name = body.name.unwrap_or_else(backup::default_name);
    backup::check_name(&name)?;
    let report =
        blocking_exempt(move || Ok(backup::create(&state.catalogs, &state.backup_dir, &name)?))
            .await?;
    tracing::info!(name = %report.name, path = %report.path.display(), bytes = report.bytes, seconds = report.seconds, "backup written");
    Ok(Json(BackupView {
        name: report.name,
        path: report.path.display().to_string(),
        bytes: report.bytes,
        seconds: report.seconds,
        catalogs: report
            .catalogs
            .into_iter()
            .map(|c| BackedUpCatalogView {
                name: c.name,
                id: c.id,
                items: c.items,
                users: c.users,
                snapshot_watermark: c.snapshot_watermark,
            })
            .collect(),
    }))
}
