//! The hub's configuration file (TOML). Every field is optional and
//! unknown fields are refused; the field documentation below is the
//! reference for operators (`docs/hub.md` shows a whole file).
//!
//! Durations are written as `"7d"`, `"15m"`, `"12h"`, `"90s"`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use khien_model::OrgRole;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Configuration of `khien serve`.
///
/// ```toml
/// listen = "0.0.0.0:8080"
/// data_dir = "/var/lib/khien"
/// database = "postgres://khien@db.internal/khien"
///
/// [organization]
/// slug = "vnisp"
/// name = "VN ISP"
/// role = "operator"
///
/// [cases]
/// resolve_after = "7d"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Address and port to listen on (plain HTTP; put TLS in front of it).
    /// Port 0 picks a free port, which the hub reports once bound.
    pub listen: SocketAddr,
    /// Where the hub keeps its files: the SQLite database (unless
    /// `database` says otherwise) and `secrets.toml` (unless the secrets
    /// are given below or in the environment). Created when missing.
    pub data_dir: PathBuf,
    /// The database: empty for `DATA_DIR/khien.db`, a SQLite path,
    /// `sqlite:PATH`, or a `postgres://` URL.
    pub database: String,
    /// Connections to the database for requests (at least 1). SQLite
    /// serialises writers whatever the number; readers use the rest.
    pub database_connections: usize,
    /// The hub's own organisation, created or renamed at start.
    pub organization: OrganizationConfig,
    pub secrets: SecretsConfig,
    pub sessions: SessionConfig,
    pub login: LoginConfig,
    pub cases: CaseConfig,
    pub lookups: LookupConfig,
    pub hits: HitConfig,
    pub notifications: NotificationConfig,
    /// How often the hub checks whether indicators changed and, if so,
    /// rebuilds the snapshot it serves (at least 1).
    pub snapshot_refresh_seconds: u64,
    /// Rebuild the snapshot at least this often even without changes, so
    /// that indicators past their expiry leave it (at least 1).
    pub snapshot_max_age_seconds: u64,
    /// Largest request body accepted, in bytes — after gzip decompression
    /// as well as before. Larger bodies are refused with 413.
    pub max_body_bytes: usize,
    /// A request body must arrive within this many seconds (408 otherwise),
    /// so that slow clients cannot hold connections, or a shutdown, open.
    pub body_timeout_seconds: u64,
}

/// The organisation that runs the hub (its first administrator belongs
/// to it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrganizationConfig {
    /// Short stable name, `a-z`, `0-9` and `-`.
    pub slug: String,
    pub name: String,
    /// `national` for the CERT's hub, `operator` for an ISP's own hub.
    pub role: OrgRole,
}

/// Key material. Each value is 32 bytes as 64 hex digits or base64. When
/// left out, the environment (`KHIEN_MASTER_KEY`, `KHIEN_ENCRYPTION_KEY`,
/// `KHIEN_PREVIOUS_ENCRYPTION_KEYS` comma-separated) is used, and failing
/// that `DATA_DIR/secrets.toml`, created with new random keys at first
/// start. Every hub replica of one database needs the same keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// Keys the hashes of API keys, sessions and setup tokens, and
    /// subscribers' pseudonyms. Changing it invalidates every API key and
    /// session and renames every subscriber: never rotate it casually.
    pub master_key: Option<String>,
    /// Encrypts subscribers' contact fields (AES-256-GCM).
    pub encryption_key: Option<String>,
    /// Earlier encryption keys, still accepted for reading until
    /// `khien admin rotate-encryption-key` re-encrypted everything.
    pub previous_encryption_keys: Vec<String>,
}

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("master_key", &self.master_key.as_ref().map(|_| "…"))
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "…"))
            .field(
                "previous_encryption_keys",
                &self.previous_encryption_keys.len(),
            )
            .finish()
    }
}

/// Browser sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// A session ends this long after login, whatever happens.
    #[serde(with = "humantime_serde")]
    pub lifetime: Duration,
    /// … or this long after its last request.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Mark the cookie `Secure` (sent over HTTPS only): `auto` does so
    /// unless the hub listens on a loopback address.
    pub cookie_secure: CookieSecure,
}

/// See [`SessionConfig::cookie_secure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    Auto,
    Always,
    Never,
}

/// Password logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    /// Consecutive wrong passwords that lock an account (at least 1).
    pub max_failures: u32,
    /// How long a locked account stays locked.
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    /// Login attempts per minute from one client address (at least 1).
    pub attempts_per_minute: u32,
}

/// Infection cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaseConfig {
    /// A case resolves by itself after this long without hits.
    #[serde(with = "humantime_serde")]
    pub resolve_after: Duration,
    /// How often the resolution job runs.
    #[serde(with = "humantime_serde")]
    pub job_interval: Duration,
    /// Hits move their cases at most this long after they were stored:
    /// the case job runs when hits arrive, but no more often than this, so
    /// that under a stream of batches one run covers many.
    #[serde(with = "humantime_serde")]
    pub apply_interval: Duration,
    /// Most hits one run of the case job applies in one transaction. A
    /// run holds SQLite's write lock (ingest waits for it, about a second
    /// per 100,000 hits here); fewer, larger runs apply more hits per
    /// second.
    pub apply_max_hits: u64,
}

/// Public lookups (no login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LookupConfig {
    /// Requests per minute allowed from one client address (at least 1).
    pub requests_per_minute: u32,
    /// Requests a client may make at once before the rate applies.
    pub burst: u32,
    /// How long an answer is reused for the same question.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// `lookup/self` reports hits of this recent past.
    #[serde(with = "humantime_serde")]
    pub self_window: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed for the
    /// client's address; from anyone else it is ignored.
    pub trusted_proxies: Vec<IpAddr>,
}

/// Hit ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HitConfig {
    /// Hits stamped further than this in the future (a sensor's clock is
    /// wrong) are refused, each listed in the response.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
}

/// Warning subscribers (see `docs/notifications.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationConfig {
    /// Run the notification engine.
    pub enabled: bool,
    /// How often it plans and sends.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// The hub's public address, for acknowledgement and verification links
    /// in e-mail and SMS (`https://hub.example.vn`).
    pub public_url: String,
    /// Where subscribers get a free scanner and removal tools (default:
    /// the national cyberspace portal's).
    pub scanner_url: String,
    /// The operator's name in warnings when the organisation has none.
    pub sender_name: String,
    /// A directory of templates that replace the built-in ones file by
    /// file (`{channel}/{group}.{lang}.{part}`).
    pub templates_dir: Option<PathBuf>,
    /// The SMTP relay e-mail warnings go through.
    pub smtp: Option<khien_notify::SmtpConfig>,
    /// The HTTP gateway SMS warnings go through.
    pub sms: Option<khien_notify::GatewayConfig>,
    /// Walled-garden listeners that show web notices, one per operator.
    pub notice: Vec<NoticeListener>,
    /// Notifications handled per engine run.
    pub batch: u32,
    /// E-mails and SMS in flight at once.
    pub concurrency: usize,
    /// The default policy of organisations that have not set their own.
    pub policy: crate::notify::policy::NotificationPolicy,
}

/// A walled-garden listener: every request to it, whatever the host name,
/// gets the web notice of the subscriber who holds the client's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeListener {
    /// The operator (organisation slug) whose subscribers it serves.
    pub org: String,
    pub listen: SocketAddr,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(5),
            public_url: "http://127.0.0.1:8080".into(),
            scanner_url: "https://khonggianmang.vn/".into(),
            sender_name: "Khiên".into(),
            templates_dir: None,
            smtp: None,
            sms: None,
            notice: Vec::new(),
            batch: 500,
            concurrency: 8,
            policy: crate::notify::policy::NotificationPolicy::default(),
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("khien-data"),
            database: String::new(),
            database_connections: 4,
            organization: OrganizationConfig::default(),
            secrets: SecretsConfig::default(),
            sessions: SessionConfig::default(),
            login: LoginConfig::default(),
            cases: CaseConfig::default(),
            lookups: LookupConfig::default(),
            hits: HitConfig::default(),
            notifications: NotificationConfig::default(),
            snapshot_refresh_seconds: 60,
            snapshot_max_age_seconds: 3600,
            max_body_bytes: 16 * 1024 * 1024,
            body_timeout_seconds: 60,
        }
    }
}

impl Default for OrganizationConfig {
    fn default() -> Self {
        Self {
            slug: "cert".into(),
            name: "Khiên".into(),
            role: OrgRole::National,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(12 * 3600),
            idle_timeout: Duration::from_secs(2 * 3600),
            cookie_secure: CookieSecure::Auto,
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            attempts_per_minute: 10,
        }
    }
}

impl Default for CaseConfig {
    fn default() -> Self {
        Self {
            resolve_after: Duration::from_secs(7 * 86_400),
            job_interval: Duration::from_secs(60),
            apply_interval: Duration::from_secs(1),
            apply_max_hits: 100_000,
        }
    }
}

impl Default for LookupConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 60,
            burst: 20,
            cache_ttl: Duration::from_secs(60),
            self_window: Duration::from_secs(7 * 86_400),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for HitConfig {
    fn default() -> Self {
        Self {
            max_clock_skew: Duration::from_secs(600),
        }
    }
}

impl HubConfig {
    /// Parses a TOML configuration; unknown fields are errors.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Config {
            path: None,
            reason: e.to_string(),
        })
    }

    /// Reads and parses a TOML configuration file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: Some(path.to_path_buf()),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| Error::Config {
            path: Some(path.to_path_buf()),
            reason: e.to_string(),
        })
    }

    /// The database URL to open: `database`, or the SQLite file in
    /// `data_dir`.
    pub fn database_url(&self) -> String {
        if self.database.is_empty() {
            format!("sqlite:{}", self.data_dir.join("khien.db").display())
        } else {
            self.database.clone()
        }
    }

    /// Whether the session cookie is marked `Secure`.
    pub fn cookie_secure(&self) -> bool {
        match self.sessions.cookie_secure {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => !self.listen.ip().is_loopback(),
        }
    }

    /// Checks the values that serde cannot.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: &str| {
            Err(Error::Config {
                path: None,
                reason: reason.into(),
            })
        };
        let zero = Duration::ZERO;
        if self.snapshot_refresh_seconds == 0 {
            return bad("snapshot_refresh_seconds must be at least 1");
        }
        if self.snapshot_max_age_seconds == 0 {
            return bad("snapshot_max_age_seconds must be at least 1");
        }
        if self.max_body_bytes == 0 {
            return bad("max_body_bytes must be at least 1");
        }
        if self.body_timeout_seconds == 0 {
            return bad("body_timeout_seconds must be at least 1");
        }
        if self.database_connections == 0 {
            return bad("database_connections must be at least 1");
        }
        if self.login.max_failures == 0 || self.login.attempts_per_minute == 0 {
            return bad("login.max_failures and login.attempts_per_minute must be at least 1");
        }
        if self.lookups.requests_per_minute == 0 {
            return bad("lookups.requests_per_minute must be at least 1");
        }
        if self.cases.resolve_after == zero
            || self.cases.job_interval == zero
            || self.cases.apply_interval == zero
        {
            return bad(
                "cases.resolve_after, cases.job_interval and cases.apply_interval must be longer than 0",
            );
        }
        if self.notifications.interval == zero || self.notifications.batch == 0 {
            return bad("notifications.interval and notifications.batch must be more than 0");
        }
        if let Err((field, reason)) = self.notifications.policy.validate() {
            return bad(&format!("notifications.policy.{field}: {reason}"));
        }
        if self.sessions.lifetime == zero || self.sessions.idle_timeout == zero {
            return bad("sessions.lifetime and sessions.idle_timeout must be longer than 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(HubConfig::from_toml("").ok(), Some(HubConfig::default()));
    }

    #[test]
    fn fields_parse_and_unknown_ones_are_refused() {
        let c = HubConfig::from_toml(
            "listen = \"0.0.0.0:9000\"\nsnapshot_refresh_seconds = 5\n\
             [cases]\nresolve_after = \"3d\"\n[organization]\nrole = \"operator\"\n",
        )
        .expect("valid");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.snapshot_refresh_seconds, 5);
        assert_eq!(c.cases.resolve_after, Duration::from_secs(3 * 86_400));
        assert_eq!(c.organization.role, OrgRole::Operator);
        assert!(c.cookie_secure(), "not loopback");
        let e = HubConfig::from_toml("listn = \"0.0.0.0:9000\"").expect_err("typo");
        assert!(e.to_string().contains("listn"), "{e}");
        let e = HubConfig::from_toml("[cases]\nresolve_afterr = \"1d\"").expect_err("typo");
        assert!(e.to_string().contains("resolve_afterr"), "{e}");
        let e = HubConfig::from_toml("[cases]\nresolve_after = \"soon\"").expect_err("bad");
        assert!(e.to_string().contains("resolve_after"), "{e}");
    }

    #[test]
    fn zero_intervals_are_refused() {
        let c = HubConfig {
            snapshot_refresh_seconds: 0,
            ..HubConfig::default()
        };
        assert!(c.validate().is_err());
        let mut c = HubConfig::default();
        c.cases.resolve_after = Duration::ZERO;
        assert!(c.validate().is_err());
    }

    #[test]
    fn database_defaults_to_the_data_directory() {
        let c = HubConfig::default();
        assert_eq!(c.database_url(), "sqlite:khien-data/khien.db");
        assert!(!c.cookie_secure(), "loopback by default");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let s = SecretsConfig {
            master_key: Some("topsecret".into()),
            ..SecretsConfig::default()
        };
        assert!(!format!("{s:?}").contains("topsecret"));
    }
}
