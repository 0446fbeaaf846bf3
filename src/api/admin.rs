//! `/v1/admin/*`: operations on the whole store (admin key).

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::ApiJson;
use crate::api::models::BackupRequest;
use crate::api::{blocking, AppState};
use crate::backup;

/// `POST /v1/admin/backup`: writes a consistent backup of every catalog
/// into the configured backup folder while serving. 409 when the name is
/// taken or a backup is running; 503 while a catalog is loading.
pub async fn backup(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BackupRequest>,
) -> Result<Json<backup::Report>, ApiError> {
    let name = body.name.unwrap_or_else(backup::default_name);
    backup::check_name(&name)?;
    let report =
        blocking(move || Ok(backup::create(&state.catalogs, &state.backup_dir, &name)?)).await?;
    tracing::info!(name = %report.name, path = %report.path.display(), bytes = report.bytes, seconds = report.seconds, "backup written");
    Ok(Json(report))
}
