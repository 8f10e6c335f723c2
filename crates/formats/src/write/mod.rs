//! Writers: merged indicators out, in the formats resolvers, TIPs and
//! spreadsheets read.
//!
//! Every writer takes any iterator of [`Indicator`]s (owned or borrowed, via
//! `Borrow`) and a `std::io::Write` (or a directory for the MISP feed), and
//! streams: nothing is collected except where the format needs the whole
//! set before it can write (MISP events group attributes). Callers choose
//! *what* to export — active, not allow-listed, TLP permitting — before
//! calling; writers do not filter, except that a format that cannot express
//! a kind skips it and counts it (RPZ has no place for a URL, STIX no
//! pattern for a phone number).
//!
//! | module | output |
//! |---|---|
//! | [`list`] | one value per line |
//! | [`csv`] | one row per indicator with its merged attributes |
//! | [`stix`] | a STIX 2.1 bundle with TLP 2.0 markings |
//! | [`misp`] | a MISP feed directory (events, `manifest.json`, `hashes.csv`) |
//! | [`rpz`] | a DNS response policy zone for BIND or Unbound |
//!
//! Writers do not flush or buffer for the caller beyond what the format
//! needs: hand them a `BufWriter` for files and sockets.

pub mod csv;
pub mod list;
pub mod misp;
pub mod rpz;
pub mod stix;

pub use self::csv::write_csv;
pub use list::write_list;
pub use misp::{MispFeedOptions, MispFeedSummary, write_misp_feed};
pub use rpz::{RpzAction, RpzOptions, RpzSummary, WalledGarden, write_rpz};
pub use stix::{StixOptions, StixSummary, write_stix};

use khien_model::Timestamp;

/// RFC 3339 in UTC with a `Z`, whole seconds: what spreadsheets and most
/// parsers accept.
pub(crate) fn rfc3339(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// RFC 3339 with exactly three fractional digits, as STIX 2.1 asks for
/// `created`/`modified` (millisecond precision).
pub(crate) fn rfc3339_millis(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
