//! `POST /api/v1/hits`: authenticate, read the body within its limits,
//! parse it, check every hit belongs to the key's sensor, set aside hits
//! stamped in the future (a sensor with a wrong clock), attribute each
//! hit to a subscriber with the organisation's interval index, and store
//! the batch with its case changes in one transaction. 200 is sent only
//! after the commit.
//!
//! A hit from the future (beyond `hits.max_clock_skew`) is not stored and
//! is listed in the answer's `rejected` with its position and field; the
//! rest of the batch is. Refusing the whole batch would leave the sensor
//! retrying it forever; storing it would open cases "in the future" that
//! the resolution job could never resolve.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use khien_store::{HitBatch, MAX_BATCH_ID_LEN};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Permission, Who, authenticate};
use crate::error::{ApiError, Problem};
use crate::metrics::add;
use crate::server::AppState;
use crate::wire::{self, Batch, BodyError, BodyErrorKind};

/// A hit of an accepted batch that was not stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RejectedHit {
    /// NDJSON: the 1-based line.
    pub line: Option<u64>,
    /// JSON: the 0-based position in `hits`.
    pub index: Option<usize>,
    pub field: String,
    pub reason: String,
}

/// The success response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Accepted {
    batch_id: String,
    /// Hits stored from the batch (as first recorded, for a duplicate).
    stored: u64,
    /// The batch id was recorded before; nothing was applied this time.
    duplicate: bool,
    /// Hits attributed to a subscriber; the case job applies them to cases
    /// within `cases.apply_interval`.
    attributed: u64,
    /// Hits not stored (stamped in the future).
    rejected: Vec<RejectedHit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Json,
}

/// How long a refused request's unread body is drained before answering.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Submit a batch of hits (sensors). NDJSON (`application/x-ndjson`, the
/// batch id in `Idempotency-Key`) or JSON `{"batch_id", "hits"}`; gzip
/// accepted. A batch id seen before is a no-op answered `duplicate`.
#[utoipa::path(post, path = "/api/v1/hits", tag = "sensors",
    params(("Idempotency-Key" = Option<String>, Header, description = "The batch id (required for NDJSON)")),
    request_body(content = String, content_type = "application/x-ndjson",
        description = "One hit per line, as the sensor's NDJSON output"),
    responses(
        (status = 200, description = "Stored (or a duplicate)", body = Accepted),
        (status = 400, body = crate::error::ProblemSchema), (status = 401, body = crate::error::ProblemSchema),
        (status = 413, body = crate::error::ProblemSchema), (status = 415, body = crate::error::ProblemSchema),
        (status = 422, body = crate::error::ProblemSchema)))]
pub(crate) async fn post_hits(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, mut body) = req.into_parts();
    let headers = &parts.headers;
    let header_id = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string));
    let result = ingest(&state, &parts, &mut body).await;
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

async fn ingest(state: &AppState, parts: &Parts, body: &mut Body) -> Result<Accepted, ApiError> {
    let headers = &parts.headers;
    // Authenticate before reading a byte of the body.
    let principal = authenticate(state, parts).await?;
    principal.require(Permission::SubmitHits)?;
    let Who::Key { name: key_name, .. } = &principal.who else {
        return Err(ApiError::forbidden("hits come from sensors' API keys"));
    };
    let key_name = key_name.clone();
    let org = principal.org_id;
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
    let raw = tokio::time::timeout(timeout, crate::api::read_limited(body, max))
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
    if let Some(i) = batch.hits.iter().position(|h| h.sensor != key_name) {
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
                    key_name
                ),
            )
        });
    }
    let skew = chrono::Duration::seconds(
        i64::try_from(state.config.hits.max_clock_skew.as_secs()).unwrap_or(i64::MAX / 2),
    );
    let limit = Utc::now() + skew;
    let mut rejected = Vec::new();
    let mut hits = Vec::with_capacity(batch.hits.len());
    for (i, h) in batch.hits.iter().enumerate() {
        let late = [
            ("bucket", h.bucket),
            ("first_seen", h.first_seen),
            ("last_seen", h.last_seen),
        ]
        .into_iter()
        .find(|(_, t)| *t > limit);
        match late {
            Some((field, t)) => {
                let (line, index) = batch.locate(i);
                rejected.push(RejectedHit {
                    line,
                    index,
                    field: field.into(),
                    reason: format!(
                        "{field} {} is in the future (more than {} s ahead of the hub's clock)",
                        t.to_rfc3339(),
                        skew.num_seconds()
                    ),
                });
            }
            None => hits.push(h.clone()),
        }
    }
    if !rejected.is_empty() {
        add(&state.metrics.hits_rejected_future, rejected.len() as u64);
        tracing::info!(
            event = "hub_hits_rejected",
            reason = "future",
            sensor = %key_name,
            count = rejected.len(),
            first = %rejected[0].reason,
        );
    }
    let count = hits.len() as u64;
    let subscribers: Vec<Option<i64>> = match state.attribution.get(org) {
        Some(index) => hits
            .iter()
            .map(|h| index.lookup(h.client, h.client_port, h.first_seen.timestamp()))
            .collect(),
        None => Vec::new(),
    };
    let (sensor, id) = (key_name.clone(), batch_id.clone());
    let outcome = state
        .store
        .run(move |s| {
            s.record_hits(&HitBatch {
                org_id: org,
                sensor: &sensor,
                batch_id: &id,
                hits: &hits,
                subscribers: &subscribers,
            })
        })
        .await
        .map_err(|e| e.with_batch_id(Some(&batch_id)))?;
    if !outcome.duplicate {
        add(&state.metrics.hits_received, count);
        add(&state.metrics.hits_attributed, outcome.attributed);
        add(
            &state.metrics.hits_unattributed,
            count - outcome.attributed.min(count),
        );
        state.case_work.notify_one();
    }
    tracing::info!(
        event = if outcome.duplicate { "hub_batch_duplicate" } else { "hub_batch_stored" },
        sensor = %key_name,
        org,
        batch_id = %batch_id,
        hits = outcome.stored,
        attributed = outcome.attributed,
    );
    Ok(Accepted {
        batch_id,
        stored: outcome.stored,
        duplicate: outcome.duplicate,
        attributed: outcome.attributed,
        rejected,
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
pub(crate) fn content_encoding(headers: &HeaderMap) -> Result<bool, ApiError> {
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

pub(crate) fn too_large(max: usize) -> ApiError {
    ApiError::new(
        Problem::BodyTooLarge,
        format!("the body exceeds {max} bytes"),
    )
}

pub(crate) fn body_error(e: BodyError) -> ApiError {
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
