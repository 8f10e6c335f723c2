//! Attribution files: the logs an internet provider uploads to say *who had
//! which address when*, read into typed [`AddressEvent`]s.
//!
//! A hit on a public address is only useful to the provider once it names a
//! subscriber, and that takes the provider's own records: RADIUS accounting
//! (FreeRADIUS `detail` files or a CSV export), DHCP leases (ISC
//! `dhcpd.leases`, Kea's memfile CSV) and, behind carrier-grade NAT, the
//! port-block log (a CSV export or Juniper's syslog lines). This module only
//! parses them; pairing Start with Stop and answering "who had 203.0.113.5:2100
//! at 10:05" is the store's interval index, built on these types.
//!
//! Design decisions:
//!
//! - **Push parsers, like [`crate::read`]**: [`read_attribution`] streams the
//!   input and calls an [`AttributionSink`] once per event, skip or
//!   rejection, each with the 1-based line where its record starts. Memory
//!   stays flat: a record keeps only the attributes that are read, lines are
//!   capped at [`crate::read::MAX_LINE`], and a DHCPv6 IA keeps at most
//!   [`MAX_IA_ADDRESSES`] addresses.
//! - **A bad record is data, not an error.** Invalid UTF-8, an over-long
//!   line, a value that does not parse, a time before 1990 or after 2100, a
//!   port block whose first port is above its last: each is a
//!   [`AttributionEvent::Rejected`] naming the line and the field, and the
//!   reader goes on. Only an unreadable stream, a CSV without the required
//!   columns or a UTF-16 file stop it ([`crate::Error`]).
//! - **Cut files lose only the cut record.** Providers upload files that are
//!   still being written. A `dhcpd.leases` lease without its closing `}` and
//!   a RADIUS `detail` record whose last line has no newline are rejected;
//!   the complete records before them are kept. In the formats that daemons
//!   write (detail, Kea, syslog), a last line without a newline is taken as
//!   cut, because a truncated `100.64.1.23` reads as a valid `100.64.1.2`:
//!   a wrong subscriber is worse than a missing one.
//! - **Times are UTC.** Zone-less times (FreeRADIUS record headers, syslog
//!   headers, CSV times without an offset) are read in
//!   [`AttributionOptions::local_offset`]; dhcpd writes UTC; Kea and the
//!   `0x…` stamp of Juniper's lines are unix seconds.
//! - **One event per address.** A dual-stack RADIUS record (Framed-IP-Address
//!   and Delegated-IPv6-Prefix) yields one event for each, with the same line
//!   and session, so the index holds plain (network, interval) pairs.
//!
//! ```
//! use khien_formats::attribution::{
//!     AddressAction, AttributionEvent, AttributionFormat, AttributionOptions, read_attribution,
//! };
//!
//! let leases = "lease 10.0.0.5 {\n  starts 2 2026/11/24 03:00:00;\n  ends 2 2026/11/24 15:00:00;\n  \
//!               binding state active;\n  hardware ethernet 00:11:22:AA:BB:CC;\n}\n";
//! let mut events = Vec::new();
//! let mut sink = |e: AttributionEvent| -> Result<(), String> {
//!     events.push(e);
//!     Ok(())
//! };
//! let options = AttributionOptions::new(2026);
//! read_attribution(AttributionFormat::DhcpdLeases, leases.as_bytes(), &options, &mut sink)
//!     .expect("readable");
//! let AttributionEvent::Address(lease) = &events[0] else { panic!("{events:?}") };
//! assert_eq!(lease.action, AddressAction::Lease);
//! assert_eq!(lease.network.to_string(), "10.0.0.5/32");
//! assert_eq!(lease.identity.as_deref(), Some("00:11:22:aa:bb:cc"));
//! assert_eq!(lease.at.to_rfc3339(), "2026-11-24T03:00:00+00:00");
//! ```

use std::net::IpAddr;

use chrono::{Datelike, FixedOffset, Offset};
use ipnet::IpNet;
use khien_model::Timestamp;

use crate::{Error, Location};

mod cgnat;
mod dhcpd;
mod format;
mod kea;
mod lines;
mod radius;
mod table;
mod time;

pub use dhcpd::MAX_IA_ADDRESSES;
pub use format::{AttributionFormat, UnknownAttributionFormat};

/// How to read times that do not say their zone or year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributionOptions {
    /// UTC offset of timestamps that carry no zone (FreeRADIUS detail header
    /// lines, syslog lines, CSV times without offset). Default +07:00
    /// (Asia/Ho_Chi_Minh).
    pub local_offset: FixedOffset,
    /// The year for syslog timestamps without one (Juniper); caller passes
    /// the current year.
    pub default_year: i32,
}

/// Indochina Time, Vietnam's offset all year round.
const VIETNAM: i32 = 7 * 3600;

impl AttributionOptions {
    /// Vietnam's offset (+07:00) and `default_year` for year-less syslog
    /// times. Readers stay pure: the caller decides which year "now" is.
    pub fn new(default_year: i32) -> Self {
        Self {
            local_offset: FixedOffset::east_opt(VIETNAM).unwrap_or(chrono::Utc.fix()),
            default_year,
        }
    }
}

impl Default for AttributionOptions {
    /// +07:00 and the current year by the system clock. Replays of old
    /// files and tests should use [`AttributionOptions::new`].
    fn default() -> Self {
        Self::new(chrono::Utc::now().year())
    }
}

/// What an event says about its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressAction {
    /// A session or block began at `at` (RADIUS Start, CGNAT allocation).
    Start,
    /// Still in use at `at` (RADIUS Interim-Update / Alive).
    Interim,
    /// Ended at `at` (RADIUS Stop, CGNAT release). `start` is set when the
    /// record says how long it lasted (Acct-Session-Time).
    Stop,
    /// A complete interval known at once (DHCP lease: `start`..`end`, end
    /// None = never expires).
    Lease,
}

impl AddressAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Interim => "interim",
            Self::Stop => "stop",
            Self::Lease => "lease",
        }
    }
}

/// One statement of who had an address (or a port block of it) when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AddressEvent {
    /// 1-based line where the record starts (a RADIUS record's date line, a
    /// `lease` statement, an `iaaddr`/`iaprefix` inside a DHCPv6 IA).
    pub line: u64,
    pub action: AddressAction,
    /// The event's own time (for Lease: the start).
    pub at: Timestamp,
    /// When the interval began: a lease's start, or `at` minus
    /// Acct-Session-Time on a RADIUS Interim or Stop.
    pub start: Option<Timestamp>,
    /// When a lease ends; `None` on a lease that never expires.
    pub end: Option<Timestamp>,
    /// Framed-IP-Address as /32 (/128), a delegated IPv6 prefix, a lease
    /// address /32, the CGNAT public address /32.
    pub network: IpNet,
    /// CGNAT port block, inclusive.
    pub ports: Option<(u16, u16)>,
    /// Who: RADIUS User-Name; DHCP: option agent.remote-id or circuit-id if
    /// present, else uid, else hardware address (lower-case `aa:bb:…`); Kea:
    /// hwaddr (else client_id) for IPv4, duid for IPv6; DHCPv6 IA: the
    /// client's DUID; CGNAT: the subscriber column if the log has one.
    pub identity: Option<String>,
    /// CGNAT inside (private) address, to be resolved further through
    /// RADIUS/DHCP.
    pub inside: Option<IpAddr>,
    /// Key that pairs Start/Interim/Stop: Acct-Session-Id, prefixed by
    /// NAS-IP-Address when present (`nas/session`); CGNAT:
    /// `public:first-last`; leases: None.
    pub session: Option<String>,
    /// Calling-Station-Id (MAC / line id) when present.
    pub calling_station: Option<String>,
}

/// What a reader reports for each thing it reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttributionEvent {
    Address(AddressEvent),
    /// A well-formed record that says nothing about who had an address
    /// (comment, header, Accounting-On, free lease, other syslog message).
    Skipped {
        line: u64,
        reason: &'static str,
    },
    Rejected {
        line: u64,
        reason: String,
    },
}

impl AttributionEvent {
    /// The 1-based line the event is about.
    pub fn line(&self) -> u64 {
        match self {
            Self::Address(e) => e.line,
            Self::Skipped { line, .. } | Self::Rejected { line, .. } => *line,
        }
    }
}

/// Receives a reader's events. Returning `Err(reason)` stops the reader,
/// which then returns [`crate::Error::Stopped`].
pub trait AttributionSink {
    fn event(&mut self, e: AttributionEvent) -> Result<(), String>;
}

impl<F: FnMut(AttributionEvent) -> Result<(), String>> AttributionSink for F {
    fn event(&mut self, e: AttributionEvent) -> Result<(), String> {
        self(e)
    }
}

/// Counts of what a reader reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AttributionSummary {
    pub events: u64,
    pub skipped: u64,
    pub rejected: u64,
}

/// Reads `input` as `format`, streaming events into `sink`.
pub fn read_attribution(
    format: AttributionFormat,
    input: impl std::io::BufRead,
    options: &AttributionOptions,
    sink: &mut dyn AttributionSink,
) -> Result<AttributionSummary, Error> {
    let mut out = Out {
        sink,
        summary: AttributionSummary::default(),
    };
    match format {
        AttributionFormat::RadiusDetail => radius::read_detail(input, options, &mut out)?,
        AttributionFormat::RadiusCsv => radius::read_csv(input, options, &mut out)?,
        AttributionFormat::DhcpdLeases => dhcpd::read_leases(input, &mut out)?,
        AttributionFormat::KeaCsv => kea::read_kea(input, &mut out)?,
        AttributionFormat::CgnatCsv => cgnat::read_csv(input, options, &mut out)?,
        AttributionFormat::CgnatJuniper => cgnat::read_juniper(input, options, &mut out)?,
    }
    Ok(out.summary)
}

/// The sink and the counts, with the checks every format shares.
struct Out<'a> {
    sink: &'a mut dyn AttributionSink,
    summary: AttributionSummary,
}

impl Out<'_> {
    fn emit(&mut self, event: AttributionEvent) -> Result<(), Error> {
        match &event {
            AttributionEvent::Address(_) => self.summary.events += 1,
            AttributionEvent::Skipped { .. } => self.summary.skipped += 1,
            AttributionEvent::Rejected { .. } => self.summary.rejected += 1,
        }
        let line = event.line();
        self.sink.event(event).map_err(|reason| Error::Stopped {
            location: Location::Line(line),
            reason,
        })
    }

    /// Emits `event`, or a rejection at its line when its times or ports
    /// cannot be right.
    fn address(&mut self, event: AddressEvent) -> Result<(), Error> {
        match check(&event) {
            Ok(()) => self.emit(AttributionEvent::Address(event)),
            Err(reason) => self.reject(event.line, reason),
        }
    }

    fn skip(&mut self, line: u64, reason: &'static str) -> Result<(), Error> {
        self.emit(AttributionEvent::Skipped { line, reason })
    }

    fn reject(&mut self, line: u64, reason: impl Into<String>) -> Result<(), Error> {
        self.emit(AttributionEvent::Rejected {
            line,
            reason: reason.into(),
        })
    }
}

/// What no real record can say: times outside 1990–2100, an interval that
/// ends before it starts, a port block upside down.
fn check(e: &AddressEvent) -> Result<(), String> {
    for t in [Some(e.at), e.start, e.end].into_iter().flatten() {
        if !time::plausible(t) {
            return Err(format!(
                "time {} is outside 1990–2100",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
    }
    if let (Some(s), Some(end)) = (e.start, e.end)
        && end < s
    {
        return Err("the interval ends before it starts".into());
    }
    if let Some((first, last)) = e.ports
        && first > last
    {
        return Err(format!("port block {first}-{last}: first port above last"));
    }
    Ok(())
}

/// Every event `format` reports for `data`, for the readers' unit tests.
#[cfg(test)]
fn collect(format: AttributionFormat, data: &str) -> Vec<AttributionEvent> {
    let mut events = Vec::new();
    let mut sink = |e: AttributionEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let options = AttributionOptions::new(2026);
    if let Err(e) = read_attribution(format, data.as_bytes(), &options, &mut sink) {
        events.push(AttributionEvent::Rejected {
            line: 0,
            reason: format!("reader error: {e}"),
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: i64) -> AddressEvent {
        AddressEvent {
            line: 3,
            action: AddressAction::Start,
            at: chrono::DateTime::from_timestamp(at, 0).unwrap(),
            start: None,
            end: None,
            network: "203.0.113.5/32".parse().unwrap(),
            ports: Some((2048, 2559)),
            identity: None,
            inside: None,
            session: None,
            calling_station: None,
        }
    }

    #[test]
    fn checks_times_and_ports() {
        assert_eq!(check(&event(1_795_489_200)), Ok(()));
        assert_eq!(
            check(&event(0)),
            Err("time 1970-01-01T00:00:00Z is outside 1990–2100".into())
        );
        assert!(check(&event(4_102_444_800)).is_err());
        let mut e = event(1_795_489_200);
        e.ports = Some((2559, 2048));
        assert_eq!(
            check(&e),
            Err("port block 2559-2048: first port above last".into())
        );
        let mut e = event(1_795_489_200);
        e.start = Some(e.at);
        e.end = e.at.checked_sub_signed(chrono::TimeDelta::seconds(1));
        assert_eq!(check(&e), Err("the interval ends before it starts".into()));
    }

    #[test]
    fn sink_stop_names_the_line() {
        let mut sink = |_e: AttributionEvent| -> Result<(), String> { Err("strict".into()) };
        let mut out = Out {
            sink: &mut sink,
            summary: AttributionSummary::default(),
        };
        match out.skip(7, "comment") {
            Err(Error::Stopped { location, reason }) => {
                assert_eq!(location, Location::Line(7));
                assert_eq!(reason, "strict");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.summary.skipped, 1);
    }

    #[test]
    fn default_options_are_vietnam() {
        let o = AttributionOptions::new(2026);
        assert_eq!(o.local_offset.local_minus_utc(), 7 * 3600);
        assert_eq!(o.default_year, 2026);
        assert_eq!(AttributionOptions::default().local_offset, o.local_offset);
    }
}
