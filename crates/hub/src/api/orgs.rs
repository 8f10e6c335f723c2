//! Organisations (tenants). The national CERT's admins create and list
//! them all; everyone else sees their own.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use khien_model::OrgRole;
use khien_store::{AuditEntry, Organization};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{JsonBody, PageParams, Paged, PathParam, QueryParams};
use crate::auth::{Auth, Permission, Principal};
use crate::error::ApiError;
use crate::server::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct OrgView {
    pub id: i64,
    pub slug: String,
    pub name: String,
    #[schema(value_type = String, example = "operator")]
    pub role: OrgRole,
    pub created_at: DateTime<Utc>,
}

impl From<Organization> for OrgView {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id,
            slug: o.slug,
            name: o.name,
            role: o.role,
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrg {
    /// `a-z`, `0-9` and `-`, unique.
    pub slug: String,
    pub name: String,
    /// national, operator, organization, province or association.
    #[schema(value_type = String, example = "operator")]
    pub role: OrgRole,
}

/// Writes an audit entry for an action of `p`; a failure to audit fails
/// the request, since an unaudited admin action must not pass silently.
pub(crate) async fn audit(
    state: &AppState,
    p: &Principal,
    org_id: Option<i64>,
    action: &str,
    target: Option<String>,
    detail: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        org_id,
        actor: p.actor(),
        actor_org_id: Some(p.org_id),
        action: action.into(),
        target,
        detail,
        client: p.client.map(|c| c.to_string()),
    };
    state.store.run(move |s| s.audit(&entry)).await?;
    Ok(())
}

/// Organisations: all for the national CERT's admins, otherwise one's own.
#[utoipa::path(get, path = "/api/v1/organizations", tag = "organizations",
    params(PageParams),
    responses((status = 200, body = Paged<OrgView>), (status = 401, body = crate::error::ProblemSchema)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<PageParams>,
) -> Result<Json<Paged<OrgView>>, ApiError> {
    p.require(Permission::Read)?;
    let page = q.page()?;
    let limit = page.limit;
    let (all, own) = (p.is_national_admin(), p.org_id);
    let orgs = state
        .store
        .run(move |s| {
            if all {
                s.orgs(page)
            } else {
                Ok(s.org(own)?
                    .into_iter()
                    .filter(|o| o.id > page.after.unwrap_or(0))
                    .collect())
            }
        })
        .await?;
    Ok(Json(Paged::new(
        orgs.into_iter().map(OrgView::from).collect(),
        limit,
        |o| o.id,
    )))
}

/// Create an organisation (national CERT admins).
#[utoipa::path(post, path = "/api/v1/organizations", tag = "organizations",
    request_body = NewOrg,
    responses((status = 201, body = OrgView), (status = 403, body = crate::error::ProblemSchema),
        (status = 409, body = crate::error::ProblemSchema), (status = 422, body = crate::error::ProblemSchema)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<NewOrg>,
) -> Result<(StatusCode, Json<OrgView>), ApiError> {
    if !p.is_national_admin() {
        return Err(ApiError::forbidden(
            "only the national CERT's admins create organisations",
        ));
    }
    let org = state
        .store
        .run(move |s| s.create_org(&req.slug, &req.name, req.role))
        .await?;
    audit(
        &state,
        &p,
        Some(org.id),
        "organization.create",
        Some(format!("organization:{}", org.id)),
        Some(serde_json::json!({"slug": org.slug, "role": org.role})),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(org.into())))
}

/// One organisation: one's own, or any for the national CERT's admins.
#[utoipa::path(get, path = "/api/v1/organizations/{id}", tag = "organizations",
    params(("id" = i64, Path, description = "Organisation id")),
    responses((status = 200, body = OrgView), (status = 404, body = crate::error::ProblemSchema)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
) -> Result<Json<OrgView>, ApiError> {
    p.require(Permission::Read)?;
    if id != p.org_id && !p.is_national_admin() {
        return Err(ApiError::not_found("organisation"));
    }
    state
        .store
        .run(move |s| s.org(id))
        .await?
        .map(|o| Json(o.into()))
        .ok_or_else(|| ApiError::not_found("organisation"))
}
