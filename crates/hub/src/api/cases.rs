//! Infection cases of one's organisation: list, detail with timeline,
//! and the staff's moves — state changes, assignment, comments.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use khien_model::CaseState;
use khien_store::{Case, CaseEvent, CaseFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::orgs::audit;
use crate::api::{JsonBody, PageParams, Paged, PathParam, QueryParams};
use crate::auth::{Auth, Permission};
use crate::error::ApiError;
use crate::server::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CaseView {
    pub id: i64,
    /// The subscriber's pseudonym.
    pub subscriber: String,
    pub family: String,
    #[schema(value_type = String, example = "open")]
    pub state: CaseState,
    /// The first hit.
    pub opened_at: DateTime<Utc>,
    /// Start of the current episode (the first hit, or the reinfection).
    pub active_since: DateTime<Utc>,
    pub first_hit_at: DateTime<Utc>,
    pub last_hit_at: DateTime<Utc>,
    pub hit_count: u64,
    pub state_changed_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub reinfections: u64,
    pub assignee_id: Option<i64>,
    pub updated_at: DateTime<Utc>,
}

impl From<Case> for CaseView {
    fn from(c: Case) -> Self {
        Self {
            id: c.id,
            subscriber: c.subscriber,
            family: c.family,
            state: c.state,
            opened_at: c.opened_at,
            active_since: c.active_since,
            first_hit_at: c.first_hit_at,
            last_hit_at: c.last_hit_at,
            hit_count: c.hit_count,
            state_changed_at: c.state_changed_at,
            resolved_at: c.resolved_at,
            reinfections: c.reinfections,
            assignee_id: c.assignee_id,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// opened, state, comment, assigned, notification.
    pub kind: String,
    #[schema(value_type = Option<String>)]
    pub from_state: Option<CaseState>,
    #[schema(value_type = Option<String>)]
    pub to_state: Option<CaseState>,
    /// `user:ID` or `system`.
    pub actor: String,
    pub text: Option<String>,
}

impl From<CaseEvent> for TimelineEntry {
    fn from(e: CaseEvent) -> Self {
        Self {
            at: e.at,
            kind: e.kind,
            from_state: e.from_state,
            to_state: e.to_state,
            actor: e.actor,
            text: e.text,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DailyHits {
    /// The day in Asia/Ho_Chi_Minh, `YYYY-MM-DD`.
    pub day: String,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CaseDetail {
    #[serde(flatten)]
    pub case: CaseView,
    pub timeline: Vec<TimelineEntry>,
    pub daily_hits: Vec<DailyHits>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CaseQuery {
    /// One state, or several separated by commas.
    pub state: Option<String>,
    pub family: Option<String>,
    /// A subscriber's pseudonym.
    pub subscriber: Option<String>,
    /// Cases assigned to this user.
    pub assignee: Option<i64>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Transition {
    /// notified, acknowledged or resolved.
    #[schema(value_type = String, example = "notified")]
    pub state: CaseState,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Assignment {
    /// A user of the organisation, or null to unassign.
    pub user_id: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Comment {
    pub text: String,
}

/// `YYYY-MM-DD` of a local day number.
pub(crate) fn day_text(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Cases of one's organisation, by id.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", params(CaseQuery),
    responses((status = 200, body = Paged<CaseView>), (status = 400, body = crate::error::ProblemSchema)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<CaseQuery>,
) -> Result<Json<Paged<CaseView>>, ApiError> {
    p.require(Permission::Read)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let states = q
        .state
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(|w| {
                    w.parse::<CaseState>().map_err(|e| {
                        ApiError::new(crate::error::Problem::InvalidQuery, e.to_string())
                            .with_field("state")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let org = p.org_id;
    let (family, subscriber, assignee) = (q.family, q.subscriber, q.assignee);
    let cases = state
        .store
        .run(move |s| {
            let subscriber_id = match subscriber {
                Some(pseudonym) => match s.subscriber_by_pseudonym(org, &pseudonym)? {
                    Some(r) => Some(r.id),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            s.cases(
                org,
                &CaseFilter {
                    states,
                    family,
                    subscriber_id,
                    assignee_id: assignee,
                },
                page,
            )
        })
        .await?;
    Ok(Json(Paged::new(
        cases.into_iter().map(CaseView::from).collect(),
        page.limit,
        |c| c.id,
    )))
}

/// One case with its timeline and daily hit counts.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases",
    params(("id" = i64, Path, description = "Case id")),
    responses((status = 200, body = CaseDetail), (status = 404, body = crate::error::ProblemSchema)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
) -> Result<Json<CaseDetail>, ApiError> {
    p.require(Permission::Read)?;
    let org = p.org_id;
    detail(&state, org, id).await.map(Json)
}

async fn detail(state: &AppState, org: i64, id: i64) -> Result<CaseDetail, ApiError> {
    let (case, events, days) = state
        .store
        .run(move |s| {
            let Some(case) = s.case(org, id)? else {
                return Ok(None);
            };
            Ok(Some((
                case,
                s.case_events(org, id)?,
                s.case_daily_hits(org, id)?,
            )))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    Ok(CaseDetail {
        case: case.into(),
        timeline: events.into_iter().map(TimelineEntry::from).collect(),
        daily_hits: days
            .into_iter()
            .map(|(d, count)| DailyHits {
                day: day_text(d),
                count,
            })
            .collect(),
    })
}

/// Move a case: open/reinfected → notified → acknowledged → resolved.
#[utoipa::path(post, path = "/api/v1/cases/{id}/transition", tag = "cases", request_body = Transition,
    params(("id" = i64, Path, description = "Case id")),
    responses((status = 200, body = CaseDetail), (status = 404, body = crate::error::ProblemSchema),
        (status = 409, description = "The case's state does not allow this move", body = crate::error::ProblemSchema)))]
pub(crate) async fn transition(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
    JsonBody(req): JsonBody<Transition>,
) -> Result<Json<CaseDetail>, ApiError> {
    p.require(Permission::WorkCases)?;
    let (org, actor) = (p.org_id, p.actor());
    let to = req.state;
    state
        .store
        .run(move |s| s.transition_case(org, id, to, &actor, req.note.as_deref()))
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    audit(
        &state,
        &p,
        Some(org),
        "case.transition",
        Some(format!("case:{id}")),
        Some(serde_json::json!({"state": to})),
    )
    .await?;
    detail(&state, org, id).await.map(Json)
}

/// Assign a case to a user of the organisation (or unassign it).
#[utoipa::path(post, path = "/api/v1/cases/{id}/assignee", tag = "cases", request_body = Assignment,
    params(("id" = i64, Path, description = "Case id")),
    responses((status = 200, body = CaseView), (status = 404, body = crate::error::ProblemSchema)))]
pub(crate) async fn assign(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
    JsonBody(req): JsonBody<Assignment>,
) -> Result<Json<CaseView>, ApiError> {
    p.require(Permission::WorkCases)?;
    let (org, actor) = (p.org_id, p.actor());
    let case = state
        .store
        .run(move |s| s.assign_case(org, id, req.user_id, &actor))
        .await?
        .ok_or_else(|| ApiError::not_found("case or user"))?;
    Ok(Json(case.into()))
}

/// Comment on a case.
#[utoipa::path(post, path = "/api/v1/cases/{id}/comments", tag = "cases", request_body = Comment,
    params(("id" = i64, Path, description = "Case id")),
    responses((status = 201, description = "Added"), (status = 404, body = crate::error::ProblemSchema),
        (status = 422, body = crate::error::ProblemSchema)))]
pub(crate) async fn comment(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
    JsonBody(req): JsonBody<Comment>,
) -> Result<StatusCode, ApiError> {
    p.require(Permission::WorkCases)?;
    let (org, actor) = (p.org_id, p.actor());
    let found = state
        .store
        .run(move |s| s.comment_case(org, id, &actor, &req.text))
        .await?;
    if found {
        Ok(StatusCode::CREATED)
    } else {
        Err(ApiError::not_found("case"))
    }
}
