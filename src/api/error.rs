//! The one mapping from error kinds to HTTP statuses and machine-readable
//! codes. Every variant is matched explicitly: a new error kind does not
//! compile until it has a status here.

use crate::api::models::{ErrorDetailView, ErrorView};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// Errors the HTTP layer can answer with: the crate's errors plus the ones
/// that only exist at the HTTP edge.
#[derive(Debug)]
pub enum ApiError {
    Core(Error),
    /// The body is not valid JSON or does not have the expected shape.
    MalformedJson {
        field: String,
        message: String,
    },
    /// The body has a field the endpoint does not know.
    UnknownField {
        field: String,
        message: String,
    },
    /// A path or query parameter could not be parsed.
    BadParameter {
        field: String,
        message: String,
    },
    PayloadTooLarge {
        limit: usize,
    },
    /// The body's content type is not the one the endpoint reads.
    UnsupportedMediaType {
        expected: &'static str,
    },
    /// No API key, or one that is not valid (keys configured).
    Unauthorized {
        message: &'static str,
    },
    /// A read-only key on a write.
    Forbidden {
        message: &'static str,
    },
    /// `max_in_flight` requests are already being handled.
    Overloaded {
        limit: usize,
    },
    /// The request ran past the request timeout.
    Timeout {
        secs: u64,
    },
    RouteNotFound,
    MethodNotAllowed,
    /// A handler panicked; the panic was caught.
    Panic,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Core(e)
    }
}

impl ApiError {
    /// Status, code, message and field of this error.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, String, Option<String>) {
        use StatusCode as S;
        match self {
            ApiError::Core(e) => {
                let message = e.to_string();
                match e {
                    Error::InvalidField { field, reason } => (
                        S::BAD_REQUEST,
                        "invalid_argument",
                        format!("{field}: {reason}"),
                        Some(field.clone()),
                    ),
                    Error::WrongDimension { field, .. } => (
                        S::BAD_REQUEST,
                        "wrong_dimension",
                        message,
                        Some(field.clone()),
                    ),
                    Error::CatalogNotFound { .. } => (
                        S::NOT_FOUND,
                        "catalog_not_found",
                        message,
                        Some("catalog".into()),
                    ),
                    Error::CatalogLoading { .. } => (
                        S::SERVICE_UNAVAILABLE,
                        "catalog_loading",
                        message,
                        Some("catalog".into()),
                    ),
                    Error::CatalogConfigConflict { .. } => {
                        (S::CONFLICT, "catalog_config_conflict", message, None)
                    }
                    Error::Conflict { field, .. } => {
                        (S::CONFLICT, "conflict", message, Some(field.clone()))
                    }
                    Error::ItemNotFound { .. } => (
                        S::NOT_FOUND,
                        "item_not_found",
                        message,
                        Some("item_id".into()),
                    ),
                    Error::UserNotFound { .. } => (
                        S::NOT_FOUND,
                        "user_not_found",
                        message,
                        Some("user_id".into()),
                    ),
                    Error::ExperimentNotFound { .. } => (
                        S::NOT_FOUND,
                        "experiment_not_found",
                        message,
                        Some("name".into()),
                    ),
                    Error::RecommendationNotFound { .. } => (
                        S::NOT_FOUND,
                        "recommendation_not_found",
                        message,
                        Some("recommendation_id".into()),
                    ),
                    Error::Unprocessable { field, .. } => (
                        S::UNPROCESSABLE_ENTITY,
                        "unprocessable",
                        message,
                        Some(field.clone()),
                    ),
                    // Internals are logged, never sent: the message says what
                    // failed, not how.
                    Error::Storage(e) => match crate::storage::fault(e) {
                        // RocksDB keeps refusing writes after a failed WAL
                        // write until it is reopened (rust-rocksdb does not
                        // expose DB::Resume), hence the restart.
                        crate::storage::Fault::DiskFull => (
                            S::INSUFFICIENT_STORAGE,
                            "storage_full",
                            "the disk holding the data directory is full: nothing of this request was written; reads go on; writes resume by themselves within seconds once at least 64 MiB are free again".into(),
                            None,
                        ),
                        crate::storage::Fault::ReadOnly => (
                            S::SERVICE_UNAVAILABLE,
                            "read_only",
                            "the data directory became read-only: nothing of this request was written; reads go on".into(),
                            None,
                        ),
                        crate::storage::Fault::Other => (
                            S::INTERNAL_SERVER_ERROR,
                            "storage_error",
                            "the store could not complete the operation; nothing was written".into(),
                            None,
                        ),
                    },
                    Error::ReadOnly { .. } => (
                        S::SERVICE_UNAVAILABLE,
                        "read_only",
                        "the data directory is read-only (a read-only file system): reads work, writes are refused".into(),
                        None,
                    ),
                    Error::Corruption { .. } => (
                        S::INTERNAL_SERVER_ERROR,
                        "corruption",
                        "stored data could not be decoded".into(),
                        None,
                    ),
                    Error::Io { .. } => (
                        S::INTERNAL_SERVER_ERROR,
                        "io_error",
                        "a file operation failed".into(),
                        None,
                    ),
                    Error::ShuttingDown => (S::SERVICE_UNAVAILABLE, "shutting_down", message, None),
                }
            }
            ApiError::MalformedJson { field, message } => (
                S::BAD_REQUEST,
                "malformed_json",
                message.clone(),
                Some(field.clone()),
            ),
            ApiError::UnknownField { field, message } => (
                S::BAD_REQUEST,
                "unknown_field",
                message.clone(),
                Some(field.clone()),
            ),
            ApiError::BadParameter { field, message } => (
                S::BAD_REQUEST,
                "invalid_argument",
                message.clone(),
                Some(field.clone()),
            ),
            ApiError::PayloadTooLarge { limit } => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body exceeds the limit of {limit} bytes"),
                None,
            ),
            ApiError::UnsupportedMediaType { expected } => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("the body must be sent with content-type: {expected}"),
                None,
            ),
            ApiError::Unauthorized { message } => {
                (S::UNAUTHORIZED, "unauthorized", (*message).into(), None)
            }
            ApiError::Forbidden { message } => (S::FORBIDDEN, "forbidden", (*message).into(), None),
            ApiError::Overloaded { limit } => (
                S::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("the server is handling its limit of {limit} requests; retry after the delay in Retry-After"),
                None,
            ),
            ApiError::Timeout { secs } => (
                S::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the request did not finish within {secs} s; a write may still be applied in full (writes are atomic), so read before retrying one"),
                None,
            ),
            ApiError::RouteNotFound => (
                S::NOT_FOUND,
                "route_not_found",
                "no such route".into(),
                None,
            ),
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method".into(),
                None,
            ),
            ApiError::Panic => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".into(),
                None,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, field) = self.parts();
        if status.is_server_error() {
            match &self {
                // Counted in /metrics; one log line per shed request would
                // add log volume exactly when the server is overloaded.
                ApiError::Overloaded { .. } => tracing::debug!(code, "request shed"),
                ApiError::Core(e) => tracing::error!(code, error = %e, "request failed"),
                other => tracing::error!(code, error = ?other, "request failed"),
            }
        }
        let mut response = (
            status,
            axum::Json(ErrorView {
                error: ErrorDetailView {
                    code,
                    message,
                    field,
                },
            }),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme it expects.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"recstore\""),
            );
        }
        response
    }
}
