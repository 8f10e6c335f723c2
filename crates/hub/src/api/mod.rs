//! The JSON API under `/api/v1/`, one module per resource, and what they
//! share: body and query extractors that turn every mistake into a
//! problem document naming the field, and cursor pagination.
//!
//! Lists are pages: `?limit=` (1–1000, default 100) and `?cursor=` (the
//! `next_cursor` of the previous page, opaque); the answer is
//! `{"items": [...], "next_cursor": "…" | null}`.

use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, Problem};
use crate::server::AppState;

pub(crate) mod attribution;
pub(crate) mod audit;
pub(crate) mod cases;
pub(crate) mod keys;
pub(crate) mod lookup;
pub(crate) mod notifications;
pub(crate) mod orgs;
pub(crate) mod session;
pub(crate) mod stats;
pub(crate) mod subscribers;
pub(crate) mod users;

/// Default and largest page sizes.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A JSON request body: `application/json`, within the size limit,
/// unknown fields refused (every request type denies them), errors naming
/// the JSON path.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (parts, mut body) = req.into_parts();
        let essence = media_type(&parts.headers);
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                Problem::UnsupportedMediaType,
                format!("Content-Type {essence:?}: send application/json"),
            ));
        }
        let bytes = read_body(state, &parts.headers, &mut body).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON into `T`, naming the path of the first fault.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        let problem = if inner.is_data() {
            Problem::Validation
        } else {
            Problem::InvalidBody
        };
        ApiError {
            line: (!inner.is_data()).then_some(inner.line() as u64),
            field: Some(field),
            ..ApiError::new(problem, format!("the JSON body: {inner}"))
        }
    })
}

/// The media type of a request without parameters (`text/csv`).
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Reads a body within the configured size and time limits, gunzipping
/// it (bounded) when `Content-Encoding: gzip`.
pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: &mut Body,
) -> Result<Vec<u8>, ApiError> {
    let gzip = crate::ingest::content_encoding(headers)?;
    let max = state.config.max_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(crate::ingest::too_large(max));
    }
    let timeout = std::time::Duration::from_secs(state.config.body_timeout_seconds);
    let raw = tokio::time::timeout(timeout, read_limited(body, max))
        .await
        .map_err(|_| {
            ApiError::new(
                Problem::BodyTimeout,
                format!("the body did not arrive within {} s", timeout.as_secs()),
            )
        })??;
    if !gzip {
        return Ok(raw);
    }
    tokio::task::spawn_blocking(move || crate::wire::gunzip_bounded(&raw, max))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(crate::ingest::body_error)
}

/// Reads the body, refusing one byte past `max` (whatever Content-Length
/// claimed, for chunked bodies).
pub(crate) async fn read_limited(body: &mut Body, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut out: Vec<u8> = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
        let frame = frame
            .map_err(|e| ApiError::new(Problem::InvalidBody, format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(crate::ingest::too_large(max));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Query parameters: unknown ones refused, errors naming the parameter.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let path = e.path().to_string();
                ApiError {
                    field: Some(if path == "." { "query".into() } else { path }),
                    ..ApiError::new(
                        Problem::InvalidQuery,
                        format!("the query string: {}", e.into_inner()),
                    )
                }
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// `?limit=&cursor=`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Items per page, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// The store's page, after checking the parameters.
    pub fn page(&self) -> Result<khien_store::Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError {
                field: Some("limit".into()),
                ..ApiError::new(
                    Problem::InvalidQuery,
                    format!("limit must be 1 to {MAX_LIMIT}"),
                )
            });
        }
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(khien_store::Page { after, limit })
    }
}

/// Cursors are `c` and the last id in base 36: opaque to clients, cheap
/// to check.
pub(crate) fn encode_cursor(id: i64) -> String {
    let mut n = id.unsigned_abs();
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.push('c');
    digits.iter().rev().collect()
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    cursor
        .strip_prefix('c')
        .and_then(|d| i64::from_str_radix(d, 36).ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError {
            field: Some("cursor".into()),
            ..ApiError::new(
                Problem::InvalidQuery,
                "cursor: not a cursor this API gave out",
            )
        })
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Paged<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Paged<T> {
    /// A page whose cursor continues after the last item's id when the
    /// page is full (`limit` items), `id` giving an item's id.
    pub fn new(items: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> Self {
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|i| encode_cursor(id(i))))
            .flatten();
        Self { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        for id in [0, 1, 35, 36, 123_456_789, i64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(id)).ok(), Some(id));
        }
        for junk in ["", "c", "x12", "c-5", "c!!"] {
            assert!(decode_cursor(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn json_errors_name_the_path() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: Vec<u8>,
        }
        let e = parse_json::<T>(br#"{"a": [1, "x"]}"#).expect_err("bad");
        assert_eq!(e.field.as_deref(), Some("a[1]"));
        assert_eq!(e.problem, Problem::Validation);
        let e = parse_json::<T>(br#"{"a": [], "b": 1}"#).expect_err("unknown");
        assert!(e.detail.contains("unknown field `b`"), "{}", e.detail);
        let e = parse_json::<T>(b"{\"a\": [").expect_err("syntax");
        assert_eq!(e.problem, Problem::InvalidBody);
        assert_eq!(e.line, Some(1));
    }
}

/// A path parameter; a malformed one is a 404 problem (no such resource),
/// never axum's plain-text rejection.
#[derive(Debug)]
pub(crate) struct PathParam<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| ApiError::new(Problem::NotFound, format!("no such resource: {e}")))
    }
}
