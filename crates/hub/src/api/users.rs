//! Users of an organisation, managed by its admins (and by the national
//! CERT's admins for any organisation). A new user has no password: the
//! answer carries a one-time setup token with which they set one
//! (`POST /api/v1/setup`); an admin can issue a new token as a reset.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use khien_model::UserRole;
use khien_store::{NewUser, User, UserUpdate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::orgs::audit;
use crate::api::{JsonBody, PageParams, Paged, PathParam, QueryParams};
use crate::auth::{Auth, Permission};
use crate::error::ApiError;
use crate::server::AppState;

/// How long a setup token stays valid.
pub(crate) const SETUP_TOKEN_SECONDS: i64 = 72 * 3600;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct UserView {
    pub id: i64,
    pub org_id: i64,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = String, example = "analyst")]
    pub role: UserRole,
    pub language: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub has_password: bool,
    pub locked_until: Option<DateTime<Utc>>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            org_id: u.org_id,
            email: u.email,
            display_name: u.display_name,
            role: u.role,
            language: u.language,
            created_at: u.created_at,
            disabled_at: u.disabled_at,
            last_login_at: u.last_login_at,
            has_password: u.has_password,
            locked_until: u.locked_until,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserRequest {
    pub email: String,
    pub display_name: String,
    /// admin, analyst or viewer.
    #[schema(value_type = String, example = "analyst")]
    pub role: UserRole,
    /// vi (default) or en.
    pub language: Option<String>,
    /// Another organisation (national CERT admins only).
    pub org_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedUser {
    pub user: UserView,
    /// Hand this to the user: with it they set their password, once.
    pub setup_token: String,
    pub setup_token_expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SetupToken {
    pub setup_token: String,
    pub setup_token_expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    pub display_name: Option<String>,
    #[schema(value_type = Option<String>, example = "viewer")]
    pub role: Option<UserRole>,
    pub language: Option<String>,
    /// true disables the account and ends its sessions.
    pub disabled: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserQuery {
    /// Another organisation's users (national CERT admins only).
    pub org_id: Option<i64>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn expires() -> DateTime<Utc> {
    chrono::Utc::now() + chrono::Duration::seconds(SETUP_TOKEN_SECONDS)
}

/// Users of one's organisation (admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery),
    responses((status = 200, body = Paged<UserView>), (status = 403, body = crate::error::ProblemSchema)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<UserQuery>,
) -> Result<Json<Paged<UserView>>, ApiError> {
    p.require(Permission::Admin)?;
    let org = p.org_scope(q.org_id, false)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let users = state.store.run(move |s| s.users(org, page)).await?;
    Ok(Json(Paged::new(
        users.into_iter().map(UserView::from).collect(),
        page.limit,
        |u| u.id,
    )))
}

/// Create a user (admins); the answer holds their one-time setup token.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUserRequest,
    responses((status = 201, body = CreatedUser), (status = 403, body = crate::error::ProblemSchema),
        (status = 409, body = crate::error::ProblemSchema), (status = 422, body = crate::error::ProblemSchema)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<NewUserRequest>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    p.require(Permission::Admin)?;
    let org_id = p.target_org(req.org_id)?;
    let (user, token) = state
        .store
        .run(move |s| {
            let user = s.create_user(&NewUser {
                org_id,
                email: &req.email,
                display_name: &req.display_name,
                role: req.role,
                language: req.language.as_deref().unwrap_or("vi"),
            })?;
            let token = s.create_setup_token(user.id, SETUP_TOKEN_SECONDS)?;
            Ok((user, token))
        })
        .await?;
    audit(
        &state,
        &p,
        Some(org_id),
        "user.create",
        Some(format!("user:{}", user.id)),
        Some(serde_json::json!({"email": user.email, "role": user.role})),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: user.into(),
            setup_token: token,
            setup_token_expires_at: expires(),
        }),
    ))
}

/// One user: oneself, or (admins) a user of one's organisation.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 404, body = crate::error::ProblemSchema)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
) -> Result<Json<UserView>, ApiError> {
    let user = state
        .store
        .run(move |s| s.user(id))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let visible = p.user_id() == Some(id)
        || p.is_national_admin()
        || (p.can(Permission::Admin) && user.org_id == p.org_id);
    if !visible {
        return Err(ApiError::not_found("user"));
    }
    Ok(Json(user.into()))
}

/// Change a user (admins): name, role, language, disabled.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 404, body = crate::error::ProblemSchema),
        (status = 422, body = crate::error::ProblemSchema)))]
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
    JsonBody(req): JsonBody<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    p.require(Permission::Admin)?;
    if p.user_id() == Some(id) && req.disabled == Some(true) {
        return Err(ApiError::invalid(
            "disabled",
            "an admin cannot disable their own account",
        ));
    }
    let scope = if p.is_national_admin() {
        None
    } else {
        Some(p.org_id)
    };
    let update = UserUpdate {
        display_name: req.display_name,
        role: req.role,
        language: req.language,
        disabled: req.disabled,
    };
    let detail = serde_json::json!({
        "role": update.role, "disabled": update.disabled,
        "display_name": update.display_name, "language": update.language,
    });
    let user = state
        .store
        .run(move |s| s.update_user(id, scope, &update))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    audit(
        &state,
        &p,
        Some(user.org_id),
        "user.update",
        Some(format!("user:{id}")),
        Some(detail),
    )
    .await?;
    Ok(Json(user.into()))
}

/// Issue a new setup token (admins): a password reset. Earlier tokens of
/// the user stop working.
#[utoipa::path(post, path = "/api/v1/users/{id}/setup-token", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses((status = 201, body = SetupToken), (status = 404, body = crate::error::ProblemSchema)))]
pub(crate) async fn new_setup_token(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
) -> Result<(StatusCode, Json<SetupToken>), ApiError> {
    p.require(Permission::Admin)?;
    let (national, own) = (p.is_national_admin(), p.org_id);
    let found = state
        .store
        .run(move |s| {
            let Some(user) = s.user(id)? else {
                return Ok(None);
            };
            if !national && user.org_id != own {
                return Ok(None);
            }
            Ok(Some((
                user.org_id,
                s.create_setup_token(id, SETUP_TOKEN_SECONDS)?,
            )))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    audit(
        &state,
        &p,
        Some(found.0),
        "user.setup_token",
        Some(format!("user:{id}")),
        None,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(SetupToken {
            setup_token: found.1,
            setup_token_expires_at: expires(),
        }),
    ))
}
