use std::fmt;

/// Where in an input a problem was found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// 1-based line of a line-oriented file.
    Line(u64),
    /// A JSON object by id (STIX id, MISP attribute uuid), with its index in
    /// the enclosing array when known.
    Object { id: Option<String>, index: u64 },
    /// A file of a multi-file input (MISP feed directory), then the
    /// location inside it.
    File { path: String, inner: Box<Location> },
    /// The input as a whole.
    Input,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Object {
                id: Some(id),
                index,
            } => write!(f, "object {index} ({id})"),
            Self::Object { id: None, index } => write!(f, "object {index}"),
            Self::File { path, inner } => write!(f, "{path}: {inner}"),
            Self::Input => f.write_str("input"),
        }
    }
}

/// Errors that stop a reader or writer. Problems with single records are not
/// errors; they reach the [`crate::read::ReadSink`] as rejections.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The input is not of the format it was read as.
    #[error("{location}: not a valid {format} input: {reason}")]
    Malformed {
        format: &'static str,
        location: Location,
        reason: String,
    },
    /// A configuration given by the user (CSV mapping, warninglist) is wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The sink asked the reader to stop (e.g. `--strict` on a rejection).
    #[error("stopped at {location}: {reason}")]
    Stopped { location: Location, reason: String },
}
