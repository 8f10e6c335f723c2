//! CSV and JSON lines laid out as a [`FieldMap`] says.

use std::borrow::Cow;
use std::net::IpAddr;

use super::{
    Ctx, FieldMap, FieldRef, bad_address, bad_time, parse_ip, parse_port, parse_protocol, parse_u64,
};
use crate::json::{self, PathSet, Scalar};
use crate::{DecodeError, DnsQuery, Flow, Record, TimeMs, dns_wire, time};

/// The roles of a [`FieldMap`], in a fixed order.
const TIME: usize = 0;
const CLIENT: usize = 1;
const PORT: usize = 2;
const NAME: usize = 3;
const QTYPE: usize = 4;
const SERVER: usize = 5;
const DPORT: usize = 6;
const PROTO: usize = 7;
const PACKETS: usize = 8;
const BYTES: usize = 9;
const ROLES: usize = 10;

fn refs(m: &FieldMap) -> [Option<&FieldRef>; ROLES] {
    [
        m.time.as_ref(),
        Some(&m.client),
        m.client_port.as_ref(),
        m.name.as_ref(),
        m.qtype.as_ref(),
        m.server.as_ref(),
        m.server_port.as_ref(),
        m.protocol.as_ref(),
        m.packets.as_ref(),
        m.bytes.as_ref(),
    ]
}

/// The fields of one line, as bytes.
struct Values<'a> {
    v: [Option<Cow<'a, [u8]>>; ROLES],
}

impl<'a> Values<'a> {
    fn get(&self, role: usize) -> Option<&[u8]> {
        self.v[role].as_deref().filter(|v| !v.is_empty())
    }

    fn time(&self, ctx: Ctx) -> Result<TimeMs, DecodeError> {
        match self.get(TIME) {
            None => Ok(0),
            Some(t) => time::parse_auto(t, ctx.reference_ms, ctx.offset_s)
                .ok_or_else(|| bad_time("time field", t)),
        }
    }

    fn ip(&self, role: usize, field: &'static str) -> Result<Option<IpAddr>, DecodeError> {
        self.get(role)
            .map(|v| parse_ip(v).ok_or_else(|| bad_address(field, v)))
            .transpose()
    }

    fn number(&self, role: usize, field: &'static str) -> Result<Option<u64>, DecodeError> {
        self.get(role)
            .map(|v| {
                parse_u64(v).ok_or_else(|| DecodeError::BadNumber {
                    field,
                    value: crate::error::snippet(v),
                })
            })
            .transpose()
    }

    fn port(&self, role: usize, field: &'static str) -> Result<Option<u16>, DecodeError> {
        self.get(role)
            .map(|v| {
                parse_port(v).ok_or_else(|| DecodeError::BadNumber {
                    field,
                    value: crate::error::snippet(v),
                })
            })
            .transpose()
    }

    /// Builds the record: DNS when there is a name, else a flow when a
    /// server address is mapped.
    fn record(
        mut self,
        ctx: Ctx,
        scratch: &'a mut String,
    ) -> Result<Option<Record<'a>>, DecodeError> {
        let time_ms = self.time(ctx)?;
        let Some(client) = self.ip(CLIENT, "client field")? else {
            return Err(DecodeError::MissingField {
                field: "client field",
            });
        };
        let client_port = self.port(PORT, "port field")?;
        if self.get(NAME).is_some() {
            let qtype = match self.get(QTYPE) {
                None => None,
                Some(t) => parse_u64(t)
                    .and_then(|n| u16::try_from(n).ok())
                    .or_else(|| dns_wire::qtype_from_name(t)),
            };
            let name = self.v[NAME].take().unwrap_or_default();
            let qname: &'a [u8] = match name {
                Cow::Borrowed(b) => b,
                Cow::Owned(o) => {
                    // Only a quoted CSV field with "" escapes gets here; it
                    // came from a &str or was built from ASCII quotes, but
                    // names are bytes, so keep them lossless.
                    scratch.clear();
                    match String::from_utf8(o) {
                        Ok(s) => scratch.push_str(&s),
                        Err(_) => {
                            return Err(DecodeError::InvalidUtf8 {
                                field: "name field",
                            });
                        }
                    }
                    scratch.as_bytes()
                }
            };
            return Ok(Some(Record::Dns(DnsQuery {
                time_ms,
                client,
                client_port,
                qname,
                qtype,
                is_response: false,
            })));
        }
        let Some(dst) = self.ip(SERVER, "ip field")? else {
            return Ok(None);
        };
        let protocol = match self.get(PROTO) {
            None => 0,
            Some(p) => parse_protocol(p).ok_or_else(|| DecodeError::BadNumber {
                field: "proto field",
                value: crate::error::snippet(p),
            })?,
        };
        Ok(Some(Record::Flow(Flow {
            time_ms,
            src: client,
            src_port: client_port.unwrap_or(0),
            dst,
            dst_port: self.port(DPORT, "dport field")?.unwrap_or(0),
            protocol,
            packets: self.number(PACKETS, "packets field")?.unwrap_or(0),
            bytes: self.number(BYTES, "bytes field")?.unwrap_or(0),
        })))
    }
}

/// One CSV field at `start`: its value (unquoted) and where the next
/// field starts (`None` at the end of the line).
fn csv_field(line: &[u8], start: usize, sep: u8) -> (Cow<'_, [u8]>, Option<usize>) {
    let rest = &line[start..];
    if rest.first() != Some(&b'"') {
        return match memchr::memchr(sep, rest) {
            Some(i) => (Cow::Borrowed(&rest[..i]), Some(start + i + 1)),
            None => (Cow::Borrowed(rest), None),
        };
    }
    let mut owned: Option<Vec<u8>> = None;
    let mut i = 1;
    let mut seg = 1;
    loop {
        match memchr::memchr(b'"', &rest[i..]) {
            None => {
                // Unclosed quote: the rest of the line is the value.
                let v = &rest[seg..];
                return match owned {
                    Some(mut o) => {
                        o.extend_from_slice(v);
                        (Cow::Owned(o), None)
                    }
                    None => (Cow::Borrowed(v), None),
                };
            }
            Some(q) => {
                let q = i + q;
                if rest.get(q + 1) == Some(&b'"') {
                    owned
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(&rest[seg..=q]);
                    i = q + 2;
                    seg = i;
                    continue;
                }
                let value = match owned {
                    Some(mut o) => {
                        o.extend_from_slice(&rest[seg..q]);
                        Cow::Owned(o)
                    }
                    None => Cow::Borrowed(&rest[seg..q]),
                };
                let next = memchr::memchr(sep, &rest[q + 1..]).map(|j| start + q + 1 + j + 1);
                return (value, next);
            }
        }
    }
}

pub(super) fn csv<'a>(
    m: &FieldMap,
    line: &'a [u8],
    ctx: Ctx,
    first_line: bool,
    scratch: &'a mut String,
) -> Result<Option<Record<'a>>, DecodeError> {
    if line.first() == Some(&b'#') {
        return Ok(None);
    }
    let refs = refs(m);
    let max_col = refs.iter().filter_map(|r| match r {
        Some(FieldRef::Column(c)) => Some(*c),
        _ => None,
    });
    let last = max_col.max().unwrap_or(0);
    let mut values = Values {
        v: Default::default(),
    };
    let mut col = 0;
    let mut at = Some(0);
    while let Some(start) = at {
        if col > last {
            break;
        }
        let (v, next) = csv_field(line, start, m.separator);
        for (slot, r) in values.v.iter_mut().zip(&refs) {
            if *r == Some(&FieldRef::Column(col)) {
                *slot = Some(v.clone());
            }
        }
        at = next;
        col += 1;
    }
    // A header row: the first line, whose client column is not an address.
    if first_line && values.get(CLIENT).is_some_and(|c| parse_ip(c).is_none()) {
        return Ok(None);
    }
    values.record(ctx, scratch)
}

/// The JSON paths of a field map, compiled once per decoder.
pub(super) fn json_paths(m: &FieldMap) -> PathSet {
    let mut paths = [""; ROLES];
    for (p, r) in paths.iter_mut().zip(refs(m)) {
        if let Some(FieldRef::Key(k)) = r {
            *p = k;
        }
    }
    PathSet::new(&paths)
}

pub(super) fn json<'a>(
    paths: &PathSet,
    line: &'a [u8],
    ctx: Ctx,
    scratch: &'a mut String,
) -> Result<Option<Record<'a>>, DecodeError> {
    let text = json::utf8(line)?;
    let mut found: [Scalar<'a>; ROLES] = Default::default();
    json::extract(text, paths, &mut found)?;
    let mut values = Values {
        v: Default::default(),
    };
    for (slot, s) in values.v.iter_mut().zip(found) {
        *slot = match s {
            Scalar::Str(Cow::Borrowed(b)) => Some(Cow::Borrowed(b.as_bytes())),
            Scalar::Str(Cow::Owned(o)) => Some(Cow::Owned(o.into_bytes())),
            Scalar::U64(n) => Some(Cow::Owned(n.to_string().into_bytes())),
            Scalar::I64(n) => Some(Cow::Owned(n.to_string().into_bytes())),
            Scalar::F64(f) => Some(Cow::Owned(f.to_string().into_bytes())),
            Scalar::Bool(_) | Scalar::Compound => {
                return Err(DecodeError::BadLine {
                    format: "json",
                    what: "a mapped field is not a string or number",
                    offset: 0,
                });
            }
            Scalar::Missing | Scalar::Null => None,
        };
    }
    values.record(ctx, scratch)
}
