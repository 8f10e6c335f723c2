//! NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) datagrams.
//!
//! One [`FlowDecoder`] per listening socket holds the exporters' templates,
//! keyed by (exporter address, observation domain / source id, version,
//! template id). Data sets that arrive before their template are kept for a
//! short while ([`FlowDecoderConfig::pending_timeout_ms`], at most
//! [`FlowDecoderConfig::pending_limit`] sets) and decoded when it arrives;
//! templates not refreshed within
//! [`FlowDecoderConfig::template_timeout_ms`] expire.
//!
//! Fields used: IPv4/IPv6 source and destination (IE 8/12/27/28), ports
//! (7/11; for ICMP the type/code of IE 32/139 goes in the destination port
//! when there is no port), protocol (4; 1 or 58 when only an ICMP type/code
//! field says so), packets (2, else 86), bytes (1,
//! else 85), and the flow end: `flowEndMilliseconds` (153),
//! `flowEndSeconds` (151), `flowEndMicroseconds`/`NanoSeconds` (155/157, NTP
//! format), or `flowEndSysUpTime` (21, v9 `LAST_SWITCHED`) made absolute with
//! the v9 header's uptime and time, or in IPFIX with
//! `systemInitTimeMilliseconds` (160) from the record or from an options
//! record; then the matching start fields (152/150/154/156/22); then the
//! export time. Enterprise-specific fields (such as softflowd's reverse
//! counters) and variable-length fields are skipped. Options templates and
//! records are parsed; only IE 160 is kept from them.
//!
//! Sequence numbers are checked per (exporter, domain): v5 counts flows,
//! v9 packets, IPFIX data records. softflowd numbers v9 and IPFIX messages
//! with the record count *including* the current message; both conventions
//! are accepted, and a gap adds the smaller of the two estimates of what
//! was lost to [`FlowCounters::sequence_gaps`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{DecodeError, Flow, TimeMs};

/// Limits and lifetimes of a [`FlowDecoder`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowDecoderConfig {
    /// A template not re-announced for this long is forgotten (default 30
    /// minutes; exporters re-send every few minutes or packets).
    pub template_timeout_ms: i64,
    /// Data sets kept while waiting for their template (default 1024);
    /// beyond this the oldest are dropped and counted.
    pub pending_limit: usize,
    /// How long a data set waits for its template (default 10 s).
    pub pending_timeout_ms: i64,
    /// Total bytes of data sets kept while waiting (default 4 MiB).
    pub pending_bytes_limit: usize,
    /// Templates held at once, over all exporters (default 16,384); new
    /// ones beyond it are refused with `template_limit`.
    pub max_templates: usize,
}

impl Default for FlowDecoderConfig {
    fn default() -> Self {
        Self {
            template_timeout_ms: 30 * 60 * 1000,
            pending_limit: 1024,
            pending_timeout_ms: 10_000,
            pending_bytes_limit: 4 << 20,
            max_templates: 16_384,
        }
    }
}

/// What a [`FlowDecoder`] has seen, for metrics. Monotonic except
/// `templates_active` and `pending_sets`, which are current values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowCounters {
    /// Datagrams handed to `decode`.
    pub datagrams: u64,
    /// Flows produced.
    pub flows: u64,
    /// Estimated records (IPFIX, v5) or packets (v9) lost, from sequence
    /// numbers.
    pub sequence_gaps: u64,
    /// Data sets dropped because their template never came (pending limit
    /// or timeout).
    pub no_template_dropped: u64,
    /// Templates forgotten after the template timeout.
    pub templates_expired: u64,
    /// Templates held now.
    pub templates_active: u64,
    /// Data sets waiting for their template now.
    pub pending_sets: u64,
    /// Data records without a usable source or destination address.
    pub records_without_address: u64,
    /// Options data records read.
    pub options_records: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StreamKey {
    exporter: SocketAddr,
    domain: u32,
    version: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TemplateKey {
    stream: StreamKey,
    id: u16,
}

/// What a template field means to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Skip,
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    PacketsTotal,
    BytesTotal,
    IcmpV4,
    IcmpV6,
    EndSysUp,
    EndSec,
    EndMs,
    EndNtp,
    StartSysUp,
    StartSec,
    StartMs,
    StartNtp,
    InitMs,
}

fn role(ie: u16, enterprise: bool) -> Role {
    if enterprise {
        return Role::Skip;
    }
    match ie {
        1 => Role::Bytes,
        2 => Role::Packets,
        4 => Role::Protocol,
        7 => Role::SrcPort,
        8 => Role::SrcV4,
        11 => Role::DstPort,
        12 => Role::DstV4,
        21 => Role::EndSysUp,
        22 => Role::StartSysUp,
        27 => Role::SrcV6,
        28 => Role::DstV6,
        32 => Role::IcmpV4,
        139 => Role::IcmpV6,
        85 => Role::BytesTotal,
        86 => Role::PacketsTotal,
        150 => Role::StartSec,
        151 => Role::EndSec,
        152 => Role::StartMs,
        153 => Role::EndMs,
        154 | 156 => Role::StartNtp,
        155 | 157 => Role::EndNtp,
        160 => Role::InitMs,
        _ => Role::Skip,
    }
}

const VARIABLE: u16 = 65535;
const MAX_FIELDS: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    /// (role, length; 65535 = variable).
    fields: Vec<(Role, u16)>,
    /// Smallest possible record.
    min_len: usize,
    /// Record length when no field is variable.
    fixed_len: Option<usize>,
    options: bool,
    received_ms: TimeMs,
}

/// Header values data records are interpreted with.
#[derive(Debug, Clone, Copy)]
struct Header {
    stream: StreamKey,
    export_ms: TimeMs,
    /// v9 sysUptime.
    uptime_ms: Option<u32>,
}

#[derive(Debug)]
struct Pending {
    key: TemplateKey,
    header: Header,
    data: Vec<u8>,
    received_ms: TimeMs,
}

/// Data records in one message: all of them, and flow records only
/// (softflowd leaves options records out of its sequence numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counted {
    all: u32,
    flows: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sequence {
    last: u32,
    /// Records in the last message, when known.
    last_records: Option<Counted>,
    /// How often each numbering convention fitted (see `check_sequence`).
    fits: [u32; 4],
}

/// Decodes NetFlow v5/v9 and IPFIX datagrams into [`Flow`]s.
#[derive(Debug)]
pub struct FlowDecoder {
    config: FlowDecoderConfig,
    templates: HashMap<TemplateKey, Template>,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    sequences: HashMap<StreamKey, Sequence>,
    init_ms: HashMap<StreamKey, TimeMs>,
    counters: FlowCounters,
    last_sweep_ms: TimeMs,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn uint(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    Some(b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
}

fn truncated(what: &'static str, offset: usize) -> DecodeError {
    DecodeError::NetflowTruncated { what, offset }
}

/// NTP timestamp (seconds since 1900 in the high word) → Unix ms.
fn ntp_ms(v: u64) -> TimeMs {
    let secs = (v >> 32) as i64 - 2_208_988_800;
    let frac_ms = ((v & 0xFFFF_FFFF) * 1000) >> 32;
    secs * 1000 + frac_ms as i64
}

/// The fields of one data record that make a flow.
#[derive(Debug, Default)]
struct RecordValues {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    icmp: Option<u16>,
    icmp_protocol: u8,
    protocol: u8,
    packets: Option<u64>,
    bytes: Option<u64>,
    packets_total: Option<u64>,
    bytes_total: Option<u64>,
    end_sysup: Option<u32>,
    end_ms: Option<TimeMs>,
    start_sysup: Option<u32>,
    start_ms: Option<TimeMs>,
    init_ms: Option<TimeMs>,
}

impl RecordValues {
    fn set(&mut self, role: Role, v: &[u8]) {
        let n = || uint(v);
        let ms = |x: u64| i64::try_from(x).ok();
        match role {
            Role::Skip => {}
            Role::SrcV4 | Role::DstV4 => {
                if let [a, b, c, d] = *v {
                    let ip = Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
                    if role == Role::SrcV4 {
                        self.src = ip
                    } else {
                        self.dst = ip
                    }
                }
            }
            Role::SrcV6 | Role::DstV6 => {
                if let Ok(a) = <[u8; 16]>::try_from(v) {
                    let ip = Some(IpAddr::V6(Ipv6Addr::from(a)));
                    if role == Role::SrcV6 {
                        self.src = ip
                    } else {
                        self.dst = ip
                    }
                }
            }
            Role::SrcPort => self.src_port = n().and_then(|x| u16::try_from(x).ok()),
            Role::DstPort => self.dst_port = n().and_then(|x| u16::try_from(x).ok()),
            Role::IcmpV4 | Role::IcmpV6 => {
                self.icmp = n().and_then(|x| u16::try_from(x).ok());
                self.icmp_protocol = if role == Role::IcmpV4 { 1 } else { 58 };
            }
            Role::Protocol => self.protocol = n().and_then(|x| u8::try_from(x).ok()).unwrap_or(0),
            Role::Packets => self.packets = n(),
            Role::Bytes => self.bytes = n(),
            Role::PacketsTotal => self.packets_total = n(),
            Role::BytesTotal => self.bytes_total = n(),
            Role::EndSysUp => self.end_sysup = n().and_then(|x| u32::try_from(x).ok()),
            Role::StartSysUp => self.start_sysup = n().and_then(|x| u32::try_from(x).ok()),
            Role::EndSec => self.end_ms = n().and_then(|x| x.checked_mul(1000)).and_then(ms),
            Role::StartSec => self.start_ms = n().and_then(|x| x.checked_mul(1000)).and_then(ms),
            Role::EndMs => self.end_ms = n().and_then(ms),
            Role::StartMs => self.start_ms = n().and_then(ms),
            Role::EndNtp => self.end_ms = n().filter(|_| v.len() == 8).map(ntp_ms),
            Role::StartNtp => self.start_ms = n().filter(|_| v.len() == 8).map(ntp_ms),
            Role::InitMs => self.init_ms = n().and_then(ms),
        }
    }

    fn time(&self, h: &Header, stream_init: Option<TimeMs>) -> TimeMs {
        let sysup = |t: u32| -> TimeMs {
            if let Some(up) = h.uptime_ms {
                // v9: both in the exporter's uptime, which wraps at 2^32 ms.
                h.export_ms - TimeMs::from(up.wrapping_sub(t))
            } else if let Some(init) = self.init_ms.or(stream_init) {
                init.saturating_add(TimeMs::from(t))
            } else {
                h.export_ms
            }
        };
        self.end_ms
            .or(self.end_sysup.map(sysup))
            .or(self.start_ms)
            .or(self.start_sysup.map(sysup))
            .unwrap_or(h.export_ms)
    }
}

impl FlowDecoder {
    /// A decoder with the given limits.
    pub fn new(config: FlowDecoderConfig) -> Self {
        Self {
            config,
            templates: HashMap::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            sequences: HashMap::new(),
            init_ms: HashMap::new(),
            counters: FlowCounters::default(),
            last_sweep_ms: TimeMs::MIN,
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> FlowCounters {
        FlowCounters {
            templates_active: self.templates.len() as u64,
            pending_sets: self.pending.len() as u64,
            ..self.counters
        }
    }

    /// Decodes one UDP datagram from `exporter`, received at `now_ms`,
    /// appending flows to `out` — including flows of earlier data sets
    /// whose template this datagram brings. The version field selects v5,
    /// v9 or IPFIX. On an error, flows decoded before it stay in `out`;
    /// a bad template or set does not stop the sets after it, a set
    /// running past the end of the datagram does.
    pub fn decode(
        &mut self,
        exporter: SocketAddr,
        datagram: &[u8],
        now_ms: TimeMs,
        out: &mut Vec<Flow>,
    ) -> Result<(), DecodeError> {
        self.counters.datagrams += 1;
        self.sweep(now_ms);
        let before = out.len();
        let result = match be16(datagram, 0) {
            None => Err(truncated("version", 0)),
            Some(5) => self.decode_v5(exporter, datagram, out),
            Some(9) => self.decode_v9_ipfix(exporter, datagram, now_ms, out, false),
            Some(10) => self.decode_v9_ipfix(exporter, datagram, now_ms, out, true),
            Some(version) => Err(DecodeError::NetflowBadVersion { version }),
        };
        self.counters.flows += (out.len() - before) as u64;
        result
    }

    /// Expires templates and pending sets, at most once a second.
    fn sweep(&mut self, now_ms: TimeMs) {
        let pending_timeout = self.config.pending_timeout_ms;
        while self
            .pending
            .front()
            .is_some_and(|p| now_ms.saturating_sub(p.received_ms) > pending_timeout)
        {
            self.drop_oldest_pending();
        }
        if now_ms.saturating_sub(self.last_sweep_ms) < 1000 {
            return;
        }
        self.last_sweep_ms = now_ms;
        let timeout = self.config.template_timeout_ms;
        let before = self.templates.len();
        self.templates
            .retain(|_, t| now_ms.saturating_sub(t.received_ms) <= timeout);
        self.counters.templates_expired += (before - self.templates.len()) as u64;
    }

    fn drop_oldest_pending(&mut self) {
        if let Some(p) = self.pending.pop_front() {
            self.pending_bytes -= p.data.len();
            self.counters.no_template_dropped += 1;
        }
    }

    fn check_sequence(&mut self, stream: StreamKey, seq: u32, records: Option<Counted>) {
        let s = self.sequences.entry(stream).or_default();
        let known = std::mem::replace(&mut s.last_records, records);
        let last = std::mem::replace(&mut s.last, seq);
        let Some(before) = known else {
            return;
        };
        // Per the RFCs, v5 and IPFIX number a message with the records sent
        // before it and v9 with the packets; softflowd numbers v9 and IPFIX
        // with the flow records up to and including the message. Each
        // stream's convention is learned from which one keeps fitting.
        let mut expected = [
            last.wrapping_add(before.all),
            last.wrapping_add(before.flows),
            last,
            last,
        ];
        if stream.version == 9 {
            expected[0] = last.wrapping_add(1);
        }
        if let Some(now) = records {
            expected[2] = last.wrapping_add(now.all);
            expected[3] = last.wrapping_add(now.flows);
        }
        let gaps = expected.map(|e| seq.wrapping_sub(e));
        for (fit, gap) in s.fits.iter_mut().zip(gaps) {
            if gap == 0 {
                *fit = fit.saturating_add(1);
            }
        }
        // The convention that fitted most often so far decides; before any
        // has fitted, the smallest estimate.
        let best = (0..4).rev().max_by_key(|&i| s.fits[i]).unwrap_or(0);
        let gap = if s.fits[best] > 0 {
            gaps[best]
        } else {
            gaps.into_iter().min().unwrap_or(0)
        };
        // A jump backwards or by more than 2^31 is a restart or reordering,
        // not loss.
        if gap != 0 && gap < 1 << 31 {
            self.counters.sequence_gaps += u64::from(gap);
        }
    }

    fn decode_v5(
        &mut self,
        exporter: SocketAddr,
        d: &[u8],
        out: &mut Vec<Flow>,
    ) -> Result<(), DecodeError> {
        const HEADER: usize = 24;
        const RECORD: usize = 48;
        if d.len() < HEADER {
            return Err(truncated("NetFlow v5 header", d.len()));
        }
        let count = usize::from(be16(d, 2).unwrap_or(0));
        let uptime = be32(d, 4).unwrap_or(0);
        let secs = be32(d, 8).unwrap_or(0);
        let nsecs = be32(d, 12).unwrap_or(0);
        let seq = be32(d, 16).unwrap_or(0);
        let engine = u32::from(be16(d, 20).unwrap_or(0));
        if d.len() < HEADER + count * RECORD {
            return Err(truncated(
                "NetFlow v5 records (fewer than the header's count)",
                d.len(),
            ));
        }
        let export_ms = TimeMs::from(secs) * 1000 + TimeMs::from(nsecs / 1_000_000);
        let stream = StreamKey {
            exporter,
            domain: engine,
            version: 5,
        };
        let count32 = count as u32;
        self.check_sequence(
            stream,
            seq,
            Some(Counted {
                all: count32,
                flows: count32,
            }),
        );
        for r in d[HEADER..HEADER + count * RECORD].chunks_exact(RECORD) {
            let last = u32::from_be_bytes([r[28], r[29], r[30], r[31]]);
            out.push(Flow {
                time_ms: export_ms - TimeMs::from(uptime.wrapping_sub(last)),
                src: IpAddr::V4(Ipv4Addr::new(r[0], r[1], r[2], r[3])),
                dst: IpAddr::V4(Ipv4Addr::new(r[4], r[5], r[6], r[7])),
                packets: u64::from(u32::from_be_bytes([r[16], r[17], r[18], r[19]])),
                bytes: u64::from(u32::from_be_bytes([r[20], r[21], r[22], r[23]])),
                src_port: u16::from_be_bytes([r[32], r[33]]),
                dst_port: u16::from_be_bytes([r[34], r[35]]),
                protocol: r[38],
            });
        }
        Ok(())
    }

    fn decode_v9_ipfix(
        &mut self,
        exporter: SocketAddr,
        d: &[u8],
        now_ms: TimeMs,
        out: &mut Vec<Flow>,
        ipfix: bool,
    ) -> Result<(), DecodeError> {
        let (header_len, end, header) = if ipfix {
            if d.len() < 16 {
                return Err(truncated("IPFIX header", d.len()));
            }
            let len = usize::from(be16(d, 2).unwrap_or(0));
            if len < 16 || len > d.len() {
                return Err(truncated("IPFIX message length", 2));
            }
            let export = be32(d, 4).unwrap_or(0);
            let domain = be32(d, 12).unwrap_or(0);
            let stream = StreamKey {
                exporter,
                domain,
                version: 10,
            };
            (
                16,
                len,
                Header {
                    stream,
                    export_ms: TimeMs::from(export) * 1000,
                    uptime_ms: None,
                },
            )
        } else {
            if d.len() < 20 {
                return Err(truncated("NetFlow v9 header", d.len()));
            }
            let uptime = be32(d, 4).unwrap_or(0);
            let secs = be32(d, 8).unwrap_or(0);
            let source = be32(d, 16).unwrap_or(0);
            let stream = StreamKey {
                exporter,
                domain: source,
                version: 9,
            };
            (
                20,
                d.len(),
                Header {
                    stream,
                    export_ms: TimeMs::from(secs) * 1000,
                    uptime_ms: Some(uptime),
                },
            )
        };
        let seq = be32(d, if ipfix { 8 } else { 12 }).unwrap_or(0);
        let (template_set, options_set) = if ipfix { (2, 3) } else { (0, 1) };

        let mut first_error = None;
        let mut records = Some(Counted::default());
        let mut at = header_len;
        while at + 4 <= end {
            let set_id = be16(d, at).unwrap_or(0);
            let set_len = usize::from(be16(d, at + 2).unwrap_or(0));
            if set_len < 4 {
                first_error.get_or_insert(truncated("set length under 4", at + 2));
                break;
            }
            if at + set_len > end {
                first_error.get_or_insert(truncated("set longer than the message", at + 2));
                break;
            }
            let body = &d[at + 4..at + set_len];
            let result = if set_id == template_set || set_id == options_set {
                self.read_templates(
                    header,
                    body,
                    at + 4,
                    ipfix,
                    set_id == options_set,
                    now_ms,
                    out,
                )
            } else if set_id >= 256 {
                let key = TemplateKey {
                    stream: header.stream,
                    id: set_id,
                };
                if self.templates.contains_key(&key) {
                    let n = self.decode_data(key, header, body, out);
                    if let (Some(r), Ok(n)) = (records.as_mut(), &n) {
                        r.all = r.all.saturating_add(n.all);
                        r.flows = r.flows.saturating_add(n.flows);
                    }
                    n.map(|_| ())
                } else {
                    records = None;
                    self.hold(key, header, body, now_ms);
                    Ok(())
                }
            } else {
                Err(DecodeError::NetflowBadSetId { set_id, offset: at })
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
            at += set_len;
        }
        self.check_sequence(header.stream, seq, records);
        first_error.map_or(Ok(()), Err)
    }

    /// Keeps a data set until its template arrives.
    fn hold(&mut self, key: TemplateKey, header: Header, body: &[u8], now_ms: TimeMs) {
        if self.config.pending_limit == 0 || body.len() > self.config.pending_bytes_limit {
            self.counters.no_template_dropped += 1;
            return;
        }
        while self.pending.len() >= self.config.pending_limit
            || self.pending_bytes + body.len() > self.config.pending_bytes_limit
        {
            self.drop_oldest_pending();
        }
        self.pending_bytes += body.len();
        self.pending.push_back(Pending {
            key,
            header,
            data: body.to_vec(),
            received_ms: now_ms,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn read_templates(
        &mut self,
        header: Header,
        body: &[u8],
        base: usize,
        ipfix: bool,
        options: bool,
        now_ms: TimeMs,
        out: &mut Vec<Flow>,
    ) -> Result<(), DecodeError> {
        let mut at = 0;
        let mut first_error = None;
        // Each template: id, counts, field specifiers; padding may follow.
        while at + 4 <= body.len() {
            if body[at..].iter().all(|&b| b == 0) {
                break;
            }
            let id = be16(body, at).unwrap_or(0);
            let (fields_at, count) = if !ipfix && options {
                let scope_len = usize::from(be16(body, at + 2).unwrap_or(0));
                let Some(option_len) = be16(body, at + 4) else {
                    return Err(truncated("options template header", base + at));
                };
                if scope_len % 4 != 0 || option_len % 4 != 0 {
                    return Err(DecodeError::BadTemplate {
                        template_id: id,
                        what: "scope/option length not a multiple of 4",
                    });
                }
                (at + 6, (scope_len + usize::from(option_len)) / 4)
            } else if options {
                let count = usize::from(be16(body, at + 2).unwrap_or(0));
                if be16(body, at + 4).is_none() {
                    return Err(truncated("options template header", base + at));
                }
                (at + 6, count)
            } else {
                (at + 4, usize::from(be16(body, at + 2).unwrap_or(0)))
            };
            let key = TemplateKey {
                stream: header.stream,
                id,
            };
            if ipfix && count == 0 {
                // Withdrawal (RFC 7011 §8.1); id 2/3 withdraws them all.
                if id == 2 || id == 3 {
                    self.templates
                        .retain(|k, t| k.stream != header.stream || t.options != (id == 3));
                } else {
                    self.templates.remove(&key);
                }
                at = fields_at;
                continue;
            }
            let mut fields = Vec::with_capacity(count.min(MAX_FIELDS));
            let mut p = fields_at;
            for _ in 0..count {
                let (Some(ie), Some(len)) = (be16(body, p), be16(body, p + 2)) else {
                    return Err(truncated("template field specifier", base + p));
                };
                p += 4;
                let enterprise = ipfix && ie & 0x8000 != 0;
                if enterprise {
                    if p + 4 > body.len() {
                        return Err(truncated("template enterprise number", base + p));
                    }
                    p += 4;
                }
                fields.push((role(ie & 0x7FFF, enterprise), len));
            }
            at = p;
            match self.make_template(id, fields, options, ipfix, now_ms) {
                Ok(t) => {
                    if let Err(e) = self.store(key, t, out) {
                        first_error.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn make_template(
        &self,
        id: u16,
        fields: Vec<(Role, u16)>,
        options: bool,
        ipfix: bool,
        now_ms: TimeMs,
    ) -> Result<Template, DecodeError> {
        let bad = |what| DecodeError::BadTemplate {
            template_id: id,
            what,
        };
        if id < 256 {
            return Err(bad("template id under 256"));
        }
        if fields.is_empty() {
            return Err(bad("no fields"));
        }
        if fields.len() > MAX_FIELDS {
            return Err(bad("more than 512 fields"));
        }
        let mut min_len = 0usize;
        let mut variable = false;
        for &(_, len) in &fields {
            if len == 0 {
                return Err(bad("field of length 0"));
            }
            if ipfix && len == VARIABLE {
                variable = true;
                min_len += 1;
            } else {
                min_len += usize::from(len);
            }
        }
        Ok(Template {
            fields,
            min_len,
            fixed_len: (!variable).then_some(min_len),
            options,
            received_ms: now_ms,
        })
    }

    /// Stores a template and decodes the data sets that were waiting for it.
    fn store(
        &mut self,
        key: TemplateKey,
        t: Template,
        out: &mut Vec<Flow>,
    ) -> Result<(), DecodeError> {
        if !self.templates.contains_key(&key) && self.templates.len() >= self.config.max_templates {
            return Err(DecodeError::TemplateLimit {
                limit: self.config.max_templates,
                template_id: key.id,
            });
        }
        self.templates.insert(key, t);
        if !self.pending.iter().any(|p| p.key == key) {
            return Ok(());
        }
        let mut waiting = Vec::new();
        let mut kept = VecDeque::with_capacity(self.pending.len());
        for p in self.pending.drain(..) {
            if p.key == key {
                waiting.push(p)
            } else {
                kept.push_back(p)
            }
        }
        self.pending = kept;
        let mut first_error = None;
        for p in waiting {
            self.pending_bytes -= p.data.len();
            if let Err(e) = self.decode_data(key, p.header, &p.data, out) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Decodes the records of a data set whose template is known; returns
    /// how many data records it held.
    fn decode_data(
        &mut self,
        key: TemplateKey,
        h: Header,
        body: &[u8],
        out: &mut Vec<Flow>,
    ) -> Result<Counted, DecodeError> {
        let mut n = Counted::default();
        let Some(t) = self.templates.get(&key) else {
            return Ok(n);
        };
        let stream_init = self.init_ms.get(&h.stream).copied();
        let mut new_init = None;
        let mut at = 0;
        // Bytes left over smaller than the smallest record are padding.
        while body.len() - at >= t.min_len.max(1) {
            let mut v = RecordValues::default();
            if let Some(len) = t.fixed_len {
                let rec = &body[at..at + len];
                let mut p = 0;
                for &(role, flen) in &t.fields {
                    let flen = usize::from(flen);
                    v.set(role, &rec[p..p + flen]);
                    p += flen;
                }
                at += len;
            } else {
                for &(role, flen) in &t.fields {
                    let flen = if flen == VARIABLE {
                        let Some(&short) = body.get(at) else {
                            return Err(truncated("variable-length field", at));
                        };
                        at += 1;
                        if short == 255 {
                            let Some(long) = be16(body, at) else {
                                return Err(truncated("variable-length field", at));
                            };
                            at += 2;
                            usize::from(long)
                        } else {
                            usize::from(short)
                        }
                    } else {
                        usize::from(flen)
                    };
                    let Some(value) = body.get(at..at + flen) else {
                        return Err(truncated("data record", at));
                    };
                    v.set(role, value);
                    at += flen;
                }
            }
            n.all += 1;
            if t.options {
                self.counters.options_records += 1;
                if v.init_ms.is_some() {
                    new_init = v.init_ms;
                }
                continue;
            }
            let (Some(src), Some(dst)) = (v.src, v.dst) else {
                self.counters.records_without_address += 1;
                continue;
            };
            n.flows += 1;
            out.push(Flow {
                time_ms: v.time(&h, stream_init),
                src,
                src_port: v.src_port.unwrap_or(0),
                dst,
                dst_port: v.dst_port.or(v.icmp).unwrap_or(0),
                // softflowd's ICMP templates carry the type/code but no protocol.
                protocol: if v.protocol == 0 {
                    v.icmp_protocol
                } else {
                    v.protocol
                },
                packets: v.packets.or(v.packets_total).unwrap_or(0),
                bytes: v.bytes.or(v.bytes_total).unwrap_or(0),
            });
        }
        if let Some(init) = new_init {
            self.init_ms.insert(h.stream, init);
        }
        Ok(n)
    }
}
