//! Zeek logs, TSV and JSON: `dns.log` (queries), `conn.log` (flows),
//! `http.log` (requests) and `ssl.log` (SNI).
//!
//! TSV files start with `#separator \x09`, `#unset_field -`, `#path dns`,
//! `#fields ts uid id.orig_h …` header lines; columns are found by name, so
//! any field order and extra fields work. Before a `#fields` line is seen
//! (a reader that starts mid-file), the default `dns.log` columns of Zeek
//! 4–7 are assumed. JSON lines carry no `#path`; the kind of record is
//! told by the fields present (`query`, `server_name`, `host`/`uri`,
//! `orig_pkts`/`conn_state`).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::LazyLock;

use super::{Ctx, bad_address, bad_time, parse_ip, parse_port, parse_protocol, parse_u64};
use crate::json::{PathSet, Scalar, extract, settle, utf8};
use crate::{DecodeError, DnsQuery, Flow, Record, TimeMs, time};

/// Zeek field names this decoder uses, in [`Col`] order.
const NAMES: [&str; 19] = [
    "ts",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "query",
    "qtype",
    "duration",
    "orig_pkts",
    "resp_pkts",
    "orig_ip_bytes",
    "resp_ip_bytes",
    "orig_bytes",
    "resp_bytes",
    "host",
    "uri",
    "server_name",
    "conn_state",
];

static COMPILED: LazyLock<PathSet> = LazyLock::new(|| PathSet::new(&NAMES));

#[derive(Clone, Copy)]
enum Col {
    Ts,
    OrigH,
    OrigP,
    RespH,
    RespP,
    Proto,
    Query,
    Qtype,
    Duration,
    OrigPkts,
    RespPkts,
    OrigIpBytes,
    RespIpBytes,
    OrigBytes,
    RespBytes,
    Host,
    Uri,
    ServerName,
    ConnState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dns,
    Conn,
    Http,
    Ssl,
    Other,
}

/// What the TSV header lines said.
#[derive(Debug)]
pub(super) struct Header {
    separator: u8,
    unset: Vec<u8>,
    kind: Kind,
    /// Column index of each of [`NAMES`].
    columns: [Option<usize>; NAMES.len()],
    /// Field boundaries of the current line, reused.
    spans: Vec<(usize, usize)>,
}

impl Default for Header {
    fn default() -> Self {
        // Zeek's dns.log columns (ts uid id.orig_h id.orig_p id.resp_h
        // id.resp_p proto trans_id rtt query qclass qclass_name qtype …).
        let mut columns = [None; NAMES.len()];
        for (col, idx) in [
            (Col::Ts, 0),
            (Col::OrigH, 2),
            (Col::OrigP, 3),
            (Col::RespH, 4),
            (Col::RespP, 5),
            (Col::Proto, 6),
            (Col::Query, 9),
            (Col::Qtype, 12),
        ] {
            columns[col as usize] = Some(idx);
        }
        Self {
            separator: b'\t',
            unset: b"-".to_vec(),
            kind: Kind::Dns,
            columns,
            spans: Vec::with_capacity(32),
        }
    }
}

fn unescape_separator(v: &[u8]) -> Option<u8> {
    match v {
        [b] => Some(*b),
        [b'\\', b'x', h, l] => {
            let hex = |c: u8| (c as char).to_digit(16);
            u8::try_from(hex(*h)? * 16 + hex(*l)?).ok()
        }
        _ => None,
    }
}

impl Header {
    fn header_line(&mut self, line: &[u8]) -> Result<(), DecodeError> {
        // "#separator \x09" uses a space; every other header the separator.
        if let Some(v) = line.strip_prefix(b"#separator ") {
            self.separator = unescape_separator(v).ok_or(DecodeError::BadLine {
                format: "zeek",
                what: "bad #separator",
                offset: 11,
            })?;
            return Ok(());
        }
        let mut parts = line.split(|&b| b == self.separator);
        let key = parts.next().unwrap_or_default();
        match key {
            b"#unset_field" => self.unset = parts.next().unwrap_or(b"-").to_vec(),
            b"#path" => {
                self.kind = match parts.next().unwrap_or_default() {
                    b"dns" => Kind::Dns,
                    b"conn" => Kind::Conn,
                    b"http" => Kind::Http,
                    b"ssl" => Kind::Ssl,
                    _ => Kind::Other,
                }
            }
            b"#fields" => {
                self.columns = [None; NAMES.len()];
                for (i, name) in parts.enumerate() {
                    if let Some(c) = NAMES.iter().position(|n| n.as_bytes() == name) {
                        self.columns[c] = Some(i);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn get<'l>(&self, line: &'l [u8], col: Col) -> Option<&'l [u8]> {
        let i = self.columns[col as usize]?;
        let &(s, e) = self.spans.get(i)?;
        let v = &line[s..e];
        (v != self.unset.as_slice() && !v.is_empty()).then_some(v)
    }

    pub(super) fn decode<'a>(
        &'a mut self,
        line: &'a [u8],
        ctx: Ctx,
    ) -> Result<Option<Record<'a>>, DecodeError> {
        if line.first() == Some(&b'#') {
            self.header_line(line)?;
            return Ok(None);
        }
        self.spans.clear();
        let mut start = 0;
        for i in memchr::memchr_iter(self.separator, line) {
            self.spans.push((start, i));
            start = i + 1;
        }
        self.spans.push((start, line.len()));
        let kind = match self.kind {
            Kind::Other => return Ok(None),
            k => k,
        };
        let get = |c| self.get(line, c);
        let time_ms = match get(Col::Ts) {
            Some(ts) => time::parse_auto(ts, ctx.reference_ms, ctx.offset_s)
                .ok_or_else(|| bad_time("zeek ts", ts))?,
            None => 0,
        };
        let ip = |c: Col, field| -> Result<Option<IpAddr>, DecodeError> {
            get(c)
                .map(|v| parse_ip(v).ok_or_else(|| bad_address(field, v)))
                .transpose()
        };
        let Some(client) = ip(Col::OrigH, "zeek id.orig_h")? else {
            return Err(DecodeError::MissingField {
                field: "zeek id.orig_h",
            });
        };
        let client_port = get(Col::OrigP).and_then(parse_port);
        let server = ip(Col::RespH, "zeek id.resp_h")?;
        let text = |v: &'a [u8], field| {
            std::str::from_utf8(v).map_err(|_| DecodeError::InvalidUtf8 { field })
        };
        match kind {
            Kind::Dns => {
                let Some(qname) = get(Col::Query) else {
                    return Ok(None);
                };
                let qtype = get(Col::Qtype)
                    .and_then(parse_u64)
                    .and_then(|t| u16::try_from(t).ok());
                Ok(Some(Record::Dns(DnsQuery {
                    time_ms,
                    client,
                    client_port,
                    qname,
                    qtype,
                    is_response: false,
                })))
            }
            Kind::Conn => {
                let Some(dst) = server else {
                    return Err(DecodeError::MissingField {
                        field: "zeek id.resp_h",
                    });
                };
                let n = |c| get(c).and_then(parse_u64);
                let duration_ms = get(Col::Duration)
                    .and_then(time::parse_unix_seconds)
                    .unwrap_or(0);
                let bytes = match (n(Col::OrigIpBytes), n(Col::RespIpBytes)) {
                    (None, None) => n(Col::OrigBytes)
                        .unwrap_or(0)
                        .saturating_add(n(Col::RespBytes).unwrap_or(0)),
                    (a, b) => a.unwrap_or(0).saturating_add(b.unwrap_or(0)),
                };
                Ok(Some(Record::Flow(Flow {
                    time_ms: time_ms.saturating_add(duration_ms),
                    src: client,
                    src_port: client_port.unwrap_or(0),
                    dst,
                    dst_port: get(Col::RespP).and_then(parse_port).unwrap_or(0),
                    protocol: get(Col::Proto).and_then(parse_protocol).unwrap_or(0),
                    packets: n(Col::OrigPkts)
                        .unwrap_or(0)
                        .saturating_add(n(Col::RespPkts).unwrap_or(0)),
                    bytes,
                })))
            }
            Kind::Http => {
                let Some(host) = get(Col::Host) else {
                    return Ok(None);
                };
                let url = get(Col::Uri).unwrap_or_default();
                Ok(Some(Record::Http {
                    time_ms,
                    client,
                    client_port,
                    server,
                    host: text(host, "zeek host")?,
                    url: text(url, "zeek uri")?,
                }))
            }
            Kind::Ssl => {
                let Some(sni) = get(Col::ServerName) else {
                    return Ok(None);
                };
                Ok(Some(Record::Tls {
                    time_ms,
                    client,
                    client_port,
                    server,
                    sni: text(sni, "zeek server_name")?,
                }))
            }
            Kind::Other => Ok(None),
        }
    }
}

/// Zeek JSON (`LogAscii::use_json=T`): `ts` as epoch seconds or ISO 8601.
pub(super) fn decode_json<'a>(
    line: &'a [u8],
    ctx: Ctx,
    scratch: &'a mut String,
) -> Result<Option<Record<'a>>, DecodeError> {
    let text = utf8(line)?;
    let mut v: [Scalar<'a>; NAMES.len()] = Default::default();
    extract(text, &COMPILED, &mut v)?;
    let at = |c: Col| &v[c as usize];
    let time_ms: TimeMs = match at(Col::Ts) {
        Scalar::Str(s) => time::parse_auto(s.as_bytes(), ctx.reference_ms, ctx.offset_s),
        Scalar::F64(f) => time::unix_auto_f64(*f),
        s => s.as_u64().and_then(|u| time::unix_auto_f64(u as f64)),
    }
    .ok_or(DecodeError::MissingField { field: "zeek ts" })?;
    let ip = |c: Col, field| -> Result<Option<IpAddr>, DecodeError> {
        match at(c).as_str() {
            None => Ok(None),
            Some(s) => parse_ip(s.as_bytes())
                .map(Some)
                .ok_or_else(|| bad_address(field, s.as_bytes())),
        }
    };
    let Some(client) = ip(Col::OrigH, "zeek id.orig_h")? else {
        return Err(DecodeError::MissingField {
            field: "zeek id.orig_h",
        });
    };
    let server = ip(Col::RespH, "zeek id.resp_h")?;
    let port = |c: Col| at(c).as_u64().and_then(|p| u16::try_from(p).ok());
    let client_port = port(Col::OrigP);
    let n = |c: Col| at(c).as_u64();
    if at(Col::Query).is_present() {
        let qtype = n(Col::Qtype).and_then(|t| u16::try_from(t).ok());
        let Some(q) = v[Col::Query as usize].take_str() else {
            return Ok(None);
        };
        let [qname] = settle(scratch, [q]);
        return Ok(Some(Record::Dns(DnsQuery {
            time_ms,
            client,
            client_port,
            qname: qname.as_bytes(),
            qtype,
            is_response: false,
        })));
    }
    if at(Col::ServerName).is_present() {
        let Some(sni) = v[Col::ServerName as usize].take_str() else {
            return Ok(None);
        };
        let [sni] = settle(scratch, [sni]);
        return Ok(Some(Record::Tls {
            time_ms,
            client,
            client_port,
            server,
            sni,
        }));
    }
    if at(Col::Host).is_present() {
        let Some(host) = v[Col::Host as usize].take_str() else {
            return Ok(None);
        };
        let url = v[Col::Uri as usize].take_str().unwrap_or(Cow::Borrowed(""));
        let [host, url] = settle(scratch, [host, url]);
        return Ok(Some(Record::Http {
            time_ms,
            client,
            client_port,
            server,
            host,
            url,
        }));
    }
    if at(Col::OrigPkts).is_present() || at(Col::ConnState).is_present() {
        let Some(dst) = server else {
            return Err(DecodeError::MissingField {
                field: "zeek id.resp_h",
            });
        };
        let duration_ms = match at(Col::Duration) {
            Scalar::F64(f) if f.is_finite() && *f >= 0.0 && *f < 1e12 => (*f * 1000.0) as TimeMs,
            s => s
                .as_u64()
                .map_or(0, |d| d.saturating_mul(1000).min(1 << 50) as TimeMs),
        };
        let bytes = match (n(Col::OrigIpBytes), n(Col::RespIpBytes)) {
            (None, None) => n(Col::OrigBytes)
                .unwrap_or(0)
                .saturating_add(n(Col::RespBytes).unwrap_or(0)),
            (a, b) => a.unwrap_or(0).saturating_add(b.unwrap_or(0)),
        };
        return Ok(Some(Record::Flow(Flow {
            time_ms: time_ms.saturating_add(duration_ms),
            src: client,
            src_port: client_port.unwrap_or(0),
            dst,
            dst_port: port(Col::RespP).unwrap_or(0),
            protocol: at(Col::Proto)
                .as_str()
                .and_then(|p| parse_protocol(p.as_bytes()))
                .unwrap_or(0),
            packets: n(Col::OrigPkts)
                .unwrap_or(0)
                .saturating_add(n(Col::RespPkts).unwrap_or(0)),
            bytes,
        })));
    }
    Ok(None)
}
