//! RADIUS accounting: FreeRADIUS `detail` files and CSV exports.
//!
//! A `detail` record is a ctime date line in the server's local time, then
//! one `\tAttribute = value` line per attribute, then a blank line:
//!
//! ```text
//! Tue Nov 24 10:00:00 2026
//!     Acct-Status-Type = Start
//!     User-Name = "alice@isp.vn"
//!     Framed-IP-Address = 100.64.1.2
//!     Event-Timestamp = "Nov 24 2026 10:00:00 +07"
//!     Timestamp = 1795489200
//! ```
//!
//! (The attribute lines start with a tab.) The event's time is Event-Timestamp (the NAS's clock at the event), else
//! `Timestamp` (the server's arrival time), else the date line; the latter
//! two are moved back by Acct-Delay-Time, as RFC 2866 §5.2 says to. Only the
//! attributes read are kept, so a record of any length costs a few strings.
//! A line that is not UTF-8 or too long is rejected by itself and the record
//! goes on without it; a record whose last line was cut (no newline at the
//! end of the file) is rejected whole, since its last value may be cut too.

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::TimeDelta;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use khien_model::Timestamp;

use super::lines::{Line, Lines, Next};
use super::table::{self, Header, Outcome, Row, Style, quoted};
use super::{AddressAction, AddressEvent, AttributionFormat, AttributionOptions, Out, time};
use crate::Error;

/// Acct-Status-Type, as far as attribution cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Start,
    Interim,
    Stop,
    /// Accounting-On/Off: a NAS rebooted, no session.
    OnOff,
    /// Tunnel-* and Failed: not about a subscriber's address.
    Other,
}

/// Names and numbers (RFC 2866, 2867), any case, `-` or `_`.
fn status(s: &str) -> Option<Status> {
    let n: String = s
        .trim()
        .chars()
        .map(|c| match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    Some(match n.as_str() {
        "start" | "1" => Status::Start,
        "stop" | "2" => Status::Stop,
        "interim-update" | "interim" | "alive" | "3" => Status::Interim,
        "accounting-on" | "accounting-off" | "7" | "8" => Status::OnOff,
        "tunnel-start" | "tunnel-stop" | "tunnel-reject" | "tunnel-link-start"
        | "tunnel-link-stop" | "tunnel-link-reject" | "failed" | "9" | "10" | "11" | "12"
        | "13" | "14" | "15" => Status::Other,
        _ => return None,
    })
}

/// The attributes the detail reader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attr {
    StatusType,
    UserName,
    FramedIp,
    FramedIpv6Prefix,
    DelegatedIpv6Prefix,
    FramedIpv6Address,
    CallingStation,
    SessionId,
    NasIp,
    NasIpv6,
    SessionTime,
    DelayTime,
    EventTimestamp,
    Timestamp,
}

const ATTRS: [(&str, Attr); 14] = [
    ("Acct-Status-Type", Attr::StatusType),
    ("User-Name", Attr::UserName),
    ("Framed-IP-Address", Attr::FramedIp),
    ("Framed-IPv6-Prefix", Attr::FramedIpv6Prefix),
    ("Delegated-IPv6-Prefix", Attr::DelegatedIpv6Prefix),
    ("Framed-IPv6-Address", Attr::FramedIpv6Address),
    ("Calling-Station-Id", Attr::CallingStation),
    ("Acct-Session-Id", Attr::SessionId),
    ("NAS-IP-Address", Attr::NasIp),
    ("NAS-IPv6-Address", Attr::NasIpv6),
    ("Acct-Session-Time", Attr::SessionTime),
    ("Acct-Delay-Time", Attr::DelayTime),
    ("Event-Timestamp", Attr::EventTimestamp),
    ("Timestamp", Attr::Timestamp),
];

impl Attr {
    fn from_name(name: &str) -> Option<Self> {
        ATTRS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| *a)
    }

    fn name(self) -> &'static str {
        ATTRS
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Attribute lines kept per record: the first of each read attribute, and
/// a few addresses.
const MAX_KEPT: usize = 32;

/// A detail record being read.
#[derive(Debug)]
struct Record {
    line: u64,
    /// The date line as a time, or the reason it is not one.
    header: Result<Timestamp, String>,
    /// (line, attribute, value) of the attributes read, in order.
    attrs: Vec<(u64, Attr, String)>,
    /// The first read attribute whose value could not be unquoted.
    bad: Option<(u64, Attr, String)>,
    /// Already rejected (its date line was not UTF-8).
    rejected: bool,
}

impl Record {
    fn new(line: u64, header: Result<Timestamp, String>) -> Self {
        Self {
            line,
            header,
            attrs: Vec::new(),
            bad: None,
            rejected: false,
        }
    }

    fn first(&self, a: Attr) -> Option<(u64, &str)> {
        self.attrs
            .iter()
            .find(|(_, x, v)| *x == a && !v.trim().is_empty())
            .map(|(l, _, v)| (*l, v.trim()))
    }

    /// Keeps an attribute line if it is one that is read.
    fn keep(&mut self, n: u64, t: &str) {
        let Some((name, value)) = t.split_once('=') else {
            return;
        };
        let Some(attr) = Attr::from_name(name.trim()) else {
            return;
        };
        // Only the first of each is read, except addresses (dual stack).
        let address = matches!(
            attr,
            Attr::FramedIp
                | Attr::FramedIpv6Prefix
                | Attr::DelegatedIpv6Prefix
                | Attr::FramedIpv6Address
        );
        if self.attrs.len() >= MAX_KEPT
            || (!address && self.attrs.iter().any(|(_, a, _)| *a == attr))
        {
            return;
        }
        match unquote(value.trim()) {
            Ok(v) => self.attrs.push((n, attr, v)),
            Err(reason) => {
                self.bad.get_or_insert((n, attr, reason));
            }
        }
    }
}

fn cut(line: u64) -> String {
    format!("record at line {line} is cut at the end of the file")
}

/// Reads a FreeRADIUS detail file.
pub(super) fn read_detail(
    input: impl BufRead,
    options: &AttributionOptions,
    out: &mut Out<'_>,
) -> Result<(), Error> {
    let mut lines = Lines::new(input, AttributionFormat::RadiusDetail);
    let mut record: Option<Record> = None;
    // Inside attribute lines that have no date line (a file that starts
    // mid-record): rejected once, then passed over.
    let mut orphan = false;
    while let Some(Next {
        number: n,
        line,
        terminated,
    }) = lines.next_line()?
    {
        let blank = matches!(line, Line::Text(t) if t.trim().is_empty());
        let starts_record = match line {
            Line::Text(t) => !blank && !t.starts_with([' ', '\t']),
            Line::NotUtf8 { indented } => !indented,
            Line::TooLong => false,
        };
        if !terminated && !blank {
            // The last line, and the writer was stopped inside it.
            if starts_record {
                finish(record.take(), options, out)?;
                out.reject(n, cut(n))?;
            } else if let Some(r) = record.take() {
                if !r.rejected {
                    out.reject(r.line, cut(r.line))?;
                }
            } else if !orphan {
                out.reject(n, "attribute lines without a record date line")?;
            }
            break;
        }
        if blank {
            finish(record.take(), options, out)?;
            orphan = false;
            continue;
        }
        if starts_record {
            finish(record.take(), options, out)?;
            orphan = false;
            record = Some(match line {
                Line::Text(t) => Record::new(
                    n,
                    time::ctime(t, options.local_offset).ok_or_else(|| {
                        format!("record date line {} is not a date", quoted(t.trim()))
                    }),
                ),
                _ => {
                    out.reject(n, "line is not UTF-8")?;
                    let mut r = Record::new(n, Err(String::new()));
                    r.rejected = true;
                    r
                }
            });
            continue;
        }
        match (line, record.as_mut()) {
            (Line::Text(t), Some(r)) => r.keep(n, t),
            (Line::Text(_), None) if !orphan => {
                orphan = true;
                out.reject(n, "attribute lines without a record date line")?;
            }
            (Line::Text(_), None) => {}
            (other, _) => out.reject(n, other.problem().unwrap_or_default())?,
        }
    }
    finish(record.take(), options, out)
}

/// A detail value: bare, or quoted with `\"`, `\\`, `\n`, `\r`, `\t` and
/// `\ooo` (octal) escapes as FreeRADIUS writes them.
fn unquote(v: &str) -> Result<String, String> {
    let Some(body) = v.strip_prefix('"') else {
        return Ok(v.to_string());
    };
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                if bytes[i + 1..].iter().any(|b| !b.is_ascii_whitespace()) {
                    return Err("text after the closing quote".into());
                }
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            b'\\' => {
                let Some(&e) = bytes.get(i + 1) else {
                    break;
                };
                let octal = bytes
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
                if let Some(d) = octal {
                    let n = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                    out.push(u8::try_from(n).unwrap_or(b'?'));
                    i += 4;
                    continue;
                }
                out.push(match e {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    other => other,
                });
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Err("unterminated quoted value".into())
}

/// Turns a finished record into events, a skip or a rejection.
fn finish(
    record: Option<Record>,
    options: &AttributionOptions,
    out: &mut Out<'_>,
) -> Result<(), Error> {
    let Some(r) = record else {
        return Ok(());
    };
    if r.rejected {
        return Ok(());
    }
    match accounting(&r, options) {
        Ok(acc) => acc.emit(out),
        Err(Reply::Skip(reason)) => out.skip(r.line, reason),
        Err(Reply::Reject(reason)) => out.reject(r.line, reason),
    }
}

enum Reply {
    Skip(&'static str),
    Reject(String),
}

/// What one accounting record says, whichever file it came from.
#[derive(Debug)]
struct Accounting {
    line: u64,
    action: AddressAction,
    at: Timestamp,
    session_time: Option<u32>,
    user: Option<String>,
    calling: Option<String>,
    session: Option<String>,
    networks: Vec<IpNet>,
}

impl Accounting {
    fn events(self) -> Vec<AddressEvent> {
        let start = match (self.action, self.session_time) {
            (AddressAction::Stop | AddressAction::Interim, Some(secs)) => self
                .at
                .checked_sub_signed(TimeDelta::seconds(i64::from(secs))),
            _ => None,
        };
        self.networks
            .iter()
            .map(|network| AddressEvent {
                line: self.line,
                action: self.action,
                at: self.at,
                start,
                end: None,
                network: *network,
                ports: None,
                identity: self.user.clone(),
                inside: None,
                session: self.session.clone(),
                calling_station: self.calling.clone(),
            })
            .collect()
    }

    fn emit(self, out: &mut Out<'_>) -> Result<(), Error> {
        for e in self.events() {
            out.address(e)?;
        }
        Ok(())
    }
}

/// `nas/session`, or the session id alone.
fn session_key(session: Option<&str>, nas: Option<&str>) -> Option<String> {
    let s = session?;
    Some(match nas {
        Some(n) => format!("{n}/{s}"),
        None => s.to_string(),
    })
}

/// An address the NAS did not really assign: 0.0.0.0 (not yet known),
/// 255.255.255.254/255 (RFC 2865's "NAS should select" and "user may
/// select" markers).
fn unassigned(ip: Ipv4Addr) -> bool {
    ip.is_unspecified() || ip.octets() == [255, 255, 255, 254] || ip.is_broadcast()
}

fn action(s: Status) -> Result<AddressAction, Reply> {
    match s {
        Status::Start => Ok(AddressAction::Start),
        Status::Interim => Ok(AddressAction::Interim),
        Status::Stop => Ok(AddressAction::Stop),
        Status::OnOff => Err(Reply::Skip("accounting on/off")),
        Status::Other => Err(Reply::Skip("not a session start, update or stop")),
    }
}

fn accounting(r: &Record, options: &AttributionOptions) -> Result<Accounting, Reply> {
    let line = r.line;
    let bad = |a: Attr, l: u64, reason: &str| {
        Reply::Reject(format!(
            "record at line {line}: {} on line {l} {reason}",
            a.name()
        ))
    };
    let header = r.header.clone().map_err(Reply::Reject)?;
    if let Some((l, a, reason)) = &r.bad {
        return Err(bad(*a, *l, &format!("cannot be read: {reason}")));
    }
    let Some((sl, sv)) = r.first(Attr::StatusType) else {
        return Err(Reply::Reject(format!(
            "record at line {line} has no Acct-Status-Type"
        )));
    };
    let status = status(sv)
        .ok_or_else(|| bad(Attr::StatusType, sl, &format!("is unknown: {}", quoted(sv))))?;
    let action = action(status)?;

    let mut networks: Vec<IpNet> = Vec::new();
    let mut saw_unassigned = None;
    for (l, a, v) in &r.attrs {
        let v = v.trim();
        let net = match a {
            Attr::FramedIp => match v.parse::<Ipv4Addr>() {
                Ok(ip) if unassigned(ip) => {
                    saw_unassigned = Some(ip);
                    continue;
                }
                Ok(ip) => IpNet::V4(Ipv4Net::from(ip)),
                Err(_) => {
                    return Err(bad(
                        *a,
                        *l,
                        &format!("is not an IPv4 address: {}", quoted(v)),
                    ));
                }
            },
            Attr::FramedIpv6Prefix | Attr::DelegatedIpv6Prefix => match v.parse::<Ipv6Net>() {
                Ok(p) => IpNet::V6(p.trunc()),
                Err(_) => {
                    return Err(bad(
                        *a,
                        *l,
                        &format!("is not an IPv6 prefix: {}", quoted(v)),
                    ));
                }
            },
            Attr::FramedIpv6Address => match v.parse::<Ipv6Addr>() {
                Ok(ip) => IpNet::V6(Ipv6Net::from(ip)),
                Err(_) => {
                    return Err(bad(
                        *a,
                        *l,
                        &format!("is not an IPv6 address: {}", quoted(v)),
                    ));
                }
            },
            _ => continue,
        };
        if !networks.contains(&net) {
            networks.push(net);
        }
    }
    if networks.is_empty() {
        return Err(Reply::Reject(match saw_unassigned {
            Some(ip) => {
                format!("record at line {line} has no assigned address (Framed-IP-Address {ip})")
            }
            None => {
                format!("record at line {line} has no Framed-IP-Address or Framed-IPv6-Prefix")
            }
        }));
    }

    let seconds = |a: Attr| -> Result<Option<u32>, Reply> {
        match r.first(a) {
            None => Ok(None),
            Some((l, v)) => v
                .parse::<u32>()
                .map(Some)
                .map_err(|_| bad(a, l, &format!("is not a number of seconds: {}", quoted(v)))),
        }
    };
    let delay = TimeDelta::seconds(i64::from(seconds(Attr::DelayTime)?.unwrap_or(0)));
    let session_time = seconds(Attr::SessionTime)?;
    let at = if let Some((l, v)) = r.first(Attr::EventTimestamp) {
        time::radius(v, options.local_offset).ok_or_else(|| {
            bad(
                Attr::EventTimestamp,
                l,
                &format!("is not a time: {}", quoted(v)),
            )
        })?
    } else {
        let arrival = match r.first(Attr::Timestamp) {
            Some((l, v)) => time::unix(v).ok_or_else(|| {
                bad(
                    Attr::Timestamp,
                    l,
                    &format!("is not unix seconds: {}", quoted(v)),
                )
            })?,
            None => header,
        };
        arrival.checked_sub_signed(delay).unwrap_or(arrival)
    };
    let text = |a: Attr| r.first(a).map(|(_, v)| v.to_string());
    let nas = text(Attr::NasIp).or_else(|| text(Attr::NasIpv6));
    Ok(Accounting {
        line,
        action,
        at,
        session_time,
        user: text(Attr::UserName),
        calling: text(Attr::CallingStation),
        session: session_key(text(Attr::SessionId).as_deref(), nas.as_deref()),
        networks,
    })
}

/// Column positions of a RADIUS CSV export.
#[derive(Debug)]
struct Columns {
    time: usize,
    status: usize,
    user: Option<usize>,
    address: Option<usize>,
    v6_prefix: Option<usize>,
    delegated: Option<usize>,
    calling: Option<usize>,
    session: Option<usize>,
    nas: Option<usize>,
    session_time: Option<usize>,
}

const TIME: &[&str] = &["time", "timestamp", "event_timestamp"];
const STATUS: &[&str] = &["status", "acct_status_type"];
const ADDRESS: &[&str] = &["address", "framed_ip_address", "ip"];

fn columns(h: &Header) -> Result<Columns, String> {
    let address = h.find(ADDRESS);
    let v6_prefix = h.find(&["framed_ipv6_prefix"]);
    let delegated = h.find(&["delegated_ipv6_prefix"]);
    let mut missing = Vec::new();
    let time = h.require(TIME).map_err(|m| missing.push(m)).ok();
    let status = h.require(STATUS).map_err(|m| missing.push(m)).ok();
    if address.is_none() && v6_prefix.is_none() && delegated.is_none() {
        missing.push("no address column (address, framed_ip_address, ip, framed_ipv6_prefix or delegated_ipv6_prefix)".into());
    }
    let (Some(time), Some(status), true) = (time, status, missing.is_empty()) else {
        return Err(missing.join("; "));
    };
    Ok(Columns {
        time,
        status,
        user: h.find(&["user", "user_name", "username"]),
        address,
        v6_prefix,
        delegated,
        calling: h.find(&["calling_station_id"]),
        session: h.find(&["session", "acct_session_id"]),
        nas: h.find(&["nas_ip_address"]),
        session_time: h.find(&["session_time", "acct_session_time"]),
    })
}

/// Reads a RADIUS accounting CSV export (header required).
pub(super) fn read_csv(
    input: impl BufRead,
    options: &AttributionOptions,
    out: &mut Out<'_>,
) -> Result<(), Error> {
    let style = Style {
        quoted: true,
        daemon: false,
    };
    table::read_table(
        AttributionFormat::RadiusCsv,
        input,
        out,
        style,
        columns,
        |c, row| csv_row(c, row, options),
    )
}

fn csv_row(c: &Columns, row: &Row<'_>, options: &AttributionOptions) -> Result<Outcome, String> {
    let status = row.require(c.status, "an Acct-Status-Type", status)?;
    let action = match action(status) {
        Ok(a) => a,
        Err(Reply::Skip(reason)) => return Ok(Outcome::Skip(reason)),
        Err(Reply::Reject(reason)) => return Err(reason),
    };
    let at = row.require(c.time, "a time", |v| time::plain(v, options.local_offset))?;
    let mut networks = Vec::new();
    if let Some(ip) = row.parse(c.address, "an IP address", |v| v.parse::<IpAddr>().ok())?
        && !matches!(ip, IpAddr::V4(v4) if unassigned(v4))
    {
        networks.push(IpNet::from(ip));
    }
    for col in [c.v6_prefix, c.delegated] {
        if let Some(p) = row.parse(col, "an IPv6 prefix", |v| v.parse::<Ipv6Net>().ok())? {
            let net = IpNet::V6(p.trunc());
            if !networks.contains(&net) {
                networks.push(net);
            }
        }
    }
    if networks.is_empty() {
        return Err("no assigned address in the address columns".into());
    }
    let text = |col| row.get(col).map(str::to_string);
    let acc = Accounting {
        line: row.line,
        action,
        at,
        session_time: row.parse(c.session_time, "a number of seconds", |v| v.parse().ok())?,
        user: text(c.user),
        calling: text(c.calling),
        session: session_key(row.get(c.session), row.get(c.nas)),
        networks,
    };
    Ok(Outcome::Events(acc.events()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_and_numbers() {
        assert_eq!(status("Start"), Some(Status::Start));
        assert_eq!(status("interim_update"), Some(Status::Interim));
        assert_eq!(status("Alive"), Some(Status::Interim));
        assert_eq!(status("2"), Some(Status::Stop));
        assert_eq!(status("Accounting-Off"), Some(Status::OnOff));
        assert_eq!(status("Tunnel-Start"), Some(Status::Other));
        assert_eq!(status("Begin"), None);
    }

    #[test]
    fn unquotes_freeradius_values() {
        assert_eq!(unquote("100.64.1.2"), Ok("100.64.1.2".into()));
        assert_eq!(unquote(r#""a\"b\\c""#), Ok(r#"a"b\c"#.into()));
        assert_eq!(unquote(r#""x\101y\n""#), Ok("xAy\n".into()));
        assert_eq!(unquote(r#""open"#), Err("unterminated quoted value".into()));
        assert_eq!(
            unquote(r#""a" b"#),
            Err("text after the closing quote".into())
        );
        assert_eq!(
            unquote(r#""trailing\"#),
            Err("unterminated quoted value".into())
        );
    }

    #[test]
    fn repeated_attributes_cannot_crowd_out_the_address() {
        let mut data = String::from("Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Start\n");
        for i in 0..100 {
            data.push_str(&format!("\tUser-Name = \"u{i}\"\n"));
        }
        data.push_str("\tFramed-IP-Address = 100.64.1.2\n\n");
        match super::super::collect(AttributionFormat::RadiusDetail, &data).as_slice() {
            [super::super::AttributionEvent::Address(e)] => {
                assert_eq!(e.identity.as_deref(), Some("u0"));
                assert_eq!(e.network.to_string(), "100.64.1.2/32");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn session_keys() {
        assert_eq!(
            session_key(Some("0000001A"), Some("10.0.0.1")),
            Some("10.0.0.1/0000001A".into())
        );
        assert_eq!(session_key(Some("x"), None), Some("x".into()));
        assert_eq!(session_key(None, Some("10.0.0.1")), None);
    }

    #[test]
    fn unassigned_markers() {
        assert!(unassigned(Ipv4Addr::UNSPECIFIED));
        assert!(unassigned(Ipv4Addr::new(255, 255, 255, 254)));
        assert!(!unassigned(Ipv4Addr::new(100, 64, 1, 2)));
    }
}
