//! `POST /v1/catalogs/{catalog}/recommend/*`. Every response carries a
//! `recommendation_id` that later events can cite, and each hit a
//! `reason`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::analytics::{arm_settings, ExperimentRefView};
use crate::api::models::{
    check_k, parse_filter, parse_time, CategoryView, CrossSellWire, RankByWire,
    RecommendationsResponse, SimilarRequest, TrendingWire, UpsellWire, UserRecommendWire,
};
use crate::api::{blocking, now_ms, AppState};
use crate::catalog::Catalog;
use crate::engagement::{FEATURE_COUNT, FEATURE_VERSION};
use crate::error::Error;
use crate::experiments::{Experiment, Strategy, UnitKind};
use crate::index::filter::Filter;
use crate::model::analytics::{ExperimentExposure, Impression};
use crate::model::RankBy;
use crate::model::{check_id, BehaviourSettings, Surface};
use crate::recommend::cross_sell::{CrossSellRequest, MAX_CART_ITEMS};
use crate::recommend::personal::UserRequest;
use crate::recommend::rerank::{self, Ask, Finished};
use crate::recommend::upsell::UpsellRequest;
use crate::recommend::{context_with, Recommendation, UserContext};

/// A new recommendation id: `r-` + the time in ms + a per-process random
/// part + a counter, all hex. Unique without coordination.
pub(crate) fn recommendation_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("r-{:x}-{:08x}-{n:x}", now_ms(), seed as u32)
}

/// How a request is served: the surface's running experiment (if any),
/// the arm, and the unit that is counted (`None`: no unit, served the
/// control and not counted).
pub(crate) struct Serving {
    surface: Surface,
    experiment: Option<(Experiment, usize, Option<String>)>,
    user_id: Option<String>,
    session_id: Option<String>,
    anchor: Vec<String>,
    pub(crate) started: Instant,
}

impl Serving {
    pub(crate) fn new(
        catalog: &Catalog,
        surface: Surface,
        user_id: Option<&str>,
        session_id: Option<&str>,
        anchor: Vec<String>,
    ) -> Serving {
        let experiment = catalog.running_experiment(surface).map(|e| {
            let unit = match e.unit {
                UnitKind::User => user_id,
                UnitKind::Session => session_id,
            };
            match unit {
                Some(u) => {
                    let arm = e.assign(u);
                    (e, arm, Some(u.to_string()))
                }
                None => {
                    let control = e.control;
                    (e, control, None)
                }
            }
        });
        Serving {
            surface,
            experiment,
            user_id: user_id.map(str::to_string),
            session_id: session_id.map(str::to_string),
            anchor,
            started: Instant::now(),
        }
    }

    /// What the arm serves (today's ranking without an experiment).
    fn strategy(&self) -> Strategy {
        match &self.experiment {
            Some((e, arm, _)) => e.arms[*arm].strategy.clone(),
            None => Strategy::Default { settings: None },
        }
    }

    /// The behaviour settings a default strategy ranks with.
    fn settings(&self, catalog: &Catalog) -> BehaviourSettings {
        let current = catalog.behaviour_settings();
        match self.strategy() {
            Strategy::Default {
                settings: Some(json),
            } => arm_settings(&json, current).unwrap_or_else(|e| {
                // Valid when the experiment was made; a later change of
                // the catalog's settings may clash with it.
                tracing::warn!(error = %e, "an arm's settings no longer apply; serving the catalog's");
                current
            }),
            _ => current,
        }
    }

    /// The answer of the arm's strategy: `rank` for the default one,
    /// called with the user's context and how many candidates to return;
    /// then the rerank stage (`recommend::rerank`) over them. `rank_by` is
    /// the request's, else the ranking settings'.
    fn picks(
        &self,
        catalog: &Catalog,
        k: usize,
        filter: Filter,
        now: i64,
        rank_by: Option<RankBy>,
        rank: impl FnOnce(&UserContext, usize) -> Result<Vec<Recommendation>, Error>,
    ) -> Result<(Finished, RankBy), Error> {
        let strategy = self.strategy();
        let settings = match strategy {
            Strategy::Default { .. } => self.settings(catalog),
            Strategy::Trending | Strategy::None => catalog.behaviour_settings(),
        };
        let context = context_with(catalog, self.user_id.as_deref(), now, settings)?;
        let rank_by = rank_by.unwrap_or(context.settings.engagement.rank_by);
        let ask = Ask {
            surface: self.surface,
            anchor: &self.anchor,
            context: &context,
            user_id: self.user_id.as_deref(),
            rank_by,
            k,
            now_ms: now,
        };
        let fetch = rerank::fetch(catalog, &ask);
        let candidates = match strategy {
            Strategy::Default { .. } => rank(&context, fetch)?,
            Strategy::Trending => {
                let mut picks = crate::recommend::personal::trending(
                    catalog,
                    &context,
                    fetch + self.anchor.len(),
                    filter,
                    now,
                );
                picks.retain(|p| !self.anchor.iter().any(|a| **a == *p.hit.meta.id));
                picks.truncate(fetch);
                picks
            }
            Strategy::None => Vec::new(),
        };
        let scorer = catalog.engagement();
        Ok((rerank::finish(catalog, &scorer, &ask, candidates), rank_by))
    }

    /// Records the impression and builds the answer.
    pub(crate) fn respond(
        self,
        catalog: &Catalog,
        (finished, rank_by): (Finished, RankBy),
        with_attributes: bool,
    ) -> RecommendationsResponse {
        let id = recommendation_id();
        let mut answer =
            RecommendationsResponse::finished(id.clone(), &finished, rank_by, with_attributes);
        answer.experiment = self
            .experiment
            .as_ref()
            .map(|(e, arm, _)| ExperimentRefView {
                name: e.name.as_str().to_string(),
                arm: e.arms[*arm].name.clone(),
            });
        let items = finished
            .picks
            .iter()
            .map(|p| Arc::clone(&p.hit.meta.id))
            .collect();
        let scores = finished
            .extras
            .iter()
            .map(|e| e.engagement as f32)
            .collect();
        self.record(
            catalog,
            id,
            items,
            Logged {
                features: finished.features,
                engagement: scores,
            },
        );
        answer
    }

    pub(crate) fn record(
        self,
        catalog: &Catalog,
        id: String,
        items: Vec<Arc<str>>,
        logged: Logged,
    ) {
        let latency_us = u32::try_from(self.started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let experiment = self.experiment.and_then(|(e, arm, unit)| {
            unit.map(|unit| ExperimentExposure {
                name: e.name.as_str().to_string(),
                arm: e.arms[arm].name.clone(),
                unit,
            })
        });
        let feature_count = if logged.features.is_empty() {
            0
        } else {
            FEATURE_COUNT as u16
        };
        catalog.analytics().record_impression(
            catalog.id(),
            Impression {
                id,
                surface: self.surface,
                user_id: self.user_id,
                session_id: self.session_id,
                experiment,
                anchor: self.anchor,
                items,
                at_ms: now_ms(),
                latency_us,
                feature_version: FEATURE_VERSION,
                feature_count,
                features: logged.features,
                engagement: logged.engagement,
                engaged: Vec::new(),
            },
        );
    }
}

/// What an impression logs for the engagement model: each hit's features
/// and the score served (both empty for search).
#[derive(Debug, Default)]
pub(crate) struct Logged {
    pub features: Vec<f32>,
    pub engagement: Vec<f32>,
}

/// Checks an optional session id.
pub(crate) fn check_session(session_id: Option<&String>) -> Result<(), Error> {
    match session_id {
        Some(id) => check_id("session_id", id),
        None => Ok(()),
    }
}

/// The request's `at`, or now.
fn moment(at: Option<&str>) -> Result<i64, Error> {
    match at {
        Some(raw) => parse_time("at", raw),
        None => Ok(now_ms()),
    }
}

fn check_user(user_id: Option<&String>) -> Result<(), Error> {
    match user_id {
        Some(id) => check_id("user_id", id),
        None => Ok(()),
    }
}

/// Similar items: never the item itself.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/similar", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::SimilarRequest, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn similar(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<SimilarRequest>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_id("item_id", &body.item_id)?;
    check_user(body.user_id.as_ref())?;
    let k = check_k(body.k)?;
    check_session(body.session_id.as_ref())?;
    let filter = parse_filter(body.filter)?;
    let with_attributes = body.with_attributes;
    let rank_by = body.rank_by.map(RankByWire::domain);
    blocking(move || {
        let serving = Serving::new(
            &catalog,
            Surface::Similar,
            body.user_id.as_deref(),
            body.session_id.as_deref(),
            vec![body.item_id.clone()],
        );
        let now = now_ms();
        let picks = serving.picks(&catalog, k, filter.clone(), now, rank_by, |context, n| {
            crate::recommend::similar::similar(&catalog, &body.item_id, n, filter, context, now)
        })?;
        Ok(Json(serving.respond(&catalog, picks, with_attributes)))
    })
    .await
}

/// Upsell: pricier items in the anchor's price band, ranked by similarity
/// (and the user's affinity, given a user).
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/upsell", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::UpsellWire, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn upsell(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<UpsellWire>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_id("item_id", &body.item_id)?;
    check_user(body.user_id.as_ref())?;
    let request = UpsellRequest {
        k: check_k(body.k)?,
        same_category: body.same_category,
        min_price_ratio: body.min_price_ratio,
        max_price_ratio: body.max_price_ratio,
        tiers_up: body.tiers_up,
        filter: parse_filter(body.filter)?,
    };
    request.validate()?;
    check_session(body.session_id.as_ref())?;
    let with_attributes = body.with_attributes;
    let rank_by = body.rank_by.map(RankByWire::domain);
    blocking(move || {
        let serving = Serving::new(
            &catalog,
            Surface::Upsell,
            body.user_id.as_deref(),
            body.session_id.as_deref(),
            vec![body.item_id.clone()],
        );
        let now = now_ms();
        let (k, filter) = (request.k, request.filter.clone());
        let picks = serving.picks(&catalog, k, filter, now, rank_by, |context, n| {
            let request = UpsellRequest { k: n, ..request };
            crate::recommend::upsell::upsell(&catalog, &body.item_id, &request, context, now)
        })?;
        Ok(Json(serving.respond(&catalog, picks, with_attributes)))
    })
    .await
}

/// Personal picks for a user; trending items on a cold start.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/user", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::UserRecommendWire, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn user(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<UserRecommendWire>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_id("user_id", &body.user_id)?;
    let request = UserRequest {
        k: check_k(body.k)?,
        filter: parse_filter(body.filter)?,
        now_ms: moment(body.at.as_deref())?,
        user_id: body.user_id,
    };
    check_session(body.session_id.as_ref())?;
    let with_attributes = body.with_attributes;
    let rank_by = body.rank_by.map(RankByWire::domain);
    blocking(move || {
        let serving = Serving::new(
            &catalog,
            Surface::User,
            Some(&request.user_id),
            body.session_id.as_deref(),
            Vec::new(),
        );
        let (k, filter, now) = (request.k, request.filter.clone(), request.now_ms);
        let picks = serving.picks(&catalog, k, filter, now, rank_by, |context, n| {
            let request = UserRequest { k: n, ..request };
            Ok(crate::recommend::personal::recommend_user_in(
                &catalog, context, &request,
            ))
        })?;
        Ok(Json(serving.respond(&catalog, picks, with_attributes)))
    })
    .await
}

/// Complements of a cart (or one item).
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/cross-sell", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::CrossSellWire, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn cross_sell(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<CrossSellWire>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    if body.item_ids.is_empty() || body.item_ids.len() > MAX_CART_ITEMS {
        return Err(Error::invalid(
            "item_ids",
            format!("must hold 1 to {MAX_CART_ITEMS} item ids"),
        )
        .into());
    }
    for (i, id) in body.item_ids.iter().enumerate() {
        check_id(&format!("item_ids[{i}]"), id)?;
    }
    check_user(body.user_id.as_ref())?;
    let request = CrossSellRequest {
        k: check_k(body.k)?,
        filter: parse_filter(body.filter)?,
        now_ms: moment(body.at.as_deref())?,
        item_ids: body.item_ids,
        user_id: body.user_id,
    };
    check_session(body.session_id.as_ref())?;
    let with_attributes = body.with_attributes;
    let rank_by = body.rank_by.map(RankByWire::domain);
    blocking(move || {
        let serving = Serving::new(
            &catalog,
            Surface::CrossSell,
            request.user_id.as_deref(),
            body.session_id.as_deref(),
            request.item_ids.clone(),
        );
        let (k, filter, now) = (request.k, request.filter.clone(), request.now_ms);
        let picks = serving.picks(&catalog, k, filter, now, rank_by, |context, n| {
            let request = CrossSellRequest { k: n, ..request };
            crate::recommend::cross_sell::cross_sell_in(&catalog, &request, context)
        })?;
        Ok(Json(serving.respond(&catalog, picks, with_attributes)))
    })
    .await
}

/// The most popular items now (time-decayed), filter-aware, and the most
/// popular categories.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/recommend/trending", tag = "recommend", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::TrendingWire, responses((status = 200, body = crate::api::models::RecommendationsResponse), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn trending(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<TrendingWire>,
) -> Result<Json<RecommendationsResponse>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    check_user(body.user_id.as_ref())?;
    let k = check_k(body.k)?;
    let filter = parse_filter(body.filter)?;
    let now = moment(body.at.as_deref())?;
    check_session(body.session_id.as_ref())?;
    let with_attributes = body.with_attributes;
    let rank_by = body.rank_by.map(RankByWire::domain);
    blocking(move || {
        let serving = Serving::new(
            &catalog,
            Surface::Trending,
            body.user_id.as_deref(),
            body.session_id.as_deref(),
            Vec::new(),
        );
        let picks = serving.picks(&catalog, k, filter.clone(), now, rank_by, |context, n| {
            Ok(crate::recommend::personal::trending(
                &catalog, context, n, filter, now,
            ))
        })?;
        let categories = catalog.with_behaviour(|b| {
            b.categories
                .top(now, k, |_| true)
                .into_iter()
                .filter(|(_, score)| *score > 0.0)
                .map(|(category, score)| CategoryView {
                    category: category.to_string(),
                    score,
                })
                .collect()
        });
        let mut answer = serving.respond(&catalog, picks, with_attributes);
        answer.categories = Some(categories);
        Ok(Json(answer))
    })
    .await
}
