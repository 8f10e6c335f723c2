//! Organisations, users, sessions and one-time setup tokens.
//!
//! Every tenant-owned row carries `org_id`; the functions that read or
//! change such rows take the caller's organisation and match on it in SQL,
//! so that a wrong id from another tenant finds nothing instead of relying
//! on the caller to check afterwards.
//!
//! Passwords arrive already hashed (Argon2id, by the hub); session and
//! setup secrets are made here and stored as keyed hashes (see
//! [`crate::secret`]). Lockout after failed logins is counted here, in the
//! same statement that records the failure, so concurrent attempts cannot
//! slip past the limit.

use chrono::Utc;
use khien_model::{OrgRole, Timestamp, UserRole};
use serde::Serialize;

use crate::merge::{from_secs, secs};
use crate::secret;
use crate::sql::{SqlRow, Value, vals};
use crate::{Error, Store};

const SESSION_PREFIX: &str = "khs_";
const SETUP_PREFIX: &str = "khu_";
/// A session's `last_seen_at` is written at most this often.
const SESSION_TOUCH_SECONDS: i64 = 60;

/// An organisation (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: i64,
    /// Short stable name, `[a-z0-9-]`, unique.
    pub slug: String,
    pub name: String,
    pub role: OrgRole,
    pub created_at: Timestamp,
}

/// A user, without secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub org_id: i64,
    pub email: String,
    pub display_name: String,
    pub role: UserRole,
    pub language: String,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
    pub last_login_at: Option<Timestamp>,
    /// A password has been set.
    pub has_password: bool,
    /// Logins are refused until then (too many failed attempts).
    pub locked_until: Option<Timestamp>,
}

/// What a login needs to check: the user and their password hash.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub user: User,
    pub password_hash: Option<String>,
    pub failed_logins: i64,
}

/// A user to create; see [`Store::create_user`].
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub org_id: i64,
    pub email: &'a str,
    pub display_name: &'a str,
    pub role: UserRole,
    pub language: &'a str,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub role: Option<UserRole>,
    pub language: Option<String>,
    /// `Some(true)` disables (and ends every session), `Some(false)`
    /// enables again.
    pub disabled: Option<bool>,
}

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A page of a listing ordered by id: rows after `after`, at most `limit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page {
    pub after: Option<i64>,
    pub limit: u32,
}

impl Page {
    pub(crate) fn after(&self) -> i64 {
        self.after.unwrap_or(0)
    }

    pub(crate) fn limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, 1000))
    }
}

fn invalid(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what,
        reason: reason.into(),
    }
}

fn check_slug(slug: &str) -> Result<(), Error> {
    if slug.is_empty()
        || slug.len() > 64
        || !slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "organisation slug",
            format!("{slug:?}: use 1 to 64 characters a-z, 0-9 and -"),
        ));
    }
    Ok(())
}

fn check_text(what: &'static str, value: &str, max: usize) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(invalid(what, "it is empty"));
    }
    if value.chars().count() > max {
        return Err(invalid(what, format!("it is longer than {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(what, "it contains control characters"));
    }
    Ok(())
}

/// Lower-cases and checks a login e-mail address.
pub fn normalize_email(email: &str) -> Result<String, Error> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(invalid(
            "e-mail",
            format!("{email:?} is not an e-mail address"),
        ))
    }
}

fn check_language(language: &str) -> Result<(), Error> {
    match language {
        "vi" | "en" => Ok(()),
        other => Err(invalid("language", format!("{other:?}: use vi or en"))),
    }
}

fn opt_time(r: &SqlRow, i: usize, what: &str) -> Result<Option<Timestamp>, Error> {
    r.opt_int(i)?.map(|t| from_secs(what, t)).transpose()
}

const ORG_COLS: &str = "id, slug, name, role, created_at FROM organizations";

fn org(r: &SqlRow) -> Result<Organization, Error> {
    let role = r.text(3)?;
    Ok(Organization {
        id: r.int(0)?,
        slug: r.text(1)?,
        name: r.text(2)?,
        role: role
            .parse()
            .map_err(|e| Error::corrupt("organisation role", e))?,
        created_at: from_secs("organisation created_at", r.int(4)?)?,
    })
}

const USER_COLS: &str = "u.id, u.org_id, u.email, u.display_name, u.role, u.language, u.created_at, \
     u.disabled_at, u.last_login_at, u.password_hash, u.locked_until, u.failed_logins";

fn user(r: &SqlRow) -> Result<(User, Option<String>, i64), Error> {
    let role = r.text(4)?;
    let hash = r.opt_text(9)?;
    Ok((
        User {
            id: r.int(0)?,
            org_id: r.int(1)?,
            email: r.text(2)?,
            display_name: r.text(3)?,
            role: role.parse().map_err(|e| Error::corrupt("user role", e))?,
            language: r.text(5)?,
            created_at: from_secs("user created_at", r.int(6)?)?,
            disabled_at: opt_time(r, 7, "user disabled_at")?,
            last_login_at: opt_time(r, 8, "user last_login_at")?,
            has_password: hash.is_some(),
            locked_until: opt_time(r, 10, "user locked_until")?,
        },
        hash,
        r.int(11)?,
    ))
}

impl Store {
    /// Creates an organisation.
    pub fn create_org(
        &mut self,
        slug: &str,
        name: &str,
        role: OrgRole,
    ) -> Result<Organization, Error> {
        check_slug(slug)?;
        check_text("organisation name", name, 200)?;
        if self.org_by_slug(slug)?.is_some() {
            return Err(Error::Conflict {
                what: "organisation",
                reason: format!("slug {slug:?} is taken"),
            });
        }
        let now = secs(Utc::now());
        let r = self.backend.query_one(
            &format!(
                "INSERT INTO organizations (slug, name, role, created_at)
                 VALUES (?1, ?2, ?3, ?4) RETURNING {ORG_COLS_RETURNING}"
            ),
            vals![slug, name, role.as_str(), now],
        )?;
        org(&r)
    }

    /// Renames or re-roles an organisation (the hub's own at first start).
    pub fn update_org(
        &mut self,
        id: i64,
        slug: &str,
        name: &str,
        role: OrgRole,
    ) -> Result<Option<Organization>, Error> {
        check_slug(slug)?;
        check_text("organisation name", name, 200)?;
        if let Some(other) = self.org_by_slug(slug)?
            && other.id != id
        {
            return Err(Error::Conflict {
                what: "organisation",
                reason: format!("slug {slug:?} is taken"),
            });
        }
        self.backend.execute(
            "UPDATE organizations SET slug = ?2, name = ?3, role = ?4 WHERE id = ?1",
            vals![id, slug, name, role.as_str()],
        )?;
        self.org(id)
    }

    pub fn org(&mut self, id: i64) -> Result<Option<Organization>, Error> {
        self.backend
            .query_opt(&format!("SELECT {ORG_COLS} WHERE id = ?1"), vals![id])?
            .map(|r| org(&r))
            .transpose()
    }

    pub fn org_by_slug(&mut self, slug: &str) -> Result<Option<Organization>, Error> {
        self.backend
            .query_opt(&format!("SELECT {ORG_COLS} WHERE slug = ?1"), vals![slug])?
            .map(|r| org(&r))
            .transpose()
    }

    /// Organisations by id.
    pub fn orgs(&mut self, page: Page) -> Result<Vec<Organization>, Error> {
        self.backend
            .query(
                &format!("SELECT {ORG_COLS} WHERE id > ?1 ORDER BY id LIMIT ?2"),
                vals![page.after(), page.limit()],
            )?
            .iter()
            .map(org)
            .collect()
    }

    /// Creates a user without a password (set it with a setup token or
    /// [`Store::set_password`]).
    pub fn create_user(&mut self, new: &NewUser<'_>) -> Result<User, Error> {
        let email = normalize_email(new.email)?;
        check_text("display name", new.display_name, 200)?;
        check_language(new.language)?;
        if self.org(new.org_id)?.is_none() {
            return Err(invalid(
                "organisation",
                format!("no organisation {}", new.org_id),
            ));
        }
        if self.login_record(&email)?.is_some() {
            return Err(Error::Conflict {
                what: "user",
                reason: format!("{email} already has an account"),
            });
        }
        let now = secs(Utc::now());
        let r = self.backend.query_one(
            "INSERT INTO users (org_id, email, display_name, role, language, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            vals![
                new.org_id,
                email.as_str(),
                new.display_name,
                new.role.as_str(),
                new.language,
                now
            ],
        )?;
        let id = r.int(0)?;
        self.user(id)?
            .ok_or_else(|| Error::corrupt("user", "vanished after insert"))
    }

    pub fn user(&mut self, id: i64) -> Result<Option<User>, Error> {
        self.backend
            .query_opt(
                &format!("SELECT {USER_COLS} FROM users u WHERE u.id = ?1"),
                vals![id],
            )?
            .map(|r| user(&r).map(|u| u.0))
            .transpose()
    }

    /// Users of one organisation, or of all, by id.
    pub fn users(&mut self, org_id: Option<i64>, page: Page) -> Result<Vec<User>, Error> {
        let org = org_id.map_or(Value::Null, Value::Int);
        self.backend
            .query(
                &format!(
                    "SELECT {USER_COLS} FROM users u
                     WHERE u.id > ?1 AND (CAST(?2 AS BIGINT) IS NULL OR u.org_id = ?2)
                     ORDER BY u.id LIMIT ?3"
                ),
                &[Value::Int(page.after()), org, Value::Int(page.limit())],
            )?
            .iter()
            .map(|r| user(r).map(|u| u.0))
            .collect()
    }

    /// How many users exist (zero on a fresh hub).
    pub fn user_count(&mut self) -> Result<u64, Error> {
        let n = self
            .backend
            .query_one("SELECT COUNT(*) FROM users", &[])?
            .int(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The user who logs in as `email`, with what a login checks.
    pub fn login_record(&mut self, email: &str) -> Result<Option<LoginRecord>, Error> {
        let Ok(email) = normalize_email(email) else {
            return Ok(None);
        };
        self.backend
            .query_opt(
                &format!("SELECT {USER_COLS} FROM users u WHERE u.email = ?1"),
                vals![email],
            )?
            .map(|r| {
                user(&r).map(|(user, password_hash, failed_logins)| LoginRecord {
                    user,
                    password_hash,
                    failed_logins,
                })
            })
            .transpose()
    }

    /// Changes a user of `org_id` (any organisation when `None`); `None`
    /// when there is no such user there.
    pub fn update_user(
        &mut self,
        id: i64,
        org_id: Option<i64>,
        update: &UserUpdate,
    ) -> Result<Option<User>, Error> {
        let Some(current) = self.user(id)? else {
            return Ok(None);
        };
        if org_id.is_some_and(|o| o != current.org_id) {
            return Ok(None);
        }
        if let Some(n) = &update.display_name {
            check_text("display name", n, 200)?;
        }
        if let Some(l) = &update.language {
            check_language(l)?;
        }
        let now = secs(Utc::now());
        let disabled_at = match update.disabled {
            Some(true) => Some(current.disabled_at.map_or(now, secs)),
            Some(false) => None,
            None => current.disabled_at.map(secs),
        };
        self.in_transaction(|b| {
            b.execute(
                "UPDATE users SET display_name = ?2, role = ?3, language = ?4, disabled_at = ?5
                 WHERE id = ?1",
                vals![
                    id,
                    update
                        .display_name
                        .clone()
                        .unwrap_or(current.display_name.clone()),
                    update.role.unwrap_or(current.role).as_str(),
                    update.language.clone().unwrap_or(current.language.clone()),
                    disabled_at
                ],
            )?;
            if disabled_at.is_some() {
                b.execute("DELETE FROM sessions WHERE user_id = ?1", vals![id])?;
            }
            Ok(())
        })?;
        self.user(id)
    }

    /// Stores a new password hash, clears the lockout and ends the user's
    /// sessions (a password change logs out everywhere).
    pub fn set_password(&mut self, user_id: i64, password_hash: &str) -> Result<(), Error> {
        self.in_transaction(|b| {
            b.execute(
                "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until = NULL
                 WHERE id = ?1",
                vals![user_id, password_hash],
            )?;
            b.execute("DELETE FROM sessions WHERE user_id = ?1", vals![user_id])?;
            Ok(())
        })
    }

    /// Counts a failed login; at `max_failures` consecutive failures the
    /// account is locked for `lock_seconds` and the counter starts over.
    /// Returns the lock's end when this failure locked it.
    pub fn record_login_failure(
        &mut self,
        user_id: i64,
        max_failures: u32,
        lock_seconds: i64,
    ) -> Result<Option<Timestamp>, Error> {
        let now = secs(Utc::now());
        let until = now + lock_seconds;
        let r = self.backend.query_opt(
            "UPDATE users SET
                 failed_logins = CASE WHEN failed_logins + 1 >= ?2 THEN 0 ELSE failed_logins + 1 END,
                 locked_until = CASE WHEN failed_logins + 1 >= ?2 THEN ?3 ELSE locked_until END
             WHERE id = ?1 RETURNING locked_until",
            vals![user_id, i64::from(max_failures), until],
        )?;
        match r.and_then(|r| r.opt_int(0).ok().flatten()) {
            Some(t) if t == until => Ok(Some(from_secs("locked_until", t)?)),
            _ => Ok(None),
        }
    }

    /// A successful login: clears the failure count, records the time.
    pub fn record_login_success(&mut self, user_id: i64) -> Result<(), Error> {
        self.backend.execute(
            "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = ?2
             WHERE id = ?1",
            vals![user_id, secs(Utc::now())],
        )?;
        Ok(())
    }

    /// Starts a session for `user_id` lasting `lifetime_seconds` at most;
    /// returns (cookie secret, CSRF token).
    pub fn create_session(
        &mut self,
        user_id: i64,
        lifetime_seconds: i64,
        client: Option<&str>,
    ) -> Result<(String, String), Error> {
        let secret = secret::new_secret(SESSION_PREFIX);
        let csrf = secret::base64url(&secret::random_bytes());
        let hash = self.hash_key()?.hash(&secret);
        let now = secs(Utc::now());
        // Expired sessions go when their user logs in again.
        self.backend.execute(
            "DELETE FROM sessions WHERE user_id = ?1 AND expires_at <= ?2",
            vals![user_id, now],
        )?;
        self.backend.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at,
                                   last_seen_at, client)
             VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?6)",
            vals![
                hash,
                user_id,
                csrf.as_str(),
                now,
                now + lifetime_seconds,
                client
            ],
        )?;
        Ok((secret, csrf))
    }

    /// The session of this cookie secret, if it is live: not past its
    /// lifetime, used within `idle_seconds`, and its user enabled.
    pub fn session(&mut self, secret: &str, idle_seconds: i64) -> Result<Option<Session>, Error> {
        if !secret::well_formed(secret, SESSION_PREFIX) {
            return Ok(None);
        }
        let hash = self.hash_key()?.hash(secret);
        let now = secs(Utc::now());
        let Some(r) = self.backend.query_opt(
            &format!(
                "SELECT {USER_COLS}, s.csrf_token, s.created_at, s.expires_at, s.last_seen_at
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1"
            ),
            vals![hash.as_str()],
        )?
        else {
            return Ok(None);
        };
        let (user, _, _) = user(&r)?;
        let expires_at = r.int(14)?;
        let last_seen = r.int(15)?;
        if expires_at <= now || last_seen + idle_seconds <= now || user.disabled_at.is_some() {
            self.backend
                .execute("DELETE FROM sessions WHERE token_hash = ?1", vals![hash])?;
            return Ok(None);
        }
        if last_seen + SESSION_TOUCH_SECONDS <= now {
            self.backend.execute(
                "UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1",
                vals![hash, now],
            )?;
        }
        Ok(Some(Session {
            user,
            csrf_token: r.text(12)?,
            created_at: from_secs("session created_at", r.int(13)?)?,
            expires_at: from_secs("session expires_at", expires_at)?,
        }))
    }

    /// Ends a session (logout); true if there was one.
    pub fn delete_session(&mut self, secret: &str) -> Result<bool, Error> {
        let hash = self.hash_key()?.hash(secret);
        Ok(self
            .backend
            .execute("DELETE FROM sessions WHERE token_hash = ?1", vals![hash])?
            > 0)
    }

    /// A one-time token with which `user_id` can set a password, valid for
    /// `lifetime_seconds`. Earlier unused tokens of the user stop working.
    pub fn create_setup_token(
        &mut self,
        user_id: i64,
        lifetime_seconds: i64,
    ) -> Result<String, Error> {
        let secret = secret::new_secret(SETUP_PREFIX);
        let hash = self.hash_key()?.hash(&secret);
        let now = secs(Utc::now());
        self.in_transaction(|b| {
            b.execute(
                "DELETE FROM setup_tokens WHERE user_id = ?1 AND used_at IS NULL",
                vals![user_id],
            )?;
            b.execute(
                "INSERT INTO setup_tokens (token_hash, user_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                vals![hash, user_id, now, now + lifetime_seconds],
            )?;
            Ok(())
        })?;
        Ok(secret)
    }

    /// Uses a setup token: the user it was made for, once, while valid.
    pub fn use_setup_token(&mut self, secret: &str) -> Result<Option<User>, Error> {
        if !secret::well_formed(secret, SETUP_PREFIX) {
            return Ok(None);
        }
        let hash = self.hash_key()?.hash(secret);
        let now = secs(Utc::now());
        // One statement marks it used, so two concurrent uses cannot both
        // succeed.
        let r = self.backend.query_opt(
            "UPDATE setup_tokens SET used_at = ?2
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2
             RETURNING user_id",
            vals![hash, now],
        )?;
        match r {
            Some(r) => self.user(r.int(0)?),
            None => Ok(None),
        }
    }
}

/// `RETURNING` list matching [`ORG_COLS`].
const ORG_COLS_RETURNING: &str = "id, slug, name, role, created_at";
