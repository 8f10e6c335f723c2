//! dnstap (dnstap.info): protobuf `Dnstap` messages, usually carried in
//! Frame Streams ([`crate::fstrm`]).
//!
//! Which messages become a [`DnsQuery`]:
//! - `CLIENT_QUERY` (a subscriber's query arriving at the resolver) and
//!   `CLIENT_RESPONSE` (the answer sent back, `is_response = true`). The
//!   client is `query_address`/`query_port`; the name and type come from the
//!   first question of `query_message` (for responses, `response_message`;
//!   each falls back to the other).
//! - `AUTH_QUERY`/`AUTH_RESPONSE` only with
//!   [`DnstapDecoder::with_auth_messages`]: their "client" is a resolver,
//!   not a subscriber, which is only useful on an ISP's own authoritative
//!   servers.
//! - Everything else (`RESOLVER_*`, `FORWARDER_*`, `STUB_*`, `TOOL_*`,
//!   `UPDATE_*`) describes the resolver's own traffic: `Ok(None)`.
//!
//! The time is `query_time` when present, else `response_time`, else 0.
//!
//! Decoding walks the protobuf by hand rather than through prost: the
//! walker borrows the payload and allocates nothing per frame, while
//! prost's generated decoder allocates a `Vec` for each bytes field (five
//! per message). The prost structs in [`proto`] are kept for encoding and as
//! the reference the walker is tested against; `examples/decode_bench.rs`
//! measures both (figures in docs/PERFORMANCE.md).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{DecodeError, DnsQuery, TimeMs, dns_wire};

/// The Frame Streams content type of dnstap.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// The messages of dnstap.proto (github.com/dnstap/dnstap.pb), written out
/// for prost without a build script. Field numbers are the schema's.
pub mod proto {
    /// The top-level "union" message.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dnstap {
        /// DNS server identity.
        #[prost(bytes = "vec", optional, tag = "1")]
        pub identity: Option<Vec<u8>>,
        /// DNS server version.
        #[prost(bytes = "vec", optional, tag = "2")]
        pub version: Option<Vec<u8>>,
        /// Extra data.
        #[prost(bytes = "vec", optional, tag = "3")]
        pub extra: Option<Vec<u8>>,
        /// Which field is filled in ([`dnstap::Type`]).
        #[prost(enumeration = "dnstap::Type", required, tag = "15")]
        pub r#type: i32,
        /// The message.
        #[prost(message, optional, tag = "14")]
        pub message: Option<Message>,
    }

    /// Nested types of [`Dnstap`].
    pub mod dnstap {
        /// `Dnstap.Type`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum Type {
            /// A `Message` is filled in.
            Message = 1,
        }
    }

    /// Network protocol family of a socket.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum SocketFamily {
        /// IPv4.
        Inet = 1,
        /// IPv6.
        Inet6 = 2,
    }

    /// Transport of a DNS message.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum SocketProtocol {
        /// UDP.
        Udp = 1,
        /// TCP.
        Tcp = 2,
        /// DNS over TLS.
        Dot = 3,
        /// DNS over HTTPS.
        Doh = 4,
        /// DNSCrypt over UDP.
        DnsCryptUdp = 5,
        /// DNSCrypt over TCP.
        DnsCryptTcp = 6,
        /// DNS over QUIC.
        Doq = 7,
    }

    /// A wire-format DNS message and its metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Message {
        /// [`message::Type`].
        #[prost(enumeration = "message::Type", required, tag = "1")]
        pub r#type: i32,
        /// [`SocketFamily`].
        #[prost(enumeration = "SocketFamily", optional, tag = "2")]
        pub socket_family: Option<i32>,
        /// [`SocketProtocol`].
        #[prost(enumeration = "SocketProtocol", optional, tag = "3")]
        pub socket_protocol: Option<i32>,
        /// Initiator's address (4 or 16 octets).
        #[prost(bytes = "vec", optional, tag = "4")]
        pub query_address: Option<Vec<u8>>,
        /// Responder's address.
        #[prost(bytes = "vec", optional, tag = "5")]
        pub response_address: Option<Vec<u8>>,
        /// Initiator's port.
        #[prost(uint32, optional, tag = "6")]
        pub query_port: Option<u32>,
        /// Responder's port.
        #[prost(uint32, optional, tag = "7")]
        pub response_port: Option<u32>,
        /// Query time, seconds since the epoch.
        #[prost(uint64, optional, tag = "8")]
        pub query_time_sec: Option<u64>,
        /// Query time, nanoseconds part.
        #[prost(fixed32, optional, tag = "9")]
        pub query_time_nsec: Option<u32>,
        /// The query, wire format.
        #[prost(bytes = "vec", optional, tag = "10")]
        pub query_message: Option<Vec<u8>>,
        /// Zone/bailiwick, wire-format name.
        #[prost(bytes = "vec", optional, tag = "11")]
        pub query_zone: Option<Vec<u8>>,
        /// Response time, seconds since the epoch.
        #[prost(uint64, optional, tag = "12")]
        pub response_time_sec: Option<u64>,
        /// Response time, nanoseconds part.
        #[prost(fixed32, optional, tag = "13")]
        pub response_time_nsec: Option<u32>,
        /// The response, wire format.
        #[prost(bytes = "vec", optional, tag = "14")]
        pub response_message: Option<Vec<u8>>,
    }

    /// Nested types of [`Message`].
    pub mod message {
        /// `Message.Type`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum Type {
            /// Query received by an authoritative server.
            AuthQuery = 1,
            /// Response sent by an authoritative server.
            AuthResponse = 2,
            /// Query sent by a resolver.
            ResolverQuery = 3,
            /// Response received by a resolver.
            ResolverResponse = 4,
            /// Query received from a client by a resolver.
            ClientQuery = 5,
            /// Response sent to a client by a resolver.
            ClientResponse = 6,
            /// Query sent by a forwarder.
            ForwarderQuery = 7,
            /// Response received by a forwarder.
            ForwarderResponse = 8,
            /// Query sent by a stub.
            StubQuery = 9,
            /// Response received by a stub.
            StubResponse = 10,
            /// Query sent by a tool.
            ToolQuery = 11,
            /// Response received by a tool.
            ToolResponse = 12,
            /// Dynamic update received.
            UpdateQuery = 13,
            /// Dynamic update response sent.
            UpdateResponse = 14,
        }
    }
}

const AUTH_QUERY: u64 = 1;
const AUTH_RESPONSE: u64 = 2;
const CLIENT_QUERY: u64 = 5;
const CLIENT_RESPONSE: u64 = 6;

/// Decodes dnstap payloads into [`DnsQuery`]s. Owns the buffer the dotted
/// qname is written into, so decoding allocates nothing once warm.
#[derive(Debug)]
pub struct DnstapDecoder {
    qname: Vec<u8>,
    auth_messages: bool,
}

impl Default for DnstapDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// The fields of `Message` the decoder uses, borrowed from the payload.
#[derive(Default)]
struct Fields<'p> {
    mtype: Option<u64>,
    query_address: Option<&'p [u8]>,
    query_port: Option<u64>,
    query_time_sec: Option<u64>,
    query_time_nsec: Option<u32>,
    query_message: Option<&'p [u8]>,
    response_time_sec: Option<u64>,
    response_time_nsec: Option<u32>,
    response_message: Option<&'p [u8]>,
}

enum Value<'p> {
    Varint(u64),
    Fixed64,
    Bytes(&'p [u8]),
    Fixed32(u32),
}

/// A protobuf field walker over a borrowed buffer.
struct Walker<'p> {
    buf: &'p [u8],
    pos: usize,
    base: usize,
}

impl<'p> Walker<'p> {
    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError::Protobuf {
            what,
            offset: self.base + self.pos,
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err("varint over 64 bits"));
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err("varint over 10 bytes"))
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'p [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next (field number, value, offset of the value), or `None` at the end.
    fn next(&mut self) -> Result<Option<(u64, Value<'p>, usize)>, DecodeError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(self.err("field number 0"));
        }
        let at = self.pos;
        let v = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8, "truncated fixed64")?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let len =
                    usize::try_from(len).map_err(|_| self.err("length over address space"))?;
                Value::Bytes(self.take(len, "length-delimited field longer than the message")?)
            }
            5 => {
                let b = self.take(4, "truncated fixed32")?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            _ => return Err(self.err("unsupported wire type (group or reserved)")),
        };
        Ok(Some((field, v, at)))
    }
}

fn wrong_type(base: usize, at: usize) -> DecodeError {
    DecodeError::Protobuf {
        what: "unexpected wire type for a known field",
        offset: base + at,
    }
}

fn walk_message<'p>(buf: &'p [u8], base: usize, f: &mut Fields<'p>) -> Result<(), DecodeError> {
    let mut w = Walker { buf, pos: 0, base };
    while let Some((field, v, at)) = w.next()? {
        match (field, v) {
            (1, Value::Varint(x)) => f.mtype = Some(x),
            (4, Value::Bytes(b)) => f.query_address = Some(b),
            (6, Value::Varint(x)) => f.query_port = Some(x),
            (8, Value::Varint(x)) => f.query_time_sec = Some(x),
            (9, Value::Fixed32(x)) => f.query_time_nsec = Some(x),
            (10, Value::Bytes(b)) => f.query_message = Some(b),
            (12, Value::Varint(x)) => f.response_time_sec = Some(x),
            (13, Value::Fixed32(x)) => f.response_time_nsec = Some(x),
            (14, Value::Bytes(b)) => f.response_message = Some(b),
            (1 | 4 | 6 | 8 | 9 | 10 | 12 | 13 | 14, _) => return Err(wrong_type(base, at)),
            _ => {}
        }
    }
    Ok(())
}

fn time_ms(sec: Option<u64>, nsec: Option<u32>) -> Result<Option<TimeMs>, DecodeError> {
    let Some(sec) = sec else { return Ok(None) };
    // Beyond year 292 million the millisecond count overflows an i64.
    let ms = i64::try_from(sec)
        .ok()
        .and_then(|s| s.checked_mul(1000))
        .and_then(|s| s.checked_add(i64::from(nsec.unwrap_or(0).min(999_999_999) / 1_000_000)))
        .ok_or_else(|| DecodeError::BadTime {
            field: "dnstap time_sec",
            value: sec.to_string(),
        })?;
    Ok(Some(ms))
}

fn address(bytes: &[u8]) -> Result<IpAddr, DecodeError> {
    match bytes.len() {
        4 => Ok(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            Ok(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => Err(DecodeError::BadAddress {
            field: "dnstap query_address",
            value: crate::error::snippet(bytes),
        }),
    }
}

impl DnstapDecoder {
    /// A decoder for `CLIENT_QUERY`/`CLIENT_RESPONSE` messages.
    pub fn new() -> Self {
        Self {
            qname: Vec::with_capacity(256),
            auth_messages: false,
        }
    }

    /// Also turn `AUTH_QUERY`/`AUTH_RESPONSE` into queries (their client is
    /// the querying resolver).
    pub fn with_auth_messages(mut self, yes: bool) -> Self {
        self.auth_messages = yes;
        self
    }

    /// Decodes one `Dnstap` protobuf payload (one Frame Streams data
    /// frame). `Ok(None)` for messages that are not a client's query or
    /// response, or that carry no question.
    pub fn decode<'a>(&'a mut self, payload: &[u8]) -> Result<Option<DnsQuery<'a>>, DecodeError> {
        let mut f = Fields::default();
        let mut dtype = None;
        let mut has_message = false;
        let mut w = Walker {
            buf: payload,
            pos: 0,
            base: 0,
        };
        while let Some((field, v, at)) = w.next()? {
            match (field, v) {
                (14, Value::Bytes(b)) => {
                    has_message = true;
                    // Repeated occurrences of an embedded message merge.
                    walk_message(b, at, &mut f)?;
                }
                (15, Value::Varint(x)) => dtype = Some(x),
                (14 | 15, _) => return Err(wrong_type(0, at)),
                _ => {}
            }
        }
        if dtype.is_some_and(|t| t != 1) || !has_message {
            return Ok(None);
        }
        let Some(mtype) = f.mtype else {
            return Err(DecodeError::MissingField {
                field: "dnstap Message.type",
            });
        };
        let is_response = match mtype {
            CLIENT_QUERY => false,
            CLIENT_RESPONSE => true,
            AUTH_QUERY if self.auth_messages => false,
            AUTH_RESPONSE if self.auth_messages => true,
            _ => return Ok(None),
        };
        self.finish(&f, is_response)
    }

    fn finish<'a>(
        &'a mut self,
        f: &Fields<'_>,
        is_response: bool,
    ) -> Result<Option<DnsQuery<'a>>, DecodeError> {
        let Some(addr) = f.query_address else {
            return Err(DecodeError::MissingField {
                field: "dnstap Message.query_address",
            });
        };
        let client = address(addr)?;
        let client_port = f.query_port.and_then(|p| u16::try_from(p).ok());
        let time_ms = match time_ms(f.query_time_sec, f.query_time_nsec)? {
            Some(t) => t,
            None => time_ms(f.response_time_sec, f.response_time_nsec)?.unwrap_or(0),
        };
        let wire = if is_response {
            f.response_message.or(f.query_message)
        } else {
            f.query_message.or(f.response_message)
        };
        let Some(wire) = wire else {
            return Err(DecodeError::MissingField {
                field: "dnstap Message.query_message",
            });
        };
        let Some(qtype) = dns_wire::question_name(wire, &mut self.qname)? else {
            return Ok(None);
        };
        Ok(Some(DnsQuery {
            time_ms,
            client,
            client_port,
            qname: &self.qname,
            qtype: Some(qtype),
            is_response,
        }))
    }

    /// The same decoding through prost's generated code, kept as the
    /// reference the hand-written walker is tested and measured against.
    #[doc(hidden)]
    pub fn decode_with_prost<'a>(
        &'a mut self,
        payload: &[u8],
    ) -> Result<Option<DnsQuery<'a>>, DecodeError> {
        use prost::Message as _;
        let d = proto::Dnstap::decode(payload).map_err(|_| DecodeError::Protobuf {
            what: "prost could not decode the message",
            offset: 0,
        })?;
        let Some(m) = d.message.as_ref() else {
            return Ok(None);
        };
        if d.r#type != 1 {
            return Ok(None);
        }
        let is_response = match u64::try_from(m.r#type).unwrap_or(0) {
            CLIENT_QUERY => false,
            CLIENT_RESPONSE => true,
            AUTH_QUERY if self.auth_messages => false,
            AUTH_RESPONSE if self.auth_messages => true,
            _ => return Ok(None),
        };
        let f = Fields {
            mtype: None,
            query_address: m.query_address.as_deref(),
            query_port: m.query_port.map(u64::from),
            query_time_sec: m.query_time_sec,
            query_time_nsec: m.query_time_nsec,
            query_message: m.query_message.as_deref(),
            response_time_sec: m.response_time_sec,
            response_time_nsec: m.response_time_nsec,
            response_message: m.response_message.as_deref(),
        };
        self.finish(&f, is_response)
    }
}

/// Encodes a `CLIENT_QUERY` for (client, port, qname, qtype, time), over
/// UDP, as a resolver would log it. A `qname` that is not a valid DNS name
/// gives a query message without a question (which decodes to `Ok(None)`);
/// use [`try_encode_client_query`] to be told instead.
pub fn encode_client_query(
    client: IpAddr,
    client_port: u16,
    qname: &str,
    qtype: u16,
    time_ms: TimeMs,
) -> Vec<u8> {
    try_encode_client_query(client, client_port, qname, qtype, time_ms).unwrap_or_else(|_| {
        let header_only = vec![0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        encode_message(5, client, client_port, header_only, time_ms)
    })
}

/// [`encode_client_query`], failing on an invalid name.
pub fn try_encode_client_query(
    client: IpAddr,
    client_port: u16,
    qname: &str,
    qtype: u16,
    time_ms: TimeMs,
) -> Result<Vec<u8>, DecodeError> {
    let wire = dns_wire::encode_query(0, qname.as_bytes(), qtype)?;
    Ok(encode_message(5, client, client_port, wire, time_ms))
}

fn encode_message(
    mtype: i32,
    client: IpAddr,
    client_port: u16,
    wire: Vec<u8>,
    time_ms: TimeMs,
) -> Vec<u8> {
    use prost::Message as _;
    let (family, addr) = match client {
        IpAddr::V4(a) => (proto::SocketFamily::Inet, a.octets().to_vec()),
        IpAddr::V6(a) => (proto::SocketFamily::Inet6, a.octets().to_vec()),
    };
    let t = time_ms.max(0);
    let msg = proto::Message {
        r#type: mtype,
        socket_family: Some(family as i32),
        socket_protocol: Some(proto::SocketProtocol::Udp as i32),
        query_address: Some(addr),
        query_port: Some(u32::from(client_port)),
        query_time_sec: Some(t.unsigned_abs() / 1000),
        query_time_nsec: Some((t % 1000) as u32 * 1_000_000),
        query_message: Some(wire),
        ..Default::default()
    };
    proto::Dnstap {
        identity: Some(b"khien".to_vec()),
        version: None,
        extra: None,
        r#type: proto::dnstap::Type::Message as i32,
        message: Some(msg),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn client_query_round_trips() {
        let client: IpAddr = "2001:db8::7".parse().unwrap();
        let p = encode_client_query(client, 53211, "evil.Example.", 28, 1_795_575_600_123);
        let mut d = DnstapDecoder::new();
        let q = d.decode(&p).unwrap().unwrap();
        assert_eq!(q.client, client);
        assert_eq!(q.client_port, Some(53211));
        assert_eq!(q.qname, b"evil.Example.");
        assert_eq!(q.qtype, Some(28));
        assert_eq!(q.time_ms, 1_795_575_600_123);
        assert!(!q.is_response);
    }

    #[test]
    fn resolver_messages_are_not_telemetry() {
        let wire = dns_wire::encode_query(1, b"example.com", 1).unwrap();
        let p = encode_message(3, "192.0.2.1".parse().unwrap(), 5353, wire, 0);
        assert_eq!(DnstapDecoder::new().decode(&p), Ok(None));
    }

    #[test]
    fn auth_messages_on_request() {
        let wire = dns_wire::encode_query(1, b"example.com", 1).unwrap();
        let p = encode_message(1, "192.0.2.1".parse().unwrap(), 5353, wire, 0);
        assert_eq!(DnstapDecoder::new().decode(&p), Ok(None));
        let mut d = DnstapDecoder::new().with_auth_messages(true);
        assert_eq!(d.decode(&p).unwrap().unwrap().qname, b"example.com.");
    }

    #[test]
    fn client_response_uses_the_response_message() {
        let mut m = proto::Message {
            r#type: 6,
            query_address: Some(vec![192, 0, 2, 7]),
            query_port: Some(4444),
            response_time_sec: Some(1_795_575_600),
            response_message: Some(dns_wire::encode_query(9, b"a.example", 16).unwrap()),
            ..Default::default()
        };
        m.response_message.as_mut().unwrap()[2] |= 0x80;
        let p = proto::Dnstap {
            r#type: 1,
            message: Some(m),
            ..Default::default()
        }
        .encode_to_vec();
        let mut d = DnstapDecoder::new();
        let q = d.decode(&p).unwrap().unwrap();
        assert!(q.is_response);
        assert_eq!(q.qname, b"a.example.");
        assert_eq!(q.qtype, Some(16));
        assert_eq!(q.time_ms, 1_795_575_600_000);
    }

    #[test]
    fn missing_address_and_bad_address() {
        let m = proto::Message {
            r#type: 5,
            query_message: Some(dns_wire::encode_query(9, b"a.example", 1).unwrap()),
            ..Default::default()
        };
        let mut p = proto::Dnstap {
            r#type: 1,
            message: Some(m.clone()),
            ..Default::default()
        };
        let mut d = DnstapDecoder::new();
        assert_eq!(
            d.decode(&p.encode_to_vec()).unwrap_err().kind(),
            "missing_field"
        );
        p.message = Some(proto::Message {
            query_address: Some(vec![1, 2, 3]),
            ..m
        });
        assert_eq!(
            d.decode(&p.encode_to_vec()).unwrap_err().kind(),
            "bad_address"
        );
    }

    #[test]
    fn garbage_is_a_protobuf_error() {
        let mut d = DnstapDecoder::new();
        assert_eq!(
            d.decode(b"\x72\xff\xff\xff\xff\x0f").unwrap_err().kind(),
            "protobuf"
        );
        assert_eq!(d.decode(b"\x0b").unwrap_err().kind(), "protobuf"); // group
        assert_eq!(d.decode(b"\x78").unwrap_err().kind(), "protobuf"); // truncated varint
        assert_eq!(d.decode(b""), Ok(None));
    }

    #[test]
    fn walker_agrees_with_prost() {
        let p = encode_client_query("192.0.2.7".parse().unwrap(), 1, "x.example", 1, 5);
        let a = DnstapDecoder::new()
            .decode(&p)
            .map(|q| q.map(|q| format!("{q:?}")));
        let b = DnstapDecoder::new()
            .decode_with_prost(&p)
            .map(|q| q.map(|q| format!("{q:?}")));
        assert_eq!(a, b);
    }
}
