//! The audit log, for admins: their organisation's entries, or every
//! organisation's for the national CERT. Newest first.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use khien_store::{AuditEvent, AuditFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{PageParams, Paged, QueryParams};
use crate::auth::{Auth, Permission};
use crate::error::ApiError;
use crate::server::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub org_id: Option<i64>,
    /// `user:ID`, `key:ID`, `cli` or `system`.
    pub actor: String,
    pub actor_org_id: Option<i64>,
    /// `noun.verb`, e.g. `subscriber.read`.
    pub action: String,
    pub target: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub client: Option<String>,
}

impl From<AuditEvent> for AuditView {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            at: e.at,
            org_id: e.org_id,
            actor: e.actor,
            actor_org_id: e.actor_org_id,
            action: e.action,
            target: e.target,
            detail: e.detail,
            client: e.client,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Another organisation (national CERT admins; omit for all).
    pub org_id: Option<i64>,
    /// Actions starting with this, e.g. `subscriber.`.
    pub action: Option<String>,
    /// One actor, e.g. `user:3`.
    pub actor: Option<String>,
    /// Entries at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Audit entries, newest first (admins).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Paged<AuditView>), (status = 403, body = crate::error::ProblemSchema)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<Paged<AuditView>>, ApiError> {
    p.require(Permission::Admin)?;
    let org_id = p.org_scope(q.org_id, false)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let filter = AuditFilter {
        org_id,
        action_prefix: q.action,
        actor: q.actor,
        since: q.since,
    };
    let events = state
        .store
        .run(move |s| s.audit_events(&filter, page))
        .await?;
    Ok(Json(Paged::new(
        events.into_iter().map(AuditView::from).collect(),
        page.limit,
        |e| e.id,
    )))
}
