//! `POST /api/v1/hits`: authenticate, read the body within its limits,
//! parse it, check every hit belongs to the key's sensor, and store the
//! batch in one transaction. 200 is sent only after the commit.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use khien_store::MAX_BATCH_ID_LEN;
use serde::Serialize;

use crate::auth::{SCOPE_HITS_WRITE, authenticate};
use crate::error::{ApiError, Problem};
use crate::metrics::add;
use crate::server::AppState;
use crate::wire::{self, Batch, BodyError, BodyErrorKind};

/// The success response.
#[derive(Debug, Serialize)]
pub(crate) struct Accepted {
    batch_id: String,
    /// Hits in the batch (as first recorded, for a duplicate).
    stored: u64,
    /// The batch id was recorded before; nothing was applied this time.
    duplicate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Json,
}

/// How long a refused request's unread body is drained before answering.
const DRAIN_TIME: Duration = Duration::from_secs(1);

pub(crate) async fn post_hits(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    mut body: Body,
) -> Response {
    let header_id = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string));
    let result = ingest(&state, &headers, &mut body).await;
    match &result {
        Ok(a) if a.duplicate => add(&state.metrics.batches_duplicate, 1),
        Ok(_) => add(&state.metrics.batches_stored, 1),
        Err(_) => add(&state.metrics.batches_rejected, 1),
    }
    match result {
        Ok(accepted) => Json(accepted).into_response(),
        Err(e) => {
            // A client sends its whole body before it reads the answer:
            // closing on unread data would reset the connection and lose
            // the answer, so read (and drop) up to twice the limit first,
            // then close.
            drain(&mut body, state.config.max_body_bytes.saturating_mul(2)).await;
            let mut res = e
                .with_batch_id(header_id.and_then(Result::ok).as_deref())
                .into_response();
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            res
        }
    }
}

/// Reads and discards what is left of `body`, for at most `limit` bytes
/// and [`DRAIN_TIME`].
async fn drain(body: &mut Body, limit: usize) {
    let discard = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) =
            std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
        {
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > limit {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}

async fn ingest(
    state: &AppState,
    headers: &HeaderMap,
    body: &mut Body,
) -> Result<Accepted, ApiError> {
    // Authenticate before reading a byte of the body.
    let key = authenticate(&state.store, headers, &[SCOPE_HITS_WRITE]).await?;
    let format = content_type(headers)?;
    let gzip = content_encoding(headers)?;
    let header_id = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::new(
                        Problem::InvalidBatchId,
                        "Idempotency-Key must be printable ASCII",
                    )
                })?
                .to_string(),
        ),
    };
    let max = state.config.max_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(too_large(max));
    }
    let timeout = Duration::from_secs(state.config.body_timeout_seconds);
    let raw = tokio::time::timeout(timeout, read_limited(body, max))
        .await
        .map_err(|_| {
            ApiError::new(
                Problem::BodyTimeout,
                format!("the body did not arrive within {} s", timeout.as_secs()),
            )
        })??;
    // Decompression and parsing are CPU work: off the async workers.
    let batch = tokio::task::spawn_blocking(move || -> Result<Batch, BodyError> {
        let data = if gzip {
            wire::gunzip_bounded(&raw, max)?
        } else {
            raw
        };
        match format {
            Format::Ndjson => wire::parse_ndjson(&data),
            Format::Json => wire::parse_json(&data),
        }
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(body_error)?;
    let batch_id = match (header_id, &batch.batch_id, format) {
        (Some(h), Some(b), _) if h != *b => {
            return Err(ApiError::new(
                Problem::InvalidBatchId,
                format!("Idempotency-Key {h:?} and the body's batch_id {b:?} differ"),
            ));
        }
        (Some(h), _, _) => h,
        (None, Some(b), Format::Json) => b.clone(),
        (None, _, Format::Ndjson) => {
            return Err(ApiError::new(
                Problem::MissingBatchId,
                "an NDJSON batch needs its id in the Idempotency-Key header",
            ));
        }
        (None, None, Format::Json) => {
            return Err(ApiError::new(
                Problem::MissingBatchId,
                "a JSON batch needs `batch_id` in the body or an Idempotency-Key header",
            ));
        }
    };
    check_batch_id(&batch_id)?;
    if let Some(i) = batch.hits.iter().position(|h| h.sensor != key.name) {
        let (line, index) = batch.locate(i);
        return Err(ApiError {
            line,
            index,
            field: Some("sensor".into()),
            batch_id: Some(batch_id),
            ..ApiError::new(
                Problem::SensorMismatch,
                format!(
                    "{}: the hit names sensor {:?} but the API key belongs to {:?}",
                    where_(line, index),
                    batch.hits[i].sensor,
                    key.name
                ),
            )
        });
    }
    let count = batch.hits.len() as u64;
    let (sensor, id) = (key.name.clone(), batch_id.clone());
    let hits = batch.hits;
    let outcome = state
        .store
        .run(move |s| s.record_hits(&sensor, &id, &hits))
        .await
        .map_err(|e| e.with_batch_id(Some(&batch_id)))?;
    if !outcome.duplicate {
        add(&state.metrics.hits_received, count);
    }
    tracing::info!(
        event = if outcome.duplicate { "hub_batch_duplicate" } else { "hub_batch_stored" },
        sensor = %key.name,
        batch_id = %batch_id,
        hits = outcome.stored,
    );
    Ok(Accepted {
        batch_id,
        stored: outcome.stored,
        duplicate: outcome.duplicate,
    })
}

fn where_(line: Option<u64>, index: Option<usize>) -> String {
    match (line, index) {
        (Some(l), _) => format!("line {l}"),
        (None, Some(i)) => format!("hits[{i}]"),
        (None, None) => "the body".into(),
    }
}

fn check_batch_id(id: &str) -> Result<(), ApiError> {
    let reason = if id.is_empty() {
        "it is empty".to_string()
    } else if id.len() > MAX_BATCH_ID_LEN {
        format!("it is longer than {MAX_BATCH_ID_LEN} characters")
    } else if id.chars().any(char::is_control) {
        "it contains control characters".to_string()
    } else {
        return Ok(());
    };
    Err(ApiError {
        batch_id: None,
        ..ApiError::new(Problem::InvalidBatchId, format!("batch id: {reason}"))
    })
}

fn content_type(headers: &HeaderMap) -> Result<Format, ApiError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = raw.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-ndjson")
        || essence.eq_ignore_ascii_case("application/ndjson")
    {
        Ok(Format::Ndjson)
    } else if essence.eq_ignore_ascii_case("application/json") {
        Ok(Format::Json)
    } else {
        Err(ApiError::new(
            Problem::UnsupportedMediaType,
            format!(
                "Content-Type {raw:?}: send application/x-ndjson (one hit per line) or application/json"
            ),
        ))
    }
}

/// Whether the body is gzip-compressed.
fn content_encoding(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") | Some("") => Ok(false),
        Some("gzip") | Some("x-gzip") => Ok(true),
        Some(other) => Err(ApiError::new(
            Problem::UnsupportedMediaType,
            format!("Content-Encoding {other:?}: only gzip is accepted"),
        )),
    }
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        Problem::BodyTooLarge,
        format!("the body exceeds {max} bytes"),
    )
}

fn body_error(e: BodyError) -> ApiError {
    let problem = match e.kind {
        BodyErrorKind::TooLarge => Problem::BodyTooLarge,
        _ => Problem::InvalidBody,
    };
    ApiError {
        line: e.line,
        index: e.index,
        field: e.field,
        ..ApiError::new(problem, e.message)
    }
}

/// Reads the body, refusing one byte past `max` (whatever Content-Length
/// claimed, for chunked bodies).
async fn read_limited(body: &mut Body, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut out: Vec<u8> = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
        let frame = frame
            .map_err(|e| ApiError::new(Problem::InvalidBody, format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(too_large(max));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}
