//! ISC dhcpd lease files: `dhcpd.leases` (IPv4 `lease` blocks) and
//! `dhcpd6.leases` (`ia-na`, `ia-ta`, `ia-pd` blocks with `iaaddr` /
//! `iaprefix` inside).
//!
//! The file is dhcpd's own configuration language, so it is read as one:
//! a tokenizer (words, quoted strings with dhcpd's `\ooo` escapes, `{`, `}`,
//! `;`, `#` comments) feeds a parser that tracks block depth. That is what
//! makes `;` and `}` inside strings harmless, and nested blocks such as
//! `on expiry { … }` inside a lease. Statements that are not read are
//! passed over, whatever they are.
//!
//! dhcpd appends a new copy of a lease on every change and rewrites the file
//! now and then, so one address appears many times; each copy is an event
//! and the index keeps them all. A lease is only reported when its block
//! closes: a file cut while dhcpd wrote it (or a `lease` that starts while
//! the previous one is still open) yields a rejection "lease record is not
//! closed" at the unclosed block's line, and every lease before it.

use std::io::BufRead;
use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::TimeDelta;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use khien_model::Timestamp;

use super::lines::{Line, Lines, Next};
use super::table::quoted;
use super::{AddressAction, AddressEvent, AttributionFormat, Out, time};
use crate::Error;

/// Addresses kept per DHCPv6 IA until it closes; more are rejected one by
/// one. Real IAs hold one or two.
pub const MAX_IA_ADDRESSES: usize = 256;

/// Tokens kept per statement; longer statements are not ones we read.
const MAX_TOKENS: usize = 32;

const NOT_CLOSED: &str = "lease record is not closed";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(Vec<u8>),
    Open,
    Close,
    Semi,
}

/// Splits one line into tokens. Strings do not span lines (dhcpd escapes
/// newlines), so an unterminated string ends with its line.
fn tokenize(line: &str, out: &mut Vec<Tok>) {
    out.clear();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() => i += 1,
            b'#' => break,
            b'{' | b'}' | b';' => {
                out.push(match b[i] {
                    b'{' => Tok::Open,
                    b'}' => Tok::Close,
                    _ => Tok::Semi,
                });
                i += 1;
            }
            b'"' => {
                i += 1;
                let mut s = Vec::new();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        let (byte, used) = escape(&b[i + 1..]);
                        s.push(byte);
                        i += 1 + used;
                    } else {
                        s.push(b[i]);
                        i += 1;
                    }
                }
                i += 1;
                out.push(Tok::Str(s));
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !b[i].is_ascii_whitespace()
                    && !matches!(b[i], b'{' | b'}' | b';' | b'"' | b'#')
                {
                    i += 1;
                }
                out.push(Tok::Word(line[start..i].to_string()));
            }
        }
    }
}

/// The byte an escape after `\` stands for, and how many bytes it used:
/// `\ooo` octal (dhcpd's quotify), `\xHH`, `\n`, `\r`, `\t`, `\b`, else the
/// character itself.
fn escape(rest: &[u8]) -> (u8, usize) {
    let octal = rest
        .iter()
        .take(3)
        .take_while(|c| (b'0'..=b'7').contains(*c))
        .count();
    if octal > 0 {
        let n = rest[..octal]
            .iter()
            .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
        return (u8::try_from(n & 0xFF).unwrap_or(0), octal);
    }
    match rest.first() {
        Some(b'x') => {
            let hex = rest[1..]
                .iter()
                .take(2)
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            let n = std::str::from_utf8(&rest[1..1 + hex])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match n {
                Some(n) => (n, 1 + hex),
                None => (b'x', 1),
            }
        }
        Some(b'n') => (b'\n', 1),
        Some(b'r') => (b'\r', 1),
        Some(b't') => (b'\t', 1),
        Some(b'b') => (8, 1),
        Some(&c) => (c, 1),
        None => (b'\\', 0),
    }
}

/// Bytes as `aa:bb:…`, lower case.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// dhcpd's colon-hex (`0:1a:2b`, as it prints non-text values and
/// hardware addresses) as two-digit lower case, or `None` if it is not
/// colon-hex.
fn colon_hex(w: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = w
        .split(':')
        .map(|p| {
            if p.is_empty() || p.len() > 2 {
                None
            } else {
                u8::from_str_radix(p, 16).ok()
            }
        })
        .collect();
    bytes.filter(|b| !b.is_empty()).map(|b| hex(&b))
}

/// A string option's value: the text when it is printable ASCII (a line id
/// such as `eth0/1/1:100`), else its bytes as hex.
fn text_or_hex(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| (0x20..0x7F).contains(b)) {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        hex(bytes)
    }
}

/// A value token as an identity: strings by [`text_or_hex`], words as
/// normalised colon-hex or as written.
fn identity_value(t: Option<&Tok>, binary: bool) -> Option<String> {
    match t? {
        Tok::Str(b) if binary => Some(hex(b)).filter(|s| !s.is_empty()),
        Tok::Str(b) => Some(text_or_hex(b)).filter(|s| !s.is_empty()),
        Tok::Word(w) => Some(colon_hex(w).unwrap_or_else(|| w.to_ascii_lowercase())),
        _ => None,
    }
}

fn word(t: Option<&Tok>) -> Option<&str> {
    match t? {
        Tok::Word(w) => Some(w),
        _ => None,
    }
}

/// The words of a statement after its first `skip` tokens.
fn words(stmt: &[Tok], skip: usize) -> Option<Vec<&str>> {
    stmt.iter().skip(skip).map(|t| word(Some(t))).collect()
}

/// An IPv4 lease being read.
#[derive(Debug, Default)]
struct Lease {
    line: u64,
    address: Option<Ipv4Addr>,
    error: Option<String>,
    starts: Option<Timestamp>,
    ends: Option<Option<Timestamp>>,
    state: Option<String>,
    hardware: Option<String>,
    uid: Option<String>,
    circuit_id: Option<String>,
    remote_id: Option<String>,
}

/// `starts` and the like: `Err` naming the statement when it does not read.
fn stmt_time(stmt: &[Tok], line: u64) -> Result<Option<Timestamp>, String> {
    let name = word(stmt.first()).unwrap_or("time");
    words(stmt, 1)
        .and_then(|w| time::dhcpd(&w).ok())
        .ok_or_else(|| format!("{name} on line {line} is not a time"))
}

fn fail(error: &mut Option<String>, reason: String) {
    error.get_or_insert(reason);
}

impl Lease {
    fn statement(&mut self, stmt: &[Tok], line: u64) {
        let (Some(first), second) = (word(stmt.first()), word(stmt.get(1))) else {
            return;
        };
        match (first, second) {
            ("starts", _) => match stmt_time(stmt, line) {
                Ok(Some(t)) => self.starts = Some(t),
                Ok(None) => fail(&mut self.error, format!("starts on line {line} is never")),
                Err(e) => fail(&mut self.error, e),
            },
            ("ends", _) => match stmt_time(stmt, line) {
                Ok(t) => self.ends = Some(t),
                Err(e) => fail(&mut self.error, e),
            },
            ("binding", Some("state")) => {
                self.state = word(stmt.get(2)).map(str::to_ascii_lowercase);
            }
            // dhcpd 2 marked abandoned leases with a flag.
            ("abandoned", None) => self.state = Some("abandoned".into()),
            ("hardware", Some(_)) => self.hardware = identity_value(stmt.get(2), true),
            ("uid", _) => self.uid = identity_value(stmt.get(1), true),
            ("option", Some("agent.circuit-id")) => {
                self.circuit_id = identity_value(stmt.get(2), false);
            }
            ("option", Some("agent.remote-id")) => {
                self.remote_id = identity_value(stmt.get(2), false);
            }
            _ => {}
        }
    }

    fn finish(self, out: &mut Out<'_>) -> Result<(), Error> {
        let line = self.line;
        if let Some(e) = self.error {
            return out.reject(line, format!("lease at line {line}: {e}"));
        }
        let Some(address) = self.address else {
            return out.reject(line, format!("lease at line {line} has no address"));
        };
        if let Some(reason) = self.state.as_deref().and_then(idle) {
            return out.skip(line, reason);
        }
        let Some(start) = self.starts else {
            return out.reject(line, format!("lease at line {line} has no starts"));
        };
        let Some(end) = self.ends else {
            return out.reject(line, format!("lease at line {line} has no ends"));
        };
        let identity = self
            .remote_id
            .or(self.circuit_id)
            .or(self.uid)
            .or(self.hardware);
        out.address(lease_event(
            line,
            IpNet::V4(Ipv4Net::from(address)),
            start,
            end,
            identity,
        ))
    }
}

/// Binding states of leases nobody holds.
fn idle(state: &str) -> Option<&'static str> {
    match state {
        "free" => Some("lease is free"),
        "backup" => Some("lease is free, held for the failover peer"),
        "abandoned" => Some("lease is abandoned"),
        _ => None,
    }
}

fn lease_event(
    line: u64,
    network: IpNet,
    start: Timestamp,
    end: Option<Timestamp>,
    identity: Option<String>,
) -> AddressEvent {
    AddressEvent {
        line,
        action: AddressAction::Lease,
        at: start,
        start: Some(start),
        end,
        network,
        ports: None,
        identity,
        inside: None,
        session: None,
        calling_station: None,
    }
}

/// An `iaaddr` or `iaprefix` being read.
#[derive(Debug)]
struct IaAddress {
    line: u64,
    network: Result<IpNet, String>,
    error: Option<String>,
    state: Option<String>,
    starts: Option<Timestamp>,
    ends: Option<Option<Timestamp>>,
    max_life: Option<u32>,
}

impl IaAddress {
    fn statement(&mut self, stmt: &[Tok], line: u64) {
        let (Some(first), second) = (word(stmt.first()), word(stmt.get(1))) else {
            return;
        };
        match (first, second) {
            ("starts", _) => match stmt_time(stmt, line) {
                Ok(t) => self.starts = t,
                Err(e) => fail(&mut self.error, e),
            },
            ("ends", _) => match stmt_time(stmt, line) {
                Ok(t) => self.ends = Some(t),
                Err(e) => fail(&mut self.error, e),
            },
            ("binding", Some("state")) => {
                self.state = word(stmt.get(2)).map(str::to_ascii_lowercase);
            }
            ("max-life", Some(n)) => match n.parse() {
                Ok(n) => self.max_life = Some(n),
                Err(_) => fail(
                    &mut self.error,
                    format!("max-life on line {line} is not a number: {}", quoted(n)),
                ),
            },
            _ => {}
        }
    }
}

/// A DHCPv6 identity association being read.
#[derive(Debug)]
struct Ia {
    line: u64,
    /// IAID (4 bytes) then the client's DUID, as dhcpd keys an IA.
    id: Vec<u8>,
    error: Option<String>,
    cltt: Option<Timestamp>,
    starts: Option<Timestamp>,
    addresses: Vec<IaAddress>,
    current: Option<IaAddress>,
}

impl Ia {
    fn statement(&mut self, stmt: &[Tok], line: u64) {
        let slot = match word(stmt.first()) {
            Some("cltt") => &mut self.cltt,
            Some("starts") => &mut self.starts,
            _ => return,
        };
        match stmt_time(stmt, line) {
            Ok(t) => *slot = t,
            Err(e) => fail(&mut self.error, e),
        }
    }

    fn finish(self, out: &mut Out<'_>) -> Result<(), Error> {
        if let Some(e) = self.error {
            return out.reject(self.line, format!("lease at line {}: {e}", self.line));
        }
        let duid = self.id.get(4..).filter(|d| !d.is_empty()).map(hex);
        for a in self.addresses {
            let line = a.line;
            if let Some(e) = a.error {
                out.reject(line, format!("address at line {line}: {e}"))?;
                continue;
            }
            let network = match a.network {
                Ok(n) => n,
                Err(e) => {
                    out.reject(line, e)?;
                    continue;
                }
            };
            if let Some(reason) = a.state.as_deref().and_then(idle) {
                out.skip(line, reason)?;
                continue;
            }
            let Some(end) = a.ends else {
                out.reject(line, format!("address at line {line} has no ends"))?;
                continue;
            };
            let from_life = match (end, a.max_life) {
                (Some(e), Some(life)) => e.checked_sub_signed(TimeDelta::seconds(life.into())),
                _ => None,
            };
            let Some(start) = a.starts.or(self.starts).or(self.cltt).or(from_life) else {
                out.reject(
                    line,
                    format!("address at line {line} has no start time (starts, cltt or max-life)"),
                )?;
                continue;
            };
            out.address(lease_event(line, network, start, end, duid.clone()))?;
        }
        Ok(())
    }
}

/// Where the parser is.
#[derive(Debug)]
enum Ctx {
    Top,
    /// Inside a top-level block that is not a lease (failover state, host,
    /// class), `depth` blocks deep.
    Skip(u32),
    Lease(Box<Lease>, u32),
    Ia(Box<Ia>, u32),
}

#[derive(Debug)]
struct Parser {
    ctx: Ctx,
    stmt: Vec<Tok>,
    stmt_line: u64,
}

/// A statement that opens a lease: `lease <address>` or `ia-na "<id>"`.
fn opens_lease(stmt: &[Tok]) -> bool {
    matches!(
        (word(stmt.first()), stmt.get(1), stmt.len()),
        (Some("lease"), Some(Tok::Word(_)), 2)
            | (Some("ia-na" | "ia-ta" | "ia-pd"), Some(Tok::Str(_)), 2)
    )
}

impl Parser {
    fn token(&mut self, tok: Tok, line: u64, out: &mut Out<'_>) -> Result<(), Error> {
        // A statement starts at its first token, even a lone `{` or `;`.
        if self.stmt.is_empty() {
            self.stmt_line = line;
        }
        match tok {
            Tok::Semi => {
                let stmt = std::mem::take(&mut self.stmt);
                self.statement(&stmt, out)?;
            }
            Tok::Open => {
                let stmt = std::mem::take(&mut self.stmt);
                self.open(&stmt, out)?;
            }
            Tok::Close => {
                self.stmt.clear();
                self.close(line, out)?;
            }
            t => {
                if self.stmt.len() < MAX_TOKENS {
                    self.stmt.push(t);
                }
            }
        }
        Ok(())
    }

    fn statement(&mut self, stmt: &[Tok], out: &mut Out<'_>) -> Result<(), Error> {
        let line = self.stmt_line;
        match &mut self.ctx {
            Ctx::Top if !stmt.is_empty() => out.skip(line, "not a lease")?,
            Ctx::Lease(lease, 1) => lease.statement(stmt, line),
            Ctx::Ia(ia, 1) => ia.statement(stmt, line),
            Ctx::Ia(ia, 2) => {
                if let Some(a) = ia.current.as_mut() {
                    a.statement(stmt, line);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn open(&mut self, stmt: &[Tok], out: &mut Out<'_>) -> Result<(), Error> {
        let line = self.stmt_line;
        if opens_lease(stmt) {
            // A lease inside a lease: the one open was never closed.
            let open = std::mem::replace(&mut self.ctx, Ctx::Top);
            match open {
                Ctx::Lease(l, _) => out.reject(l.line, NOT_CLOSED)?,
                Ctx::Ia(ia, _) => out.reject(ia.line, NOT_CLOSED)?,
                other => self.ctx = other,
            }
        }
        match &mut self.ctx {
            Ctx::Top => {
                self.ctx = match (word(stmt.first()), stmt.get(1)) {
                    (Some("lease"), Some(Tok::Word(a))) if stmt.len() == 2 => {
                        let mut lease = Lease {
                            line,
                            ..Lease::default()
                        };
                        match a.parse::<Ipv4Addr>() {
                            Ok(ip) => lease.address = Some(ip),
                            Err(_) => {
                                lease.error = Some(format!("{} is not an IPv4 address", quoted(a)));
                            }
                        }
                        Ctx::Lease(Box::new(lease), 1)
                    }
                    (Some("ia-na" | "ia-ta" | "ia-pd"), Some(Tok::Str(id))) if stmt.len() == 2 => {
                        Ctx::Ia(
                            Box::new(Ia {
                                line,
                                id: id.clone(),
                                error: None,
                                cltt: None,
                                starts: None,
                                addresses: Vec::new(),
                                current: None,
                            }),
                            1,
                        )
                    }
                    _ => {
                        out.skip(line, "not a lease")?;
                        Ctx::Skip(1)
                    }
                };
            }
            Ctx::Ia(ia, depth @ 1) => {
                let kind = word(stmt.first());
                if let (Some(k @ ("iaaddr" | "iaprefix")), Some(v), 2) =
                    (kind, word(stmt.get(1)), stmt.len())
                {
                    ia.current = Some(IaAddress {
                        line,
                        network: ia_network(k, v),
                        error: None,
                        state: None,
                        starts: None,
                        ends: None,
                        max_life: None,
                    });
                }
                *depth = 2;
            }
            Ctx::Skip(depth) | Ctx::Lease(_, depth) | Ctx::Ia(_, depth) => {
                *depth = depth.saturating_add(1);
            }
        }
        Ok(())
    }

    fn close(&mut self, line: u64, out: &mut Out<'_>) -> Result<(), Error> {
        let ctx = std::mem::replace(&mut self.ctx, Ctx::Top);
        self.ctx = match ctx {
            Ctx::Top => {
                out.reject(line, "'}' without an open block")?;
                Ctx::Top
            }
            Ctx::Skip(1) => Ctx::Top,
            Ctx::Skip(d) => Ctx::Skip(d - 1),
            Ctx::Lease(lease, 1) => {
                lease.finish(out)?;
                Ctx::Top
            }
            Ctx::Lease(lease, d) => Ctx::Lease(lease, d - 1),
            Ctx::Ia(ia, 1) => {
                ia.finish(out)?;
                Ctx::Top
            }
            Ctx::Ia(mut ia, 2) => {
                if let Some(a) = ia.current.take() {
                    if ia.addresses.len() < MAX_IA_ADDRESSES {
                        ia.addresses.push(a);
                    } else {
                        out.reject(
                            a.line,
                            format!("more than {MAX_IA_ADDRESSES} addresses in one IA"),
                        )?;
                    }
                }
                Ctx::Ia(ia, 1)
            }
            Ctx::Ia(ia, d) => Ctx::Ia(ia, d - 1),
        };
        Ok(())
    }

    /// Before a line that starts a lease in column 0, as dhcpd writes
    /// them: a lease still open, or a statement still pending, was cut
    /// (two files concatenated, the first cut short).
    fn line_start(&mut self, text: &str, out: &mut Out<'_>) -> Result<(), Error> {
        let starts_lease = ["lease ", "ia-na ", "ia-ta ", "ia-pd "]
            .iter()
            .any(|k| text.starts_with(k));
        if !starts_lease {
            return Ok(());
        }
        let ctx = std::mem::replace(&mut self.ctx, Ctx::Top);
        let pending = std::mem::take(&mut self.stmt);
        match ctx {
            Ctx::Lease(l, _) => out.reject(l.line, NOT_CLOSED),
            Ctx::Ia(ia, _) => out.reject(ia.line, NOT_CLOSED),
            Ctx::Top if !pending.is_empty() => {
                self.stmt = pending;
                self.unterminated(out)
            }
            // A cut `failover`/`class` block: already reported as skipped.
            Ctx::Top | Ctx::Skip(_) => Ok(()),
        }
    }

    /// A pending statement at the top level that never got its `;`.
    fn unterminated(&mut self, out: &mut Out<'_>) -> Result<(), Error> {
        let reason = match word(self.stmt.first()) {
            Some("lease" | "ia-na" | "ia-ta" | "ia-pd") => NOT_CLOSED,
            _ => "statement is not terminated",
        };
        self.stmt.clear();
        out.reject(self.stmt_line, reason)
    }

    /// At the end of the input: whatever is still open was cut.
    fn end(mut self, out: &mut Out<'_>) -> Result<(), Error> {
        match self.ctx {
            Ctx::Lease(l, _) => out.reject(l.line, NOT_CLOSED),
            Ctx::Ia(ia, _) => out.reject(ia.line, NOT_CLOSED),
            Ctx::Skip(_) => Ok(()),
            Ctx::Top if self.stmt.is_empty() => Ok(()),
            Ctx::Top => self.unterminated(out),
        }
    }
}

fn ia_network(kind: &str, v: &str) -> Result<IpNet, String> {
    if kind == "iaprefix" {
        v.parse::<Ipv6Net>()
            .map(|p| IpNet::V6(p.trunc()))
            .map_err(|_| format!("iaprefix {} is not an IPv6 prefix", quoted(v)))
    } else {
        v.parse::<Ipv6Addr>()
            .map(|a| IpNet::V6(Ipv6Net::from(a)))
            .map_err(|_| format!("iaaddr {} is not an IPv6 address", quoted(v)))
    }
}

/// Reads a dhcpd or dhcpd6 lease file.
pub(super) fn read_leases(input: impl BufRead, out: &mut Out<'_>) -> Result<(), Error> {
    let mut lines = Lines::new(input, AttributionFormat::DhcpdLeases);
    let mut parser = Parser {
        ctx: Ctx::Top,
        stmt: Vec::new(),
        stmt_line: 0,
    };
    let mut toks = Vec::new();
    // A line cut at the end of the file needs no check of its own: what
    // it cut is a lease whose `}` never came.
    while let Some(Next {
        number: n, line, ..
    }) = lines.next_line()?
    {
        let text = match line {
            Line::Text(t) => t,
            other => {
                out.reject(n, other.problem().unwrap_or_default())?;
                continue;
            }
        };
        if text.trim_start().starts_with('#') {
            out.skip(n, "comment")?;
            continue;
        }
        parser.line_start(text, out)?;
        tokenize(text, &mut toks);
        for t in toks.drain(..) {
            parser.token(t, n, out)?;
        }
    }
    parser.end(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let mut v = Vec::new();
        tokenize(s, &mut v);
        v
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.into())
    }

    #[test]
    fn tokenizes_strings_with_punctuation_and_escapes() {
        assert_eq!(
            toks(r#"  uid "\001\000\021\"3DU";"#),
            vec![
                w("uid"),
                Tok::Str(vec![1, 0, 0x11, b'"', b'3', b'D', b'U']),
                Tok::Semi
            ]
        );
        assert_eq!(
            toks(r#"client-hostname "a;b}c"; # trailing"#),
            vec![w("client-hostname"), Tok::Str(b"a;b}c".to_vec()), Tok::Semi]
        );
        assert_eq!(
            toks("lease 10.0.0.5 {"),
            vec![w("lease"), w("10.0.0.5"), Tok::Open]
        );
        assert_eq!(toks(r#""\x41\q"#), vec![Tok::Str(b"Aq".to_vec())]);
    }

    #[test]
    fn identities() {
        assert_eq!(colon_hex("0:1A:2b"), Some("00:1a:2b".into()));
        assert_eq!(colon_hex("eth0"), None);
        assert_eq!(colon_hex("1:2:345"), None);
        assert_eq!(text_or_hex(b"eth0/1/1:100"), "eth0/1/1:100");
        assert_eq!(text_or_hex(&[0, 0x11, 0xab]), "00:11:ab");
        assert_eq!(
            identity_value(Some(&Tok::Str(b"AB".to_vec())), true),
            Some("41:42".into())
        );
    }

    fn lines_of(data: &str) -> Vec<String> {
        super::super::collect(AttributionFormat::DhcpdLeases, data)
            .into_iter()
            .map(|e| match e {
                super::super::AttributionEvent::Address(a) => {
                    format!("{} {} {:?}", a.line, a.network, a.identity)
                }
                super::super::AttributionEvent::Skipped { line, reason } => {
                    format!("{line} skip {reason}")
                }
                super::super::AttributionEvent::Rejected { line, reason } => {
                    format!("{line} reject {reason}")
                }
            })
            .collect()
    }

    #[test]
    fn skips_other_blocks_whatever_they_hold() {
        let data = "class \"vendor\" {\n  match option vendor-class-identifier;\n                      lease limit 4;\n  x { y { z; } }\n}\n\
                    host dyn-1 {\n  dynamic;\n  hardware ethernet 00:11:22:33:44:55;\n}\n\
                    lease 10.0.0.9 { starts 2 2026/11/24 03:00:00; ends 2 2026/11/24 04:00:00; \
                    hardware ethernet 0:1:2:3:4:5; }\n";
        assert_eq!(
            lines_of(data),
            vec![
                "1 skip not a lease",
                "6 skip not a lease",
                "10 10.0.0.9/32 Some(\"00:01:02:03:04:05\")",
            ]
        );
    }

    #[test]
    fn lease_in_column_zero_ends_a_cut_block() {
        let data = "failover peer \"p\" state {\n  my state normal at 2 2026/11/24 0\n\
                    lease 10.0.0.9 {\n  starts 2 2026/11/24 03:00:00;\n  ends never;\n}\n\
                    server-duid \"\\000\n\
                    ia-na \"\\001\\000\\000\\000\\000\\002\" {\n  cltt 2 2026/11/24 03:00:00;\n\
                    \x20 iaaddr 2001:db8::9 {\n    ends never;\n  }\n}\n";
        assert_eq!(
            lines_of(data),
            vec![
                "1 skip not a lease",
                "3 10.0.0.9/32 None",
                "7 reject statement is not terminated",
                "10 2001:db8::9/128 Some(\"00:02\")",
            ]
        );
    }

    #[test]
    fn caps_addresses_per_ia() {
        let mut data = String::from(
            "ia-na \"\\001\\000\\000\\000\\000\\001\" {\n  cltt 2 2026/11/24 03:00:00;\n",
        );
        for i in 0..=MAX_IA_ADDRESSES {
            data.push_str(&format!("  iaaddr 2001:db8::{i:x} {{ ends never; }}\n"));
        }
        data.push_str("}\n");
        let events = lines_of(&data);
        assert_eq!(events.len(), MAX_IA_ADDRESSES + 1);
        assert_eq!(
            events[0],
            format!(
                "{} reject more than {MAX_IA_ADDRESSES} addresses in one IA",
                MAX_IA_ADDRESSES + 3
            )
        );
        assert_eq!(events[1], "3 2001:db8::/128 Some(\"00:01\")");
    }

    #[test]
    fn escapes() {
        assert_eq!(escape(b"101x"), (b'A', 3));
        assert_eq!(escape(b"0"), (0, 1));
        assert_eq!(escape(b"777"), (0xFF, 3));
        assert_eq!(escape(b"xg"), (b'x', 1));
        assert_eq!(escape(b""), (b'\\', 0));
    }
}
