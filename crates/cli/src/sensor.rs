//! `khien sensor`: the quick form and the config file, signals, the last
//! summary line. The work is in `khien-sensor`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use khien_sensor::{InputConfig, OutputConfig, Sensor, SensorConfig};

use crate::cli::Global;
use crate::i18n::t;
use crate::output;

#[derive(Debug, Args)]
pub struct SensorArgs {
    /// TOML config file (see docs/sensor.md); unknown keys are rejected.
    /// Flags below given together with it override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Snapshot: a file from `khien intel snapshot`, or the hub's
    /// `…/api/v1/snapshots/latest` URL.
    #[arg(long, value_name = "FILE|URL")]
    pub snapshot: Option<String>,
    /// An input: `dnstap:unix:PATH`, `dnstap:tcp:ADDR:PORT`,
    /// `netflow:udp:ADDR:PORT`, `file:PATH:FORMAT`, `stdin:FORMAT`.
    /// Formats: unbound, bind, dnsmasq, zeek, zeek-json, eve, csv:…, json:….
    #[arg(long = "input", value_name = "SPEC")]
    pub inputs: Vec<String>,
    /// An output: `ndjson:-` (standard output), `ndjson:PATH`, `hub:URL`
    /// (API key from KHIEN_API_KEY or --api-key-file).
    #[arg(long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// File holding the hub API key.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// This sensor's name (default: the host name).
    #[arg(long)]
    pub sensor: Option<String>,
    /// Directory for file positions, the spool and the cached snapshot.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Matching threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Aggregation bucket in seconds (default 3600).
    #[arg(long, value_name = "SECONDS")]
    pub bucket: Option<u32>,
    /// Seconds between flushes to the outputs (default 60).
    #[arg(long, value_name = "SECONDS")]
    pub flush: Option<u64>,
    /// Seconds between looks for a new snapshot (default 30).
    #[arg(long, value_name = "SECONDS")]
    pub snapshot_refresh: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Read file and stdin inputs to their end, flush and exit.
    #[arg(long)]
    pub once: bool,
    /// On exit, keep sending spooled batches to the hub for this long.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub drain: u64,
}

fn build_config(args: &SensorArgs) -> anyhow::Result<SensorConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            let mut c =
                SensorConfig::from_toml(&text).with_context(|| format!("{}", path.display()))?;
            for spec in &args.inputs {
                c.inputs.push(spec.parse()?);
            }
            for spec in &args.outputs {
                c.outputs.push(spec.parse()?);
            }
            c
        }
        None => {
            let snapshot = args
                .snapshot
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!(t("sensor.need_snapshot", &[])))?;
            let inputs = args
                .inputs
                .iter()
                .map(|s| s.parse::<InputConfig>())
                .collect::<Result<Vec<_>, _>>()?;
            let outputs = args
                .outputs
                .iter()
                .map(|s| s.parse::<OutputConfig>())
                .collect::<Result<Vec<_>, _>>()?;
            SensorConfig::quick(snapshot, inputs, outputs)
        }
    };
    if let (Some(snapshot), Some(_)) = (&args.snapshot, &args.config) {
        config.snapshot = SensorConfig::quick(snapshot, vec![], vec![]).snapshot;
    }
    if let Some(file) = &args.api_key_file {
        for output in &mut config.outputs {
            if let OutputConfig::Hub { api_key_file, .. } = output {
                *api_key_file = Some(file.clone());
            }
        }
    }
    if let Some(name) = &args.sensor {
        config.sensor = name.clone();
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.clone();
    }
    if args.workers.is_some() {
        config.workers = args.workers;
    }
    if let Some(b) = args.bucket {
        config.bucket_seconds = b;
    }
    if let Some(f) = args.flush {
        config.flush_seconds = f;
    }
    if let Some(r) = args.snapshot_refresh {
        config.snapshot.refresh_seconds = r;
    }
    if args.metrics.is_some() {
        config.metrics.listen = args.metrics;
    }
    config.once |= args.once;
    config.validate()?;
    Ok(config)
}

pub fn run(global: &Global, args: SensorArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init();
    let config = build_config(&args)?;
    let sensor = Sensor::build(config)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handler")?;
    }
    let started = std::time::Instant::now();
    let summary = sensor.run(stop, Duration::from_secs(args.drain))?;
    let seconds = started.elapsed().as_secs_f64();
    if global.json {
        // Standard output may carry NDJSON hits; the summary goes to stderr.
        output::note(&serde_json::to_string(&serde_json::json!({
            "events": summary.events,
            "read": summary.units_read,
            "hits": summary.hits,
            "hit_records": summary.hit_records,
            "decode_errors": summary.decode_errors,
            "drops": summary.drops,
            "spooled_batches": summary.spooled_batches,
            "seconds": seconds,
        }))?);
    } else {
        let rate = if seconds > 0.0 {
            (summary.units_read as f64 / seconds).round() as u64
        } else {
            0
        };
        output::note(&t(
            "sensor.summary",
            &[
                ("read", &summary.units_read),
                ("events", &summary.events),
                ("hits", &summary.hits),
                ("records", &summary.hit_records),
                ("errors", &summary.decode_errors),
                ("drops", &summary.drops),
                ("seconds", &format!("{seconds:.2}")),
                ("rate", &rate),
            ],
        ));
        if summary.spooled_batches > 0 {
            output::note(&t("sensor.spooled", &[("count", &summary.spooled_batches)]));
        }
    }
    Ok(ExitCode::SUCCESS)
}
