use crate::ObservableKind;

/// Why a value could not be read as an observable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObservableError {
    /// The value is empty after trimming and refanging.
    #[error("empty value")]
    Empty,
    /// The value is not a valid observable of the named kind.
    #[error("invalid {kind}: {reason}")]
    Invalid {
        /// The kind that was expected (or tried).
        kind: ObservableKind,
        /// Human-readable reason, e.g. `label longer than 63 characters`.
        reason: String,
    },
    /// Auto-detection found no kind the value could be.
    #[error("not a recognised observable: {0:?}")]
    Unrecognised(String),
    /// The kind name itself is unknown.
    #[error("unknown observable kind {0:?}")]
    UnknownKind(String),
}

impl ObservableError {
    pub(crate) fn invalid(kind: ObservableKind, reason: impl Into<String>) -> Self {
        Self::Invalid {
            kind,
            reason: reason.into(),
        }
    }
}
