//! Resolver query logs — Unbound, BIND 9, dnsmasq — parsed by hand: find
//! a fixed marker with `memchr::memmem`, then walk space-separated tokens.
//! Nothing is allocated; the record borrows the line.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::{Ctx, bad_address, leading_time, parse_ip, parse_port, token};
use crate::dns_wire::qtype_from_name;
use crate::{DecodeError, DnsQuery, Record};

// Built once: constructing a searcher costs more than searching a line.
static INFO: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b" info: "));
static CLIENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"client "));
static QUERY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b": query: "));
static DNSMASQ_QUERY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"query["));

fn bad(format: &'static str, what: &'static str, offset: usize) -> DecodeError {
    DecodeError::BadLine {
        format,
        what,
        offset,
    }
}

fn is_dns_class(s: &[u8]) -> bool {
    matches!(s, b"IN" | b"CH" | b"HS" | b"NONE" | b"ANY") || s.starts_with(b"CLASS")
}

/// Unbound `log-queries`:
/// `[1732505000] unbound[1234:0] info: 192.0.2.7 evil.example. A IN`,
/// with `log-time-ascii` (`Nov 25 10:00:01 unbound[…]`) or through syslog
/// (`Nov 25 10:00:01 host unbound: [1234:0] info: …`). `log-replies` lines
/// (the same four fields followed by rcode, time, cached flag and size)
/// become responses.
pub(super) fn unbound(line: &[u8], ctx: Ctx) -> Result<Option<Record<'_>>, DecodeError> {
    let Some(at) = INFO.find(line) else {
        return Ok(None);
    };
    let start = at + 7;
    let (addr, next) = token(line, start);
    // "ip" or, in some builds and for local actions, "ip@port".
    let (ip_part, port) = match memchr::memrchr(b'@', addr) {
        Some(i) => (&addr[..i], parse_port(&addr[i + 1..])),
        None => (addr, None),
    };
    let Some(client) = parse_ip(ip_part) else {
        // Another informational message ("resolving", "start of service"…).
        return Ok(None);
    };
    let (qname, next) = token(line, next);
    let (qtype, next) = token(line, next);
    let (class, next) = token(line, next);
    if qname.is_empty() || qtype.is_empty() || !is_dns_class(class) {
        return Err(bad(
            "unbound",
            "expected NAME TYPE CLASS after the client address",
            start,
        ));
    }
    let (time_ms, _) = leading_time(line, ctx)?;
    Ok(Some(Record::Dns(DnsQuery {
        time_ms,
        client,
        client_port: port,
        qname,
        qtype: qtype_from_name(qtype),
        is_response: next < line.len(),
    })))
}

/// BIND 9 `queries` category:
/// `25-Nov-2026 10:00:00.123 queries: info: client @0x7f8b2c0a1b10 192.0.2.7#53211 (evil.example): query: evil.example IN A +E(0)K (192.0.2.1)`,
/// also without `@0x…` (before 9.11), with `/key NAME` after the peer,
/// with `: view NAME` before `query:`, and with any `print-time` /
/// `print-category` / `print-severity` setting or a syslog prefix.
pub(super) fn bind(line: &[u8], ctx: Ctx) -> Result<Option<Record<'_>>, DecodeError> {
    let Some(at) = CLIENT.find(line) else {
        return Ok(None);
    };
    let Some(q) = QUERY.find(&line[at..]) else {
        // Other client messages (denied, failed, rate limited…).
        return Ok(None);
    };
    let q = at + q;
    let mut peer_at = at + 7;
    if line[peer_at..].starts_with(b"@0x") {
        let (_, next) = token(line, peer_at);
        peer_at = next;
    }
    // "client @0x…: query: " has no address before the marker.
    let Some(head) = line.get(peer_at..q) else {
        return Err(bad("bind", "no client address before \"query:\"", at));
    };
    let Some(hash) = memchr::memchr(b'#', head) else {
        return Err(bad("bind", "client address without #port", peer_at));
    };
    let client =
        parse_ip(&head[..hash]).ok_or_else(|| bad_address("bind client", &head[..hash]))?;
    let port_digits = head[hash + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let client_port = parse_port(&head[hash + 1..hash + 1 + port_digits]);
    let (qname, next) = token(line, q + 9);
    let (_class, next) = token(line, next);
    let (qtype, _) = token(line, next);
    if qname.is_empty() || qtype.is_empty() {
        return Err(bad(
            "bind",
            "expected NAME CLASS TYPE after \"query:\"",
            q + 9,
        ));
    }
    let (time_ms, _) = leading_time(line, ctx)?;
    Ok(Some(Record::Dns(DnsQuery {
        time_ms,
        client,
        client_port,
        qname,
        qtype: qtype_from_name(qtype),
        is_response: false,
    })))
}

/// dnsmasq `log-queries`:
/// `Nov 25 10:00:01 dnsmasq[123]: query[A] evil.example from 192.0.2.7`,
/// and `log-queries=extra`, which puts a serial and the client's
/// address/port first: `… dnsmasq[123]: 1234 192.0.2.7/53211 query[A] evil.example from 192.0.2.7`.
/// The resolver's own DNSSEC queries (`dnssec-query[DS] …`) and the
/// forwarded/reply/cached lines carry no client and give `Ok(None)`.
pub(super) fn dnsmasq(line: &[u8], ctx: Ctx) -> Result<Option<Record<'_>>, DecodeError> {
    let Some(at) = DNSMASQ_QUERY.find(line) else {
        return Ok(None);
    };
    if at > 0 && line[at - 1] != b' ' {
        return Ok(None);
    }
    let Some(close) = memchr::memchr(b']', &line[at..]).map(|i| at + i) else {
        return Err(bad("dnsmasq", "unclosed query[", at));
    };
    let qtype = &line[at + 6..close];
    if line.get(close + 1) != Some(&b' ') {
        return Err(bad(
            "dnsmasq",
            "expected a space after query[TYPE]",
            close + 1,
        ));
    }
    let (qname, next) = token(line, close + 2);
    let (verb, next) = token(line, next);
    let (from, _) = token(line, next);
    if qname.is_empty() || verb != b"from" {
        return Err(bad("dnsmasq", "expected NAME from ADDRESS", close + 2));
    }
    let client = parse_ip(from).ok_or_else(|| bad_address("dnsmasq client", from))?;
    // log-queries=extra: "SERIAL ADDRESS/PORT query[…]".
    let mut client_port = None;
    if at > 1 {
        let before = &line[..at - 1];
        let tok = memchr::memrchr(b' ', before).map_or(before, |i| &before[i + 1..]);
        if let Some(slash) = memchr::memrchr(b'/', tok) {
            client_port = parse_port(&tok[slash + 1..]);
        }
    }
    let (time_ms, _) = leading_time(line, ctx)?;
    Ok(Some(Record::Dns(DnsQuery {
        time_ms,
        client,
        client_port,
        qname,
        qtype: qtype_from_name(qtype),
        is_response: false,
    })))
}

/// Whether a token looks like Unbound's client field (`192.0.2.7`,
/// `2001:db8::7`, `192.0.2.7@53211`) without parsing it: informational
/// messages put a word there (`resolving`, `response`, `start`).
fn looks_like_address(t: &[u8]) -> bool {
    // One pass through a table: 1 for hex digits, `@` and `%`, 2 for the
    // separators `.` and `:`, 0 for anything else. (On every line of a
    // busy resolver, two iterator passes cost more than the lookup.)
    const CLASS: [u8; 256] = {
        let mut c = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            let b = i as u8;
            c[i] = if b.is_ascii_hexdigit() || b == b'@' || b == b'%' {
                1
            } else if b == b'.' || b == b':' {
                2
            } else {
                0
            };
            i += 1;
        }
        c
    };
    let mut seen = 1u8;
    for &b in t {
        let class = CLASS[usize::from(b)];
        if class == 0 {
            return false;
        }
        seen |= class;
    }
    t.len() >= 2 && seen == 3
}

/// The query name of an Unbound query line, found without decoding the
/// rest; `None` when the line does not have that shape.
pub(super) fn unbound_name(line: &[u8]) -> Option<&[u8]> {
    // The four fields are the line's last four: read them from the end,
    // then check that ` info: ` comes just before — cheaper than searching
    // for the marker from the start. A `log-replies` line has more fields
    // after the class, so its last field is no class and it is refused.
    let mut end = line.len();
    let field = |end: &mut usize| -> Option<(usize, usize)> {
        let space = memchr::memrchr(b' ', line.get(..*end)?)?;
        let f = (space + 1, *end);
        *end = space;
        Some(f)
    };
    let class = field(&mut end)?;
    let qtype = field(&mut end)?;
    let qname = field(&mut end)?;
    let client = field(&mut end)?;
    let marker = client.0.checked_sub(7)?;
    if line.get(marker..client.0) != Some(b" info: ")
        || !is_dns_class(&line[class.0..class.1])
        || qtype.0 == qtype.1
        || qname.0 == qname.1
        || !looks_like_address(&line[client.0..client.1])
    {
        return None;
    }
    Some(&line[qname.0..qname.1])
}

/// The query name of a BIND query line (after `: query: `).
pub(super) fn bind_name(line: &[u8]) -> Option<&[u8]> {
    let at = CLIENT.find(line)?;
    let q = at + QUERY.find(line.get(at..)?)?;
    let (qname, next) = token(line, q + 9);
    let (_class, next) = token(line, next);
    let (qtype, _) = token(line, next);
    (!qname.is_empty() && !qtype.is_empty()).then_some(qname)
}

/// The query name of a dnsmasq `query[TYPE] NAME from CLIENT` line.
pub(super) fn dnsmasq_name(line: &[u8]) -> Option<&[u8]> {
    let at = DNSMASQ_QUERY.find(line)?;
    if at > 0 && line[at - 1] != b' ' {
        return None;
    }
    let close = at + memchr::memchr(b']', line.get(at..)?)?;
    if line.get(close + 1) != Some(&b' ') {
        return None;
    }
    let (qname, next) = token(line, close + 2);
    let (from, _) = token(line, next);
    (!qname.is_empty() && from == b"from").then_some(qname)
}
