//! The sensor runtime: read DNS and flow telemetry next to resolvers and
//! routers, match it against the snapshot, aggregate hits per client and
//! ship them to the hub with nothing lost.
//!
//! ```text
//!  sources (threads)         workers (N threads)          aggregator        outputs
//!  file / stdin ──chunks──▶  decode (khien-telemetry) ─▶  sum per          ─▶ NDJSON
//!  dnstap unix/tcp ─frames─▶ match (khien-matcher)        (bucket, client,  ─▶ spool ─▶ shipper ─▶ hub
//!  NetFlow/IPFIX ──flows──▶  pre-aggregate per unit       indicator)
//! ```
//!
//! Decisions that shape it:
//!
//! - **Workers do the expensive part** (decoding and matching) and send on
//!   only hits, pre-summed per unit of work; one aggregator thread then
//!   keeps up with any number of workers.
//! - **Exactly once across crashes for files.** Chunks of a file carry a
//!   sequence number and the position after them; the aggregator applies
//!   them in order, so at every flush its sums cover exactly the lines up
//!   to the saved positions. The batch (with its positions) is fsynced to
//!   the spool before the state file moves on; a restart resumes from the
//!   newer of the two and the hub ignores a batch id it already stored.
//!   NDJSON outputs are at-least-once across a crash (a plain file has no
//!   transaction to tie to).
//! - **Everything for the hub goes through the disk spool**, bounded, oldest
//!   dropped first when full (loudly), replayed on restart.
//! - **Hot swap** of the snapshot is an `Arc` replacement between units of
//!   work: no lock on the matching path, no event dropped.
//! - **No async runtime**: blocking threads and bounded channels give
//!   back-pressure for free and keep the hot loop simple.

mod aggregate;
pub mod config;
pub mod metrics;
mod output;
mod snapshot;
mod source;
pub mod spool;
pub mod state;
mod worker;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use khien_telemetry::LineFormat;

pub use config::{InputConfig, OutputConfig, SensorConfig};
pub use metrics::Metrics;

use crate::aggregate::{Aggregator, Ordered, Output};
use crate::output::{HubOutput, NdjsonOutput, Shipper};
use crate::snapshot::{SnapshotCell, SnapshotSource};
use crate::source::{DnstapListener, FileSource, SourceContext};
use crate::spool::Spool;
use crate::state::SensorState;
use crate::worker::Worker;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Io(String),
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("hub: {0}")]
    Hub(String),
    #[error("state: {0}")]
    State(String),
}

/// Sleeps `d` in short steps; returns true as soon as `stop` is set.
pub(crate) fn sleep_unless(stop: &AtomicBool, d: Duration) -> bool {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
    stop.load(Ordering::Relaxed)
}

/// What a run did, for the command line's last words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub events: u64,
    pub units_read: u64,
    pub hits: u64,
    pub hit_records: u64,
    pub decode_errors: u64,
    pub drops: u64,
    /// Batches still in the spool (the hub could not take them yet).
    pub spooled_batches: u64,
}

/// Where an input listens, once bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundInput {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Unix(PathBuf),
}

enum Bound {
    Dnstap(DnstapListener, config::DnsMessages),
    Udp(UdpSocket),
    File(PathBuf, bool),
    Stdin(bool),
}

struct Hub {
    url: String,
    api_key: String,
    spool: Arc<Spool>,
    timeout: Duration,
    wake: crossbeam_channel::Receiver<()>,
}

/// A sensor ready to run: snapshot loaded, sockets bound, state recovered.
pub struct Sensor {
    config: SensorConfig,
    metrics: Arc<Metrics>,
    cell: Arc<SnapshotCell>,
    snapshot_source: SnapshotSource,
    etag: Option<String>,
    state: SensorState,
    formats: Arc<Vec<Option<LineFormat>>>,
    bound: Vec<Bound>,
    outputs: Vec<Box<dyn Output>>,
    hubs: Vec<Hub>,
}

impl std::fmt::Debug for Sensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sensor")
            .field("sensor", &self.config.sensor)
            .finish_non_exhaustive()
    }
}

impl Sensor {
    pub fn build(config: SensorConfig) -> Result<Sensor, Error> {
        config.validate()?;
        let io = |what: String| move |e: std::io::Error| Error::Io(format!("{what}: {e}"));
        std::fs::create_dir_all(&config.state_dir).map_err(io(format!(
            "state directory {}",
            config.state_dir.display()
        )))?;
        let metrics = Arc::new(Metrics::default());
        let mut state = SensorState::load(&config.state_dir)?;

        let mut outputs: Vec<Box<dyn Output>> = Vec::new();
        let mut hubs = Vec::new();
        let hub_count = config
            .outputs
            .iter()
            .filter(|o| matches!(o, OutputConfig::Hub { .. }))
            .count();
        let mut first_hub_key = None;
        for (i, output) in config.outputs.iter().enumerate() {
            match output {
                OutputConfig::Ndjson { path } => outputs.push(Box::new(NdjsonOutput::open(path)?)),
                OutputConfig::Hub {
                    url,
                    api_key_env,
                    api_key_file,
                    spool_max_bytes,
                    timeout_seconds,
                } => {
                    let api_key = output::read_api_key(api_key_file.as_ref(), api_key_env)?;
                    first_hub_key.get_or_insert_with(|| api_key.clone());
                    let dir = if hub_count == 1 {
                        config.state_dir.join("spool")
                    } else {
                        config.state_dir.join(format!("spool-{}", i + 1))
                    };
                    let spool = Arc::new(Spool::open(dir, *spool_max_bytes, metrics.clone())?);
                    recover_from_spool(&spool, &mut state)?;
                    let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
                    outputs.push(Box::new(HubOutput {
                        spool: spool.clone(),
                        wake: wake_tx,
                    }));
                    hubs.push(Hub {
                        url: url.trim_end_matches('/').to_owned(),
                        api_key,
                        spool,
                        timeout: Duration::from_secs((*timeout_seconds).max(1)),
                        wake: wake_rx,
                    });
                }
            }
        }

        let snapshot_source = match (&config.snapshot.file, &config.snapshot.url) {
            (Some(file), _) => SnapshotSource::File(file.clone()),
            (None, Some(url)) => {
                let api_key = match &config.snapshot.api_key_env {
                    Some(env) => std::env::var(env).ok(),
                    None => first_hub_key.clone(),
                };
                SnapshotSource::Hub {
                    url: url.clone(),
                    api_key,
                    cache: config.state_dir.join("snapshot.bin"),
                }
            }
            (None, None) => return Err(Error::Config("`snapshot`: give `file` or `url`".into())),
        };
        let (snapshot, etag) = snapshot::load_initial(&snapshot_source)?;
        metrics
            .snapshot_indicators
            .store(snapshot.info().total, Ordering::Relaxed);

        let mut formats = Vec::new();
        let mut bound = Vec::new();
        for input in &config.inputs {
            let (format, b) = match input {
                InputConfig::Dnstap {
                    unix,
                    tcp,
                    messages,
                } => {
                    let listener = match (unix, tcp) {
                        (Some(path), _) => DnstapListener::bind_unix(path)
                            .map_err(io(format!("dnstap socket {}", path.display())))?,
                        (None, Some(addr)) => DnstapListener::bind_tcp(*addr)
                            .map_err(io(format!("dnstap listener {addr}")))?,
                        (None, None) => {
                            return Err(Error::Config("dnstap input: give `unix` or `tcp`".into()));
                        }
                    };
                    (None, Bound::Dnstap(listener, *messages))
                }
                InputConfig::Netflow { udp } => {
                    let socket =
                        UdpSocket::bind(udp).map_err(io(format!("NetFlow listener {udp}")))?;
                    (None, Bound::Udp(socket))
                }
                InputConfig::File { path, format } => {
                    let f = parse_format(format)?;
                    let zeek = matches!(f, LineFormat::ZeekTsv);
                    (Some(f), Bound::File(path.clone(), zeek))
                }
                InputConfig::Stdin { format } => {
                    let f = parse_format(format)?;
                    let zeek = matches!(f, LineFormat::ZeekTsv);
                    (Some(f), Bound::Stdin(zeek))
                }
            };
            formats.push(format);
            bound.push(b);
        }
        Ok(Sensor {
            config,
            metrics,
            cell: Arc::new(SnapshotCell::new(snapshot)),
            snapshot_source,
            etag,
            state,
            formats: Arc::new(formats),
            bound,
            outputs,
            hubs,
        })
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The addresses network inputs are bound to, by input index (useful
    /// with port 0).
    pub fn bound_inputs(&self) -> Vec<(usize, BoundInput)> {
        self.bound
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b {
                Bound::Udp(s) => s.local_addr().ok().map(|a| (i, BoundInput::Udp(a))),
                Bound::Dnstap(DnstapListener::Tcp(l), _) => {
                    l.local_addr().ok().map(|a| (i, BoundInput::Tcp(a)))
                }
                Bound::Dnstap(DnstapListener::Unix(_, p), _) => {
                    Some((i, BoundInput::Unix(p.clone())))
                }
                _ => None,
            })
            .collect()
    }

    /// Runs until `stop` is set (or, with `once`, until the inputs end),
    /// then flushes every bucket, saves positions and drains the spool for
    /// up to `drain` while the hub answers.
    pub fn run(self, stop: Arc<AtomicBool>, drain: Duration) -> Result<RunSummary, Error> {
        let Sensor {
            config,
            metrics,
            cell,
            snapshot_source,
            etag,
            state,
            formats,
            bound,
            outputs,
            hubs,
        } = self;
        let workers = config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let (work_tx, work_rx) = crossbeam_channel::bounded(workers * 4);
        let (done_tx, done_rx) = crossbeam_channel::bounded(1024);
        let spawn_err = |e: std::io::Error| Error::Io(format!("starting a thread: {e}"));

        let mut worker_handles = Vec::new();
        for i in 0..workers {
            let worker = Worker {
                formats: formats.clone(),
                snapshot: cell.clone(),
                metrics: metrics.clone(),
                bucket_seconds: i64::from(config.bucket_seconds),
                utc_offset_seconds: config_utc_offset(),
            };
            let (rx, tx) = (work_rx.clone(), done_tx.clone());
            worker_handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker.run(rx, tx))
                    .map_err(spawn_err)?,
            );
        }
        drop(work_rx);
        drop(done_tx);

        // Sources stop on their own stop flag, so the aggregator can still
        // flush what they sent after the caller's stop.
        let source_stop = Arc::new(AtomicBool::new(false));
        let ctx = SourceContext {
            work: work_tx,
            metrics: metrics.clone(),
            stop: source_stop.clone(),
        };
        let mut ordered = HashMap::new();
        let mut source_handles: Vec<JoinHandle<()>> = Vec::new();
        for (input, b) in bound.into_iter().enumerate() {
            let handle = match b {
                Bound::Dnstap(listener, messages) => listener.spawn(input, messages, ctx.clone()),
                Bound::Udp(socket) => source::spawn_netflow(input, socket, ctx.clone()),
                Bound::File(path, zeek) => {
                    let key = path.to_string_lossy().into_owned();
                    ordered.insert(input, Ordered::new(Some(key.clone())));
                    FileSource {
                        input,
                        resume: state.files.get(&key).copied(),
                        path,
                        zeek,
                        follow: !config.once,
                    }
                    .spawn(ctx.clone())
                }
                Bound::Stdin(zeek) => {
                    ordered.insert(input, Ordered::new(None));
                    source::spawn_stdin(input, zeek, ctx.clone())
                }
            }
            .map_err(spawn_err)?;
            source_handles.push(handle);
        }
        drop(ctx);

        let background_stop = Arc::new(AtomicBool::new(false));
        let reloader = snapshot::spawn_reloader(
            snapshot_source,
            etag,
            cell,
            metrics.clone(),
            Duration::from_secs(config.snapshot.refresh_seconds.max(1)),
            background_stop.clone(),
        )
        .map_err(spawn_err)?;
        let ship_stop = Arc::new(AtomicBool::new(false));
        let mut shippers = Vec::new();
        for hub in hubs {
            let shipper = Shipper {
                url: hub.url,
                api_key: hub.api_key,
                spool: hub.spool,
                metrics: metrics.clone(),
                timeout: hub.timeout,
            };
            let (wake, stop) = (hub.wake, ship_stop.clone());
            shippers.push(
                std::thread::Builder::new()
                    .name("shipper".into())
                    .spawn(move || shipper.run(wake, stop, drain))
                    .map_err(spawn_err)?,
            );
        }
        if let Some(listen) = config.metrics.listen {
            metrics::serve(listen, metrics.clone(), config.sensor.clone())?;
        }
        let logger = spawn_log_line(
            metrics.clone(),
            Duration::from_secs(config.metrics.log_seconds),
            background_stop.clone(),
        )
        .map_err(spawn_err)?;

        // The caller's stop reaches the sources through a watcher, so the
        // aggregator below sees every unit they sent before it flushes.
        let watcher = {
            let (stop, source_stop, done) =
                (stop.clone(), source_stop.clone(), background_stop.clone());
            std::thread::Builder::new()
                .name("stop".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) && !done.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    source_stop.store(true, Ordering::Relaxed);
                })
                .map_err(spawn_err)?
        };

        let aggregator = Aggregator::new(
            config.sensor.clone(),
            config.state_dir.clone(),
            state,
            metrics.clone(),
            Duration::from_secs(config.flush_seconds),
            outputs,
            ordered,
            config.once,
        );
        let result = aggregator.run(done_rx);

        source_stop.store(true, Ordering::Relaxed);
        background_stop.store(true, Ordering::Relaxed);
        for h in source_handles {
            let _ = h.join();
        }
        for h in worker_handles {
            let _ = h.join();
        }
        let _ = watcher.join();
        let _ = reloader.join();
        let _ = logger.join();
        ship_stop.store(true, Ordering::Relaxed);
        for h in shippers {
            let _ = h.join();
        }
        result?;
        let g = Metrics::get;
        Ok(RunSummary {
            events: g(&metrics.events),
            units_read: g(&metrics.units_read),
            hits: g(&metrics.hits),
            hit_records: g(&metrics.hit_records),
            decode_errors: metrics.decode_errors().values().sum(),
            drops: g(&metrics.drops),
            spooled_batches: g(&metrics.spool_batches),
        })
    }
}

/// Offset of local time for log formats whose timestamps carry no zone
/// (syslog-style); Vietnam's UTC+7 unless `KHIEN_LOG_UTC_OFFSET` (seconds)
/// says otherwise.
fn config_utc_offset() -> i32 {
    std::env::var("KHIEN_LOG_UTC_OFFSET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7 * 3600)
}

fn parse_format(spec: &str) -> Result<LineFormat, Error> {
    LineFormat::from_str(spec).map_err(|e| Error::Config(format!("format `{spec}`: {e}")))
}

/// A spooled batch newer than the state file means the sensor stopped
/// between spooling it and saving the state: its positions are the true
/// ones.
fn recover_from_spool(spool: &Spool, state: &mut SensorState) -> Result<(), Error> {
    if let Some(max) = spool.max_seq()
        && max > state.seq
    {
        let batch = spool.load(max)?;
        state.seq = max;
        for (path, position) in batch.positions {
            state.files.insert(path, position);
        }
    }
    Ok(())
}

fn spawn_log_line(
    metrics: Arc<Metrics>,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("log".into())
        .spawn(move || {
            if every.is_zero() {
                return;
            }
            let mut last_events = 0;
            while !sleep_unless(&stop, every) {
                let g = Metrics::get;
                let events = g(&metrics.events);
                let rate = (events - last_events) as f64 / every.as_secs_f64();
                last_events = events;
                tracing::info!(
                    events_per_second = rate.round() as u64,
                    events,
                    hits = g(&metrics.hits),
                    decode_errors = metrics.decode_errors().values().sum::<u64>(),
                    drops = g(&metrics.drops),
                    spool_bytes = g(&metrics.spool_bytes),
                    spool_dropped_batches = g(&metrics.spool_dropped_batches),
                    "sensor_status"
                );
            }
        })
}
