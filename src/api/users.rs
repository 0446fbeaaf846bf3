//! `/v1/catalogs/{catalog}/users`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::{UserView, UsersUpsert};
use crate::api::{blocking, AppState};
use crate::catalog::model::User;

/// `POST /users`: validates the whole batch, then writes it atomically.
pub async fn upsert(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<UsersUpsert>,
) -> Result<Json<Value>, ApiError> {
    state.check_batch("users", body.users.len())?;
    let catalog = state.catalog(&catalog)?;
    let config = *catalog.config();
    let n = blocking(move || {
        let users: Vec<User> = body
            .users
            .into_iter()
            .enumerate()
            .map(|(i, wire)| wire.into_user(i, &config))
            .collect::<Result<_, _>>()?;
        Ok(catalog.upsert_users(users)?)
    })
    .await?;
    Ok(Json(json!({ "upserted": n })))
}

/// `GET /users/{id}`.
pub async fn get(
    State(state): State<AppState>,
    ApiPath((catalog, id)): ApiPath<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    let user = blocking(move || Ok(catalog.get_user(&id)?)).await?;
    Ok(Json(UserView {
        id: user.id,
        vector: user.vector,
        attributes: user.attributes,
    }))
}

/// `DELETE /users/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    ApiPath((catalog, id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    blocking(move || Ok(catalog.delete_user(&id)?)).await?;
    Ok(Json(json!({ "deleted": 1 })))
}
