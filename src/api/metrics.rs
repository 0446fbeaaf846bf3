//! `GET /metrics`: Prometheus/OpenMetrics text.
//!
//! Request counters and latency histograms are updated by the [`observe`]
//! middleware (the outermost layer, so refused and shed requests count
//! too). Everything else (catalog sizes, planner paths, snapshots,
//! RocksDB) is read from its owner when scraped, so there is one source of
//! truth and nothing to keep in sync. The registry belongs to one server,
//! not to the process: tests run several servers side by side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tracing::Instrument;

use super::error::ApiError;
use super::AppState;
use crate::catalog::registry::CatalogStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route template (`/v1/catalogs/{catalog}/search`), never the raw
    /// path: label values stay bounded whatever clients send.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CatalogLabels {
    catalog: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RebuildPoolLabels {
    catalog: String,
    pool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlanLabels {
    catalog: String,
    path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// One server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    in_flight: Gauge,
    // Read at scrape time.
    catalogs: Family<StatusLabels, Gauge>,
    items: Family<CatalogLabels, Gauge>,
    users: Family<CatalogLabels, Gauge>,
    graph_points: Family<CatalogLabels, Gauge>,
    tombstones: Family<CatalogLabels, Gauge>,
    rebuilds: Family<CatalogLabels, Gauge>,
    rebuilding: Family<CatalogLabels, Gauge>,
    delta: Family<CatalogLabels, Gauge>,
    freezes: Family<CatalogLabels, Gauge>,
    frozen_bytes: Family<CatalogLabels, Gauge>,
    rebuild_chunks: Family<RebuildPoolLabels, Gauge>,
    changes_since_snapshot: Family<CatalogLabels, Gauge>,
    snapshot_age: Family<CatalogLabels, FloatGauge>,
    plans: Family<PlanLabels, Gauge>,
    escalations: Family<CatalogLabels, Gauge>,
    graph_searches: Family<CatalogLabels, Gauge>,
    graph_evaluations: Family<CatalogLabels, Gauge>,
    model_items: Family<CatalogLabels, Gauge>,
    model_trainings: Family<CatalogLabels, Gauge>,
    model_events_behind: Family<CatalogLabels, Gauge>,
    engagement_model: Family<CatalogLabels, Gauge>,
    engagement_trainings: Family<CatalogLabels, Gauge>,
    recommendation_events: Family<SurfaceLabels, Gauge>,
    attributed_revenue: Family<SurfaceLabels, FloatGauge>,
    impressions: Family<ImpressionLabels, Gauge>,
    feedback: Family<FeedbackLabels, Gauge>,
    purchase_revenue: FloatGauge,
    unattributed: Gauge,
    store: Family<StoreLabels, Gauge>,
    resident_memory: Gauge,
    heap: Family<HeapLabels, Gauge>,
    /// Two scrapes at once would interleave clearing and setting the
    /// scrape-time families.
    scrape: Mutex<()>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SurfaceLabels {
    surface: &'static str,
    /// `impression`, `click`, `add_to_cart` or `purchase` (attributed).
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ImpressionLabels {
    /// `written`, `dropped` (the queue was full) or `queued`.
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeedbackLabels {
    /// `rating`, `dislike`, `own` or `return`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    property: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeapLabels {
    allocator: &'static str,
    state: &'static str,
}

/// Latency buckets: 100 us to ~13 s, doubling. Searches sit at 0.3-2 ms,
/// writes at the 4 ms fsync, bulk streams at seconds.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 18,
    ))
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("recstore");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response head, by method and route template",
            Unit::Seconds,
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_in_flight_requests",
            "Requests being handled now (load shedding starts at max_in_flight)",
            in_flight.clone(),
        );
        let catalogs = Family::<StatusLabels, Gauge>::default();
        registry.register("catalogs", "Catalogs by status", catalogs.clone());
        let per_catalog = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<CatalogLabels, Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let items = per_catalog(&mut registry, "items", "Live items per catalog");
        let users = per_catalog(&mut registry, "users", "Users per catalog");
        let graph_points = per_catalog(
            &mut registry,
            "graph_points",
            "Points in the HNSW graph, live and dead",
        );
        let tombstones = per_catalog(
            &mut registry,
            "tombstones",
            "Dead graph points (deleted or replaced items) awaiting a rebuild",
        );
        let rebuilds = per_catalog(
            &mut registry,
            "index_rebuilds",
            "Background graph rebuilds since the catalog opened",
        );
        let rebuilding = per_catalog(
            &mut registry,
            "index_rebuilding",
            "1 while a background graph rebuild runs",
        );
        let delta = per_catalog(
            &mut registry,
            "index_delta_points",
            "Graph points written since the graph was last frozen: every graph search scans them exactly",
        );
        let freezes = per_catalog(
            &mut registry,
            "index_freezes",
            "Background freezes of the live graph since the catalog opened",
        );
        let frozen_bytes = per_catalog(
            &mut registry,
            "index_frozen_graph_bytes",
            "Bytes of the frozen graph's link tables",
        );
        let rebuild_chunks = Family::<RebuildPoolLabels, Gauge>::default();
        registry.register(
            "index_rebuild_chunks",
            format!(
                "Chunks of up to {} graph inserts that rebuilds ran, by pool: idle (SCHED_IDLE, \
                 only idle CPU) or urgent (half the cores at normal priority, after \
                 rebuild_idle_secs or with twice the trigger share dead). Urgent chunks mean \
                 rebuilds found too little idle time",
                crate::index::REBUILD_CHUNK
            ),
            rebuild_chunks.clone(),
        );
        let model_items = per_catalog(
            &mut registry,
            "collaborative_model_items",
            "Items in the collaborative model in use (0: none yet, or disabled)",
        );
        let model_trainings = per_catalog(
            &mut registry,
            "collaborative_model_trainings",
            "Trainings of the collaborative model since the catalog opened",
        );
        let model_events_behind = per_catalog(
            &mut registry,
            "collaborative_model_events_behind",
            "Events added or removed since the collaborative model was trained (what the retrain rule counts)",
        );
        let engagement_model = per_catalog(
            &mut registry,
            "engagement_model",
            "1 when a trained model scores the catalog's hits, 0 while the prior does",
        );
        let engagement_trainings = per_catalog(
            &mut registry,
            "engagement_model_trainings",
            "Trainings of the engagement model since the catalog opened (with or without a model as the result)",
        );
        let recommendation_events = Family::<SurfaceLabels, Gauge>::default();
        registry.register(
            "recommendation_events",
            "Since start, per surface: impressions recorded and the clicks, add-to-carts and purchases attributed to them",
            recommendation_events.clone(),
        );
        let attributed_revenue = Family::<SurfaceLabels, FloatGauge>::default();
        registry.register(
            "recommendation_attributed_revenue",
            "Since start, per surface: revenue of attributed purchases",
            attributed_revenue.clone(),
        );
        let impressions = Family::<ImpressionLabels, Gauge>::default();
        registry.register(
            "impressions",
            "Since start: impressions written and dropped (queue full); now: queued",
            impressions.clone(),
        );
        let feedback = Family::<FeedbackLabels, Gauge>::default();
        registry.register(
            "feedback_events",
            "Since start: explicit feedback events counted, by kind",
            feedback.clone(),
        );
        let purchase_revenue = FloatGauge::default();
        registry.register(
            "purchase_revenue",
            "Since start: revenue of every purchase event",
            purchase_revenue.clone(),
        );
        let unattributed = Gauge::default();
        registry.register(
            "unattributed_events",
            "Since start: events citing an unknown recommendation_id or one that did not show the item",
            unattributed.clone(),
        );
        let changes_since_snapshot = per_catalog(
            &mut registry,
            "changes_since_snapshot",
            "Item changes a restart would replay from RocksDB",
        );
        let snapshot_age = Family::<CatalogLabels, FloatGauge>::default();
        registry.register_with_unit(
            "snapshot_age",
            "Time since the index snapshot was last written or loaded",
            Unit::Seconds,
            snapshot_age.clone(),
        );
        let plans = Family::<PlanLabels, Gauge>::default();
        registry.register(
            "planner_searches",
            "Searches by the path the planner took: empty, exact, graph, graph_then_exact",
            plans.clone(),
        );
        let escalations = per_catalog(
            &mut registry,
            "planner_escalations",
            "Graph searches repeated with a larger fetch because the filter removed too many hits",
        );
        let graph_searches = per_catalog(
            &mut registry,
            "graph_searches",
            "HNSW searches run, escalation rounds included",
        );
        let graph_evaluations = per_catalog(
            &mut registry,
            "graph_distance_evaluations",
            "Distances those searches computed; per search, what the planner weighs against an exact scan",
        );
        let store = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "rocksdb",
            "RocksDB properties (bytes, counts; write_stopped is 0 or 1)",
            store.clone(),
        );
        let resident_memory = Gauge::default();
        registry.register_with_unit(
            "process_resident_memory",
            "Resident set size of the server process",
            Unit::Bytes,
            resident_memory.clone(),
        );
        let heap = Family::<HeapLabels, Gauge>::default();
        registry.register_with_unit(
            "process_heap",
            "The heaps: jemalloc's (the Rust code's) and glibc's (RocksDB's C++ code, its \
             memtables included). in_use: allocated; free: held by the allocator but not \
             allocated (jemalloc: resident, with its metadata, returned after 10 s; glibc: \
             resident or not). A rising in_use is data or a leak",
            Unit::Bytes,
            heap.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            catalogs,
            items,
            users,
            graph_points,
            tombstones,
            rebuilds,
            rebuilding,
            delta,
            freezes,
            frozen_bytes,
            rebuild_chunks,
            changes_since_snapshot,
            snapshot_age,
            plans,
            escalations,
            graph_searches,
            graph_evaluations,
            model_items,
            model_trainings,
            model_events_behind,
            engagement_model,
            engagement_trainings,
            recommendation_events,
            attributed_revenue,
            impressions,
            feedback,
            purchase_revenue,
            unattributed,
            store,
            resident_memory,
            heap,
            scrape: Mutex::new(()),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The request id: the client's `x-request-id` when it is a sane token
/// (so a proxy's id follows the request through our logs), else a new one.
fn request_id(request: &Request) -> HeaderValue {
    let given = request.headers().get(REQUEST_ID).filter(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
    });
    match given {
        Some(v) => v.clone(),
        None => {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            // Unique within the process, and across restarts by the start
            // time in the high bits.
            static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
            let start = *START.get_or_init(|| crate::api::now_ms() as u64);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            HeaderValue::from_str(&format!("{start:x}-{n:x}")).expect("hex is a valid header")
        }
    }
}

const REQUEST_ID: &str = "x-request-id";

/// The middleware: tags every request with an id (logged in its span and
/// sent back as `x-request-id`), counts and times it.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let id = request_id(&request);
    let span = tracing::info_span!(
        "request",
        id = id.to_str().unwrap_or(""),
        method = %method,
        route = %route,
    );
    let metrics = Arc::clone(&state.metrics);
    // Decremented on drop: a request whose client went away is dropped
    // mid-flight and must not stay counted.
    struct InFlight(Gauge);
    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    metrics.in_flight.inc();
    let in_flight = InFlight(metrics.in_flight.clone());
    let mut response = next.run(request).instrument(span.clone()).await;
    drop(in_flight);
    let seconds = started.elapsed().as_secs_f64();
    span.in_scope(|| {
        tracing::debug!(status = response.status().as_u16(), seconds, "request done");
    });
    response.headers_mut().insert(REQUEST_ID, id);
    metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(seconds);
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus/OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = super::blocking_exempt(move || {
        let metrics = &state.metrics;
        let _one_at_a_time = metrics.scrape.lock();
        collect(&state);
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; a label that cannot be encoded
        // would be our bug.
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry)
            .map_err(|_| ApiError::Panic)?;
        Ok(text)
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Reads the scrape-time figures from their owners.
fn collect(state: &AppState) {
    let m = &state.metrics;
    for family in [
        &m.items,
        &m.users,
        &m.graph_points,
        &m.tombstones,
        &m.rebuilds,
        &m.rebuilding,
        &m.delta,
        &m.freezes,
        &m.frozen_bytes,
        &m.changes_since_snapshot,
        &m.escalations,
        &m.graph_searches,
        &m.graph_evaluations,
        &m.model_items,
        &m.model_trainings,
        &m.model_events_behind,
        &m.engagement_model,
        &m.engagement_trainings,
    ] {
        // A deleted catalog's series disappear.
        family.clear();
    }
    m.snapshot_age.clear();
    m.rebuild_chunks.clear();
    m.plans.clear();
    m.catalogs.clear();
    let (mut loading, mut ready, mut failed) = (0, 0, 0);
    for (name, _, status) in state.catalogs.list() {
        let counts = match status {
            CatalogStatus::Loading => {
                loading += 1;
                continue;
            }
            CatalogStatus::Failed(_) => {
                failed += 1;
                continue;
            }
            CatalogStatus::Ready(counts) => {
                ready += 1;
                counts
            }
        };
        let label = CatalogLabels {
            catalog: name.to_string(),
        };
        let set = |family: &Family<CatalogLabels, Gauge>, value: u64| {
            family
                .get_or_create(&label)
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&m.items, counts.index.items);
        set(&m.users, counts.users);
        set(&m.graph_points, counts.index.graph_points);
        set(&m.tombstones, counts.index.tombstones);
        set(&m.rebuilds, counts.rebuilds);
        set(&m.rebuilding, u64::from(counts.rebuilding));
        set(&m.delta, counts.index.delta);
        set(&m.freezes, counts.freezes);
        set(&m.frozen_bytes, counts.index.frozen_bytes);
        for (pool, chunks) in [
            ("idle", counts.rebuild_chunks.idle),
            ("urgent", counts.rebuild_chunks.urgent),
        ] {
            m.rebuild_chunks
                .get_or_create(&RebuildPoolLabels {
                    catalog: name.to_string(),
                    pool,
                })
                .set(i64::try_from(chunks).unwrap_or(i64::MAX));
        }
        set(&m.changes_since_snapshot, counts.changes_since_snapshot);
        if let Some(age) = counts.snapshot_age_seconds {
            m.snapshot_age.get_or_create(&label).set(age);
        }
    }
    let analytics = state.catalogs.analytics();
    let totals = analytics.totals();
    let load = |a: &std::sync::atomic::AtomicU64| {
        i64::try_from(a.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(i64::MAX)
    };
    for surface in crate::model::Surface::ALL {
        let t = totals.surface(surface);
        for (kind, n) in [
            ("impression", &t.impressions),
            ("click", &t.clicks),
            ("add_to_cart", &t.add_to_carts),
            ("purchase", &t.purchases),
        ] {
            m.recommendation_events
                .get_or_create(&SurfaceLabels {
                    surface: surface.as_str(),
                    kind,
                })
                .set(load(n));
        }
        m.attributed_revenue
            .get_or_create(&SurfaceLabels {
                surface: surface.as_str(),
                kind: "purchase",
            })
            .set(load(&t.attributed_revenue_milli) as f64 / 1000.0);
    }
    for (label, n) in [
        ("written", load(&totals.impressions_written)),
        ("dropped", load(&totals.impressions_dropped)),
        (
            "queued",
            i64::try_from(analytics.queued()).unwrap_or(i64::MAX),
        ),
    ] {
        m.impressions
            .get_or_create(&ImpressionLabels { state: label })
            .set(n);
    }
    for (kind, n) in ["rating", "dislike", "own", "return"]
        .into_iter()
        .zip(&totals.feedback)
    {
        m.feedback
            .get_or_create(&FeedbackLabels { kind })
            .set(load(n));
    }
    m.purchase_revenue
        .set(load(&totals.revenue_milli) as f64 / 1000.0);
    m.unattributed.set(load(&totals.unattributed));
    for (status, n) in [("loading", loading), ("ready", ready), ("failed", failed)] {
        m.catalogs.get_or_create(&StatusLabels { status }).set(n);
    }
    for catalog in state.catalogs.ready() {
        let model = catalog.model_status();
        let label = CatalogLabels {
            catalog: catalog.name().to_string(),
        };
        let trained = model.model.as_ref().filter(|_| model.enabled);
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        m.model_items
            .get_or_create(&label)
            .set(gauge(trained.map_or(0, |t| t.items() as u64)));
        m.model_trainings
            .get_or_create(&label)
            .set(gauge(model.trainings));
        m.model_events_behind.get_or_create(&label).set(gauge(
            trained.map_or(model.events, |t| model.events.abs_diff(t.info.events)),
        ));
        m.engagement_model
            .get_or_create(&label)
            .set(i64::from(catalog.engagement().model.is_some()));
        m.engagement_trainings
            .get_or_create(&label)
            .set(gauge(catalog.engagement_trainings()));
        let plans = catalog.plan_counts();
        let name = catalog.name().to_string();
        for (path, n) in [
            ("empty", plans.empty),
            ("exact", plans.exact),
            ("graph", plans.graph),
            ("graph_then_exact", plans.graph_then_exact),
        ] {
            m.plans
                .get_or_create(&PlanLabels {
                    catalog: name.clone(),
                    path,
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (family, n) in [
            (&m.escalations, plans.escalations),
            (&m.graph_searches, plans.graph_searches),
            (&m.graph_evaluations, plans.graph_evaluations),
        ] {
            family
                .get_or_create(&CatalogLabels {
                    catalog: name.clone(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    let s = state.catalogs.store().stats();
    for (property, value) in [
        ("sst_bytes", s.sst_bytes),
        ("live_data_bytes", s.live_data_bytes),
        ("memtable_bytes", s.memtable_bytes),
        ("block_cache_bytes", s.block_cache_bytes),
        ("pending_compaction_bytes", s.pending_compaction_bytes),
        ("running_compactions", s.running_compactions),
        ("running_flushes", s.running_flushes),
        ("background_errors", s.background_errors),
        ("write_stopped", u64::from(s.write_stopped)),
        ("delayed_write_rate", s.delayed_write_rate),
    ] {
        m.store
            .get_or_create(&StoreLabels { property })
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }
    m.resident_memory.set(resident_bytes().unwrap_or(0));
    for (allocator, figures) in [("jemalloc", jemalloc_bytes()), ("glibc", glibc_bytes())] {
        let Some((in_use, free)) = figures else {
            continue;
        };
        for (state, bytes) in [("in_use", in_use), ("free", free)] {
            m.heap
                .get_or_create(&HeapLabels { allocator, state })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
}

/// jemalloc's figures for the Rust heap: bytes allocated, and bytes it
/// holds resident beyond them (freed memory not yet returned, and its own
/// metadata). Reading them refreshes jemalloc's statistics epoch, a cheap
/// merge of per-arena counters. `None` where jemalloc is not the allocator.
fn jemalloc_bytes() -> Option<(u64, u64)> {
    #[cfg(not(target_env = "msvc"))]
    {
        use tikv_jemalloc_ctl::{epoch, stats};
        epoch::advance().ok()?;
        let allocated = stats::allocated::read().ok()? as u64;
        let resident = stats::resident::read().ok()? as u64;
        Some((allocated, resident.saturating_sub(allocated)))
    }
    #[cfg(target_env = "msvc")]
    {
        None
    }
}

/// glibc's heap, which only RocksDB's C++ code uses: bytes allocated (in
/// arenas and in chunks of their own mapping) and bytes freed but held in
/// the arenas. `mallinfo2` walks every arena under its lock: fine once a
/// scrape, not per request. `None` with another C library.
fn glibc_bytes() -> Option<(u64, u64)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and only reads glibc's own
        // bookkeeping; it is thread-safe.
        let info = unsafe { libc::mallinfo2() };
        Some(((info.uordblks + info.hblkhd) as u64, info.fordblks as u64))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// RSS from /proc (Linux, in kB there, whatever the page size); `None`
/// elsewhere.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
