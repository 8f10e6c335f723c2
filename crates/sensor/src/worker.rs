//! Matching threads: decode a unit of work, match every record against the
//! current snapshot, and pre-aggregate the hits of that unit before handing
//! them to the aggregator. Only hits (about one record in a thousand) leave
//! the worker, so one aggregator thread keeps up with any number of
//! workers.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use khien_matcher::Snapshot;
use khien_model::{ObservableKind, ThreatType};
use khien_telemetry::dnstap::DnstapDecoder;
use khien_telemetry::{DecodeError, Flow, LineDecoder, LineFormat, Record};

use crate::config::DnsMessages;
use crate::metrics::Metrics;
use crate::snapshot::SnapshotCell;
use crate::state::FilePosition;

/// A unit of work from a source.
#[derive(Debug)]
pub(crate) enum Work {
    /// Whole lines of a file or stdin. `seq` numbers the chunks of one
    /// input so the aggregator can apply them in order; `position` is where
    /// the input stands after this chunk.
    Lines {
        input: usize,
        seq: u64,
        bytes: Vec<u8>,
        /// Header lines to feed the decoder first (Zeek's `#fields`), so
        /// any worker can decode any chunk.
        preamble: Option<Arc<Vec<u8>>>,
        position: Option<FilePosition>,
        /// Lines the source itself found undecodable (over-long).
        source_errors: BTreeMap<&'static str, u64>,
    },
    /// dnstap payloads, back to back; `ends[i]` is where frame `i` ends.
    Dnstap {
        input: usize,
        frames: Vec<u8>,
        ends: Vec<u32>,
        messages: DnsMessages,
    },
    Flows {
        flows: Vec<Flow>,
    },
    /// The input will send nothing more; `seq` is one past its last chunk.
    Finished {
        input: usize,
        seq: u64,
    },
}

/// What a unit of work owes the aggregator besides its hits.
enum Reply {
    Chunk {
        input: usize,
        seq: u64,
        position: Option<FilePosition>,
    },
    Unordered,
    Finished {
        input: usize,
        seq: u64,
    },
}

/// A hit pre-aggregated over one unit of work.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartialHit {
    pub bucket: i64,
    pub client: IpAddr,
    pub kind: ObservableKind,
    pub indicator: Arc<str>,
    pub indicator_id: i64,
    pub family: Option<Arc<str>>,
    pub threat_type: ThreatType,
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub evidence: String,
    /// The client's source port in the earliest event that had one (see
    /// [`PartialHit::absorb`]).
    pub client_port: Option<u16>,
}

impl PartialHit {
    /// Takes in the first-seen time, evidence and port of another event or
    /// part of the same key; counts and last-seen times are the caller's.
    ///
    /// The port follows the rule of [`khien_model::Hit::merge`] (and of the
    /// hub's store): an earlier part's port replaces the held one when it
    /// has one, and a missing port is filled from any part. Using the same
    /// rule at every stage means the port does not depend on how a bucket
    /// was cut into units, flushes or batches.
    fn absorb(
        &mut self,
        first_ms: i64,
        client_port: Option<u16>,
        evidence: impl FnOnce() -> String,
    ) {
        if first_ms < self.first_ms {
            self.first_ms = first_ms;
            self.evidence = evidence();
            if client_port.is_some() {
                self.client_port = client_port;
            }
        }
        if self.client_port.is_none() {
            self.client_port = client_port;
        }
    }

    /// Adds another part of the same key.
    pub(crate) fn merge(&mut self, other: PartialHit) {
        self.count += other.count;
        self.last_ms = self.last_ms.max(other.last_ms);
        let evidence = other.evidence;
        self.absorb(other.first_ms, other.client_port, || evidence);
    }
}

/// What a worker hands the aggregator for one unit of work.
#[derive(Debug)]
pub(crate) enum Done {
    Chunk {
        input: usize,
        seq: u64,
        position: Option<FilePosition>,
        hits: Vec<PartialHit>,
    },
    /// Hits from a network input, which has no order or position to keep.
    Unordered {
        hits: Vec<PartialHit>,
    },
    Finished {
        input: usize,
        seq: u64,
    },
}

/// Per-worker decoding state for one input.
#[derive(Debug)]
struct LineState {
    decoder: LineDecoder,
    preamble: Option<Arc<Vec<u8>>>,
}

pub(crate) struct Worker {
    pub formats: Arc<Vec<Option<LineFormat>>>,
    pub snapshot: Arc<SnapshotCell>,
    pub metrics: Arc<Metrics>,
    pub bucket_seconds: i64,
    pub utc_offset_seconds: i32,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

/// Counts and hits of one unit, folded into the shared metrics once.
struct Tally {
    units: u64,
    events: u64,
    hits: u64,
    errors: BTreeMap<&'static str, u64>,
    partial: HashMap<(i64, IpAddr, ObservableKind, Arc<str>), PartialHit>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            units: 0,
            events: 0,
            hits: 0,
            errors: BTreeMap::new(),
            partial: HashMap::new(),
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Worker {
    pub fn run(self, work: Receiver<Work>, done: Sender<Done>) {
        let mut lines: HashMap<usize, LineState> = HashMap::new();
        let mut dnstap = DnstapDecoder::new();
        for item in work {
            let snapshot = self.snapshot.get();
            let mut tally = Tally::new();
            let now = now_ms();
            // What the aggregator needs to hear back, hits aside.
            let reply = match item {
                Work::Lines {
                    input,
                    seq,
                    bytes,
                    preamble,
                    position,
                    source_errors,
                } => {
                    for (k, n) in source_errors {
                        *tally.errors.entry(k).or_insert(0) += n;
                    }
                    self.lines(
                        &mut lines, input, &bytes, preamble, &snapshot, now, &mut tally,
                    );
                    Reply::Chunk {
                        input,
                        seq,
                        position,
                    }
                }
                Work::Dnstap {
                    input,
                    frames,
                    ends,
                    messages,
                } => {
                    self.frames(
                        &mut dnstap,
                        input,
                        &frames,
                        &ends,
                        messages,
                        &snapshot,
                        now,
                        &mut tally,
                    );
                    Reply::Unordered
                }
                Work::Flows { flows } => {
                    for flow in &flows {
                        tally.events += 1;
                        self.flow(flow, &snapshot, now, &mut tally);
                    }
                    Reply::Unordered
                }
                Work::Finished { input, seq } => Reply::Finished { input, seq },
            };
            Metrics::add(&self.metrics.units_read, tally.units);
            Metrics::add(&self.metrics.events, tally.events);
            Metrics::add(&self.metrics.hits, tally.hits);
            self.metrics.add_decode_errors(&tally.errors);
            let hits: Vec<PartialHit> = tally.partial.into_values().collect();
            let out = match reply {
                Reply::Chunk {
                    input,
                    seq,
                    position,
                } => Done::Chunk {
                    input,
                    seq,
                    position,
                    hits,
                },
                Reply::Unordered if hits.is_empty() => continue,
                Reply::Unordered => Done::Unordered { hits },
                Reply::Finished { input, seq } => Done::Finished { input, seq },
            };
            if done.send(out).is_err() {
                return;
            }
        }
    }

    /// dnstap payloads back to back, `ends[i]` where frame `i` ends.
    #[allow(clippy::too_many_arguments)]
    fn frames(
        &self,
        dnstap: &mut DnstapDecoder,
        input: usize,
        frames: &[u8],
        ends: &[u32],
        messages: DnsMessages,
        snapshot: &Snapshot,
        now: i64,
        tally: &mut Tally,
    ) {
        let mut start = 0usize;
        for &end in ends {
            let end = end as usize;
            let Some(payload) = frames.get(start..end) else {
                break;
            };
            start = end;
            tally.units += 1;
            match dnstap.decode(payload) {
                Ok(Some(q)) => {
                    let wanted = match messages {
                        DnsMessages::Queries => !q.is_response,
                        DnsMessages::Responses => q.is_response,
                    };
                    if !wanted {
                        continue;
                    }
                    tally.events += 1;
                    let time = if q.time_ms == 0 { now } else { q.time_ms };
                    if let Some(hit) = snapshot.match_domain(q.qname) {
                        self.record(tally, time, q.client, q.client_port, &hit, || {
                            String::from_utf8_lossy(q.qname).into_owned()
                        });
                    }
                }
                Ok(None) => {}
                Err(e) => self.decode_error(tally, input, &e, payload),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn lines(
        &self,
        states: &mut HashMap<usize, LineState>,
        input: usize,
        bytes: &[u8],
        preamble: Option<Arc<Vec<u8>>>,
        snapshot: &Snapshot,
        now: i64,
        tally: &mut Tally,
    ) {
        let Some(Some(format)) = self.formats.get(input) else {
            return;
        };
        let state = states.entry(input).or_insert_with(|| LineState {
            decoder: self.new_decoder(format, now),
            preamble: None,
        });
        // A new preamble (Zeek header) means a new decoder fed with it.
        if preamble.is_some() && preamble != state.preamble {
            state.decoder = self.new_decoder(format, now);
            if let Some(p) = &preamble {
                for line in p.split(|&b| b == b'\n') {
                    let _ = state.decoder.decode(line);
                }
            }
            state.preamble = preamble;
        }
        let mut start = 0;
        let mut iter = memchr::memchr_iter(b'\n', bytes);
        loop {
            let end = match iter.next() {
                Some(i) => i,
                None if start < bytes.len() => bytes.len(),
                None => break,
            };
            let mut line = &bytes[start..end];
            start = end + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                continue;
            }
            tally.units += 1;
            // Most lines ask for names nobody listed: match the name alone
            // and skip decoding the client and the time of those.
            if let Some(name) = state.decoder.query_name(line)
                && snapshot.match_domain(name).is_none()
            {
                tally.events += 1;
                continue;
            }
            match state.decoder.decode(line) {
                Ok(Some(record)) => {
                    tally.events += 1;
                    self.record_event(record, snapshot, now, tally);
                }
                Ok(None) => {}
                Err(e) => {
                    let kind = e.kind();
                    *tally.errors.entry(kind).or_insert(0) += 1;
                    if self.metrics.should_sample(kind) {
                        tracing::warn!(input, kind, error = %e, sample = %sample(line), "sensor_decode_error");
                    }
                }
            }
        }
    }

    fn new_decoder(&self, format: &LineFormat, now: i64) -> LineDecoder {
        LineDecoder::new(format.clone())
            .with_reference_time(now)
            .with_utc_offset_seconds(self.utc_offset_seconds)
    }

    fn record_event(&self, record: Record<'_>, snapshot: &Snapshot, now: i64, tally: &mut Tally) {
        match record {
            Record::Dns(q) => {
                if q.is_response {
                    return;
                }
                let time = if q.time_ms == 0 { now } else { q.time_ms };
                if let Some(hit) = snapshot.match_domain(q.qname) {
                    self.record(tally, time, q.client, q.client_port, &hit, || {
                        String::from_utf8_lossy(q.qname).into_owned()
                    });
                }
            }
            Record::Flow(flow) => self.flow(&flow, snapshot, now, tally),
            Record::Http {
                time_ms,
                client,
                client_port,
                server,
                host,
                url,
            } => {
                let time = if time_ms == 0 { now } else { time_ms };
                let full = if url.starts_with("http://") || url.starts_with("https://") {
                    url.to_owned()
                } else {
                    format!("http://{host}{url}")
                };
                let canonical = khien_model::Observable::parse(ObservableKind::Url, &full).ok();
                let hit = canonical
                    .as_ref()
                    .and_then(|c| snapshot.match_url(c.value()))
                    .or_else(|| snapshot.match_domain(host.as_bytes()))
                    .or_else(|| server.and_then(|s| snapshot.match_ip(s)));
                if let Some(hit) = hit {
                    self.record(tally, time, client, client_port, &hit, || full.clone());
                }
            }
            Record::Tls {
                time_ms,
                client,
                client_port,
                server,
                sni,
            } => {
                let time = if time_ms == 0 { now } else { time_ms };
                let hit = snapshot
                    .match_domain(sni.as_bytes())
                    .or_else(|| server.and_then(|s| snapshot.match_ip(s)));
                if let Some(hit) = hit {
                    self.record(tally, time, client, client_port, &hit, || {
                        format!("tls sni {sni}")
                    });
                }
            }
        }
    }

    /// A flow towards a listed address names its source as the client; a
    /// flow from one (the answer direction) names its destination. The
    /// client's port is that same end's.
    fn flow(&self, flow: &Flow, snapshot: &Snapshot, now: i64, tally: &mut Tally) {
        let time = if flow.time_ms == 0 { now } else { flow.time_ms };
        let (client, port, hit) = if let Some(hit) = snapshot.match_ip(flow.dst) {
            (flow.src, flow.src_port, hit)
        } else if let Some(hit) = snapshot.match_ip(flow.src) {
            (flow.dst, flow.dst_port, hit)
        } else {
            return;
        };
        // ICMP has no ports: exporters put the type and code in the
        // destination port (and Zeek in both), which no port-block log
        // knows.
        let port = if matches!(flow.protocol, 1 | 58) {
            None
        } else {
            Some(port)
        };
        self.record(tally, time, client, port, &hit, || {
            format!(
                "{} {}:{} > {}:{} packets {} bytes {}",
                protocol_name(flow.protocol),
                flow.src,
                flow.src_port,
                flow.dst,
                flow.dst_port,
                flow.packets,
                flow.bytes
            )
        });
    }

    /// Counts one matching event. A `client_port` of 0 is taken as none:
    /// no client sends from port 0, and flow records write 0 for "absent".
    fn record(
        &self,
        tally: &mut Tally,
        time_ms: i64,
        client: IpAddr,
        client_port: Option<u16>,
        hit: &khien_matcher::Hit<'_>,
        evidence: impl FnOnce() -> String,
    ) {
        tally.hits += 1;
        let client_port = client_port.filter(|&p| p != 0);
        let width = self.bucket_seconds * 1000;
        let bucket = time_ms.div_euclid(width) * width / 1000;
        let key = (bucket, client, hit.kind, Arc::<str>::from(hit.value));
        match tally.partial.get_mut(&key) {
            Some(p) => {
                p.count += 1;
                p.last_ms = p.last_ms.max(time_ms);
                p.absorb(time_ms, client_port, evidence);
            }
            None => {
                let partial = PartialHit {
                    bucket,
                    client,
                    kind: hit.kind,
                    indicator: key.3.clone(),
                    indicator_id: hit.id,
                    family: hit.family.map(Arc::from),
                    threat_type: hit.threat_type,
                    count: 1,
                    first_ms: time_ms,
                    last_ms: time_ms,
                    evidence: evidence(),
                    client_port,
                };
                tally.partial.insert(key, partial);
            }
        }
    }

    fn decode_error(&self, tally: &mut Tally, input: usize, e: &DecodeError, bytes: &[u8]) {
        let kind = e.kind();
        *tally.errors.entry(kind).or_insert(0) += 1;
        if self.metrics.should_sample(kind) {
            tracing::warn!(input, kind, error = %e, sample = %sample(bytes), "sensor_decode_error");
        }
    }
}

/// At most 200 bytes of the offending input, printable.
pub(crate) fn sample(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(200)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn protocol_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        other => format!("proto-{other}"),
    }
}
