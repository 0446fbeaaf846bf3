//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::api::AppState;

/// `GET /healthz`: the process answers. `writes` says whether the store
/// takes writes: `ok`, `read_only` (a read-only data directory) or
/// `failing` (the last write failed, e.g. a full disk; `write_error` says
/// how). Still 200: the process is alive and serves reads.
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let store = state.catalogs.store();
    if store.read_only().is_some() {
        return Json(json!({"status": "ok", "writes": "read_only"}));
    }
    match store.write_failure() {
        None => Json(json!({"status": "ok", "writes": "ok"})),
        Some(error) => Json(json!({"status": "ok", "writes": "failing", "write_error": error})),
    }
}

/// `GET /readyz`: every catalog is open and its index built. Otherwise
/// 503, listing the catalogs still loading and those that failed to open
/// (with the reason), so an operator sees why.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let not_ready = state.catalogs.not_ready();
    if not_ready.is_empty() {
        return (StatusCode::OK, Json(json!({"status": "ready"})));
    }
    let failed: Map<String, Value> = not_ready
        .iter()
        .filter_map(|(name, reason)| Some((name.as_str().to_string(), json!(reason.as_ref()?))))
        .collect();
    let loading: Vec<&str> = not_ready
        .iter()
        .filter(|(_, reason)| reason.is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    let status = if failed.is_empty() {
        "loading"
    } else {
        "failed"
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": status, "loading": loading, "failed": failed})),
    )
}
