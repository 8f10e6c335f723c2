//! The hub's configuration file (TOML). Every field is optional; the field
//! documentation below is the reference for operators.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Configuration of `khien serve`.
///
/// ```toml
/// listen = "0.0.0.0:8080"
/// database = "postgres://khien@db.internal/khien"
/// snapshot_refresh_seconds = 60
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Address and port to listen on (plain HTTP; put TLS in front of it).
    /// Port 0 picks a free port, which the hub reports once bound.
    pub listen: SocketAddr,
    /// The database: a SQLite path, `sqlite:PATH`, or a `postgres://` URL.
    /// `khien serve` sets it from its global `--database`.
    pub database: String,
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

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: "khien-data/khien.db".into(),
            snapshot_refresh_seconds: 60,
            snapshot_max_age_seconds: 3600,
            max_body_bytes: 16 * 1024 * 1024,
            body_timeout_seconds: 60,
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

    /// Checks the values that serde cannot.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: &str| {
            Err(Error::Config {
                path: None,
                reason: reason.into(),
            })
        };
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
        let c = HubConfig::from_toml("listen = \"0.0.0.0:9000\"\nsnapshot_refresh_seconds = 5\n")
            .expect("valid");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.snapshot_refresh_seconds, 5);
        let e = HubConfig::from_toml("listn = \"0.0.0.0:9000\"").expect_err("typo");
        assert!(e.to_string().contains("listn"), "{e}");
    }

    #[test]
    fn zero_intervals_are_refused() {
        let c = HubConfig {
            snapshot_refresh_seconds: 0,
            ..HubConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
