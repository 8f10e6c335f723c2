//! Log lines: resolver query logs, Zeek, Suricata eve.json, and CSV/JSON
//! lines described by a [`FieldMap`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use crate::error::snippet;
use crate::{DecodeError, MAX_LINE_BYTES, Record, TimeMs, time};

mod custom;
mod eve;
mod resolver;
mod zeek;

/// Asia/Ho_Chi_Minh, the default offset of timestamps without one.
pub const DEFAULT_UTC_OFFSET_SECONDS: i32 = 7 * 3600;

/// The log formats [`LineDecoder`] reads, by the names operators use
/// (`FromStr`/`Display`): `unbound`, `bind`, `dnsmasq`, `zeek`,
/// `zeek-json`, `eve`, `csv:FIELDS`, `json:FIELDS`. See [`FieldMap`] for
/// `FIELDS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFormat {
    /// Unbound with `log-queries: yes` (and `log-replies`), plain,
    /// `log-time-ascii` or through syslog.
    Unbound,
    /// BIND 9 `queries` category.
    Bind,
    /// dnsmasq `log-queries` (and `log-queries=extra`).
    Dnsmasq,
    /// Zeek TSV logs (dns, conn, http, ssl), `#fields` header honoured.
    ZeekTsv,
    /// Zeek JSON logs, one object per line.
    ZeekJson,
    /// Suricata eve.json: dns, flow, http and tls events.
    Eve,
    /// Delimited text with the given columns.
    Csv(FieldMap),
    /// One JSON object per line with the given keys.
    JsonLines(FieldMap),
}

/// Where a value lives in a CSV or JSON line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    /// 0-based column (CSV).
    Column(usize),
    /// Key, with `.` descending into nested objects and array indices
    /// (`dns.queries.0.rrname`) unless a key with that literal name exists
    /// (Zeek's `id.orig_h`). JSON.
    Key(String),
}

/// Which field holds what, for `csv:` and `json:` formats.
///
/// Spec: comma-separated `role=where` pairs, `where` a 0-based column for
/// CSV or a key path for JSON:
///
/// | role | aliases | meaning |
/// |---|---|---|
/// | `client` | `src` | client address (required) |
/// | `name` | `query`, `qname` | queried name → a DNS record |
/// | `time` | `ts` | time: Unix s/ms/µs/ns (by magnitude), RFC 3339, `Nov 25 10:00:01` or `25-Nov-2026 10:00:00`; absent → 0 |
/// | `port` | `client_port`, `sport` | client port |
/// | `qtype` | `type` | query type, number or mnemonic |
/// | `ip` | `server`, `dst` | address the client talked to → a flow record when there is no name |
/// | `dport` | `server_port` | its port |
/// | `proto` | `protocol` | IP protocol, number or `tcp`/`udp`/`icmp` |
/// | `packets` | | packet count |
/// | `bytes` | | byte count |
/// | `sep` | | CSV only: `comma` (default), `tab`, `semicolon`, `pipe`, `space` or one character |
///
/// Examples: `csv:time=0,client=2,name=5`,
/// `json:time=ts,client=src_ip,name=query,ip=dest_ip`.
///
/// A line whose `name` field is present and non-empty becomes a DNS record;
/// otherwise, with `ip` mapped, a flow record (counts 0 unless mapped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    /// Time field.
    pub time: Option<FieldRef>,
    /// Client address field.
    pub client: FieldRef,
    /// Client port field.
    pub client_port: Option<FieldRef>,
    /// Queried name field.
    pub name: Option<FieldRef>,
    /// Query type field.
    pub qtype: Option<FieldRef>,
    /// Server / destination address field.
    pub server: Option<FieldRef>,
    /// Server port field.
    pub server_port: Option<FieldRef>,
    /// IP protocol field.
    pub protocol: Option<FieldRef>,
    /// Packet count field.
    pub packets: Option<FieldRef>,
    /// Byte count field.
    pub bytes: Option<FieldRef>,
    /// CSV separator.
    pub separator: u8,
}

impl FieldMap {
    fn parse(spec: &str, csv: bool, whole: &str) -> Result<Self, DecodeError> {
        let bad = |what: String| DecodeError::BadFormatSpec {
            spec: whole.to_string(),
            what,
        };
        let mut client = None;
        let mut m = FieldMap {
            time: None,
            client: FieldRef::Column(0),
            client_port: None,
            name: None,
            qtype: None,
            server: None,
            server_port: None,
            protocol: None,
            packets: None,
            bytes: None,
            separator: b',',
        };
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((role, place)) = pair.split_once('=') else {
                return Err(bad(format!("{pair:?} is not role=field")));
            };
            let (role, place) = (role.trim(), place.trim());
            if role == "sep" {
                if !csv {
                    return Err(bad("sep= applies to csv: only".into()));
                }
                m.separator = match place {
                    "comma" | "," => b',',
                    "tab" | "\\t" => b'\t',
                    "semicolon" | ";" => b';',
                    "pipe" | "|" => b'|',
                    "space" => b' ',
                    p if p.len() == 1 && p.is_ascii() => p.as_bytes()[0],
                    p => return Err(bad(format!("separator {p:?} is not one ASCII character"))),
                };
                continue;
            }
            let r = if csv {
                FieldRef::Column(
                    place
                        .parse()
                        .map_err(|_| bad(format!("{role}={place}: column must be a number")))?,
                )
            } else {
                if place.is_empty() {
                    return Err(bad(format!("{role}= needs a key")));
                }
                FieldRef::Key(place.to_string())
            };
            let slot = match role {
                "client" | "src" => &mut client,
                "time" | "ts" => &mut m.time,
                "port" | "client_port" | "sport" => &mut m.client_port,
                "name" | "query" | "qname" => &mut m.name,
                "qtype" | "type" => &mut m.qtype,
                "ip" | "server" | "dst" => &mut m.server,
                "dport" | "server_port" => &mut m.server_port,
                "proto" | "protocol" => &mut m.protocol,
                "packets" => &mut m.packets,
                "bytes" => &mut m.bytes,
                other => return Err(bad(format!("unknown role {other:?}"))),
            };
            if slot.is_some() {
                return Err(bad(format!("{role} given twice")));
            }
            *slot = Some(r);
        }
        m.client = client.ok_or_else(|| bad("client= is required".into()))?;
        if m.name.is_none() && m.server.is_none() {
            return Err(bad("name= or ip= is required".into()));
        }
        Ok(m)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles: [(&str, Option<&FieldRef>); 10] = [
            ("time", self.time.as_ref()),
            ("client", Some(&self.client)),
            ("port", self.client_port.as_ref()),
            ("name", self.name.as_ref()),
            ("qtype", self.qtype.as_ref()),
            ("ip", self.server.as_ref()),
            ("dport", self.server_port.as_ref()),
            ("proto", self.protocol.as_ref()),
            ("packets", self.packets.as_ref()),
            ("bytes", self.bytes.as_ref()),
        ];
        let mut first = true;
        for (role, r) in roles {
            let Some(r) = r else { continue };
            if !first {
                f.write_str(",")?;
            }
            first = false;
            match r {
                FieldRef::Column(c) => write!(f, "{role}={c}")?,
                FieldRef::Key(k) => write!(f, "{role}={k}")?,
            }
        }
        if matches!(self.client, FieldRef::Column(_)) && self.separator != b',' {
            match self.separator {
                b'\t' => f.write_str(",sep=tab")?,
                b' ' => f.write_str(",sep=space")?,
                s => write!(f, ",sep={}", char::from(s))?,
            }
        }
        Ok(())
    }
}

impl FromStr for LineFormat {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "unbound" => Self::Unbound,
            "bind" => Self::Bind,
            "dnsmasq" => Self::Dnsmasq,
            "zeek" => Self::ZeekTsv,
            "zeek-json" => Self::ZeekJson,
            "eve" => Self::Eve,
            other => {
                if let Some(spec) = other.strip_prefix("csv:") {
                    Self::Csv(FieldMap::parse(spec, true, s)?)
                } else if let Some(spec) = other.strip_prefix("json:") {
                    Self::JsonLines(FieldMap::parse(spec, false, s)?)
                } else {
                    return Err(DecodeError::BadFormatSpec {
                        spec: s.to_string(),
                        what: "expected unbound, bind, dnsmasq, zeek, zeek-json, eve, csv:FIELDS or json:FIELDS".into(),
                    });
                }
            }
        })
    }
}

impl fmt::Display for LineFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unbound => f.write_str("unbound"),
            Self::Bind => f.write_str("bind"),
            Self::Dnsmasq => f.write_str("dnsmasq"),
            Self::ZeekTsv => f.write_str("zeek"),
            Self::ZeekJson => f.write_str("zeek-json"),
            Self::Eve => f.write_str("eve"),
            Self::Csv(m) => {
                f.write_str("csv:")?;
                m.write(f)
            }
            Self::JsonLines(m) => {
                f.write_str("json:")?;
                m.write(f)
            }
        }
    }
}

/// Decodes log lines of one format. Keeps what a format carries across
/// lines (Zeek's `#fields` header) and a scratch buffer for JSON strings
/// with escapes, which records then borrow.
#[derive(Debug)]
pub struct LineDecoder {
    format: LineFormat,
    reference_ms: TimeMs,
    offset_s: i32,
    scratch: String,
    zeek: zeek::Header,
    json_paths: crate::json::PathSet,
    lines_seen: u64,
}

impl LineDecoder {
    /// A decoder for `format`, with the clock's current time as the
    /// reference for year-less timestamps and UTC+7 for offset-less ones.
    pub fn new(format: LineFormat) -> Self {
        let json_paths = match &format {
            LineFormat::JsonLines(m) => custom::json_paths(m),
            _ => crate::json::PathSet::default(),
        };
        Self {
            json_paths,
            format,
            reference_ms: chrono::Utc::now().timestamp_millis(),
            offset_s: DEFAULT_UTC_OFFSET_SECONDS,
            scratch: String::new(),
            zeek: zeek::Header::default(),
            lines_seen: 0,
        }
    }

    /// The "now" that gives syslog timestamps (`Nov 25 10:00:01`) their
    /// year: the year placing the line closest to it, so a December line
    /// read in January belongs to the previous year.
    pub fn with_reference_time(mut self, now_ms: TimeMs) -> Self {
        self.reference_ms = now_ms;
        self
    }

    /// Moves the reference time on; a long-running reader should call this
    /// now and then (once a minute is plenty) so that year boundaries are
    /// crossed correctly.
    pub fn set_reference_time(&mut self, now_ms: TimeMs) {
        self.reference_ms = now_ms;
    }

    /// The UTC offset of timestamps that carry none (syslog, BIND, RFC 3339
    /// without offset). Default UTC+7 (Asia/Ho_Chi_Minh).
    pub fn with_utc_offset_seconds(mut self, offset: i32) -> Self {
        self.offset_s = offset;
        self
    }

    /// The format being decoded.
    pub fn format(&self) -> &LineFormat {
        &self.format
    }

    /// The DNS name a query line asks for, found without decoding the rest
    /// of the line — for Unbound, BIND and dnsmasq logs; `None` for other
    /// formats and for lines without that shape.
    ///
    /// A sensor matches this name first and decodes the whole line only
    /// when it matches: most lines are lookups of names nobody listed, and
    /// their client address and time are never needed. Such lines are not
    /// validated beyond their shape; [`LineDecoder::decode`] is.
    pub fn query_name<'a>(&self, line: &'a [u8]) -> Option<&'a [u8]> {
        if line.len() > MAX_LINE_BYTES {
            return None;
        }
        match &self.format {
            LineFormat::Unbound => resolver::unbound_name(line),
            LineFormat::Bind => resolver::bind_name(line),
            LineFormat::Dnsmasq => resolver::dnsmasq_name(line),
            _ => None,
        }
    }

    /// Decodes one line (a trailing `\n` or `\r\n` is ignored). `Ok(None)`:
    /// a line of this format that carries no telemetry (other log messages,
    /// Zeek header lines, eve events of other types, blank lines).
    ///
    /// Plain-text logs are handled as bytes: a query name with invalid
    /// UTF-8 is passed on as it is. JSON formats need valid UTF-8 and fail
    /// with `invalid_utf8` otherwise.
    pub fn decode<'a>(&'a mut self, line: &'a [u8]) -> Result<Option<Record<'a>>, DecodeError> {
        if line.len() > MAX_LINE_BYTES {
            return Err(DecodeError::LineTooLong {
                length: line.len(),
                max: MAX_LINE_BYTES,
            });
        }
        let line = trim_eol(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        self.lines_seen += 1;
        let ctx = Ctx {
            reference_ms: self.reference_ms,
            offset_s: self.offset_s,
        };
        match &self.format {
            LineFormat::Unbound => resolver::unbound(line, ctx),
            LineFormat::Bind => resolver::bind(line, ctx),
            LineFormat::Dnsmasq => resolver::dnsmasq(line, ctx),
            LineFormat::ZeekTsv => self.zeek.decode(line, ctx),
            LineFormat::ZeekJson => zeek::decode_json(line, ctx, &mut self.scratch),
            LineFormat::Eve => eve::decode(line, ctx, &mut self.scratch),
            LineFormat::Csv(map) => {
                custom::csv(map, line, ctx, self.lines_seen == 1, &mut self.scratch)
            }
            LineFormat::JsonLines(_) => {
                custom::json(&self.json_paths, line, ctx, &mut self.scratch)
            }
        }
    }
}

/// What every line parser needs to know about time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub reference_ms: TimeMs,
    pub offset_s: i32,
}

fn trim_eol(mut line: &[u8]) -> &[u8] {
    if let [rest @ .., b'\n'] = line {
        line = rest;
    }
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    line
}

/// The token starting at `from`, up to the next space (or the end), and the
/// index after it.
pub(crate) fn token(line: &[u8], from: usize) -> (&[u8], usize) {
    let rest = line.get(from..).unwrap_or_default();
    match memchr::memchr(b' ', rest) {
        Some(i) => (&rest[..i], from + i + 1),
        None => (rest, line.len()),
    }
}

/// Dotted-quad IPv4 by hand (the common case, several times faster than
/// the standard parser), anything else through `IpAddr::from_str`.
pub(crate) fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(s) {
        return Some(IpAddr::V4(v4));
    }
    if s.len() > 64 {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    if s.len() < 7 || s.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        let start = i;
        let mut v: u32 = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start == 3 {
                return None;
            }
            v = v * 10 + u32::from(s[i] - b'0');
            i += 1;
        }
        let len = i - start;
        // Leading zeros are refused, as the standard parser does.
        if len == 0 || len > 3 || v > 255 || (len > 1 && s[start] == b'0') {
            return None;
        }
        *octet = v as u8;
        if n < 3 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == s.len()).then(|| Ipv4Addr::from(octets))
}

pub(crate) fn parse_port(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    u16::try_from(s.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'))).ok()
}

pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |a, &b| {
        a.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

pub(crate) fn bad_address(field: &'static str, value: &[u8]) -> DecodeError {
    DecodeError::BadAddress {
        field,
        value: snippet(value),
    }
}

pub(crate) fn bad_time(field: &'static str, value: &[u8]) -> DecodeError {
    DecodeError::BadTime {
        field,
        value: snippet(value),
    }
}

/// IP protocol from a number or a name as Suricata and Zeek print it.
pub(crate) fn parse_protocol(s: &[u8]) -> Option<u8> {
    if let Some(n) = parse_u64(s) {
        return u8::try_from(n).ok();
    }
    let p = match s.to_ascii_lowercase().as_slice() {
        b"tcp" => 6,
        b"udp" => 17,
        b"icmp" => 1,
        b"ipv6-icmp" | b"icmpv6" | b"icmp6" => 58,
        b"sctp" => 132,
        b"gre" => 47,
        b"esp" => 50,
        _ => return None,
    };
    Some(p)
}

/// The timestamp a resolver or syslog put at the start of a line, and where
/// the rest begins. Shapes: `[1732505000]` (Unbound), `Nov 25 10:00:01`
/// (syslog, Unbound `log-time-ascii`, dnsmasq), `25-Nov-2026 10:00:00.123`
/// (BIND), `2026-11-25T10:00:01.123+07:00` (RFC 3339 syslog, BIND
/// `print-time iso8601`). No recognised time gives 0.
pub(crate) fn leading_time(line: &[u8], ctx: Ctx) -> Result<(TimeMs, usize), DecodeError> {
    let Some(&first) = line.first() else {
        return Ok((0, 0));
    };
    if first == b'[' {
        let Some(close) = memchr::memchr(b']', &line[..line.len().min(24)]) else {
            return Ok((0, 0));
        };
        let t = time::parse_unix_seconds(&line[1..close])
            .ok_or_else(|| bad_time("timestamp", &line[..=close]))?;
        return Ok((t, skip_space(line, close + 1)));
    }
    if first.is_ascii_uppercase() {
        if line.len() >= 16 && line[15] == b' ' && time::month_from_abbrev(&line[..3]).is_some() {
            let t = time::parse_syslog(&line[..15], ctx.reference_ms, ctx.offset_s)
                .ok_or_else(|| bad_time("syslog timestamp", &line[..15]))?;
            return Ok((t, 16));
        }
        return Ok((0, 0));
    }
    if first.is_ascii_digit() {
        if line.len() > 10 && line[4] == b'-' {
            let (tok, next) = token(line, 0);
            let t = time::parse_iso(tok, ctx.offset_s).ok_or_else(|| bad_time("timestamp", tok))?;
            return Ok((t, next));
        }
        if line.len() > 20 && line[2] == b'-' {
            // "25-Nov-2026 10:00:00.123": two tokens.
            let (_, after_date) = token(line, 0);
            let (_, next) = token(line, after_date);
            let t = time::parse_bind(
                &line[..next.saturating_sub(1).max(after_date)],
                ctx.offset_s,
            )
            .ok_or_else(|| bad_time("timestamp", &line[..next.min(line.len())]))?;
            return Ok((t, next));
        }
    }
    Ok((0, 0))
}

fn skip_space(line: &[u8], mut i: usize) -> usize {
    while line.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_fast_path_agrees_with_std() {
        for s in [
            "0.0.0.0",
            "192.0.2.7",
            "255.255.255.255",
            "1.2.3.04",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.",
            "1..2.3",
            // Found by fuzzing: a long run of digits overflowed the octet.
            "1.2.3.99999999999",
            "1.2.3.4444",
        ] {
            let std: Option<Ipv4Addr> = s.parse().ok();
            assert_eq!(parse_ipv4(s.as_bytes()), std, "{s}");
        }
    }

    #[test]
    fn format_names_round_trip() {
        for s in [
            "unbound",
            "bind",
            "dnsmasq",
            "zeek",
            "zeek-json",
            "eve",
            "csv:time=0,client=2,name=5",
            "csv:client=1,ip=2,dport=3,proto=4,sep=tab",
            "json:time=ts,client=src_ip,name=query,ip=dest_ip",
        ] {
            let f: LineFormat = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
        }
    }

    #[test]
    fn bad_specs_say_why() {
        for s in [
            "nginx",
            "csv:name=1",
            "csv:client=x,name=1",
            "csv:client=1",
            "json:client=a,name=b,sep=tab",
            "csv:client=1,client=2,name=3",
        ] {
            let e = s.parse::<LineFormat>().unwrap_err();
            assert_eq!(e.kind(), "bad_format_spec", "{s}");
        }
    }
}
