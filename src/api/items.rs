//! `/v1/catalogs/{catalog}/items`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use http_body_util::BodyExt;

use crate::api::error::ApiError;
use crate::api::extract::{parse_json, ApiJson, ApiPath, ApiQuery};
use crate::api::models::{
    BulkRejectView, BulkView, DeletedManyView, DeletedView, GetItemQuery, ItemView, ItemWire,
    ItemsDelete, ItemsUpsert, UpsertedView,
};
use crate::api::{blocking_write, AppState};
use crate::model::{check_id, Item};

/// `POST /items`: validates the whole batch, then writes it atomically.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/items", tag = "items", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::ItemsUpsert, responses((status = 200, description = "Durable and visible", body = crate::api::models::UpsertedView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn upsert(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<ItemsUpsert>,
) -> Result<Json<UpsertedView>, ApiError> {
    state.check_batch("items", body.items.len())?;
    let catalog = state.catalog(&catalog)?;
    let config = *catalog.config();
    let n = blocking_write(move || {
        let items: Vec<Item> = body
            .items
            .into_iter()
            .enumerate()
            .map(|(i, wire)| wire.into_item(i, &config))
            .collect::<Result<_, _>>()?;
        Ok(catalog.upsert_items(items)?)
    })
    .await?;
    Ok(Json(UpsertedView { upserted: n }))
}

/// `GET /items/{id}`.
#[utoipa::path(get, path = "/v1/catalogs/{catalog}/items/{id}", tag = "items", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("id" = String, Path, description = "Item or user id"), ("with_vector" = Option<bool>, Query, description = "Include the vector")), responses((status = 200, body = crate::api::models::ItemView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
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
#[utoipa::path(delete, path = "/v1/catalogs/{catalog}/items/{id}", tag = "items", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1), ("id" = String, Path, description = "Item or user id")), responses((status = 200, body = crate::api::models::DeletedView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn delete_one(
    State(state): State<AppState>,
    ApiPath((catalog, id)): ApiPath<(String, String)>,
) -> Result<Json<DeletedView>, ApiError> {
    let catalog = state.catalog(&catalog)?;
    // Nothing to write for an unknown item.
    catalog.get_item(&id, false)?;
    let deleted = blocking_write(move || Ok(catalog.delete_items(vec![id])?)).await?;
    Ok(Json(DeletedView {
        deleted: deleted.len(),
    }))
}

/// `POST /items/delete`: deletes the listed ids; unknown ids are reported.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/items/delete", tag = "items", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body = crate::api::models::ItemsDelete, responses((status = 200, body = crate::api::models::DeletedManyView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn delete_many(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    ApiJson(body): ApiJson<ItemsDelete>,
) -> Result<Json<DeletedManyView>, ApiError> {
    state.check_batch("ids", body.ids.len())?;
    let catalog = state.catalog(&catalog)?;
    for (i, id) in body.ids.iter().enumerate() {
        check_id(&format!("ids[{i}]"), id)?;
    }
    let ids = body.ids;
    let requested = ids.clone();
    let deleted = blocking_write(move || Ok(catalog.delete_items(ids)?)).await?;
    let deleted_set: std::collections::HashSet<&String> = deleted.iter().collect();
    let mut reported = std::collections::HashSet::new();
    let not_found: Vec<String> = requested
        .iter()
        .filter(|id| !deleted_set.contains(id) && reported.insert(*id))
        .cloned()
        .collect();
    Ok(Json(DeletedManyView {
        deleted: deleted.len(),
        not_found,
    }))
}

/// Items per write of `items:bulk` (each write is one durable batch).
const BULK_BATCH_ITEMS: usize = 1_000;
/// Rejected lines listed in an `items:bulk` response (all are counted).
const BULK_REJECTS_LISTED: usize = 1_000;

/// `POST /items:bulk`: an NDJSON stream of items (one API item per line),
/// validated line by line and written in batches of 1,000 as it arrives,
/// so a catalog of any size can be loaded while the server runs. A bad
/// line is rejected (with its number, code, field and reason) and the
/// others are loaded; each batch is durable when written, like `POST
/// /items`. Only a line longer than the body limit, a body that breaks
/// off, or a storage failure ends the request early.
#[utoipa::path(post, path = "/v1/catalogs/{catalog}/items:bulk", tag = "items", params(("catalog" = String, Path, description = "Catalog name: 1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`", pattern = r"^[A-Za-z0-9_.-]{1,64}$", max_length = 64, min_length = 1)), request_body(content = String, description = "NDJSON: one item (as in `items`) per line", content_type = "application/x-ndjson"), responses((status = 200, body = crate::api::models::BulkView), (status = "4XX", description = "Refused; nothing was written. `error.code` names the reason (README, Errors)", body = crate::api::models::ErrorView),
        (status = "5XX", description = "Server-side failure, overload (503 `overloaded`, `timeout`, `catalog_loading`, `read_only`) or a full disk (507 `storage_full`)", body = crate::api::models::ErrorView)))]
pub async fn bulk(
    State(state): State<AppState>,
    ApiPath(catalog): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BulkView>, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let ok = content_type
            .to_str()
            .ok()
            .and_then(|s| s.split(';').next())
            .map(|s| {
                matches!(
                    s.trim().to_ascii_lowercase().as_str(),
                    "application/x-ndjson"
                        | "application/ndjson"
                        | "application/jsonl"
                        | "application/x-jsonlines"
                )
            })
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/x-ndjson",
            });
        }
    }
    let catalog = state.catalog(&catalog)?;
    let config = *catalog.config();
    let line_limit = state.limits.max_body_bytes;
    let mut bulk = Bulk::default();
    let mut body = body;
    let mut buf: Vec<u8> = Vec::new();
    // Bytes of `buf` already searched for a newline.
    let mut scanned = 0;
    let mut skipping = false;
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                return Err(ApiError::MalformedJson {
                    field: "body".into(),
                    message: format!(
                        "the body broke off after line {} ({} items loaded): {e}",
                        bulk.line, bulk.loaded
                    ),
                })
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        let mut start = 0;
        while let Some(pos) = buf[scanned..].iter().position(|b| *b == b'\n') {
            let end = scanned + pos;
            if skipping {
                skipping = false;
            } else if end - start > line_limit {
                bulk.line += 1;
                bulk.reject(ApiError::PayloadTooLarge { limit: line_limit });
            } else {
                bulk.line(&buf[start..end], &config);
            }
            start = end + 1;
            scanned = start;
        }
        buf.drain(..start);
        scanned = buf.len();
        if buf.len() > line_limit {
            // A line longer than any request may be: reject it and skip to
            // its end rather than buffer it.
            if !skipping {
                bulk.line += 1;
                bulk.reject(ApiError::PayloadTooLarge { limit: line_limit });
                skipping = true;
            }
            buf.clear();
            scanned = 0;
        }
        if bulk.pending.len() >= BULK_BATCH_ITEMS {
            bulk.flush(&catalog).await?;
        }
    }
    if !skipping && !buf.is_empty() {
        bulk.line(&buf, &config);
    }
    bulk.flush(&catalog).await?;
    let rejects_truncated = bulk.rejected as usize > bulk.rejects.len();
    Ok(Json(BulkView {
        loaded: bulk.loaded,
        rejected: bulk.rejected,
        rejects: bulk.rejects,
        rejects_truncated,
    }))
}

#[derive(Default)]
struct Bulk {
    /// Number of the last line seen (1-based).
    line: u64,
    pending: Vec<Item>,
    loaded: u64,
    rejected: u64,
    rejects: Vec<BulkRejectView>,
}

impl Bulk {
    fn line(&mut self, raw: &[u8], config: &crate::model::CatalogConfig) {
        self.line += 1;
        let text = raw.strip_suffix(b"\r").unwrap_or(raw);
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match parse_json::<ItemWire>(text)
            .and_then(|wire| wire.into_item_at("", config).map_err(ApiError::from))
        {
            Ok(item) => self.pending.push(item),
            Err(e) => self.reject(e),
        }
    }

    fn reject(&mut self, e: ApiError) {
        self.rejected += 1;
        if self.rejects.len() < BULK_REJECTS_LISTED {
            let (_, code, message, field) = e.parts();
            self.rejects.push(BulkRejectView {
                line: self.line,
                code,
                field,
                message,
            });
        }
    }

    async fn flush(
        &mut self,
        catalog: &std::sync::Arc<crate::catalog::Catalog>,
    ) -> Result<(), ApiError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.pending);
        let catalog = std::sync::Arc::clone(catalog);
        let n = blocking_write(move || Ok(catalog.upsert_items(items)?)).await?;
        self.loaded += n as u64;
        Ok(())
    }
}
