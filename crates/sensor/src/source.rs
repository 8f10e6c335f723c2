//! Sources: threads that read telemetry and hand units of work to the
//! workers. Files and stdin are cut into chunks of whole lines; dnstap
//! connections into batches of frames; NetFlow/IPFIX datagrams are decoded
//! here (templates are per exporter, so one thread owns them) and handed
//! on as flows.
//!
//! Back-pressure: file, stdin and dnstap sources wait when the workers are
//! behind (a resolver's dnstap writer then drops on its side, as designed);
//! UDP cannot wait, so flows that find the queue full are counted as drops.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use khien_telemetry::dnstap::CONTENT_TYPE;
use khien_telemetry::flow::{FlowDecoder, FlowDecoderConfig};
use khien_telemetry::fstrm::{Frame, FrameReader, Handshake};
use khien_telemetry::{MAX_LINE_BYTES, TimeMs};

use crate::config::DnsMessages;
use crate::metrics::Metrics;
use crate::state::FilePosition;
use crate::worker::{Work, now_ms, sample};

/// Bytes read per chunk of lines.
const CHUNK_BYTES: usize = 1 << 20;
/// How often an idle source looks at `stop` (and a followed file at its path).
const POLL: Duration = Duration::from_millis(200);
/// Largest dnstap data frame accepted (a DNS message is at most 64 KiB).
const MAX_DNSTAP_FRAME: usize = 256 * 1024;
/// dnstap frames per unit of work.
const DNSTAP_BATCH: usize = 2048;
/// Flows per unit of work.
const FLOW_BATCH: usize = 4096;

#[derive(Clone, Debug)]
pub(crate) struct SourceContext {
    pub work: Sender<Work>,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
}

impl SourceContext {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Cuts a byte stream into chunks of whole lines. A line longer than
/// [`MAX_LINE_BYTES`] is skipped to its end and counted; it never holds
/// the stream up or grows memory.
#[derive(Debug, Default)]
struct LineChunker {
    carry: Vec<u8>,
    discarding: bool,
    /// Bytes of the over-long line being skipped, so the saved position
    /// stays at its start (a restart skips it again rather than reading
    /// its tail as a line).
    discarded: u64,
    errors: BTreeMap<&'static str, u64>,
}

impl LineChunker {
    /// Takes `data` and returns the whole lines now available (possibly
    /// empty). The part after the last newline is kept for the next call.
    fn feed(&mut self, mut data: &[u8]) -> Vec<u8> {
        if self.discarding {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    data = &data[i + 1..];
                    self.discarding = false;
                    self.discarded = 0;
                }
                None => {
                    self.discarded += data.len() as u64;
                    return Vec::new();
                }
            }
        }
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(data);
        match memchr::memrchr(b'\n', &buf) {
            Some(last) => {
                self.carry = buf.split_off(last + 1);
            }
            None => {
                self.carry = buf;
                buf = Vec::new();
            }
        }
        if self.carry.len() > MAX_LINE_BYTES {
            *self.errors.entry("line_too_long").or_insert(0) += 1;
            self.discarded = self.carry.len() as u64;
            self.carry = Vec::new();
            self.discarding = true;
        }
        buf
    }

    /// The unfinished last line, at end of input.
    fn finish(&mut self) -> Vec<u8> {
        self.discarding = false;
        self.discarded = 0;
        std::mem::take(&mut self.carry)
    }

    /// Bytes read but not yet handed on as whole lines.
    fn carried(&self) -> u64 {
        self.carry.len() as u64 + self.discarded
    }

    fn reset(&mut self) {
        self.carry.clear();
        self.discarding = false;
        self.discarded = 0;
    }
}

/// Keeps the latest block of `#` header lines of a Zeek TSV log, so every
/// chunk can carry the header its lines need.
#[derive(Debug, Default)]
struct ZeekHeader {
    current: Option<Arc<Vec<u8>>>,
    building: Vec<u8>,
}

impl ZeekHeader {
    fn scan(&mut self, chunk: &[u8]) {
        let mut in_block = !self.building.is_empty();
        for line in chunk.split(|&b| b == b'\n') {
            if line.first() == Some(&b'#') {
                if !in_block {
                    self.building.clear();
                    in_block = true;
                }
                self.building.extend_from_slice(line);
                self.building.push(b'\n');
            } else if !line.is_empty() && in_block {
                in_block = false;
                self.current = Some(Arc::new(std::mem::take(&mut self.building)));
            }
        }
    }

    fn preamble(&self) -> Option<Arc<Vec<u8>>> {
        if !self.building.is_empty() {
            return Some(Arc::new(self.building.clone()));
        }
        self.current.clone()
    }
}

/// A unit-of-work sequence for one ordered input.
#[derive(Debug)]
struct Sequencer {
    input: usize,
    next: u64,
}

impl Sequencer {
    fn send(
        &mut self,
        ctx: &SourceContext,
        bytes: Vec<u8>,
        preamble: Option<Arc<Vec<u8>>>,
        position: Option<FilePosition>,
        source_errors: BTreeMap<&'static str, u64>,
    ) -> bool {
        let seq = self.next;
        self.next += 1;
        ctx.work
            .send(Work::Lines {
                input: self.input,
                seq,
                bytes,
                preamble,
                position,
                source_errors,
            })
            .is_ok()
    }

    fn finish(&mut self, ctx: &SourceContext) {
        let _ = ctx.work.send(Work::Finished {
            input: self.input,
            seq: self.next,
        });
    }
}

pub(crate) struct FileSource {
    pub input: usize,
    pub path: PathBuf,
    pub zeek: bool,
    pub resume: Option<FilePosition>,
    /// Follow the file (`tail -F`); otherwise read to its end and stop.
    pub follow: bool,
}

/// An open followed file and where we are in it.
struct Open {
    file: File,
    dev: u64,
    ino: u64,
    offset: u64,
}

fn open_at(path: &Path, resume: Option<FilePosition>, metrics: &Metrics) -> std::io::Result<Open> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let mut offset = 0;
    if let Some(pos) = resume
        && pos.dev == dev
        && pos.ino == ino
    {
        if pos.offset <= meta.len() {
            offset = pos.offset;
        } else {
            // Truncated while we were away: its old lines are gone.
            Metrics::add(&metrics.files_truncated, 1);
        }
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok(Open {
        file,
        dev,
        ino,
        offset,
    })
}

/// The `#` lines at the start of a Zeek log, for a resume mid-file.
fn read_zeek_header(path: &Path) -> Option<Arc<Vec<u8>>> {
    let mut file = File::open(path).ok()?;
    let mut head = vec![0u8; 64 * 1024];
    let n = file.read(&mut head).ok()?;
    head.truncate(n);
    let mut out = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        if line.first() != Some(&b'#') {
            break;
        }
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    (!out.is_empty()).then(|| Arc::new(out))
}

impl FileSource {
    pub fn spawn(self, ctx: SourceContext) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("file-{}", self.input))
            .spawn(move || self.run(&ctx))
    }

    fn run(self, ctx: &SourceContext) {
        let mut seq = Sequencer {
            input: self.input,
            next: 0,
        };
        let mut open = loop {
            match open_at(&self.path, self.resume, &ctx.metrics) {
                Ok(o) => break o,
                Err(e) => {
                    if !self.follow {
                        tracing::error!(path = %self.path.display(), error = %e, "sensor_file_open_failed");
                        seq.finish(ctx);
                        return;
                    }
                    if ctx.metrics.should_sample("file_open_failed") {
                        tracing::warn!(path = %self.path.display(), error = %e, "sensor_file_waiting");
                    }
                    if crate::sleep_unless(&ctx.stop, POLL) {
                        seq.finish(ctx);
                        return;
                    }
                }
            }
        };
        let mut header = ZeekHeader::default();
        if self.zeek && open.offset > 0 {
            header.current = read_zeek_header(&self.path);
        }
        let mut chunker = LineChunker::default();
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            if ctx.stopped() {
                break;
            }
            let n = match open.file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "sensor_file_read_failed");
                    0
                }
            };
            if n > 0 {
                open.offset += n as u64;
                let lines = chunker.feed(&buf[..n]);
                self.emit(ctx, &mut seq, &mut header, &mut chunker, &open, lines);
                continue;
            }
            // End of file.
            if !self.follow {
                let rest = chunker.finish();
                if !rest.is_empty() {
                    self.emit(ctx, &mut seq, &mut header, &mut chunker, &open, rest);
                }
                break;
            }
            if crate::sleep_unless(&ctx.stop, POLL) {
                break;
            }
            match std::fs::metadata(&self.path) {
                Ok(meta) if meta.dev() != open.dev || meta.ino() != open.ino => {
                    // Rotated: the old file was drained above (we were at
                    // its end); its unfinished last line ends here.
                    let rest = chunker.finish();
                    if !rest.is_empty() {
                        self.emit(ctx, &mut seq, &mut header, &mut chunker, &open, rest);
                    }
                    match open_at(&self.path, None, &ctx.metrics) {
                        Ok(o) => {
                            Metrics::add(&ctx.metrics.files_rotated, 1);
                            tracing::info!(path = %self.path.display(), "sensor_file_rotated");
                            open = o;
                            header = ZeekHeader::default();
                        }
                        Err(e) => {
                            tracing::warn!(path = %self.path.display(), error = %e, "sensor_file_reopen_failed");
                        }
                    }
                }
                Ok(meta) if meta.len() < open.offset => {
                    Metrics::add(&ctx.metrics.files_truncated, 1);
                    let mut errors = BTreeMap::new();
                    errors.insert("file_truncated", 1);
                    tracing::warn!(path = %self.path.display(), at = open.offset, now = meta.len(), "sensor_file_truncated");
                    chunker.reset();
                    if open.file.seek(SeekFrom::Start(0)).is_ok() {
                        open.offset = 0;
                    }
                    let position = Some(FilePosition {
                        dev: open.dev,
                        ino: open.ino,
                        offset: 0,
                    });
                    if !seq.send(ctx, Vec::new(), None, position, errors) {
                        return;
                    }
                }
                _ => {}
            }
        }
        seq.finish(ctx);
    }

    fn emit(
        &self,
        ctx: &SourceContext,
        seq: &mut Sequencer,
        header: &mut ZeekHeader,
        chunker: &mut LineChunker,
        open: &Open,
        lines: Vec<u8>,
    ) {
        let errors = std::mem::take(&mut chunker.errors);
        if lines.is_empty() && errors.is_empty() {
            return;
        }
        let preamble = if self.zeek {
            header.scan(&lines);
            header.preamble()
        } else {
            None
        };
        let position = Some(FilePosition {
            dev: open.dev,
            ino: open.ino,
            offset: open.offset - chunker.carried(),
        });
        seq.send(ctx, lines, preamble, position, errors);
    }
}

/// Standard input, read to its end.
pub(crate) fn spawn_stdin(
    input: usize,
    zeek: bool,
    ctx: SourceContext,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut seq = Sequencer { input, next: 0 };
            let mut header = ZeekHeader::default();
            let mut chunker = LineChunker::default();
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; CHUNK_BYTES];
            loop {
                if ctx.stopped() {
                    break;
                }
                let (lines, last) = match stdin.read(&mut buf) {
                    Ok(0) => (chunker.finish(), true),
                    Ok(n) => (chunker.feed(&buf[..n]), false),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "sensor_stdin_read_failed");
                        (chunker.finish(), true)
                    }
                };
                let errors = std::mem::take(&mut chunker.errors);
                if !lines.is_empty() || !errors.is_empty() {
                    let preamble = if zeek {
                        header.scan(&lines);
                        header.preamble()
                    } else {
                        None
                    };
                    if !seq.send(&ctx, lines, preamble, None, errors) {
                        return;
                    }
                }
                if last {
                    break;
                }
            }
            seq.finish(&ctx);
        })
}

/// A dnstap listener (unix or TCP) bound at build time, so its address is
/// known before the sensor runs.
#[derive(Debug)]
pub(crate) enum DnstapListener {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

impl DnstapListener {
    pub fn bind_unix(path: &Path) -> std::io::Result<Self> {
        // A socket file left by an earlier run would make bind fail.
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type())
        {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(DnstapListener::Unix(listener, path.to_owned()))
    }

    pub fn bind_tcp(addr: std::net::SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(DnstapListener::Tcp(listener))
    }

    pub fn spawn(
        self,
        input: usize,
        messages: DnsMessages,
        ctx: SourceContext,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("dnstap-{input}"))
            .spawn(move || {
                let mut connections: Vec<JoinHandle<()>> = Vec::new();
                while !ctx.stopped() {
                    let accepted: std::io::Result<Box<dyn Conn>> = match &self {
                        DnstapListener::Unix(l, _) => {
                            l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>)
                        }
                        DnstapListener::Tcp(l) => {
                            l.accept().map(|(s, _)| Box::new(s) as Box<dyn Conn>)
                        }
                    };
                    match accepted {
                        Ok(conn) => {
                            Metrics::add(&ctx.metrics.dnstap_connections, 1);
                            let ctx = ctx.clone();
                            match std::thread::Builder::new()
                                .name(format!("dnstap-{input}-conn"))
                                .spawn(move || serve_dnstap(conn, input, messages, &ctx))
                            {
                                Ok(h) => connections.push(h),
                                Err(e) => {
                                    tracing::error!(error = %e, "sensor_dnstap_thread_failed")
                                }
                            }
                            connections.retain(|h| !h.is_finished());
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "sensor_dnstap_accept_failed");
                            std::thread::sleep(POLL);
                        }
                    }
                }
                for h in connections {
                    let _ = h.join();
                }
                if let DnstapListener::Unix(_, path) = &self {
                    let _ = std::fs::remove_file(path);
                }
            })
    }
}

/// A dnstap connection, unix or TCP.
trait Conn: Read + Write + Send {
    fn prepare(&self) -> std::io::Result<()>;
}

impl Conn for std::os::unix::net::UnixStream {
    fn prepare(&self) -> std::io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(POLL))
    }
}

impl Conn for std::net::TcpStream {
    fn prepare(&self) -> std::io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(POLL))
    }
}

/// One dnstap connection: the bidirectional Frame Streams handshake, then
/// data frames batched to the workers until STOP or the peer hangs up.
/// Bytes that break the framing end the connection (the stream cannot be
/// resynchronised); the writer reconnects.
fn serve_dnstap(mut conn: Box<dyn Conn>, input: usize, messages: DnsMessages, ctx: &SourceContext) {
    if let Err(e) = conn.prepare() {
        tracing::warn!(error = %e, "sensor_dnstap_connection_setup_failed");
        return;
    }
    let mut reader = FrameReader::new(MAX_DNSTAP_FRAME);
    let mut handshake = Handshake::new(true, CONTENT_TYPE);
    let mut buf = vec![0u8; 256 * 1024];
    let mut frames = Vec::with_capacity(DNSTAP_BATCH * 128);
    let mut ends: Vec<u32> = Vec::with_capacity(DNSTAP_BATCH);
    let send = |frames: &mut Vec<u8>, ends: &mut Vec<u32>| -> bool {
        if ends.is_empty() {
            return true;
        }
        let work = Work::Dnstap {
            input,
            frames: std::mem::replace(frames, Vec::with_capacity(DNSTAP_BATCH * 128)),
            ends: std::mem::replace(ends, Vec::with_capacity(DNSTAP_BATCH)),
            messages,
        };
        ctx.work.send(work).is_ok()
    };
    let fail = |kind: &'static str, detail: String| {
        let mut errors = BTreeMap::new();
        errors.insert(kind, 1);
        ctx.metrics.add_decode_errors(&errors);
        if ctx.metrics.should_sample(kind) {
            tracing::warn!(input, kind, error = %detail, "sensor_dnstap_connection_closed");
        }
    };
    'read: loop {
        let n = match conn.read(&mut buf) {
            Ok(0) => {
                if let Err(e) = reader.finish() {
                    fail(e.kind(), e.to_string());
                }
                break;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Idle: hand over what we have, look at `stop`.
                if !send(&mut frames, &mut ends) || ctx.stopped() {
                    break;
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "sensor_dnstap_read_failed");
                break;
            }
        };
        reader.push(&buf[..n]);
        loop {
            match reader.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Control(control))) => match handshake.on_control(&control) {
                    Ok(reply) => {
                        if let Some(bytes) = reply
                            && let Err(e) = conn.write_all(&bytes).and_then(|_| conn.flush())
                        {
                            tracing::warn!(error = %e, "sensor_dnstap_write_failed");
                            break 'read;
                        }
                        if handshake.is_finished() {
                            break 'read;
                        }
                    }
                    Err(e) => {
                        fail(e.kind(), e.to_string());
                        break 'read;
                    }
                },
                Ok(Some(Frame::Data(payload))) => {
                    if let Err(e) = handshake.check_data_allowed() {
                        fail(e.kind(), e.to_string());
                        break 'read;
                    }
                    frames.extend_from_slice(payload);
                    ends.push(frames.len() as u32);
                    if ends.len() >= DNSTAP_BATCH && !send(&mut frames, &mut ends) {
                        return;
                    }
                }
                Err(e) => {
                    fail(
                        e.kind(),
                        format!("{e}; first bytes: {}", sample(&buf[..n.min(32)])),
                    );
                    break 'read;
                }
            }
        }
    }
    let _ = send(&mut frames, &mut ends);
}

/// NetFlow v5/v9 and IPFIX over UDP.
pub(crate) fn spawn_netflow(
    input: usize,
    socket: UdpSocket,
    ctx: SourceContext,
) -> std::io::Result<JoinHandle<()>> {
    socket.set_read_timeout(Some(POLL))?;
    std::thread::Builder::new()
        .name(format!("netflow-{input}"))
        .spawn(move || {
            let mut decoder = FlowDecoder::new(FlowDecoderConfig::default());
            let mut buf = vec![0u8; 65536];
            let mut flows = Vec::with_capacity(FLOW_BATCH);
            let mut reported = FlowTally::default();
            let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
            let flush = |flows: &mut Vec<khien_telemetry::Flow>| {
                if flows.is_empty() {
                    return;
                }
                let batch = std::mem::replace(flows, Vec::with_capacity(FLOW_BATCH));
                let n = batch.len() as u64;
                match ctx.work.try_send(Work::Flows { flows: batch }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        Metrics::add(&ctx.metrics.drops, n);
                    }
                }
            };
            while !ctx.stopped() {
                match socket.recv_from(&mut buf) {
                    Ok((n, exporter)) => {
                        Metrics::add(&ctx.metrics.units_read, 1);
                        let now: TimeMs = now_ms();
                        if let Err(e) = decoder.decode(exporter, &buf[..n], now, &mut flows) {
                            let kind = e.kind();
                            *errors.entry(kind).or_insert(0) += 1;
                            if ctx.metrics.should_sample(kind) {
                                tracing::warn!(input, kind, %exporter, error = %e, "sensor_decode_error");
                            }
                        }
                        if flows.len() >= FLOW_BATCH {
                            flush(&mut flows);
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        flush(&mut flows);
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "sensor_udp_receive_failed");
                        std::thread::sleep(POLL);
                    }
                }
                reported.report(&decoder, &mut errors);
                ctx.metrics.add_decode_errors(&errors);
                errors.clear();
            }
            flush(&mut flows);
        })
}

/// Flow-decoder counters already added to the metrics, so only the growth
/// is added each time.
#[derive(Debug, Default)]
struct FlowTally {
    sequence_gaps: u64,
    no_template_dropped: u64,
}

impl FlowTally {
    fn report(&mut self, decoder: &FlowDecoder, errors: &mut BTreeMap<&'static str, u64>) {
        let c = decoder.counters();
        let gaps = c.sequence_gaps.saturating_sub(self.sequence_gaps);
        if gaps > 0 {
            *errors.entry("flow_sequence_gap").or_insert(0) += gaps;
        }
        let dropped = c
            .no_template_dropped
            .saturating_sub(self.no_template_dropped);
        if dropped > 0 {
            *errors.entry("ipfix_no_template").or_insert(0) += dropped;
        }
        self.sequence_gaps = c.sequence_gaps;
        self.no_template_dropped = c.no_template_dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunker_keeps_partial_lines_and_skips_huge_ones() {
        let mut c = LineChunker::default();
        assert_eq!(c.feed(b"a\nb"), b"a\n");
        assert_eq!(c.carried(), 1);
        assert_eq!(c.feed(b"c\n"), b"bc\n");
        let huge = vec![b'x'; MAX_LINE_BYTES + 10];
        assert!(c.feed(&huge).is_empty());
        assert_eq!(c.errors.get("line_too_long"), Some(&1));
        assert!(c.feed(&huge).is_empty());
        // The position stays at the long line's start while it is skipped.
        assert_eq!(c.carried(), 2 * huge.len() as u64);
        assert_eq!(c.feed(b"tail\nnext\n"), b"next\n");
        assert_eq!(c.carried(), 0);
        assert_eq!(c.feed(b"end"), b"");
        assert_eq!(c.finish(), b"end");
    }

    #[test]
    fn zeek_header_follows_the_latest_block() {
        let mut h = ZeekHeader::default();
        h.scan(b"#separator \\x09\n#fields\tts\tquery\n1\ta.example\n");
        assert_eq!(
            h.preamble().as_deref().map(Vec::as_slice),
            Some(&b"#separator \\x09\n#fields\tts\tquery\n"[..])
        );
        h.scan(b"2\tb.example\n#fields\tts\tid.orig_h\tquery\n");
        assert_eq!(
            h.preamble().as_deref().map(Vec::as_slice),
            Some(&b"#fields\tts\tid.orig_h\tquery\n"[..])
        );
    }
}
