//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::collections::BTreeMap;

use crate::api::models::{HealthView, ReadyView};

use crate::api::AppState;

/// `GET /healthz`: the process answers. `writes` says whether the store
/// takes writes: `ok`, `read_only` (a read-only data directory) or
/// `failing` (the last write failed, e.g. a full disk; `write_error` says
/// how). Still 200: the process is alive and serves reads.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = crate::api::models::HealthView)))]
pub async fn healthz(State(state): State<AppState>) -> Json<HealthView> {
    let store = state.catalogs.store();
    let (writes, write_error) = match (store.read_only(), store.write_failure()) {
        (Some(_), _) => ("read_only", None),
        (None, Some(error)) => ("failing", Some(error)),
        (None, None) => ("ok", None),
    };
    Json(HealthView {
        status: "ok",
        writes,
        write_error,
    })
}

/// `GET /readyz`: every catalog is open and its index built. Otherwise
/// 503, listing the catalogs still loading and those that failed to open
/// (with the reason), so an operator sees why.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = crate::api::models::ReadyView), (status = 503, description = "Catalogs loading or failed", body = crate::api::models::ReadyView)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<ReadyView>) {
    let not_ready = state.catalogs.not_ready();
    if not_ready.is_empty() {
        return (
            StatusCode::OK,
            Json(ReadyView {
                status: "ready",
                loading: None,
                failed: None,
            }),
        );
    }
    let failed: BTreeMap<String, String> = not_ready
        .iter()
        .filter_map(|(name, reason)| Some((name.as_str().to_string(), reason.clone()?)))
        .collect();
    let loading: Vec<String> = not_ready
        .iter()
        .filter(|(_, reason)| reason.is_none())
        .map(|(name, _)| name.as_str().to_string())
        .collect();
    let status = if failed.is_empty() {
        "loading"
    } else {
        "failed"
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(ReadyView {
            status,
            loading: Some(loading),
            failed: Some(failed),
        }),
    )
}
