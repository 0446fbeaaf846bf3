//! HTTP API v1: one file per resource, wire types in `models`, the one
//! error mapping in `error`. Handlers parse and validate input, then run
//! the work on a blocking thread (RocksDB writes, graph inserts and
//! searches must not stall the async workers).

pub mod admin;
pub mod auth;
pub mod catalogs;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod items;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod recommend;
pub mod search;
pub mod settings;
pub mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

use crate::catalog::registry::Catalogs;
use crate::catalog::Catalog;
use crate::config::{ApiKeys, Limits};
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub catalogs: Arc<Catalogs>,
    pub limits: Limits,
    /// Where `POST /v1/admin/backup` writes.
    pub backup_dir: std::path::PathBuf,
    /// One permit per request being handled (`limits.max_in_flight`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    pub api_keys: Arc<ApiKeys>,
    pub metrics: Arc<metrics::Metrics>,
}

impl AppState {
    pub fn new(
        catalogs: Arc<Catalogs>,
        limits: Limits,
        api_keys: ApiKeys,
        backup_dir: std::path::PathBuf,
    ) -> AppState {
        AppState {
            catalogs,
            limits,
            backup_dir,
            in_flight: Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight)),
            api_keys: Arc::new(api_keys),
            metrics: Arc::new(metrics::Metrics::new()),
        }
    }

    fn catalog(&self, name: &str) -> Result<Arc<Catalog>, ApiError> {
        Ok(self.catalogs.get(name)?)
    }

    /// Refuses a JSON write of more than `limits.max_batch_items` entries.
    fn check_batch(&self, field: &'static str, len: usize) -> Result<(), ApiError> {
        let max = self.limits.max_batch_items;
        if len > max {
            return Err(crate::error::Error::invalid(
                field,
                format!(
                    "at most {max} per request, got {len}; send several requests, \
                     stream with items:bulk, or load offline with `recstore load`"
                ),
            )
            .into());
        }
        Ok(())
    }
}

/// Runs blocking work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join_error) => {
            tracing::error!(error = %join_error, "blocking task failed");
            Err(ApiError::Panic)
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The v1 router.
pub fn router(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .route("/v1/admin/backup", post(admin::backup))
        .route("/v1/catalogs", get(catalogs::list))
        .route(
            "/v1/catalogs/{catalog}",
            put(catalogs::put)
                .get(catalogs::get)
                .delete(catalogs::delete),
        )
        .route("/v1/catalogs/{catalog}/items", post(items::upsert))
        .route("/v1/catalogs/{catalog}/items:bulk", post(items::bulk))
        .route(
            "/v1/catalogs/{catalog}/items/delete",
            post(items::delete_many),
        )
        .route(
            "/v1/catalogs/{catalog}/items/{id}",
            get(items::get).delete(items::delete_one),
        )
        .route("/v1/catalogs/{catalog}/users", post(users::upsert))
        .route(
            "/v1/catalogs/{catalog}/users/{id}",
            get(users::get).delete(users::delete),
        )
        .route("/v1/catalogs/{catalog}/events", post(events::post))
        .route("/v1/catalogs/{catalog}/search", post(search::search))
        .route(
            "/v1/catalogs/{catalog}/recommend/similar",
            post(recommend::similar),
        )
        .route(
            "/v1/catalogs/{catalog}/recommend/upsell",
            post(recommend::upsell),
        )
        .route(
            "/v1/catalogs/{catalog}/recommend/user",
            post(recommend::user),
        )
        .route(
            "/v1/catalogs/{catalog}/recommend/cross-sell",
            post(recommend::cross_sell),
        )
        .route(
            "/v1/catalogs/{catalog}/recommend/trending",
            post(recommend::trending),
        )
        .route(
            "/v1/catalogs/{catalog}/settings",
            get(settings::get).put(settings::put),
        )
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        // Outermost: a request without a valid key is refused before its
        // body is read.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        // Outside the key check: refused requests are counted too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::observe,
        ))
        .with_state(state)
}
