//! API keys: how sensors and users authenticate to the hub.
//!
//! A secret is `khk_` followed by 43 base64url characters: 256 bits taken
//! from the operating system's CSPRNG (through `uuid` v4, which reads
//! `getrandom`; three of them are hashed down to 32 bytes). Only the
//! SHA-256 of the whole secret is stored, with its first 12 characters
//! (`khk_` and 8 more) as a display prefix and lookup key.
//!
//! Why a plain SHA-256 and not a slow password hash (DESIGN.md §7 asks for
//! slow hashes of secrets): slow hashing protects *guessable* secrets
//! against a stolen table. A 256-bit random secret cannot be guessed, so a
//! fast hash is as safe and keeps per-request verification cheap. Human
//! passwords, when they come, get a slow hash.
//!
//! Verification looks the prefix up (indexed) and compares the full hash
//! of every candidate in constant time, so response timing says nothing
//! about the stored hash.

use chrono::Utc;
use khien_model::Timestamp;
use rusqlite::params;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::merge::{from_secs, secs};
use crate::{Backend, Error, Store};

const SECRET_PREFIX: &str = "khk_";
/// Characters after [`SECRET_PREFIX`].
const SECRET_BODY_LEN: usize = 43;
/// Characters of the secret kept in clear for display and lookup.
const DISPLAY_PREFIX_LEN: usize = 12;
/// `last_used_at` is written at most this often per key.
const LAST_USED_RESOLUTION: i64 = 60;

/// An API key as stored, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    pub id: i64,
    /// Who holds it: a sensor's name (its hits must carry this name) or a
    /// user's.
    pub name: String,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    /// What it may do, e.g. `hits:write`, `read`.
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
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

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equal in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Unpadded base64url (RFC 4648 §5).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn new_secret() -> String {
    let mut h = Sha256::new();
    for _ in 0..3 {
        h.update(uuid::Uuid::new_v4().as_bytes());
    }
    format!("{SECRET_PREFIX}{}", base64url(&h.finalize()))
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

/// The stored columns of a key.
struct RawKey {
    id: i64,
    name: String,
    prefix: String,
    key_hash: String,
    scopes: String,
    created_at: i64,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl RawKey {
    fn info(self) -> Result<ApiKeyInfo, Error> {
        Ok(ApiKeyInfo {
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            scopes: self.scopes.split_whitespace().map(str::to_string).collect(),
            created_at: from_secs("API key created_at", self.created_at)?,
            revoked_at: self
                .revoked_at
                .map(|t| from_secs("API key revoked_at", t))
                .transpose()?,
            last_used_at: self
                .last_used_at
                .map(|t| from_secs("API key last_used_at", t))
                .transpose()?,
        })
    }
}

const KEY_COLS: &str =
    "id, name, prefix, key_hash, scopes, created_at, revoked_at, last_used_at FROM api_keys";

fn raw_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawKey> {
    Ok(RawKey {
        id: r.get(0)?,
        name: r.get(1)?,
        prefix: r.get(2)?,
        key_hash: r.get(3)?,
        scopes: r.get(4)?,
        created_at: r.get(5)?,
        revoked_at: r.get(6)?,
        last_used_at: r.get(7)?,
    })
}

fn raw_pg(r: &postgres::Row) -> Result<RawKey, Error> {
    Ok(RawKey {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        prefix: r.try_get(2)?,
        key_hash: r.try_get(3)?,
        scopes: r.try_get(4)?,
        created_at: r.try_get(5)?,
        revoked_at: r.try_get(6)?,
        last_used_at: r.try_get(7)?,
    })
}

impl Store {
    /// Creates a key for `name` with `scopes` and returns it with its
    /// secret — the only time the secret exists outside its holder.
    pub fn create_api_key(
        &mut self,
        name: &str,
        scopes: &[&str],
    ) -> Result<(ApiKeyInfo, String), Error> {
        check_name(name)?;
        check_scopes(scopes)?;
        let secret = new_secret();
        let prefix = &secret[..DISPLAY_PREFIX_LEN];
        let key_hash = hash(&secret);
        let scope_text = scopes.join(" ");
        let now = secs(Utc::now());
        let id: i64 = match &mut self.backend {
            Backend::Sqlite(db) => {
                db.conn.execute(
                    "INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![name, prefix, key_hash, scope_text, now],
                )?;
                db.conn.last_insert_rowid()
            }
            Backend::Postgres(db) => db
                .client
                .query_one(
                    "INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[&name, &prefix, &key_hash, &scope_text, &now],
                )?
                .try_get(0)?,
        };
        let info = RawKey {
            id,
            name: name.to_string(),
            prefix: prefix.to_string(),
            key_hash,
            scopes: scope_text,
            created_at: now,
            revoked_at: None,
            last_used_at: None,
        }
        .info()?;
        Ok((info, secret))
    }

    /// The unrevoked key whose secret this is, or `None`. Records the use
    /// (at most once a minute per key, so verification is a read most of
    /// the time).
    pub fn verify_api_key(&mut self, secret: &str) -> Result<Option<ApiKeyInfo>, Error> {
        let well_formed = secret.len() == SECRET_PREFIX.len() + SECRET_BODY_LEN
            && secret.starts_with(SECRET_PREFIX)
            && secret[SECRET_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Ok(None);
        }
        let prefix = &secret[..DISPLAY_PREFIX_LEN];
        let presented = hash(secret);
        let candidates: Vec<RawKey> = match &mut self.backend {
            Backend::Sqlite(db) => {
                let mut st = db
                    .conn
                    .prepare_cached(&format!("SELECT {KEY_COLS} WHERE prefix = ?1"))?;
                st.query_map([prefix], raw_sqlite)?
                    .collect::<Result<_, _>>()?
            }
            Backend::Postgres(db) => db
                .client
                .query(&format!("SELECT {KEY_COLS} WHERE prefix = $1"), &[&prefix])?
                .iter()
                .map(raw_pg)
                .collect::<Result<_, _>>()?,
        };
        // Compare every candidate, not just until the first match.
        let mut found = None;
        for k in candidates {
            if constant_time_eq(k.key_hash.as_bytes(), presented.as_bytes())
                && k.revoked_at.is_none()
            {
                found = Some(k);
            }
        }
        let Some(mut key) = found else {
            return Ok(None);
        };
        let now = secs(Utc::now());
        if key
            .last_used_at
            .is_none_or(|t| t <= now - LAST_USED_RESOLUTION)
        {
            let sql_cond = "AND (last_used_at IS NULL OR last_used_at <= ";
            match &mut self.backend {
                Backend::Sqlite(db) => {
                    db.conn.execute(
                        &format!(
                            "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 {sql_cond}?3)"
                        ),
                        params![key.id, now, now - LAST_USED_RESOLUTION],
                    )?;
                }
                Backend::Postgres(db) => {
                    db.client.execute(
                        &format!(
                            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 {sql_cond}$3)"
                        ),
                        &[&key.id, &now, &(now - LAST_USED_RESOLUTION)],
                    )?;
                }
            }
            key.last_used_at = Some(now);
        }
        key.info().map(Some)
    }

    /// Every key, revoked ones included, by id.
    pub fn list_api_keys(&mut self) -> Result<Vec<ApiKeyInfo>, Error> {
        let raws: Vec<RawKey> = match &mut self.backend {
            Backend::Sqlite(db) => {
                let mut st = db.conn.prepare(&format!("SELECT {KEY_COLS} ORDER BY id"))?;
                st.query_map([], raw_sqlite)?.collect::<Result<_, _>>()?
            }
            Backend::Postgres(db) => db
                .client
                .query(&format!("SELECT {KEY_COLS} ORDER BY id"), &[])?
                .iter()
                .map(raw_pg)
                .collect::<Result<_, _>>()?,
        };
        raws.into_iter().map(RawKey::info).collect()
    }

    /// Revokes the key(s) named and returns how many were revoked (0 when
    /// none matched or all were revoked already). Revoked keys stay listed.
    pub fn revoke_api_key(&mut self, which: ApiKeyRef<'_>) -> Result<u64, Error> {
        let now = secs(Utc::now());
        let n = match (&mut self.backend, which) {
            (Backend::Sqlite(db), ApiKeyRef::Id(id)) => db.conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )? as u64,
            (Backend::Sqlite(db), ApiKeyRef::Name(name)) => db.conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, now],
            )? as u64,
            (Backend::Postgres(db), ApiKeyRef::Id(id)) => db.client.execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &now],
            )?,
            (Backend::Postgres(db), ApiKeyRef::Name(name)) => db.client.execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &now],
            )?,
        };
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        // RFC 4648 §10, with the URL alphabet and no padding.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), expected);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn secrets_have_the_documented_shape_and_differ() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.len(), SECRET_PREFIX.len() + SECRET_BODY_LEN);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_ne!(a, b);
    }

    #[test]
    fn constant_time_eq_compares_whole_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
