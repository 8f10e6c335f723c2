//! Case statistics per organisation and family, as JSON or CSV: open now,
//! new, resolved and reinfected in a period (and per day), and the median
//! time to remediation. Days are Asia/Ho_Chi_Minh days.
//!
//! An organisation sees its own numbers; the national CERT sees every
//! organisation's (counts only — nothing about subscribers).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use khien_store::{CaseDay, CaseStats, local_day};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::QueryParams;
use crate::api::cases::day_text;
use crate::auth::{Auth, Permission};
use crate::error::{ApiError, Problem};
use crate::server::AppState;

/// The longest period one request covers.
const MAX_DAYS: i64 = 3660;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// First day, `YYYY-MM-DD` (default: 30 days before `to`).
    pub from: Option<String>,
    /// Last day, inclusive (default: today).
    pub to: Option<String>,
    /// One organisation (the national CERT may ask for any, or omit it
    /// for all).
    pub org_id: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// For CSV: `totals` (default) or `daily`.
    pub series: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FamilyTotals {
    pub org_id: i64,
    pub family: String,
    /// Cases not resolved now.
    pub open: u64,
    pub new: u64,
    pub resolved: u64,
    pub reinfected: u64,
    /// Median time to remediation of the period's resolutions, seconds.
    pub median_remediation_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FamilyDay {
    pub day: String,
    pub org_id: i64,
    pub family: String,
    pub new: u64,
    pub resolved: u64,
    pub reinfected: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CaseStatsResponse {
    pub from: String,
    pub to: String,
    pub totals: Vec<FamilyTotals>,
    pub days: Vec<FamilyDay>,
}

fn totals(t: CaseStats) -> FamilyTotals {
    FamilyTotals {
        org_id: t.org_id,
        family: t.family,
        open: t.open,
        new: t.new,
        resolved: t.resolved,
        reinfected: t.reinfected,
        median_remediation_seconds: t.median_remediation_seconds,
    }
}

fn day(d: CaseDay) -> FamilyDay {
    FamilyDay {
        day: day_text(d.day),
        org_id: d.org_id,
        family: d.family,
        new: d.new,
        resolved: d.resolved,
        reinfected: d.reinfected,
    }
}

fn parse_day(field: &str, v: &str) -> Result<i64, ApiError> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(|d| {
            d.and_hms_opt(0, 0, 0)
                .map_or(0, |t| t.and_utc().timestamp())
                / 86_400
        })
        .map_err(|_| {
            ApiError::new(
                Problem::InvalidQuery,
                format!("{field}: {v:?} is not YYYY-MM-DD"),
            )
            .with_field(field)
        })
}

/// Case statistics for a period.
#[utoipa::path(get, path = "/api/v1/stats/cases", tag = "statistics", params(StatsQuery),
    responses(
        (status = 200, body = CaseStatsResponse, content_type = "application/json"),
        (status = 200, description = "With format=csv", body = String, content_type = "text/csv"),
        (status = 400, body = crate::error::ProblemSchema), (status = 403, body = crate::error::ProblemSchema)))]
pub(crate) async fn cases(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<StatsQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::Read)?;
    let org = p.org_scope(q.org_id, true)?;
    let to = match &q.to {
        Some(v) => parse_day("to", v)?,
        None => local_day(chrono::Utc::now().timestamp()),
    };
    let from = match &q.from {
        Some(v) => parse_day("from", v)?,
        None => to - 29,
    };
    if from > to || to - from > MAX_DAYS {
        return Err(ApiError::new(
            Problem::InvalidQuery,
            format!("from must not be after to, and the period at most {MAX_DAYS} days"),
        )
        .with_field("from"));
    }
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::new(
                Problem::InvalidQuery,
                format!("format {other:?}: use json or csv"),
            )
            .with_field("format"));
        }
    };
    let stats = state
        .store
        .run(move |s| s.case_stats(org, from, to + 1))
        .await?;
    let body = CaseStatsResponse {
        from: day_text(from),
        to: day_text(to),
        totals: stats.totals.into_iter().map(totals).collect(),
        days: stats.days.into_iter().map(day).collect(),
    };
    if !csv {
        return Ok(Json(body).into_response());
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let write = match q.series.as_deref() {
        None | Some("totals") => (|| -> Result<(), csv::Error> {
            w.write_record([
                "org_id",
                "family",
                "open",
                "new",
                "resolved",
                "reinfected",
                "median_remediation_seconds",
            ])?;
            for t in &body.totals {
                w.write_record([
                    t.org_id.to_string(),
                    t.family.clone(),
                    t.open.to_string(),
                    t.new.to_string(),
                    t.resolved.to_string(),
                    t.reinfected.to_string(),
                    t.median_remediation_seconds
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                ])?;
            }
            Ok(())
        })(),
        Some("daily") => (|| -> Result<(), csv::Error> {
            w.write_record(["day", "org_id", "family", "new", "resolved", "reinfected"])?;
            for d in &body.days {
                w.write_record([
                    d.day.clone(),
                    d.org_id.to_string(),
                    d.family.clone(),
                    d.new.to_string(),
                    d.resolved.to_string(),
                    d.reinfected.to_string(),
                ])?;
            }
            Ok(())
        })(),
        Some(other) => {
            return Err(ApiError::new(
                Problem::InvalidQuery,
                format!("series {other:?}: use totals or daily"),
            )
            .with_field("series"));
        }
    };
    write.map_err(|e| ApiError::internal(&e))?;
    let bytes = w.into_inner().map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )],
        bytes,
    )
        .into_response())
}
