//! `POST /v1/catalogs/{catalog}/search`: nearest neighbours of a vector.
//!
//! The answer carries a `Server-Timing` header splitting the server's time
//! into `parse` (JSON and vector decoding), `queue` (the hand-over to a
//! blocking thread), `plan` (the filter's matching set), `search` (graph
//! or exact scan) and `encode` (the JSON answer), in milliseconds: the
//! load generator (`tools/loadgen`) reports it per request.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiPath, TimedJson};
use crate::api::models::{check_k, decode_vector, parse_filter, HitsResponse, SearchRequest};
use crate::api::recommend::Logged;
use crate::api::recommend::{recommendation_id, Serving};
use crate::api::{blocking, AppState};
use crate::error::Error;
use crate::model::{check_id, Surface};

#[utoipa::path(post, path = "/v1/catalogs/{catalog}/search", tag = "search", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::SearchRequest, responses((status = 200, description = "Nearest neighbours; `Server-Timing` splits the time", body = crate::api::models::HitsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn search(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    body: TimedJson<SearchRequest>,
) -> Result<Response, ApiError> {
    let TimedJson { value: body, parse } = body;
    let decoding = Instant::now();
    let catalog = state.catalog(&catalog)?;
    let k = check_k(body.k)?;
    let filter = parse_filter(body.filter)?;
    let query = decode_vector("", body.vector, body.vector_b64, catalog.config())?
        .ok_or_else(|| Error::invalid("vector", "missing: give vector or vector_b64"))?;
    let parse = parse + decoding.elapsed();
    let with_attributes = body.with_attributes;
    for (field, id) in [("user_id", &body.user_id), ("session_id", &body.session_id)] {
        if let Some(id) = id {
            check_id(field, id)?;
        }
    }
    let log = body.log.then_some((body.user_id, body.session_id));
    let handed_over = Instant::now();
    blocking(move || {
        let queue = handed_over.elapsed();
        let (hits, plan, planning, searching) = catalog.with_index(|index| {
            let started = Instant::now();
            let planned = index.plan(&filter, &[]);
            let planning = started.elapsed();
            let started = Instant::now();
            let (hits, plan) = index.execute(planned, &query, k);
            (hits, plan, planning, started.elapsed())
        });
        tracing::debug!(?plan, hits = hits.len(), "search");
        let started = Instant::now();
        let mut answer = HitsResponse::new(&hits, with_attributes);
        if let Some((user_id, session_id)) = log {
            let mut serving = Serving::new(
                &catalog,
                Surface::Search,
                user_id.as_deref(),
                session_id.as_deref(),
                Vec::new(),
            );
            serving.started = handed_over;
            let id = recommendation_id();
            serving.record(
                &catalog,
                id.clone(),
                hits.iter()
                    .map(|h| std::sync::Arc::clone(&h.meta.id))
                    .collect(),
                Logged::default(),
            );
            answer.recommendation_id = Some(id);
        }
        let mut response = Json(answer).into_response();
        let encode = started.elapsed();
        let timing = server_timing(&[
            ("parse", parse),
            ("queue", queue),
            ("plan", planning),
            ("search", searching),
            ("encode", encode),
        ]);
        if let Ok(value) = HeaderValue::from_str(&timing) {
            response.headers_mut().insert("server-timing", value);
        }
        Ok(response)
    })
    .await
}

/// `name;dur=0.012, ...` with durations in milliseconds (RFC: W3C Server
/// Timing).
fn server_timing(parts: &[(&str, Duration)]) -> String {
    parts
        .iter()
        .map(|(name, d)| format!("{name};dur={:.3}", d.as_secs_f64() * 1e3))
        .collect::<Vec<_>>()
        .join(", ")
}
