//! Extractors whose rejections are our JSON errors, with the failing field
//! named by its JSON path (via serde_path_to_error).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

use crate::api::error::ApiError;
use crate::api::AppState;

/// A JSON body, parsed with the failing field's path in errors.
pub struct ApiJson<T>(pub T);

fn field_or_body(path: &serde_path_to_error::Path) -> String {
    // serde_path_to_error writes `?` for a segment it could not name (a
    // syntax error before the key was read): keep the part it could.
    let p = path.to_string();
    let p = p.split('?').next().unwrap_or("").trim_end_matches('.');
    if p.is_empty() || p == "." {
        "body".into()
    } else {
        p.to_string()
    }
}

/// Parses JSON bytes into `T`, mapping serde's errors onto ours.
///
/// Every request body (and every NDJSON line) is a JSON object. serde's
/// derived structs also accept an array, filling fields by position, so
/// `[]` would pass as a settings body with nothing set: refuse anything
/// but an object at the top.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // An empty body gets serde's own "EOF" message below.
    if let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        if *first != b'{' {
            return Err(ApiError::MalformedJson {
                field: "body".into(),
                message: "the body must be a JSON object".into(),
            });
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = field_or_body(e.path());
        let inner = e.into_inner();
        let message = inner.to_string();
        if message.starts_with("unknown field") {
            ApiError::UnknownField { field, message }
        } else {
            ApiError::MalformedJson { field, message }
        }
    })?;
    de.end().map_err(|e| ApiError::MalformedJson {
        field: "body".into(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// A JSON request body's bytes: checks the content type and the size limit.
async fn json_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
        let json = content_type
            .to_str()
            .ok()
            .and_then(|s| s.split(';').next())
            .map(|s| {
                let s = s.trim().to_ascii_lowercase();
                s == "application/json" || (s.starts_with("application/") && s.ends_with("+json"))
            })
            .unwrap_or(false);
        if !json {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
    }
    let limit = state.limits.max_body_bytes;
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::MalformedJson {
                field: "body".into(),
                message: rejection.body_text(),
            }
        }
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = json_body(req, state).await?;
        Ok(ApiJson(parse_json(&bytes)?))
    }
}

/// [`ApiJson`] that also reports how long parsing took (for the
/// `Server-Timing` header of the search endpoint).
pub struct TimedJson<T> {
    pub value: T,
    pub parse: Duration,
}

impl<T: DeserializeOwned> FromRequest<AppState> for TimedJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = json_body(req, state).await?;
        let started = Instant::now();
        let value = parse_json(&bytes)?;
        Ok(TimedJson {
            value,
            parse: started.elapsed(),
        })
    }
}

/// Path parameters, with our error on failure.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::BadParameter {
                field: "path".into(),
                message: e.body_text(),
            })
    }
}

/// Query parameters, with our error on failure.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::BadParameter {
                field: "query".into(),
                message: e.body_text(),
            })
    }
}
