//! Bearer API keys (see `khien_store`'s keys module for how they are made
//! and stored) and the scopes the endpoints ask for.

use axum::http::{HeaderMap, header};
use khien_store::ApiKeyInfo;

use crate::db::StoreHandle;
use crate::error::{ApiError, Problem};

/// May submit hits (`POST /api/v1/hits`) and fetch snapshots.
pub const SCOPE_HITS_WRITE: &str = "hits:write";
/// May read: snapshots now, hits and statistics later.
pub const SCOPE_READ: &str = "read";
/// Every scope the hub knows.
pub const SCOPES: [&str; 2] = [SCOPE_HITS_WRITE, SCOPE_READ];

/// The key presented in `Authorization: Bearer …`, if it is valid and
/// holds one of `any_of`.
pub(crate) async fn authenticate(
    store: &StoreHandle,
    headers: &HeaderMap,
    any_of: &'static [&'static str],
) -> Result<ApiKeyInfo, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            Problem::Unauthorized,
            "send the API key as `Authorization: Bearer <key>`",
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string())
        .ok_or_else(|| {
            ApiError::new(
                Problem::Unauthorized,
                "the Authorization header must be `Bearer <key>`",
            )
        })?;
    let key = store
        .run(move |s| s.verify_api_key(&secret))
        .await?
        .ok_or_else(|| ApiError::new(Problem::Unauthorized, "unknown or revoked API key"))?;
    if !any_of.iter().any(|s| key.has_scope(s)) {
        return Err(ApiError::new(
            Problem::Forbidden,
            format!(
                "API key {} needs one of the scopes: {}",
                key.prefix,
                any_of.join(", ")
            ),
        ));
    }
    Ok(key)
}
