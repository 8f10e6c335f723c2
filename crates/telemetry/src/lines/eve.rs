//! Suricata eve.json: `dns`, `flow`, `http` and `tls` events; every other
//! event type is `Ok(None)`, found without parsing the line when
//! `"event_type":"…"` is written the usual way.
//!
//! DNS in all three logging versions: v1/v2 queries (`"type":"query"`,
//! name in `dns.rrname`), v2 answers (`"type":"answer"`, the client still
//! in `src_ip`), v3 (Suricata 8: `"type":"request"`/`"response"`, names
//! in `dns.queries[]`; responses have the server in `src_ip`, so the client
//! is `dest_ip`). Only the first question of a v3 record is used.

use std::borrow::Cow;

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::{Ctx, bad_address, bad_time, parse_ip, parse_protocol};
use crate::json::{PathSet, Scalar, extract, settle, utf8};
use crate::{DecodeError, DnsQuery, Flow, Record, TimeMs, dns_wire, time};

const PATHS: &[&str] = &[
    "event_type",
    "timestamp",
    "src_ip",
    "src_port",
    "dest_ip",
    "dest_port",
    "proto",
    "dns.type",
    "dns.rrname",
    "dns.rrtype",
    "dns.queries.0.rrname",
    "dns.queries.0.rrtype",
    "flow.pkts_toserver",
    "flow.pkts_toclient",
    "flow.bytes_toserver",
    "flow.bytes_toclient",
    "flow.end",
    "http.hostname",
    "http.url",
    "tls.sni",
];
const EVENT: usize = 0;
const TIMESTAMP: usize = 1;
const SRC_IP: usize = 2;
const SRC_PORT: usize = 3;
const DEST_IP: usize = 4;
const DEST_PORT: usize = 5;
const PROTO: usize = 6;
const DNS_TYPE: usize = 7;
const DNS_RRNAME: usize = 8;
const DNS_RRTYPE: usize = 9;
const DNS_Q_RRNAME: usize = 10;
const DNS_Q_RRTYPE: usize = 11;
const PKTS_TS: usize = 12;
const PKTS_TC: usize = 13;
const BYTES_TS: usize = 14;
const BYTES_TC: usize = 15;
const FLOW_END: usize = 16;
const HTTP_HOST: usize = 17;
const HTTP_URL: usize = 18;
const TLS_SNI: usize = 19;

static COMPILED: LazyLock<PathSet> = LazyLock::new(|| PathSet::new(PATHS));
static EVENT_TYPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"event_type\":\""));

/// The event type from the raw line, when Suricata's own spelling is there.
fn quick_event_type(line: &[u8]) -> Option<&[u8]> {
    let at = EVENT_TYPE.find(line)? + 14;
    let end = memchr::memchr(b'"', &line[at..])?;
    Some(&line[at..at + end])
}

pub(super) fn decode<'a>(
    line: &'a [u8],
    ctx: Ctx,
    scratch: &'a mut String,
) -> Result<Option<Record<'a>>, DecodeError> {
    if quick_event_type(line).is_some_and(|t| !matches!(t, b"dns" | b"flow" | b"http" | b"tls")) {
        return Ok(None);
    }
    let text = utf8(line)?;
    let mut v: [Scalar<'a>; PATHS.len()] = Default::default();
    extract(text, &COMPILED, &mut v)?;
    let ip =
        |v: &Scalar<'_>, field: &'static str| -> Result<Option<std::net::IpAddr>, DecodeError> {
            match v.as_str() {
                None => Ok(None),
                Some(s) => parse_ip(s.as_bytes())
                    .map(Some)
                    .ok_or_else(|| bad_address(field, s.as_bytes())),
            }
        };
    let time = |v: &Scalar<'_>| -> Result<TimeMs, DecodeError> {
        match v.as_str() {
            None => Ok(0),
            Some(s) => time::parse_iso(s.as_bytes(), ctx.offset_s)
                .ok_or_else(|| bad_time("eve timestamp", s.as_bytes())),
        }
    };
    let port = |v: &Scalar<'_>| v.as_u64().and_then(|p| u16::try_from(p).ok());
    let src = ip(&v[SRC_IP], "eve src_ip")?;
    let dest = ip(&v[DEST_IP], "eve dest_ip")?;
    #[derive(PartialEq)]
    enum Event {
        Dns,
        Flow,
        Http,
        Tls,
    }
    let event = match v[EVENT].as_str() {
        Some("dns") => Event::Dns,
        Some("flow") => Event::Flow,
        Some("http") => Event::Http,
        Some("tls") => Event::Tls,
        _ => return Ok(None),
    };
    match event {
        Event::Dns => {
            let (client, client_port, is_response, name, qtype) =
                match v[DNS_TYPE].as_str().unwrap_or_default() {
                    "query" => (src, port(&v[SRC_PORT]), false, DNS_RRNAME, DNS_RRTYPE),
                    "answer" => (src, port(&v[SRC_PORT]), true, DNS_RRNAME, DNS_RRTYPE),
                    "request" => (src, port(&v[SRC_PORT]), false, DNS_Q_RRNAME, DNS_Q_RRTYPE),
                    "response" => (dest, port(&v[DEST_PORT]), true, DNS_Q_RRNAME, DNS_Q_RRTYPE),
                    _ => return Ok(None),
                };
            let Some(client) = client else {
                return Err(DecodeError::MissingField {
                    field: "eve src_ip/dest_ip",
                });
            };
            let qtype = v[qtype]
                .as_str()
                .and_then(|t| dns_wire::qtype_from_name(t.as_bytes()));
            let time_ms = time(&v[TIMESTAMP])?;
            let Some(name) = v[name].take_str() else {
                return Ok(None);
            };
            let [qname] = settle(scratch, [name]);
            Ok(Some(Record::Dns(DnsQuery {
                time_ms,
                client,
                client_port,
                qname: qname.as_bytes(),
                qtype,
                is_response,
            })))
        }
        Event::Flow => {
            let (Some(src), Some(dst)) = (src, dest) else {
                return Err(DecodeError::MissingField {
                    field: "eve src_ip/dest_ip",
                });
            };
            let sum = |a: usize, b: usize| {
                v[a].as_u64()
                    .unwrap_or(0)
                    .saturating_add(v[b].as_u64().unwrap_or(0))
            };
            let time_ms = match v[FLOW_END].as_str() {
                Some(_) => time(&v[FLOW_END])?,
                None => time(&v[TIMESTAMP])?,
            };
            Ok(Some(Record::Flow(Flow {
                time_ms,
                src,
                src_port: port(&v[SRC_PORT]).unwrap_or(0),
                dst,
                dst_port: port(&v[DEST_PORT]).unwrap_or(0),
                protocol: v[PROTO]
                    .as_str()
                    .and_then(|p| parse_protocol(p.as_bytes()))
                    .unwrap_or(0),
                packets: sum(PKTS_TS, PKTS_TC),
                bytes: sum(BYTES_TS, BYTES_TC),
            })))
        }
        Event::Http | Event::Tls => {
            let Some(client) = src else {
                return Err(DecodeError::MissingField {
                    field: "eve src_ip",
                });
            };
            let time_ms = time(&v[TIMESTAMP])?;
            let client_port = port(&v[SRC_PORT]);
            if event == Event::Tls {
                let Some(sni) = v[TLS_SNI].take_str() else {
                    return Ok(None);
                };
                let [sni] = settle(scratch, [sni]);
                return Ok(Some(Record::Tls {
                    time_ms,
                    client,
                    client_port,
                    server: dest,
                    sni,
                }));
            }
            let Some(host) = v[HTTP_HOST].take_str() else {
                return Ok(None);
            };
            let url = v[HTTP_URL].take_str().unwrap_or(Cow::Borrowed(""));
            let [host, url] = settle(scratch, [host, url]);
            Ok(Some(Record::Http {
                time_ms,
                client,
                client_port,
                server: dest,
                host,
                url,
            }))
        }
    }
}
