//! Uploads of who had which address when: FreeRADIUS `detail` files and
//! RADIUS CSV, ISC `dhcpd.leases`, Kea lease CSV, CGNAT port-block logs
//! (see `docs/formats.md`).
//!
//! The body is the file itself (gzip allowed); `?format=` names it, or it
//! is recognised from its first bytes. Bad records are counted and the
//! first ones listed with their line and reason; they never stop the
//! upload, and a file cut mid-record keeps every complete record before
//! the cut. Identities the directory does not know become subscribers
//! without contacts, so their cases open at once.
//!
//! After the rows are stored the organisation's interval index is rebuilt,
//! and hits that nobody was attributed to before — from the earliest time
//! the upload covers — are attributed now and move their cases.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{Datelike, Utc};
use khien_formats::attribution::{
    AddressAction, AddressEvent, AttributionEvent, AttributionFormat, AttributionOptions,
    read_attribution,
};
use khien_store::{AssignmentChange, AssignmentOutcome, AssignmentUpsert, CaseOutcome};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::orgs::audit;
use crate::api::{QueryParams, read_body};
use crate::auth::{Auth, Permission};
use crate::error::{ApiError, Problem};
use crate::metrics::add;
use crate::server::AppState;

/// Rejections listed in the answer (all are counted).
const REJECTIONS_LISTED: usize = 100;
/// Assignments stored per transaction.
const CHUNK: usize = 10_000;
/// Hits re-examined after an upload, at most.
const REATTRIBUTE_MAX: u32 = 1_000_000;
/// How far back an upload re-attributes hits.
const REATTRIBUTE_DAYS: i64 = 90;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// radius-detail, radius-csv, dhcpd-leases, kea-csv, cgnat-csv or
    /// cgnat-juniper; recognised from the content when left out.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Rejection {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttributionOutcome {
    pub format: String,
    /// Records that said who had an address.
    pub events: u64,
    pub skipped: u64,
    pub rejected: u64,
    /// The first rejected records.
    pub rejections: Vec<Rejection>,
    pub assignments_created: u64,
    pub assignments_updated: u64,
    /// Distinct subscribers named.
    pub subscribers: u64,
    /// Hits stored before, attributed now.
    pub hits_attributed: u64,
    pub cases_opened: u64,
    pub cases_reinfected: u64,
}

/// What the parser produced.
struct Parsed {
    events: Vec<AddressEvent>,
    skipped: u64,
    rejected: u64,
    rejections: Vec<Rejection>,
}

fn parse(format: AttributionFormat, bytes: &[u8]) -> Result<Parsed, ApiError> {
    let mut p = Parsed {
        events: Vec::new(),
        skipped: 0,
        rejected: 0,
        rejections: Vec::new(),
    };
    let options = AttributionOptions::new(Utc::now().year());
    let mut sink = |e: AttributionEvent| {
        match e {
            AttributionEvent::Address(a) => p.events.push(a),
            AttributionEvent::Skipped { .. } => p.skipped += 1,
            AttributionEvent::Rejected { line, reason } => {
                p.rejected += 1;
                if p.rejections.len() < REJECTIONS_LISTED {
                    p.rejections.push(Rejection { line, reason });
                }
            }
        }
        Ok(())
    };
    read_attribution(format, Cursor::new(bytes), &options, &mut sink).map_err(|e| {
        ApiError::new(
            Problem::Validation,
            format!("the {} file: {e}", format.as_str()),
        )
        .with_field("body")
    })?;
    Ok(p)
}

/// The row key of an event: the session when the file has one, else what
/// identifies the interval itself.
fn session_key(e: &AddressEvent) -> String {
    // A dual-stack session names two networks: a row each.
    if let Some(s) = &e.session {
        return format!("{s}|{}", e.network);
    }
    let who = e.identity.as_deref().unwrap_or("");
    let start = e.start.unwrap_or(e.at).timestamp();
    match e.action {
        AddressAction::Lease => format!("lease|{}|{start}", e.network),
        AddressAction::Stop if e.start.is_none() => {
            format!("{}|{who}|stop|{}", e.network, e.at.timestamp())
        }
        _ => format!("{}|{who}|{start}", e.network),
    }
}

fn upsert(e: &AddressEvent, source: &str, subscriber_id: Option<i64>) -> AssignmentUpsert {
    let (change, start, end) = match e.action {
        AddressAction::Start | AddressAction::Interim => {
            (AssignmentChange::Open, e.start.unwrap_or(e.at), None)
        }
        AddressAction::Stop => (AssignmentChange::Close, e.start.unwrap_or(e.at), Some(e.at)),
        AddressAction::Lease => (AssignmentChange::Interval, e.start.unwrap_or(e.at), e.end),
    };
    AssignmentUpsert {
        change,
        network: e.network.to_string(),
        ports: e.ports,
        subscriber_id,
        inside: e.inside.map(|i| i.to_string()),
        start_at: start,
        end_at: end,
        source: source.to_string(),
        session_key: session_key(e),
        event_at: e.at,
        calling_station: e.calling_station.clone(),
    }
}

/// Upload an attribution file (body: the file; gzip allowed).
#[utoipa::path(post, path = "/api/v1/attribution", tag = "attribution", params(UploadQuery),
    request_body(content = String, content_type = "text/plain",
        description = "The file: FreeRADIUS detail, RADIUS CSV, dhcpd.leases, Kea lease CSV, CGNAT CSV or Juniper port-block syslog"),
    responses((status = 200, body = AttributionOutcome),
        (status = 422, description = "Unknown format or unreadable file", body = crate::error::ProblemSchema)))]
pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<UploadQuery>,
    headers: HeaderMap,
    mut body: Body,
) -> Result<Json<AttributionOutcome>, ApiError> {
    p.require(Permission::UploadData)?;
    let bytes = read_body(&state, &headers, &mut body).await?;
    let format = match &q.format {
        Some(f) => f
            .parse::<AttributionFormat>()
            .map_err(|e| ApiError::invalid("format", e.to_string()))?,
        None => {
            AttributionFormat::detect(&bytes[..bytes.len().min(64 * 1024)]).ok_or_else(|| {
                ApiError::invalid(
                    "format",
                    "the file's format was not recognised; name it with ?format=",
                )
            })?
        }
    };
    let parsed = tokio::task::spawn_blocking(move || parse(format, &bytes))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    add(
        &state.metrics.attribution_events,
        parsed.events.len() as u64,
    );
    add(&state.metrics.attribution_rejected, parsed.rejected);
    if parsed.rejected > 0 {
        tracing::info!(
            event = "hub_attribution_records_rejected",
            org = p.org_id,
            format = format.as_str(),
            rejected = parsed.rejected,
            first = parsed
                .rejections
                .first()
                .map(|r| format!("line {}: {}", r.line, r.reason)),
        );
    }
    let org = p.org_id;
    let secrets = state.secrets.clone();
    let events = parsed.events;
    let source = format.as_str();
    let identities: BTreeSet<String> = events.iter().filter_map(|e| e.identity.clone()).collect();
    let subscribers = identities.len() as u64;
    let earliest = events.iter().map(|e| e.start.unwrap_or(e.at)).min();
    let stored: AssignmentOutcome = state
        .store
        .run(move |s| {
            let ids: Vec<&str> = identities.iter().map(String::as_str).collect();
            let map = s.ensure_subscribers(org, &ids, &|i| secrets.pseudonym(org, i))?;
            let mut total = AssignmentOutcome::default();
            for chunk in events.chunks(CHUNK) {
                let rows: Vec<AssignmentUpsert> = chunk
                    .iter()
                    .map(|e| {
                        upsert(
                            e,
                            source,
                            e.identity.as_ref().and_then(|i| map.get(i).copied()),
                        )
                    })
                    .collect();
                let o = s.apply_assignments(org, &rows)?;
                total.created += o.created;
                total.updated += o.updated;
            }
            Ok(total)
        })
        .await?;
    crate::server::reload_attribution(&state, org).await?;
    let (hits_attributed, cases) = match earliest {
        Some(t) => reattribute(&state, org, t).await?,
        None => (0, CaseOutcome::default()),
    };
    audit(
        &state,
        &p,
        Some(org),
        "attribution.upload",
        None,
        Some(serde_json::json!({
            "format": source, "created": stored.created, "updated": stored.updated,
            "rejected": parsed.rejected, "hits_attributed": hits_attributed,
        })),
    )
    .await?;
    Ok(Json(AttributionOutcome {
        format: source.to_string(),
        events: stored.created + stored.updated,
        skipped: parsed.skipped,
        rejected: parsed.rejected,
        rejections: parsed.rejections,
        assignments_created: stored.created,
        assignments_updated: stored.updated,
        subscribers,
        hits_attributed,
        cases_opened: cases.opened,
        cases_reinfected: cases.reinfected,
    }))
}

/// Attributes the organisation's unattributed hits from `since` with its
/// current index.
pub(crate) async fn reattribute(
    state: &Arc<AppState>,
    org: i64,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<(u64, CaseOutcome), ApiError> {
    let floor = Utc::now() - chrono::Duration::days(REATTRIBUTE_DAYS);
    let since = khien_model::bucket_start(since.max(floor), 3600);
    let Some(index) = state.attribution.get(org) else {
        return Ok((0, CaseOutcome::default()));
    };
    state
        .store
        .run(move |s| {
            let pending = s.unattributed_hits(org, since, REATTRIBUTE_MAX)?;
            let found: Vec<_> = pending
                .into_iter()
                .filter_map(|h| {
                    index
                        .lookup(h.client, h.client_port, h.first_seen)
                        .map(|sub| (h, sub))
                })
                .collect();
            let mut total = (0, CaseOutcome::default());
            for chunk in found.chunks(CHUNK) {
                let (n, c) = s.attribute_hits(org, chunk)?;
                total.0 += n;
                total.1 += c;
            }
            Ok(total)
        })
        .await
}
