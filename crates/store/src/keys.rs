//! API keys: how sensors, scripts and users' tools authenticate to the hub.
//!
//! A key belongs to an organisation and carries scopes. Its secret is
//! `khk_` and 43 base64url characters (see [`crate::secret`]); the store
//! keeps its keyed hash, and its first 12 characters (`khk_` and 8 more) as
//! a display prefix and lookup key.
//!
//! Verification looks the prefix up (indexed) and compares the full hash
//! of every candidate in constant time, so response timing says nothing
//! about the stored hash. Keys made before keyed hashing (`hash_scheme =
//! 'sha256'`) still verify against their plain SHA-256.

use chrono::Utc;
use khien_model::Timestamp;
use serde::Serialize;

use crate::merge::{from_secs, secs};
use crate::secret::{self, constant_time_eq, legacy_hash};
use crate::sql::{SqlRow, vals};
use crate::{Error, Store};

const SECRET_PREFIX: &str = "khk_";
/// Characters of the secret kept in clear for display and lookup.
const DISPLAY_PREFIX_LEN: usize = 12;
/// `last_used_at` is written at most this often per key.
const LAST_USED_RESOLUTION: i64 = 60;
const HMAC_SCHEME: &str = "hmac-sha256";

/// An API key as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    pub id: i64,
    /// The organisation the key acts for.
    pub org_id: i64,
    /// Who holds it: a sensor's name (its hits must carry this name), a
    /// script's or a user's.
    pub name: String,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    /// What it may do, e.g. `hits:write`, `read`, `admin`.
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    /// The user who made it, when made through the API.
    pub created_by: Option<i64>,
    pub revoked_at: Option<Timestamp>,
    /// When it was last accepted (to the minute).
    pub last_used_at: Option<Timestamp>,
}

impl ApiKeyInfo {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// Which keys [`Store::revoke_api_key`] revokes.
#[derive(Debug, Clone, Copy)]
pub enum ApiKeyRef<'a> {
    /// The one key with this id.
    Id(i64),
    /// Every unrevoked key with this name.
    Name(&'a str),
}

/// A key to make; see [`Store::create_api_key`].
#[derive(Debug, Clone, Copy)]
pub struct NewApiKey<'a> {
    pub org_id: i64,
    pub name: &'a str,
    pub scopes: &'a [&'a str],
    pub created_by: Option<i64>,
}

fn check_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > 128 {
        "it is longer than 128 bytes"
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it contains spaces or control characters"
    } else {
        return Ok(());
    };
    Err(Error::Invalid {
        what: "API key name",
        reason: format!("{name:?}: {reason}"),
    })
}

fn check_scopes(scopes: &[&str]) -> Result<(), Error> {
    if scopes.is_empty() {
        return Err(Error::Invalid {
            what: "API key scopes",
            reason: "a key needs at least one scope".into(),
        });
    }
    match scopes
        .iter()
        .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        Some(bad) => Err(Error::Invalid {
            what: "API key scope",
            reason: format!("{bad:?} is empty or contains spaces"),
        }),
        None => Ok(()),
    }
}

const KEY_COLS: &str = "id, org_id, name, prefix, key_hash, hash_scheme, scopes, created_at, \
     created_by, revoked_at, last_used_at FROM api_keys";

/// The stored columns of a key.
struct RawKey {
    info: ApiKeyInfo,
    key_hash: String,
    hash_scheme: String,
}

fn raw(r: &SqlRow) -> Result<RawKey, Error> {
    let opt_time = |i: usize, what: &str| r.opt_int(i)?.map(|t| from_secs(what, t)).transpose();
    Ok(RawKey {
        info: ApiKeyInfo {
            id: r.int(0)?,
            org_id: r.int(1)?,
            name: r.text(2)?,
            prefix: r.text(3)?,
            scopes: r.text(6)?.split_whitespace().map(str::to_string).collect(),
            created_at: from_secs("API key created_at", r.int(7)?)?,
            created_by: r.opt_int(8)?,
            revoked_at: opt_time(9, "API key revoked_at")?,
            last_used_at: opt_time(10, "API key last_used_at")?,
        },
        key_hash: r.text(4)?,
        hash_scheme: r.text(5)?,
    })
}

impl Store {
    /// Creates a key and returns it with its secret — the only time the
    /// secret exists outside its holder.
    pub fn create_api_key(&mut self, new: &NewApiKey<'_>) -> Result<(ApiKeyInfo, String), Error> {
        check_name(new.name)?;
        check_scopes(new.scopes)?;
        let secret = secret::new_secret(SECRET_PREFIX);
        let prefix = secret[..DISPLAY_PREFIX_LEN].to_string();
        let key_hash = self.hash_key()?.hash(&secret);
        let scope_text = new.scopes.join(" ");
        let now = secs(Utc::now());
        let row = self.backend.query_one(
            "INSERT INTO api_keys (org_id, name, prefix, key_hash, hash_scheme, scopes,
                                   created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            vals![
                new.org_id,
                new.name,
                prefix.as_str(),
                key_hash,
                HMAC_SCHEME,
                scope_text.as_str(),
                now,
                new.created_by
            ],
        )?;
        let info = ApiKeyInfo {
            id: row.int(0)?,
            org_id: new.org_id,
            name: new.name.to_string(),
            prefix,
            scopes: new.scopes.iter().map(|s| s.to_string()).collect(),
            created_at: from_secs("API key created_at", now)?,
            created_by: new.created_by,
            revoked_at: None,
            last_used_at: None,
        };
        Ok((info, secret))
    }

    /// The unrevoked key whose secret this is, or `None`. Records the use
    /// (at most once a minute per key, so verification is a read most of
    /// the time).
    pub fn verify_api_key(&mut self, secret: &str) -> Result<Option<ApiKeyInfo>, Error> {
        if !secret::well_formed(secret, SECRET_PREFIX) {
            return Ok(None);
        }
        let prefix = &secret[..DISPLAY_PREFIX_LEN];
        let keyed = self.hash_key()?.hash(secret);
        let legacy = legacy_hash(secret);
        let candidates = self.backend.query(
            &format!("SELECT {KEY_COLS} WHERE prefix = ?1"),
            vals![prefix],
        )?;
        // Compare every candidate, not just until the first match.
        let mut found = None;
        for r in &candidates {
            let k = raw(r)?;
            let presented = if k.hash_scheme == HMAC_SCHEME {
                &keyed
            } else {
                &legacy
            };
            if constant_time_eq(k.key_hash.as_bytes(), presented.as_bytes())
                && k.info.revoked_at.is_none()
            {
                found = Some(k.info);
            }
        }
        let Some(mut key) = found else {
            return Ok(None);
        };
        let now = secs(Utc::now());
        if key
            .last_used_at
            .is_none_or(|t| secs(t) <= now - LAST_USED_RESOLUTION)
        {
            self.backend.execute(
                "UPDATE api_keys SET last_used_at = ?2
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at <= ?3)",
                vals![key.id, now, now - LAST_USED_RESOLUTION],
            )?;
            key.last_used_at = Some(from_secs("API key last_used_at", now)?);
        }
        Ok(Some(key))
    }

    /// Keys, revoked ones included, by id: of one organisation, or all.
    pub fn list_api_keys(&mut self, org_id: Option<i64>) -> Result<Vec<ApiKeyInfo>, Error> {
        let rows = match org_id {
            Some(org) => self.backend.query(
                &format!("SELECT {KEY_COLS} WHERE org_id = ?1 ORDER BY id"),
                vals![org],
            )?,
            None => self
                .backend
                .query(&format!("SELECT {KEY_COLS} ORDER BY id"), &[])?,
        };
        rows.iter().map(|r| raw(r).map(|k| k.info)).collect()
    }

    /// One key by id.
    pub fn api_key(&mut self, id: i64) -> Result<Option<ApiKeyInfo>, Error> {
        self.backend
            .query_opt(&format!("SELECT {KEY_COLS} WHERE id = ?1"), vals![id])?
            .map(|r| raw(&r).map(|k| k.info))
            .transpose()
    }

    /// Revokes the key(s) named — only within `org_id` when given — and
    /// returns how many were revoked (0 when none matched or all were
    /// revoked already). Revoked keys stay listed.
    pub fn revoke_api_key(
        &mut self,
        which: ApiKeyRef<'_>,
        org_id: Option<i64>,
    ) -> Result<u64, Error> {
        let now = secs(Utc::now());
        let (cond, target) = match which {
            ApiKeyRef::Id(id) => ("id = ?1", crate::sql::Value::Int(id)),
            ApiKeyRef::Name(name) => ("name = ?1", crate::sql::Value::from(name)),
        };
        let org = org_id.map_or(crate::sql::Value::Null, crate::sql::Value::Int);
        self.backend.execute(
            &format!(
                "UPDATE api_keys SET revoked_at = ?2
                 WHERE {cond} AND revoked_at IS NULL AND (CAST(?3 AS BIGINT) IS NULL OR org_id = ?3)"
            ),
            &[target, now.into(), org],
        )
    }
}
