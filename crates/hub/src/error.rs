//! Errors: [`Error`] for starting and running the hub, [`ApiError`] for
//! answering one request.
//!
//! # Policy: how a failure becomes a response
//!
//! - Every error response is RFC 9457 `application/problem+json`:
//!   `type` (a stable identifier, `urn:khien:problem:<slug>`, not a link),
//!   `title` (fixed per type), `status`, `detail` (this occurrence, in
//!   English, safe to show), and extension members when they apply:
//!   `line` (1-based NDJSON line, or JSON line for a syntax error), `index`
//!   (0-based position in a JSON body's `hits`), `field` (the field or
//!   query parameter at fault, as a JSON path such as `hits[3].client`),
//!   `batch_id`.
//! - Bad requests are 400 (unreadable body or query), 415 (content type),
//!   413 (size), 422 (well-formed but refused: a value out of range, an
//!   unknown e-mail address format), 409 (clashes with stored state: a
//!   taken name, a case move its state forbids), 404 (absent, or another
//!   tenant's — the two are indistinguishable on purpose), 403 (known
//!   caller without the permission, or a missing CSRF token), 401 (no
//!   valid credentials), 429 (rate limits and locked accounts, with
//!   `Retry-After`).
//! - Client mistakes (4xx) name exactly what to fix — the header, the
//!   line, the field — and are logged at `info` as `hub_request_rejected`.
//! - Server failures (5xx) reveal nothing internal: the detail is generic
//!   and the cause goes to the log at `error` (`hub_request_failed`).
//! - A batch is applied whole or not at all: any error response to
//!   `POST /api/v1/hits` means nothing of that batch was stored, so the
//!   client may resend it with the same batch id.
//! - 401 carries `WWW-Authenticate: Bearer`; 503 carries `Retry-After`.

use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What can stop the hub from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is unreadable or invalid.
    #[error("configuration{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Config {
        path: Option<PathBuf>,
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] khien_store::Error),
    /// The HTTP server failed while running.
    #[error("server: {0}")]
    Serve(std::io::Error),
    /// A blocking task (store access, snapshot build) panicked or was
    /// cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// Building the snapshot failed.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A cryptographic operation failed (no randomness, a bad key).
    #[error("cryptography: {0}")]
    Crypto(String),
}

/// The kinds of problem the API reports; each has one status and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    Unauthorized,
    Forbidden,
    CsrfRequired,
    InvalidQuery,
    Validation,
    Conflict,
    RateLimited,
    AccountLocked,
    MissingBatchId,
    InvalidBatchId,
    InvalidBody,
    BodyTooLarge,
    BodyTimeout,
    UnsupportedMediaType,
    SensorMismatch,
    NotFound,
    MethodNotAllowed,
    SnapshotUnavailable,
    Unavailable,
    Internal,
}

impl Problem {
    fn describe(self) -> (StatusCode, &'static str, &'static str) {
        use Problem::*;
        match self {
            Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing, unknown or revoked API key",
            ),
            Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "The caller lacks the permission this needs",
            ),
            CsrfRequired => (
                StatusCode::FORBIDDEN,
                "csrf-token-required",
                "A session request that changes something needs its CSRF token",
            ),
            InvalidQuery => (
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "A query parameter cannot be read",
            ),
            Validation => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "A value is not acceptable",
            ),
            Conflict => (
                StatusCode::CONFLICT,
                "conflict",
                "The request clashes with the stored state",
            ),
            RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests from this client",
            ),
            AccountLocked => (
                StatusCode::TOO_MANY_REQUESTS,
                "account-locked",
                "Too many failed logins; the account is locked for a while",
            ),
            MissingBatchId => (
                StatusCode::BAD_REQUEST,
                "missing-batch-id",
                "The batch has no id",
            ),
            InvalidBatchId => (
                StatusCode::BAD_REQUEST,
                "invalid-batch-id",
                "The batch id is not acceptable",
            ),
            InvalidBody => (
                StatusCode::BAD_REQUEST,
                "invalid-body",
                "The request body cannot be read",
            ),
            BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "The request body is too large",
            ),
            BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                "The request body did not arrive in time",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported content type or encoding",
            ),
            SensorMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "sensor-mismatch",
                "A hit names another sensor than the API key's",
            ),
            NotFound => (StatusCode::NOT_FOUND, "not-found", "No such resource"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed on this resource",
            ),
            SnapshotUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "snapshot-unavailable",
                "No snapshot has been built yet",
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The hub cannot reach its database",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

/// One failed request, as the client will see it.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub problem: Problem,
    pub detail: String,
    pub line: Option<u64>,
    pub index: Option<usize>,
    pub field: Option<String>,
    pub batch_id: Option<String>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ProblemDocument<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<&'a str>,
}

impl ApiError {
    pub fn new(problem: Problem, detail: impl Into<String>) -> Self {
        Self {
            problem,
            detail: detail.into(),
            line: None,
            index: None,
            field: None,
            batch_id: None,
            retry_after: None,
        }
    }

    /// A refused value: 422 naming the field.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(Problem::Validation, detail)
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(Problem::NotFound, format!("no such {what}"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(Problem::Forbidden, detail)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A server-side failure: the cause is logged, the client is told
    /// nothing about it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(event = "hub_request_failed", error = %cause);
        Self::new(Problem::Internal, "the request could not be completed")
    }

    pub fn with_batch_id(mut self, batch_id: Option<&str>) -> Self {
        if self.batch_id.is_none() {
            self.batch_id = batch_id.map(str::to_string);
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.problem.describe().0
    }
}

impl From<khien_store::Error> for ApiError {
    fn from(e: khien_store::Error) -> Self {
        match e {
            khien_store::Error::SensorMismatch {
                index,
                expected,
                found,
            } => ApiError {
                index: Some(index),
                field: Some("sensor".into()),
                ..ApiError::new(
                    Problem::SensorMismatch,
                    format!("hit names sensor {found:?}, the API key belongs to {expected:?}"),
                )
            },
            khien_store::Error::Invalid {
                what: "batch id",
                reason,
            } => ApiError::new(Problem::InvalidBatchId, format!("batch id: {reason}")),
            khien_store::Error::Invalid { what, reason } => {
                ApiError::invalid(field_of(what), format!("{what}: {reason}"))
            }
            khien_store::Error::Conflict { what, reason } => {
                ApiError::new(Problem::Conflict, format!("{what}: {reason}"))
            }
            other => ApiError::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.problem.describe();
        if status.is_client_error() {
            tracing::info!(
                event = "hub_request_rejected",
                status = status.as_u16(),
                problem = slug,
                detail = %self.detail,
                line = self.line,
                field = self.field.as_deref(),
            );
        }
        let doc = ProblemDocument {
            kind: format!("urn:khien:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: &self.detail,
            line: self.line,
            index: self.index,
            field: self.field.as_deref(),
            batch_id: self.batch_id.as_deref(),
        };
        let body = serde_json::to_vec(&doc).unwrap_or_else(|_| b"{}".to_vec());
        let retry_after = self.retry_after;
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self.problem {
            Problem::Unauthorized => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"khien\""),
                );
            }
            Problem::SnapshotUnavailable | Problem::Unavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        if let Some(secs) = retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// The request field a store validation error is about.
fn field_of(what: &str) -> &'static str {
    match what {
        "e-mail" => "email",
        "display name" => "display_name",
        "language" => "language",
        "organisation slug" => "slug",
        "organisation name" => "name",
        "organisation" => "org_id",
        "API key name" => "name",
        "API key scope" | "API key scopes" => "scopes",
        "comment" => "text",
        "subscriber id" => "external_id",
        "subscriber identity" => "identities",
        _ => "body",
    }
}

/// An RFC 9457 problem document, as every error response carries it
/// (`application/problem+json`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ProblemSchema {
    /// A stable identifier, `urn:khien:problem:<slug>`.
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    /// This occurrence, in English.
    detail: String,
    /// The 1-based line of the body at fault.
    line: Option<u64>,
    /// The 0-based position in a JSON body's array at fault.
    index: Option<usize>,
    /// The field or query parameter at fault, as a JSON path.
    field: Option<String>,
    batch_id: Option<String>,
}
