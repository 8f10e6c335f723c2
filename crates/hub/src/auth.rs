//! Who is calling, and what they may do.
//!
//! Two kinds of credentials:
//!
//! - **API keys** (`Authorization: Bearer khk_…`) for sensors, scripts and
//!   other hubs. A key acts for its organisation with its scopes:
//!   `hits:write` (send hits, fetch snapshots), `attribution:write` (upload
//!   subscribers and address logs), `read` (every read), `admin` (all).
//! - **Sessions** for people: the `khien_session` cookie (HttpOnly,
//!   SameSite=Strict, Secure behind TLS) from `POST /api/v1/session`. A
//!   request that changes something must also carry the session's CSRF
//!   token in `X-CSRF-Token` (the synchronizer-token pattern); SameSite
//!   alone does not protect older browsers or same-site subdomains. Bearer
//!   keys are not ambient credentials, so they need no token.
//!
//! A user's role gives permissions inside their organisation: `viewer`
//! reads; `analyst` also works cases and uploads data; `admin` also manages
//! users, keys and the audit log. The organisation's role widens the view
//! of its admins: the national CERT's admins manage every organisation and
//! read every tenant's statistics and audit log — never subscribers' data,
//! which stay in their operator's tenant.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use khien_model::{OrgRole, UserRole};

use crate::error::{ApiError, Problem};
use crate::server::AppState;

/// May submit hits (`POST /api/v1/hits`) and fetch snapshots.
pub const SCOPE_HITS_WRITE: &str = "hits:write";
/// May upload subscribers and attribution files.
pub const SCOPE_ATTRIBUTION_WRITE: &str = "attribution:write";
/// May read everything its organisation may.
pub const SCOPE_READ: &str = "read";
/// May do everything its organisation's admins may.
pub const SCOPE_ADMIN: &str = "admin";
/// Every scope the hub knows.
pub const SCOPES: [&str; 4] = [
    SCOPE_HITS_WRITE,
    SCOPE_ATTRIBUTION_WRITE,
    SCOPE_READ,
    SCOPE_ADMIN,
];

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "khien_session";
/// The header that carries the CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// What an endpoint asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permission {
    /// Send hits, fetch snapshots.
    SubmitHits,
    Read,
    /// Move, assign and comment cases.
    WorkCases,
    /// Upload subscribers and attribution files.
    UploadData,
    /// Users, keys, audit, organisation settings.
    Admin,
}

impl Permission {
    fn name(self) -> &'static str {
        match self {
            Permission::SubmitHits => "hits:write",
            Permission::Read => "read",
            Permission::WorkCases => "case work (analyst)",
            Permission::UploadData => "attribution:write (analyst)",
            Permission::Admin => "admin",
        }
    }
}

/// The caller: a user by session, or an API key.
#[derive(Debug, Clone)]
pub(crate) enum Who {
    User {
        id: i64,
        role: UserRole,
        email: String,
        csrf_token: String,
    },
    Key {
        id: i64,
        name: String,
        scopes: Vec<String>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub org_id: i64,
    pub org_role: OrgRole,
    pub who: Who,
    pub client: Option<IpAddr>,
}

impl Principal {
    pub fn can(&self, p: Permission) -> bool {
        match &self.who {
            Who::User { role, .. } => match role {
                UserRole::Admin => true,
                UserRole::Analyst => p != Permission::Admin,
                UserRole::Viewer => p == Permission::Read,
            },
            Who::Key { scopes, .. } => {
                let has = |s: &str| scopes.iter().any(|x| x == s);
                has(SCOPE_ADMIN)
                    || match p {
                        Permission::SubmitHits => has(SCOPE_HITS_WRITE),
                        Permission::Read => has(SCOPE_READ),
                        Permission::UploadData => has(SCOPE_ATTRIBUTION_WRITE),
                        Permission::WorkCases | Permission::Admin => false,
                    }
            }
        }
    }

    /// 403 unless the caller has `p`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.can(p) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} needs the {} permission",
                self.describe(),
                p.name()
            )))
        }
    }

    /// An admin of the national CERT: sees across tenants.
    pub fn is_national_admin(&self) -> bool {
        self.org_role == OrgRole::National && self.can(Permission::Admin)
    }

    /// The organisation a request is about: its own, or — for the
    /// national CERT's admins, or national readers of statistics when
    /// `national_may_read` — the one asked for (`None`: all).
    pub fn org_scope(
        &self,
        requested: Option<i64>,
        national_may_read: bool,
    ) -> Result<Option<i64>, ApiError> {
        let wide =
            self.is_national_admin() || (national_may_read && self.org_role == OrgRole::National);
        match requested {
            _ if wide => Ok(requested),
            None => Ok(Some(self.org_id)),
            Some(o) if o == self.org_id => Ok(Some(o)),
            Some(_) => Err(ApiError::forbidden(
                "only the national CERT's admins see other organisations",
            )
            .with_field("org_id")),
        }
    }

    /// The organisation something is created in: one's own unless
    /// another is named (national CERT admins only).
    pub fn target_org(&self, requested: Option<i64>) -> Result<i64, ApiError> {
        match requested {
            None => Ok(self.org_id),
            Some(o) => Ok(self.org_scope(Some(o), false)?.unwrap_or(o)),
        }
    }

    /// The audit log's name for the caller: `user:ID` or `key:ID`.
    pub fn actor(&self) -> String {
        match &self.who {
            Who::User { id, .. } => format!("user:{id}"),
            Who::Key { id, .. } => format!("key:{id}"),
        }
    }

    pub fn user_id(&self) -> Option<i64> {
        match &self.who {
            Who::User { id, .. } => Some(*id),
            Who::Key { .. } => None,
        }
    }

    fn describe(&self) -> String {
        match &self.who {
            Who::User { email, role, .. } => format!("user {email} ({role})"),
            Who::Key { name, .. } => format!("API key {name:?}"),
        }
    }
}

/// The client's address: the peer, or the first address of
/// `X-Forwarded-For` when the peer is a trusted proxy.
pub(crate) fn client_addr(state: &AppState, parts: &Parts) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    if state.config.lookups.trusted_proxies.contains(&peer)
        && let Some(forwarded) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return Some(forwarded);
    }
    Some(peer)
}

/// The value of one cookie.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Some(token.trim().to_string()))
        .ok_or_else(|| {
            ApiError::new(
                Problem::Unauthorized,
                "the Authorization header must be `Bearer <key>`",
            )
        })
}

fn changes_something(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Equal in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authenticates a request from its parts.
pub(crate) async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    let client = client_addr(state, parts);
    if let Some(secret) = bearer(&parts.headers)? {
        let (key, org) = state
            .store
            .run(move |s| {
                let Some(key) = s.verify_api_key(&secret)? else {
                    return Ok(None);
                };
                let org = s.org(key.org_id)?;
                Ok(org.map(|o| (key, o)))
            })
            .await?
            .ok_or_else(|| ApiError::new(Problem::Unauthorized, "unknown or revoked API key"))?;
        return Ok(Principal {
            org_id: org.id,
            org_role: org.role,
            who: Who::Key {
                id: key.id,
                name: key.name,
                scopes: key.scopes,
            },
            client,
        });
    }
    let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Err(ApiError::new(
            Problem::Unauthorized,
            "log in (POST /api/v1/session) or send an API key as `Authorization: Bearer <key>`",
        ));
    };
    let idle = i64::try_from(state.config.sessions.idle_timeout.as_secs()).unwrap_or(i64::MAX);
    let (session, org) = state
        .store
        .run(move |s| {
            let Some(session) = s.session(&secret, idle)? else {
                return Ok(None);
            };
            let org = s.org(session.user.org_id)?;
            Ok(org.map(|o| (session, o)))
        })
        .await?
        .ok_or_else(|| {
            ApiError::new(
                Problem::Unauthorized,
                "the session has expired or was ended; log in again",
            )
        })?;
    if changes_something(&parts.method) {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
            return Err(ApiError::new(
                Problem::CsrfRequired,
                "send the session's CSRF token (from the login response) in X-CSRF-Token",
            ));
        }
    }
    Ok(Principal {
        org_id: org.id,
        org_role: org.role,
        who: Who::User {
            id: session.user.id,
            role: session.user.role,
            email: session.user.email,
            csrf_token: session.csrf_token,
        },
        client,
    })
}

/// Extractor: the authenticated caller (401/403 problem otherwise).
#[derive(Debug, Clone)]
pub(crate) struct Auth(pub Principal);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(state, parts).await.map(Auth)
    }
}

/// Extractor: the client's address (peer or trusted proxy's forward).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<Arc<AppState>> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(state, parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[&str]) -> Principal {
        Principal {
            org_id: 2,
            org_role: OrgRole::Operator,
            who: Who::Key {
                id: 1,
                name: "k".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
            },
            client: None,
        }
    }

    fn user(role: UserRole, org_role: OrgRole) -> Principal {
        Principal {
            org_id: 1,
            org_role,
            who: Who::User {
                id: 1,
                role,
                email: "a@b.vn".into(),
                csrf_token: String::new(),
            },
            client: None,
        }
    }

    #[test]
    fn scopes_and_roles_grant_what_the_docs_say() {
        assert!(key(&["hits:write"]).can(Permission::SubmitHits));
        assert!(!key(&["hits:write"]).can(Permission::Read));
        assert!(key(&["read"]).can(Permission::Read));
        assert!(!key(&["read"]).can(Permission::WorkCases));
        assert!(key(&["attribution:write"]).can(Permission::UploadData));
        assert!(key(&["admin"]).can(Permission::Admin));
        let viewer = user(UserRole::Viewer, OrgRole::Operator);
        assert!(viewer.can(Permission::Read) && !viewer.can(Permission::WorkCases));
        let analyst = user(UserRole::Analyst, OrgRole::Operator);
        assert!(analyst.can(Permission::UploadData) && !analyst.can(Permission::Admin));
        assert!(!analyst.is_national_admin());
        assert!(user(UserRole::Admin, OrgRole::National).is_national_admin());
        assert!(!user(UserRole::Admin, OrgRole::Operator).is_national_admin());
    }

    #[test]
    fn only_national_admins_reach_other_tenants() {
        let op = user(UserRole::Admin, OrgRole::Operator);
        assert_eq!(op.org_scope(None, true).ok(), Some(Some(1)));
        assert!(op.org_scope(Some(5), true).is_err());
        let nat = user(UserRole::Admin, OrgRole::National);
        assert_eq!(nat.org_scope(None, false).ok(), Some(None));
        assert_eq!(nat.org_scope(Some(5), false).ok(), Some(Some(5)));
        let nat_viewer = user(UserRole::Viewer, OrgRole::National);
        assert_eq!(nat_viewer.org_scope(Some(5), true).ok(), Some(Some(5)));
        assert!(nat_viewer.org_scope(Some(5), false).is_err());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; khien_session=khs_x; b=2".parse().expect("header"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("khs_x"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
