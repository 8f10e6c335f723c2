//! Carrier-grade NAT port-block logs: a CSV export, and Juniper MX/SRX
//! syslog lines.
//!
//! Behind CGNAT a public address is shared, so attribution needs the port:
//! each allocation gives one inside address a block of ports on a public
//! address (`100.64.1.2 -> 203.0.113.5:2048-2559`). The inside address is
//! then resolved through RADIUS or DHCP like any other.
//!
//! Juniper's services cards log (MS-MPC `JSERVICES_…`, MS-DPC `ASP_…`):
//!
//! ```text
//! Nov 24 10:00:00 cgnat-1 (FPC Slot 1, PIC Slot 0) 2026-11-24 03:00:00: {nat-set}[jservices-nat]: JSERVICES_NAT_PORT_BLOCK_ALLOC: 100.64.1.2 -> 203.0.113.5:2048-2559 0x6b04fdb0
//! ```
//!
//! `…_PORT_BLOCK_ALLOC` is a Start, `…_RELEASE` a Stop, `…_ACTIVE` (the
//! interim log) an Interim. The time is the `0x…` stamp (unix seconds)
//! when the line has one; else the PIC's own `YYYY-MM-DD HH:MM:SS` stamp,
//! which the card writes in UTC; else the syslog header, read with
//! [`AttributionOptions::default_year`] and
//! [`AttributionOptions::local_offset`] (or as written when it is RFC 3339).

use std::io::BufRead;
use std::net::IpAddr;

use chrono::DateTime;
use ipnet::IpNet;
use khien_model::Timestamp;

use super::lines::{Line, Lines, Next};
use super::table::{self, Header, Outcome, Row, Style, quoted};
use super::{AddressAction, AddressEvent, AttributionFormat, AttributionOptions, Out, time};
use crate::Error;

const NOT_PORT_BLOCK: &str = "not a port-block message";

/// The pairing key of a port block: `203.0.113.5:2048-2559`.
fn block_key(public: IpAddr, first: u16, last: u16) -> String {
    match public {
        IpAddr::V4(a) => format!("{a}:{first}-{last}"),
        IpAddr::V6(a) => format!("[{a}]:{first}-{last}"),
    }
}

fn block_event(
    line: u64,
    action: AddressAction,
    at: Timestamp,
    public: IpAddr,
    ports: (u16, u16),
    inside: Option<IpAddr>,
    identity: Option<String>,
) -> AddressEvent {
    AddressEvent {
        line,
        action,
        at,
        start: None,
        end: None,
        network: IpNet::from(public),
        ports: Some(ports),
        identity,
        inside,
        session: Some(block_key(public, ports.0, ports.1)),
        calling_station: None,
    }
}

#[derive(Debug)]
struct Columns {
    time: usize,
    event: usize,
    public_ip: usize,
    port_start: usize,
    port_end: usize,
    inside_ip: Option<usize>,
    subscriber: Option<usize>,
}

const INSIDE: &[&str] = &["inside_ip", "private_ip"];
const SUBSCRIBER: &[&str] = &["subscriber", "user", "username"];

fn columns(h: &Header) -> Result<Columns, String> {
    let mut missing = Vec::new();
    let mut need = |aliases: &[&str]| h.require(aliases).map_err(|m| missing.push(m)).ok();
    let time = need(&["time", "timestamp"]);
    let event = need(&["event", "action"]);
    let public_ip = need(&["public_ip", "nat_ip"]);
    let port_start = need(&["port_start", "first_port"]);
    let port_end = need(&["port_end", "last_port"]);
    let inside_ip = h.find(INSIDE);
    let subscriber = h.find(SUBSCRIBER);
    if inside_ip.is_none() && subscriber.is_none() {
        missing.push("no column inside_ip or subscriber (one of them is needed)".into());
    }
    let (Some(time), Some(event), Some(public_ip), Some(port_start), Some(port_end), true) = (
        time,
        event,
        public_ip,
        port_start,
        port_end,
        missing.is_empty(),
    ) else {
        return Err(missing.join("; "));
    };
    Ok(Columns {
        time,
        event,
        public_ip,
        port_start,
        port_end,
        inside_ip,
        subscriber,
    })
}

fn csv_action(v: &str) -> Option<AddressAction> {
    Some(match v.to_ascii_lowercase().as_str() {
        "alloc" | "allocate" | "allocation" | "start" => AddressAction::Start,
        "release" | "free" | "stop" => AddressAction::Stop,
        "interim" | "active" | "update" => AddressAction::Interim,
        _ => return None,
    })
}

/// Reads a CGNAT port-block CSV (header required).
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
        AttributionFormat::CgnatCsv,
        input,
        out,
        style,
        columns,
        |c, r| csv_row(c, r, options),
    )
}

fn csv_row(c: &Columns, r: &Row<'_>, options: &AttributionOptions) -> Result<Outcome, String> {
    let action = r.require(c.event, "alloc, release or interim", csv_action)?;
    let at = r.require(c.time, "a time", |v| time::plain(v, options.local_offset))?;
    let public = r.require(c.public_ip, "an IP address", |v| v.parse::<IpAddr>().ok())?;
    let port = |col| r.require(col, "a port", |v| v.parse::<u16>().ok());
    let ports = (port(c.port_start)?, port(c.port_end)?);
    let inside = r.parse(c.inside_ip, "an IP address", |v| v.parse::<IpAddr>().ok())?;
    let identity = r.get(c.subscriber).map(str::to_string);
    if inside.is_none() && identity.is_none() {
        return Err("no inside address or subscriber".into());
    }
    Ok(Outcome::Events(vec![block_event(
        r.line, action, at, public, ports, inside, identity,
    )]))
}

/// Reads Juniper port-block syslog lines; other lines are skipped.
pub(super) fn read_juniper(
    input: impl BufRead,
    options: &AttributionOptions,
    out: &mut Out<'_>,
) -> Result<(), Error> {
    let mut lines = Lines::new(input, AttributionFormat::CgnatJuniper);
    while let Some(Next {
        number: n,
        line,
        terminated,
    }) = lines.next_line()?
    {
        let text = match line {
            Line::Text(t) => t,
            other => {
                out.reject(n, other.problem().unwrap_or_default())?;
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        if !terminated {
            out.reject(n, "line is cut at the end of the file (no newline)")?;
            continue;
        }
        match juniper_line(text, n, options) {
            Ok(Some(e)) => out.address(e)?,
            Ok(None) => out.skip(n, NOT_PORT_BLOCK)?,
            Err(reason) => out.reject(n, reason)?,
        }
    }
    Ok(())
}

fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
}

/// One syslog line: `Ok(None)` when it is not a port-block message.
fn juniper_line(
    t: &str,
    line: u64,
    options: &AttributionOptions,
) -> Result<Option<AddressEvent>, String> {
    const MARK: &str = "_PORT_BLOCK_";
    let Some(k) = t.find(MARK) else {
        return Ok(None);
    };
    let b = t.as_bytes();
    let tag_start = b[..k]
        .iter()
        .rposition(|c| !is_tag_byte(*c))
        .map_or(0, |i| i + 1);
    let after = k + MARK.len();
    let tag_end = b[after..]
        .iter()
        .position(|c| !is_tag_byte(*c))
        .map_or(b.len(), |i| after + i);
    if b.get(tag_end) != Some(&b':') {
        return Ok(None);
    }
    let action = match &t[after..tag_end] {
        "ALLOC" => AddressAction::Start,
        "RELEASE" => AddressAction::Stop,
        "ACTIVE" => AddressAction::Interim,
        _ => return Ok(None),
    };
    let tag = &t[tag_start..tag_end];
    let body = t[tag_end + 1..].trim();
    let Some((inside, block)) = body.split_once("->") else {
        return Err(format!("{tag} without \"inside -> public:ports\""));
    };
    let inside = inside.trim();
    let inside: IpAddr = inside
        .parse()
        .map_err(|_| format!("inside address {} is not an IP address", quoted(inside)))?;
    let mut rest = block.split_whitespace();
    let target = rest.next().unwrap_or_default();
    let (public, ports) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("{} is not public:first-last", quoted(target)))?;
    let public = public.trim_start_matches('[').trim_end_matches(']');
    let public: IpAddr = public
        .parse()
        .map_err(|_| format!("public address {} is not an IP address", quoted(public)))?;
    let (first, last) = ports
        .split_once('-')
        .and_then(|(a, z)| Some((a.parse::<u16>().ok()?, z.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("port block {} is not first-last", quoted(ports)))?;
    let stamp = rest.find_map(|w| w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")));
    let at = match stamp {
        Some(h) => u32::from_str_radix(h, 16)
            .ok()
            .and_then(|s| DateTime::from_timestamp(i64::from(s), 0))
            .ok_or_else(|| format!("time stamp 0x{h} is not hexadecimal unix seconds"))?,
        None => pic_stamp(&t[..tag_start])
            .or_else(|| syslog_header(t, options))
            .ok_or_else(|| "no time on the line".to_string())?,
    };
    Ok(Some(block_event(
        line,
        action,
        at,
        public,
        (first, last),
        Some(inside),
        None,
    )))
}

/// The PIC's `2026-11-24 03:00:00:` stamp before the message (UTC).
fn pic_stamp(prefix: &str) -> Option<Timestamp> {
    let words: Vec<&str> = prefix.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        let (date, clock) = (w[0], w[1].trim_end_matches(':'));
        let shaped = date.len() == 10 && date.as_bytes()[4] == b'-' && clock.len() == 8;
        if shaped {
            time::iso_utc(date, clock)
        } else {
            None
        }
    })
}

/// The syslog header's time: RFC 3339 (RFC 5424 or a high-precision
/// rsyslog template), or BSD `Nov 24 10:00:00` in `default_year` at
/// `local_offset`.
fn syslog_header(t: &str, options: &AttributionOptions) -> Option<Timestamp> {
    let t = match t.strip_prefix('<') {
        Some(r) => r.split_once('>').map_or(r, |(_, rest)| rest),
        None => t,
    };
    let mut words = t.split_whitespace();
    let first = words.next()?;
    let first = if first == "1" { words.next()? } else { first };
    if let Ok(stamp) = DateTime::parse_from_rfc3339(first) {
        return Some(stamp.with_timezone(&chrono::Utc));
    }
    let (day, clock) = (words.next()?, words.next()?);
    let year = options.default_year.to_string();
    time::local(
        time::date_time(&year, first, day, clock)?,
        options.local_offset,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> AttributionOptions {
        AttributionOptions::new(2026)
    }

    fn at(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn juniper_times_in_order_of_trust() {
        let base = "Nov 24 10:00:00 cgnat-1 (FPC Slot 1, PIC Slot 0) 2026-11-24 03:00:05: {nat-set}[jservices-nat]: JSERVICES_NAT_PORT_BLOCK_ALLOC: 100.64.1.2 -> 203.0.113.5:2048-2559";
        let with_hex = format!("{base} 0x6b04fdb0");
        let e = juniper_line(&with_hex, 1, &opts()).unwrap().unwrap();
        assert_eq!(e.at, at("2026-11-24T03:00:00Z"));
        let e = juniper_line(base, 1, &opts()).unwrap().unwrap();
        assert_eq!(e.at, at("2026-11-24T03:00:05Z"));
        let bare = "Nov 24 10:00:10 cgnat-1 {nat-set}[jservices-nat]: JSERVICES_NAT_PORT_BLOCK_RELEASE: 100.64.1.2 -> 203.0.113.5:2048-2559";
        let e = juniper_line(bare, 1, &opts()).unwrap().unwrap();
        assert_eq!(e.at, at("2026-11-24T03:00:10Z"));
        assert_eq!(e.action, AddressAction::Stop);
        let rfc = "<134>1 2026-11-24T10:00:20+07:00 cgnat-1 - - - [FWNAT]:ASP_NAT_PORT_BLOCK_ACTIVE: 2001:db8::1 -> 203.0.113.5:1024-1151";
        let e = juniper_line(rfc, 1, &opts()).unwrap().unwrap();
        assert_eq!(e.at, at("2026-11-24T03:00:20Z"));
        assert_eq!(e.action, AddressAction::Interim);
        assert_eq!(e.inside, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(e.session.as_deref(), Some("203.0.113.5:1024-1151"));
    }

    #[test]
    fn juniper_other_lines() {
        assert_eq!(
            juniper_line("Nov 24 10:00:00 mx sshd[1]: hi", 1, &opts()),
            Ok(None)
        );
        assert_eq!(
            juniper_line("x JSERVICES_NAT_PORT_BLOCK_EXHAUSTED: pool", 1, &opts()),
            Ok(None)
        );
        assert_eq!(
            juniper_line(
                "Nov 24 10:00:00 x JSERVICES_NAT_PORT_BLOCK_ALLOC: 100.64.1.2",
                1,
                &opts()
            ),
            Err("JSERVICES_NAT_PORT_BLOCK_ALLOC without \"inside -> public:ports\"".into())
        );
        assert_eq!(
            juniper_line(
                "Nov 24 10:00:00 x JSERVICES_NAT_PORT_BLOCK_ALLOC: 100.64.1.2 -> 203.0.113.5:2048-99999",
                1,
                &opts()
            ),
            Err("port block \"2048-99999\" is not first-last".into())
        );
        assert_eq!(
            juniper_line(
                "JSERVICES_NAT_PORT_BLOCK_ALLOC: 100.64.1.2 -> 203.0.113.5:2048-2559",
                1,
                &opts()
            ),
            Err("no time on the line".into())
        );
    }

    #[test]
    fn csv_actions() {
        assert_eq!(csv_action("ALLOC"), Some(AddressAction::Start));
        assert_eq!(csv_action("free"), Some(AddressAction::Stop));
        assert_eq!(csv_action("active"), Some(AddressAction::Interim));
        assert_eq!(csv_action("maybe"), None);
    }

    #[test]
    fn block_keys() {
        assert_eq!(
            block_key("203.0.113.5".parse().unwrap(), 2048, 2559),
            "203.0.113.5:2048-2559"
        );
        assert_eq!(
            block_key("2001:db8::5".parse().unwrap(), 1, 2),
            "[2001:db8::5]:1-2"
        );
    }
}
