//! API keys of an organisation, managed by its admins. The secret is in
//! the creation answer only; the hub keeps its keyed hash.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use khien_store::{ApiKeyInfo, ApiKeyRef, NewApiKey};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::orgs::audit;
use crate::api::{JsonBody, PageParams, Paged, PathParam, QueryParams};
use crate::auth::{Auth, Permission, SCOPES};
use crate::error::ApiError;
use crate::server::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    pub id: i64,
    pub org_id: i64,
    /// A sensor's key carries the sensor's name: its hits must name it.
    pub name: String,
    /// The secret's first characters.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<i64>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyInfo> for ApiKeyView {
    fn from(k: ApiKeyInfo) -> Self {
        Self {
            id: k.id,
            org_id: k.org_id,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            created_at: k.created_at,
            created_by: k.created_by,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKeyRequest {
    pub name: String,
    /// hits:write, attribution:write, read, admin.
    pub scopes: Vec<String>,
    /// Another organisation (national CERT admins only).
    pub org_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedKey {
    pub key: ApiKeyView,
    /// Shown this once; send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct KeyQuery {
    /// Another organisation's keys (national CERT admins only).
    pub org_id: Option<i64>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Keys of one's organisation, revoked ones included (admins).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(KeyQuery),
    responses((status = 200, body = Paged<ApiKeyView>), (status = 403, body = crate::error::ProblemSchema)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<KeyQuery>,
) -> Result<Json<Paged<ApiKeyView>>, ApiError> {
    p.require(Permission::Admin)?;
    let org = p.org_scope(q.org_id, false)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let keys = state.store.run(move |s| s.list_api_keys(org)).await?;
    let after = page.after.unwrap_or(0);
    let items: Vec<ApiKeyView> = keys
        .into_iter()
        .filter(|k| k.id > after)
        .take(page.limit as usize)
        .map(ApiKeyView::from)
        .collect();
    Ok(Json(Paged::new(items, page.limit, |k| k.id)))
}

/// Create a key (admins); its secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = NewKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 403, body = crate::error::ProblemSchema),
        (status = 422, body = crate::error::ProblemSchema)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<NewKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    p.require(Permission::Admin)?;
    let org_id = p.target_org(req.org_id)?;
    if let Some((i, bad)) = req
        .scopes
        .iter()
        .enumerate()
        .find(|(_, s)| !SCOPES.contains(&s.as_str()))
    {
        return Err(ApiError::invalid(
            format!("scopes[{i}]"),
            format!("unknown scope {bad:?}; use {}", SCOPES.join(", ")),
        ));
    }
    let created_by = p.user_id();
    let (name, scopes) = (req.name, req.scopes);
    let (info, secret) = state
        .store
        .run(move |s| {
            if s.org(org_id)?.is_none() {
                return Ok(None);
            }
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            s.create_api_key(&NewApiKey {
                org_id,
                name: &name,
                scopes: &scopes,
                created_by,
            })
            .map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::invalid("org_id", "no such organisation"))?;
    audit(
        &state,
        &p,
        Some(org_id),
        "api_key.create",
        Some(format!("api_key:{}", info.id)),
        Some(serde_json::json!({"name": info.name, "scopes": info.scopes})),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            key: info.into(),
            secret,
        }),
    ))
}

/// Revoke a key (admins). It stays listed, revoked.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = i64, Path, description = "Key id")),
    responses((status = 200, body = ApiKeyView), (status = 404, body = crate::error::ProblemSchema)))]
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
) -> Result<Json<ApiKeyView>, ApiError> {
    p.require(Permission::Admin)?;
    let scope = if p.is_national_admin() {
        None
    } else {
        Some(p.org_id)
    };
    let key = state
        .store
        .run(move |s| {
            let Some(key) = s.api_key(id)? else {
                return Ok(None);
            };
            if scope.is_some_and(|o| o != key.org_id) {
                return Ok(None);
            }
            s.revoke_api_key(ApiKeyRef::Id(id), scope)?;
            s.api_key(id)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))?;
    audit(
        &state,
        &p,
        Some(key.org_id),
        "api_key.revoke",
        Some(format!("api_key:{id}")),
        None,
    )
    .await?;
    Ok(Json(key.into()))
}
