//! Decoders for the DNS and flow telemetry Khiên's sensor watches: bytes
//! in, records out, no I/O.
//!
//! An internet provider's resolvers, routers and network monitors describe
//! what subscribers' devices do; this crate turns those descriptions into
//! [`Record`]s the sensor matches against indicators of compromise:
//!
//! - [`LineDecoder`]: one log line at a time — Unbound, BIND 9 and dnsmasq
//!   query logs, Zeek (TSV and JSON), Suricata eve.json, and CSV or JSON
//!   lines described by a [`FieldMap`]. See [`LineFormat`] for the names
//!   operators give on the command line.
//! - [`fstrm`] + [`dnstap`]: Frame Streams framing and handshake, and
//!   dnstap protobuf messages, as resolvers stream them over a socket or
//!   write them to a file.
//! - [`dns_wire`]: the question of a wire-format DNS message.
//! - [`flow`]: NetFlow v5, v9 and IPFIX datagrams, with templates,
//!   buffering of data that arrives before its template, and sequence-gap
//!   counting.
//!
//! Decisions that shaped it:
//!
//! - **No I/O.** Callers read sockets and files and hand over bytes, so
//!   every decoder can be fuzzed (`fuzz/fuzz_targets/telemetry_*.rs`) and
//!   benchmarked (`examples/decode_bench.rs`) alone.
//! - **Hostile input is data.** Decoders return an error or "not telemetry"
//!   (`Ok(None)`) for garbage; they never panic, and never allocate from a
//!   length they have not checked against a limit.
//! - **Borrow, don't allocate.** Records borrow the input line or a buffer
//!   owned by the decoder; the resolver-log parsers are written by hand with
//!   `memchr` instead of regular expressions, and dnstap is walked field by
//!   field instead of decoded into owned structs. A sensor must keep up with
//!   millions of records per second on one core.
//! - **Stable error codes.** [`DecodeError::kind`] returns a snake_case code
//!   per variant for metrics labels; codes are only added, never renamed.
//! - **Names are bytes.** Query names are passed on as seen (case, trailing
//!   dot, and non-UTF-8 bytes untouched); normalising is the matcher's job.
//!
//! ```
//! use khien_telemetry::{LineDecoder, LineFormat, Record};
//!
//! let mut decoder = LineDecoder::new("unbound".parse()?);
//! let line = b"[1795575600] unbound[1234:0] info: 192.0.2.7 evil.example. A IN";
//! let Some(Record::Dns(q)) = decoder.decode(line)? else { panic!("a query") };
//! assert_eq!(q.client.to_string(), "192.0.2.7");
//! assert_eq!(q.qname, b"evil.example.");
//! assert_eq!(q.qtype, Some(1));
//! assert_eq!(q.time_ms, 1_795_575_600_000);
//!
//! // Other log messages carry no telemetry.
//! assert_eq!(decoder.decode(b"[1795575600] unbound[1234:0] info: start of service")?, None);
//! # Ok::<(), khien_telemetry::DecodeError>(())
//! ```

use std::net::IpAddr;

mod error;
mod json;
mod lines;
mod time;

pub mod dns_wire;
pub mod dnstap;
pub mod flow;
pub mod fstrm;

pub use error::DecodeError;
pub use lines::{FieldMap, LineDecoder, LineFormat};

/// Unix time in milliseconds (UTC).
pub type TimeMs = i64;

/// Longest log line accepted, in bytes. Callers reading lines should stop
/// buffering at this size and report [`DecodeError::LineTooLong`];
/// [`LineDecoder::decode`] rejects longer lines too.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One piece of telemetry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// A DNS query (or a response to one).
    Dns(DnsQuery<'a>),
    /// A flow record.
    Flow(Flow),
    /// An HTTP request (Suricata eve http, Zeek http.log): host and URL path
    /// as seen.
    Http {
        /// Request time.
        time_ms: TimeMs,
        /// The client (subscriber side).
        client: IpAddr,
        /// Client port, when logged.
        client_port: Option<u16>,
        /// The server, when logged.
        server: Option<IpAddr>,
        /// The Host header.
        host: &'a str,
        /// The request target.
        url: &'a str,
    },
    /// A TLS client hello's server name (eve tls sni, Zeek ssl.log).
    Tls {
        /// Handshake time.
        time_ms: TimeMs,
        /// The client.
        client: IpAddr,
        /// Client port, when logged.
        client_port: Option<u16>,
        /// The server, when logged.
        server: Option<IpAddr>,
        /// The server name indication.
        sni: &'a str,
    },
}

/// A DNS query as a resolver or sensor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery<'a> {
    /// When; 0 when the source has no time (the caller substitutes now).
    pub time_ms: TimeMs,
    /// The client that asked.
    pub client: IpAddr,
    /// Its source port, when known.
    pub client_port: Option<u16>,
    /// The name in presentation form as seen, e.g. `b"www.Example.com."`:
    /// case and trailing dot untouched (the matcher normalises). From dnstap
    /// the wire name is written out with dots; a dot or backslash inside a
    /// label is escaped (`\.`, `\\`), other bytes are kept raw.
    pub qname: &'a [u8],
    /// The query type, when known.
    pub qtype: Option<u16>,
    /// A response (dnstap `CLIENT_RESPONSE`, Unbound `log-replies`, eve
    /// answers) rather than the query itself.
    pub is_response: bool,
}

/// A flow: packets between two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Flow end (last packet), absolute.
    pub time_ms: TimeMs,
    /// Source address.
    pub src: IpAddr,
    /// Source port (0 when the protocol has none).
    pub src_port: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port (for ICMP, type × 256 + code when the exporter
    /// reports it there).
    pub dst_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP…).
    pub protocol: u8,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}
