//! `/v1/catalogs/{catalog}/items`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::models::{GetItemQuery, ItemView, ItemsDelete, ItemsUpsert};
use crate::api::{blocking, AppState};
use crate::catalog::model::{check_id, Item};

/// `POST /items`: validates the whole batch, then writes it atomically.
pub async fn upsert(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<ItemsUpsert>,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    let config = *catalog.config();
    let n = blocking(move || {
        let items: Vec<Item> = body
            .items
            .into_iter()
            .enumerate()
            .map(|(i, wire)| wire.into_item(i, &config))
            .collect::<Result<_, _>>()?;
        Ok(catalog.upsert_items(items)?)
    })
    .await?;
    Ok(Json(json!({ "upserted": n })))
}

/// `GET /items/{id}`.
pub async fn get(
    State(state): State<AppState>,
    ApiPath((catalog, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<GetItemQuery>,
) -> Result<Json<ItemView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    let (view, vector) = catalog.get_item(&id, query.with_vector)?;
    let m = &view.meta;
    Ok(Json(ItemView {
        id: m.id.to_string(),
        price: m.price,
        price_tier: view.tier,
        price_tier_source: match (m.explicit_tier, view.tier) {
            (Some(_), _) => Some("explicit"),
            (None, Some(_)) => Some("derived"),
            (None, None) => None,
        },
        category: m.category.clone(),
        brand: m.brand.clone(),
        in_stock: m.in_stock,
        tags: m.tags.clone(),
        attributes: m.attributes.clone(),
        vector,
    }))
}

/// `DELETE /items/{id}`: 404 when the item does not exist.
pub async fn delete_one(
    State(state): State<AppState>,
    ApiPath((catalog, id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    // Nothing to write for an unknown item.
    catalog.get_item(&id, false)?;
    let deleted = blocking(move || Ok(catalog.delete_items(vec![id])?)).await?;
    Ok(Json(json!({ "deleted": deleted.len() })))
}

/// `POST /items/delete`: deletes the listed ids; unknown ids are reported.
pub async fn delete_many(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<ItemsDelete>,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    for (i, id) in body.ids.iter().enumerate() {
        check_id(&format!("ids[{i}]"), id)?;
    }
    let ids = body.ids;
    let requested = ids.clone();
    let deleted = blocking(move || Ok(catalog.delete_items(ids)?)).await?;
    let deleted_set: std::collections::HashSet<&String> = deleted.iter().collect();
    let mut reported = std::collections::HashSet::new();
    let not_found: Vec<&String> = requested
        .iter()
        .filter(|id| !deleted_set.contains(id) && reported.insert(*id))
        .collect();
    Ok(Json(
        json!({ "deleted": deleted.len(), "not_found": not_found }),
    ))
}
