//! Logging in and out, the first password, changing one's password, and
//! "who am I".
//!
//! A login is refused alike for an unknown address, a wrong password, a
//! user without a password and a disabled user ("wrong e-mail address or
//! password"), and an unknown address costs one Argon2id verification like
//! a known one, so neither the answer nor its timing tells which accounts
//! exist. After `login.max_failures` wrong passwords in a row the account
//! is locked for `login.lockout` (429 with `Retry-After`, whatever the
//! password); logins from one client address are also rate-limited.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use khien_store::AuditEntry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::JsonBody;
use crate::api::orgs::OrgView;
use crate::api::users::UserView;
use crate::auth::{Auth, ClientAddr, SESSION_COOKIE, Who, cookie};
use crate::error::{ApiError, Problem};
use crate::secrets::{self, check_password};
use crate::server::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoginResponse {
    pub user: UserView,
    /// Send as `X-CSRF-Token` with every request that changes something.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetupRequest {
    /// The one-time setup token (`khu_…`).
    pub token: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// The caller, as `GET /api/v1/session` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WhoAmI {
    /// `user` (session) or `api-key`.
    pub kind: String,
    pub organization: OrgView,
    /// The user, for a session.
    pub user: Option<UserView>,
    /// The key's id, name and scopes, for an API key.
    pub api_key_id: Option<i64>,
    pub api_key_name: Option<String>,
    pub scopes: Vec<String>,
    /// A session's CSRF token.
    pub csrf_token: Option<String>,
}

fn session_cookie(state: &AppState, value: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    let secure = if state.config.cookie_secure() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .map_err(|e| ApiError::internal(&e))
}

fn wrong_login() -> ApiError {
    ApiError::new(Problem::Unauthorized, "wrong e-mail address or password")
}

/// Log in with e-mail address and password.
#[utoipa::path(post, path = "/api/v1/session", tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; the session cookie is set", body = LoginResponse),
        (status = 401, description = "Wrong e-mail address or password", body = crate::error::ProblemSchema),
        (status = 429, description = "Account locked or too many attempts", body = crate::error::ProblemSchema),
    ))]
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    ClientAddr(client): ClientAddr,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    if let Some(ip) = client
        && state.limits.logins.check_key(&ip).is_err()
    {
        return Err(ApiError {
            retry_after: Some(60),
            ..ApiError::new(
                Problem::RateLimited,
                "too many login attempts from this address",
            )
        });
    }
    let email = req.email.clone();
    let record = state.store.run(move |s| s.login_record(&email)).await?;
    let now = Utc::now();
    if let Some(r) = &record
        && let Some(until) = r.user.locked_until.filter(|t| *t > now)
    {
        return Err(ApiError {
            retry_after: Some(
                u64::try_from((until - now).num_seconds())
                    .unwrap_or(1)
                    .max(1),
            ),
            ..ApiError::new(
                Problem::AccountLocked,
                format!("the account is locked until {}", until.to_rfc3339()),
            )
        });
    }
    let hash = record
        .as_ref()
        .and_then(|r| r.password_hash.clone())
        .unwrap_or_else(|| secrets::decoy_hash().to_string());
    let password = req.password;
    let matches = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let Some(record) = record else {
        return Err(wrong_login());
    };
    let user_id = record.user.id;
    if !matches || record.password_hash.is_none() || record.user.disabled_at.is_some() {
        if record.password_hash.is_some() {
            let (max, lock) = (
                state.config.login.max_failures,
                i64::try_from(state.config.login.lockout.as_secs()).unwrap_or(i64::MAX),
            );
            let locked = state
                .store
                .run(move |s| s.record_login_failure(user_id, max, lock))
                .await?;
            if locked.is_some() {
                tracing::warn!(event = "hub_account_locked", user = user_id, client = ?client);
                audit(
                    &state,
                    record.user.org_id,
                    user_id,
                    "session.lockout",
                    client,
                )
                .await;
            }
        }
        return Err(wrong_login());
    }
    let lifetime = state.config.sessions.lifetime.as_secs();
    let client_text = client.map(|c| c.to_string());
    let (secret, csrf) = state
        .store
        .run(move |s| {
            s.record_login_success(user_id)?;
            s.create_session(
                user_id,
                i64::try_from(lifetime).unwrap_or(i64::MAX),
                client_text.as_deref(),
            )
        })
        .await?;
    audit(&state, record.user.org_id, user_id, "session.login", client).await;
    let body = LoginResponse {
        user: UserView::from(record.user),
        csrf_token: csrf,
        expires_at: now + chrono::Duration::seconds(i64::try_from(lifetime).unwrap_or(0)),
    };
    let mut res = Json(body).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, &secret, lifetime)?,
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

async fn audit(
    state: &AppState,
    org_id: i64,
    user_id: i64,
    action: &str,
    client: Option<std::net::IpAddr>,
) {
    let entry = AuditEntry {
        org_id: Some(org_id),
        actor: format!("user:{user_id}"),
        actor_org_id: Some(org_id),
        action: action.into(),
        target: Some(format!("user:{user_id}")),
        detail: None,
        client: client.map(|c| c.to_string()),
    };
    if let Err(e) = state.store.run(move |s| s.audit(&entry)).await {
        tracing::error!(event = "hub_audit_failed", action, detail = %e.detail);
    }
}

/// Who is calling: the session's user or the API key.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = WhoAmI), (status = 401, body = crate::error::ProblemSchema)))]
pub(crate) async fn whoami(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
) -> Result<Json<WhoAmI>, ApiError> {
    let org_id = p.org_id;
    let who = p.who.clone();
    let (org, user) = state
        .store
        .run(move |s| {
            let org = s.org(org_id)?;
            let user = match &who {
                Who::User { id, .. } => s.user(*id)?,
                Who::Key { .. } => None,
            };
            Ok((org, user))
        })
        .await?;
    let org = org.ok_or_else(|| ApiError::not_found("organisation"))?;
    Ok(Json(match p.who {
        Who::User { csrf_token, .. } => WhoAmI {
            kind: "user".into(),
            organization: org.into(),
            user: user.map(UserView::from),
            api_key_id: None,
            api_key_name: None,
            scopes: vec![],
            csrf_token: Some(csrf_token),
        },
        Who::Key { id, name, scopes } => WhoAmI {
            kind: "api-key".into(),
            organization: org.into(),
            user: None,
            api_key_id: Some(id),
            api_key_name: Some(name),
            scopes,
            csrf_token: None,
        },
    }))
}

/// Log out: ends the session and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "Logged out")))]
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Auth(_p): Auth,
) -> Result<Response, ApiError> {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        state.store.run(move |s| s.delete_session(&secret)).await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0)?);
    Ok(res)
}

/// Set a password with a one-time setup token (first start, new users,
/// resets). Needs no login.
#[utoipa::path(post, path = "/api/v1/setup", tag = "session",
    request_body = SetupRequest,
    responses(
        (status = 200, description = "Password set; log in with it", body = UserView),
        (status = 401, description = "Unknown, used or expired token", body = crate::error::ProblemSchema),
        (status = 422, description = "Password too short or too long", body = crate::error::ProblemSchema),
    ))]
pub(crate) async fn setup(
    State(state): State<Arc<AppState>>,
    ClientAddr(client): ClientAddr,
    JsonBody(req): JsonBody<SetupRequest>,
) -> Result<Json<UserView>, ApiError> {
    check_password(&req.password).map_err(|e| ApiError::invalid("password", e))?;
    if let Some(ip) = client
        && state.limits.logins.check_key(&ip).is_err()
    {
        return Err(ApiError {
            retry_after: Some(60),
            ..ApiError::new(Problem::RateLimited, "too many attempts from this address")
        });
    }
    let password = req.password;
    let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))?;
    let token = req.token;
    let user = state
        .store
        .run(move |s| {
            let Some(user) = s.use_setup_token(&token)? else {
                return Ok(None);
            };
            s.set_password(user.id, &hash)?;
            s.user(user.id)
        })
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Problem::Unauthorized,
                "the setup token is unknown, used or expired; ask an admin for a new one",
            )
        })?;
    audit(&state, user.org_id, user.id, "user.password_set", client).await;
    Ok(Json(user.into()))
}

/// Change one's own password (sessions only); every session of the user
/// ends, this one included.
#[utoipa::path(post, path = "/api/v1/session/password", tag = "session",
    request_body = PasswordChange,
    responses((status = 204, description = "Changed; log in again"),
        (status = 401, body = crate::error::ProblemSchema), (status = 422, body = crate::error::ProblemSchema)))]
pub(crate) async fn change_password(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let Who::User { id, email, .. } = &p.who else {
        return Err(ApiError::forbidden("API keys have no password"));
    };
    check_password(&req.new_password).map_err(|e| ApiError::invalid("new_password", e))?;
    let (id, email) = (*id, email.clone());
    let record = state
        .store
        .run(move |s| s.login_record(&email))
        .await?
        .ok_or_else(wrong_login)?;
    let current = req.current_password;
    let new = req.new_password;
    let stored = record.password_hash.unwrap_or_default();
    let hash = tokio::task::spawn_blocking(move || {
        if secrets::verify_password(&current, &stored) {
            secrets::hash_password(&new).map(Some)
        } else {
            Ok(None)
        }
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| ApiError::internal(&e))?
    .ok_or_else(|| ApiError::invalid("current_password", "the current password is wrong"))?;
    state.store.run(move |s| s.set_password(id, &hash)).await?;
    audit(&state, p.org_id, id, "user.password_change", p.client).await;
    Ok(StatusCode::NO_CONTENT)
}
