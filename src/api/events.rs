//! `/v1/catalogs/{catalog}/events`: behaviour events.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::EventsPost;
use crate::api::{blocking, now_ms, AppState};
use crate::catalog::model::Event;

/// `POST /events`: validates the whole batch, then stores it atomically
/// and durably. Events with an `event_id` seen before are counted as
/// duplicates and not stored again; unknown items are kept and reported;
/// unknown users are created.
pub async fn post(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<EventsPost>,
) -> Result<Json<Value>, ApiError> {
    state.check_batch("events", body.events.len())?;
    let catalog = state.catalog(&catalog)?;
    let now_ms = now_ms();
    let events: Vec<Event> = body
        .events
        .into_iter()
        .enumerate()
        .map(|(i, wire)| wire.into_event(i, now_ms))
        .collect::<Result<_, _>>()?;
    let outcome = blocking(move || Ok(catalog.record_events(events)?)).await?;
    Ok(Json(json!({
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
        "unknown_items": outcome.unknown_items,
        "new_users": outcome.new_users,
    })))
}
