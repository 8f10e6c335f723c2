//! Feed and export formats of Khiên, without I/O beyond the `Read`/`Write`
//! handed in.
//!
//! - [`read`] turns untrusted bytes — plain lists, CSV, STIX 2.1 bundles,
//!   MISP events and feeds — into [`khien_model::IndicatorRecord`]s. Readers
//!   are *push* parsers: they stream the input and call a
//!   [`read::ReadSink`] once per record, skip or rejection, so memory stays
//!   flat whatever the input size and the caller decides how to batch.
//!   A bad record is reported with its location (line, or object id) and
//!   never stops the reader; only an unreadable stream does.
//! - [`attribution`] reads what a provider uploads to say who had which
//!   address when — FreeRADIUS `detail` files and RADIUS CSV, ISC dhcpd and
//!   Kea leases, CGNAT port-block logs (CSV, Juniper syslog) — into
//!   [`attribution::AddressEvent`]s, pushed to a sink like the feed readers.
//!   The store's interval index is built on these events; this crate only
//!   parses.
//! - [`warninglist`] loads MISP warninglists and answers "is this
//!   observable a known-good value?" — the guard that keeps `google.com` and
//!   `8.8.8.8` out of every block list.
//! - [`write`] renders merged [`khien_model::Indicator`]s as STIX 2.1, a MISP
//!   feed, CSV, a plain list or a DNS RPZ zone.
//!
//! Formats are detected by [`read::Format::detect`] (and
//! [`attribution::AttributionFormat::detect`]) from a file's first bytes
//! when the user does not name one.

pub mod attribution;
mod error;
pub mod read;
pub mod warninglist;
pub mod write;

pub use error::{Error, Location};
