use std::path::PathBuf;

use khien_model::ObservableError;

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SQLite back end failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL back end failed (connection, query or constraint).
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    /// A schema migration could not be applied.
    #[error("migration {version} ({name}) failed: {reason}")]
    Migration {
        version: u32,
        name: &'static str,
        reason: String,
    },
    /// The database was migrated by a newer Khiên than this one.
    #[error("database schema version {found} is newer than this program knows ({known})")]
    SchemaTooNew { found: i64, known: u32 },
    /// A stored value that no longer parses: hand-edited rows or a model
    /// whose vocabulary shrank.
    #[error("corrupt {what} in the database: {reason}")]
    Corrupt { what: String, reason: String },
    /// The directory of a SQLite file could not be created.
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A search query that is no observable.
    #[error("search {query:?}: {source}")]
    Query {
        query: String,
        source: ObservableError,
    },
    /// `add_batch` was given a verdict list of the wrong length.
    #[error("batch has {records} records but {allowlisted} allow-list verdicts")]
    BatchShape { records: usize, allowlisted: usize },
    /// An argument the store refuses: an empty API key name, a scope with
    /// spaces, an exact-host mark on something that is not a domain, an
    /// over-long batch id.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// The change would clash with what is stored (a taken slug or
    /// e-mail address, a state change the case's state does not allow).
    #[error("{what}: {reason}")]
    Conflict { what: &'static str, reason: String },
    /// A hit in a batch names another sensor than the one submitting it.
    #[error(
        "hit {index} of the batch names sensor {found:?}, but the batch comes from {expected:?}"
    )]
    SensorMismatch {
        /// 0-based position in the batch.
        index: usize,
        expected: String,
        found: String,
    },
    /// The callback of [`crate::Store::for_each_indicator`] stopped the walk.
    #[error("{0}")]
    Callback(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
