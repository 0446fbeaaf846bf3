//! `/v1/catalogs/{catalog}/users`.

use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::models::{DeletedView, UpsertedView, UserView, UsersUpsert};
use crate::api::{blocking, blocking_write, AppState};
use crate::model::User;

/// `POST /users`: validates the whole batch, then writes it atomically.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/users", tag = "users", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::UsersUpsert, responses((status = 200, body = crate::api::models::UpsertedView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn upsert(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<UsersUpsert>,
) -> Result<Json<UpsertedView>, ApiError> {
    state.check_batch("users", body.users.len())?;
    let catalog = state.catalog(&catalog)?;
    let config = *catalog.config();
    let n = blocking_write(move || {
        let users: Vec<User> = body
            .users
            .into_iter()
            .enumerate()
            .map(|(i, wire)| wire.into_user(i, &config))
            .collect::<Result<_, _>>()?;
        Ok(catalog.upsert_users(users)?)
    })
    .await?;
    Ok(Json(UpsertedView { upserted: n }))
}

/// `GET /users/{id}`.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/users/{id}", tag = "users", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("id" = String, Path, description = "Item or user id")), responses((status = 200, body = crate::api::models::UserView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
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
#[utoipa::path(delete, path = "/v1/catalogs/{catalog}/users/{id}", tag = "users", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("id" = String, Path, description = "Item or user id")), responses((status = 200, body = crate::api::models::DeletedView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath((catalog, id)): ApiPath<(String, String)>,
) -> Result<Json<DeletedView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    blocking_write(move || Ok(catalog.delete_user(&id)?)).await?;
    Ok(Json(DeletedView { deleted: 1 }))
}
