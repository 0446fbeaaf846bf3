//! HTTP API v1: one file per resource, wire types in `models`, the one
//! error mapping in `error`. Handlers parse and validate input, then run
//! the work on a blocking thread (RocksDB writes, graph inserts and
//! searches must not stall the async workers).

pub mod admin;
pub mod analytics;
pub mod auth;
pub mod catalogs;
pub mod engagement;
pub mod error;
pub mod events;
pub mod experiments;
pub mod extract;
pub mod health;
pub mod items;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod models;
pub mod recommend;
pub mod search;
pub mod settings;
pub mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::get;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// The two pools of blocking work: reads (searches, recommendations,
/// GETs) and writes (anything that goes through a catalog's sequencer).
#[derive(Clone, Copy)]
enum Work {
    Read,
    Write,
}

/// Blocking work of one kind that may run at once: twice the cores, at
/// least 4, for the whole process.
///
/// Without this bound every request in flight gets its own blocking
/// thread: measured in the soak run on 2 vCPUs, a burst left ~230 requests
/// running on ~340 threads, the context switching cut throughput below
/// the offered 70 % of capacity, and the server never caught up (a third
/// of requests shed, p99 5 s). With it, waiting requests wait as cheap
/// futures in FIFO order and the cores work at full efficiency, so a
/// burst drains.
///
/// Writes have their own permits because a write spends most of its time
/// waiting, not working: for its fsync, and for its catalog's turn, which
/// a snapshot holds while it writes the graph and a rebuild holds while it
/// swaps. With one shared pool, the writes queued behind a snapshot took
/// every permit within milliseconds and stalled the searches too (the
/// soak's rebuild minutes: hundreds of 503s); apart, a stalled write
/// delays only writes.
fn work_permits(work: Work) -> &'static Arc<tokio::sync::Semaphore> {
    static READ: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    static WRITE: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    let pool = match work {
        Work::Read => &READ,
        Work::Write => &WRITE,
    };
    pool.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(tokio::sync::Semaphore::new((2 * cores).max(4)))
    })
}

/// Runs read work (searches, recommendations, GETs) off the async
/// workers, at most [`work_permits`] at a time.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    run_permitted(Work::Read, f).await
}

/// Runs a write (anything that takes a catalog's turn, or changes the
/// registry) off the async workers, at most [`work_permits`] at a time,
/// apart from the reads.
pub(crate) async fn blocking_write<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    run_permitted(Work::Write, f).await
}

async fn run_permitted<T: Send + 'static>(
    work: Work,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = Arc::clone(work_permits(work))
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Core(crate::error::Error::ShuttingDown))?;
    run_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
}

/// Runs blocking work off the async workers without waiting for a work
/// permit: for `/metrics` (an operator must see an overloaded server) and
/// backups (seconds long; they must not take a search's place).
pub(crate) async fn blocking_exempt<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    run_blocking(f).await
}

async fn run_blocking<T: Send + 'static>(
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
    crate::model::analytics::now_ms()
}

/// The OpenAPI document's fixed parts; the paths and schemas come from
/// the handlers' `#[utoipa::path]` annotations, registered with the routes
/// themselves, so the document cannot list a route the server lacks or
/// miss one it has.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "recstore",
        description = "A self-hosted recommendation store for online shops: embeddings, filtered nearest neighbours, similar items, upsell, cross-sell and personal picks. Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`; the codes are listed in the README.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "catalogs", description = "Catalogs: a vector space with its items, users and events"),
        (name = "items", description = "Products: vectors and attributes"),
        (name = "users", description = "Shoppers: optional vectors and preferences"),
        (name = "events", description = "Behaviour: views, clicks, add-to-cart, purchases"),
        (name = "search", description = "Filtered nearest neighbours"),
        (name = "recommend", description = "Similar items, upsell, personal picks, cross-sell, trending"),
        (name = "settings", description = "Per-catalog behaviour settings"),
        (name = "model", description = "The collaborative model learned from the events"),
        (name = "experiments", description = "A/B experiments on a surface, with control groups and always-valid statistics"),
        (name = "analytics", description = "Impressions, attribution and what recommendations earn"),
        (name = "admin", description = "Store-wide operations"),
        (name = "operations", description = "Probes and metrics"),
    ),
    modifiers(&Security)
)]
struct ApiDoc;

/// The two ways to carry an API key (README, "API keys").
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
        // Either header, or none when the server has no keys configured.
        openapi.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("api_key", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
}

/// Every documented route with its handler.
fn routes() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render))
        .routes(routes!(admin::backup))
        .routes(routes!(catalogs::list))
        .routes(routes!(catalogs::put, catalogs::get, catalogs::delete))
        .routes(routes!(items::upsert))
        .routes(routes!(items::bulk))
        .routes(routes!(items::delete_many))
        .routes(routes!(items::get, items::delete_one))
        .routes(routes!(users::upsert))
        .routes(routes!(users::get, users::delete))
        .routes(routes!(events::post))
        .routes(routes!(search::search))
        .routes(routes!(recommend::similar))
        .routes(routes!(recommend::upsell))
        .routes(routes!(recommend::user))
        .routes(routes!(recommend::cross_sell))
        .routes(routes!(recommend::trending))
        .routes(routes!(settings::get, settings::put))
        .routes(routes!(model::get))
        .routes(routes!(model::train))
        .routes(routes!(engagement::get))
        .routes(routes!(engagement::train))
        .routes(routes!(experiments::list))
        .routes(routes!(experiments::put, experiments::get))
        .routes(routes!(experiments::stop))
        .routes(routes!(experiments::results))
        .routes(routes!(analytics::analytics))
        .routes(routes!(analytics::recommendation))
}

/// The OpenAPI 3 document of this API (served at `/openapi.json`, and
/// committed as `openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// [`openapi`] as the pretty JSON that is served and committed.
pub fn openapi_json() -> String {
    let mut json = openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    json.push('\n');
    json
}

/// The v1 router.
pub fn router(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    let (routes, api) = routes().split_for_parts();
    let spec = api
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
        + "\n";
    routes
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], spec) }),
        )
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        // A request without a valid key is refused before its body is read.
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
