//! API keys: an admin key for every operation and a read-only key for
//! queries and reads, carried as `Authorization: Bearer <key>` or
//! `x-api-key: <key>`. Without configured keys nothing is checked (the
//! default bind address is loopback). Health probes stay open so load
//! balancers need no key.

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::config::ApiKeys;

/// What a request may do, by its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Health probes: no key.
    Open,
    /// GETs, searches and recommendations: the read or the admin key.
    Read,
    /// Everything else: the admin key.
    Write,
}

fn access(method: &Method, path: &str) -> Access {
    if path == "/healthz" || path == "/readyz" || path == "/openapi.json" {
        return Access::Open;
    }
    if method == Method::GET || method == Method::HEAD {
        return Access::Read;
    }
    // Queries are POSTs (they carry vectors and filters) but change nothing.
    let query = method == Method::POST
        && path.starts_with("/v1/catalogs/")
        && (path.ends_with("/search") || path.contains("/recommend/"));
    if query {
        Access::Read
    } else {
        Access::Write
    }
}

/// The key a request carries: a Bearer token, else `x-api-key`. An
/// `Authorization` header of another scheme (a proxy's Basic credentials)
/// does not hide an `x-api-key`.
fn presented(request: &Request) -> Option<&[u8]> {
    let headers = request.headers();
    let bearer = headers.get(header::AUTHORIZATION).and_then(|value| {
        let value = value.as_bytes();
        let scheme = b"bearer ";
        (value.len() > scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme))
            .then(|| value[scheme.len()..].trim_ascii())
    });
    bearer.or_else(|| headers.get("x-api-key").map(|v| v.as_bytes().trim_ascii()))
}

/// Compares in time independent of where the key differs, so a client
/// cannot find a key byte by byte from response times.
fn matches(presented: &[u8], key: &Option<String>) -> bool {
    key.as_ref()
        .is_some_and(|k| bool::from(k.as_bytes().ct_eq(presented)))
}

/// The middleware: refuses a request without a valid key for its route.
pub async fn require_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check(&state.api_keys, &request)?;
    Ok(next.run(request).await)
}

fn check(keys: &ApiKeys, request: &Request) -> Result<(), ApiError> {
    if !keys.enabled() {
        return Ok(());
    }
    let needed = access(request.method(), request.uri().path());
    if needed == Access::Open {
        return Ok(());
    }
    let Some(key) = presented(request) else {
        return Err(ApiError::Unauthorized {
            message: "an API key is required: send Authorization: Bearer <key> or x-api-key",
        });
    };
    if matches(key, &keys.admin) {
        return Ok(());
    }
    if matches(key, &keys.read) {
        return match needed {
            Access::Read | Access::Open => Ok(()),
            Access::Write => Err(ApiError::Forbidden {
                message: "the read-only API key cannot change data; use the admin key",
            }),
        };
    }
    Err(ApiError::Unauthorized {
        message: "the API key is not valid",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified_by_method_and_path() {
        let p = |m: Method, path: &str| access(&m, path);
        assert_eq!(p(Method::GET, "/healthz"), Access::Open);
        assert_eq!(p(Method::GET, "/readyz"), Access::Open);
        assert_eq!(p(Method::GET, "/v1/catalogs"), Access::Read);
        assert_eq!(p(Method::POST, "/v1/catalogs/c/search"), Access::Read);
        assert_eq!(
            p(Method::POST, "/v1/catalogs/c/recommend/similar"),
            Access::Read
        );
        assert_eq!(p(Method::POST, "/v1/catalogs/c/items"), Access::Write);
        assert_eq!(p(Method::POST, "/v1/catalogs/c/events"), Access::Write);
        assert_eq!(p(Method::PUT, "/v1/catalogs/c/settings"), Access::Write);
        // Training takes a core for seconds to minutes: the admin key.
        assert_eq!(p(Method::POST, "/v1/catalogs/c/model/train"), Access::Write);
        assert_eq!(p(Method::GET, "/v1/catalogs/c/model"), Access::Read);
        assert_eq!(
            p(Method::POST, "/v1/catalogs/c/engagement-model/train"),
            Access::Write
        );
        assert_eq!(
            p(Method::GET, "/v1/catalogs/c/engagement-model"),
            Access::Read
        );
        assert_eq!(p(Method::DELETE, "/v1/catalogs/c"), Access::Write);
        // An item whose id ends in "/search" is still a write.
        assert_eq!(
            p(Method::DELETE, "/v1/catalogs/c/items/search"),
            Access::Write
        );
        assert_eq!(
            p(Method::POST, "/v1/catalogs/c/items/delete"),
            Access::Write
        );
    }
}
