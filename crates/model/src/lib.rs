//! Core types of Khiên: observables, indicators and their vocabulary.
//!
//! Everything above this crate speaks in these types, so they carry the
//! rules that must hold everywhere:
//!
//! - An [`Observable`] is a *normalised* value of one [`ObservableKind`]. It
//!   can only be built by parsing ([`Observable::parse`] or
//!   [`Observable::detect`]), so two spellings of the same thing
//!   (`HXXP://Evil[.]COM:80/a/../b` and `http://evil.com/b`) become equal
//!   values and meet in one indicator.
//! - An [`IndicatorRecord`] is what one source says about one observable; an
//!   [`Indicator`] is the merged view over every source that named it — one
//!   indicator per (kind, value), never pairwise correlations.
//! - Merging rules live here ([`Indicator::aggregate`]) and not in the store,
//!   so the SQLite and PostgreSQL back ends cannot disagree about them.
//!
//! This crate does no I/O and never panics on input; every parser returns an
//! [`ObservableError`] naming the kind and the reason.
//!
//! ```
//! use khien_model::{Observable, ObservableKind};
//! let o = Observable::detect("hxxps://WWW.Example[.]com:443/a/./b#frag").unwrap();
//! assert_eq!(o.kind(), ObservableKind::Url);
//! assert_eq!(o.value(), "https://www.example.com/a/b");
//! ```

mod defang;
mod domain;
mod error;
mod hit;
mod indicator;
mod observable;
mod phone;
mod tenancy;
mod url_canon;
mod vocabulary;

pub use defang::refang;
pub use domain::{normalize_domain, registrable_domain};
pub use error::ObservableError;
pub use hit::{Hit, bucket_start};
pub use indicator::{Indicator, IndicatorRecord, SourceAttributes};
pub use observable::{Observable, ObservableKind};
pub use tenancy::{CaseState, Channel, NotificationStatus, OrgRole, UnknownWord, UserRole};
pub use vocabulary::{Confidence, Family, ThreatType, Tlp, VocabularyError};

/// Timestamps are UTC everywhere inside Khiên.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
