//! Load shedding and the request deadline.
//!
//! At most `max_in_flight` requests are handled at once. One more is
//! refused at once with 503 `overloaded` and `Retry-After`, instead of
//! joining an unbounded queue: under overload the accepted requests keep
//! their latency and the rest are told to come back, where a queue would
//! make every request slow and then time all of them out.
//!
//! A request still running after `request_timeout` is answered with 503
//! `timeout`. Its blocking work (a RocksDB write, a graph insert) is not
//! cancelled half-way: a write that times out may still be applied, in
//! full (writes are atomic batches), which the error message says.
//! `items:bulk` and backups are exempt: a stream of millions of lines runs
//! for minutes by design, and a backup of a large store for seconds.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::AppState;

/// Probes and metrics bypass the limits: an operator must be able to see
/// an overloaded server.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

/// The middleware.
pub async fn guard(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = request.uri().path();
    if exempt(path) {
        return Ok(next.run(request).await);
    }
    // A backup refreshes every snapshot first: seconds at a million items.
    let streaming = path.ends_with("/items:bulk") || path == "/v1/admin/backup";
    // Held until the response is produced: the handler's blocking work is
    // covered, the streaming of a (small JSON) response body is not.
    let _permit =
        state
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Overloaded {
                limit: state.limits.max_in_flight,
            })?;
    if streaming {
        return Ok(next.run(request).await);
    }
    let timeout = state.limits.request_timeout;
    tokio::time::timeout(timeout, next.run(request))
        .await
        .map_err(|_| ApiError::Timeout {
            secs: timeout.as_secs(),
        })
}
