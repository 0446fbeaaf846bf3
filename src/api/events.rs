//! `/v1/catalogs/{catalog}/events`: behaviour events.

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::{EventsOutcomeView, EventsPost};
use crate::api::{blocking_write, now_ms, AppState};
use crate::model::Event;

/// `POST /events`: validates the whole batch, then stores it atomically
/// and durably. Events with an `event_id` seen before are counted as
/// duplicates and not stored again; unknown items are kept and reported;
/// unknown users are created.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/events", tag = "events", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::EventsPost, responses((status = 200, body = crate::api::models::EventsOutcomeView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn post(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<EventsPost>,
) -> Result<Json<EventsOutcomeView>, ApiError> {
    state.check_batch("events", body.events.len())?;
    let catalog = state.catalog(&catalog)?;
    let now_ms = now_ms();
    let events: Vec<Event> = body
        .events
        .into_iter()
        .enumerate()
        .map(|(i, wire)| wire.into_event(i, now_ms))
        .collect::<Result<_, _>>()?;
    let outcome = blocking_write(move || Ok(catalog.record_events(events)?)).await?;
    Ok(Json(EventsOutcomeView {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
        unknown_items: outcome.unknown_items,
        new_users: outcome.new_users,
        attributed: outcome.attributed,
        unattributed: outcome.unattributed,
    }))
}
