//! Shared helpers: snapshots built from a few indicators, sensors run in a
//! thread, hits read back from NDJSON.
#![allow(dead_code, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use khien_matcher::{Entry, SnapshotBuilder};
use khien_model::{Hit, ObservableKind, ThreatType};
use khien_sensor::{RunSummary, Sensor, SensorConfig};

/// Writes a snapshot of `(kind, value, family)` to `path`.
pub fn write_snapshot(path: &Path, entries: &[(ObservableKind, &str, &str)]) {
    let mut b = SnapshotBuilder::new();
    for (i, (kind, value, family)) in entries.iter().enumerate() {
        b.add(&Entry {
            id: i as i64 + 1,
            kind: *kind,
            value,
            exact_host: false,
            family: Some(family),
            threat_type: ThreatType::C2,
        })
        .expect("valid entry");
    }
    let bytes = b.build(chrono::Utc::now());
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write snapshot");
    std::fs::rename(&tmp, path).expect("rename snapshot");
}

/// The default test snapshot: two C&C domains, a C&C address, a network.
pub fn default_snapshot(dir: &Path) -> PathBuf {
    let path = dir.join("snapshot.bin");
    write_snapshot(
        &path,
        &[
            (ObservableKind::Domain, "c2.evil.example", "mirai"),
            (ObservableKind::Domain, "stealer.example", "lumma"),
            (ObservableKind::Ipv4, "198.51.100.7", "emotet"),
            (ObservableKind::Cidr, "203.0.113.0/24", "qakbot"),
        ],
    );
    path
}

pub fn config(dir: &Path, snapshot: &Path, inputs: &[String], output: &Path) -> SensorConfig {
    let mut c = SensorConfig::quick(
        &snapshot.display().to_string(),
        inputs
            .iter()
            .map(|s| s.parse().expect("input spec"))
            .collect(),
        vec![
            format!("ndjson:{}", output.display())
                .parse()
                .expect("output spec"),
        ],
    );
    c.sensor = "test-sensor".into();
    c.state_dir = dir.join("state");
    c.workers = Some(2);
    c.metrics.log_seconds = 0;
    c
}

/// Runs a `--once` sensor to its end.
pub fn run_once(mut config: SensorConfig) -> RunSummary {
    config.once = true;
    let sensor = Sensor::build(config).expect("build sensor");
    sensor
        .run(Arc::new(AtomicBool::new(false)), Duration::from_secs(5))
        .expect("run sensor")
}

/// A sensor running in a thread until stopped.
pub struct Running {
    pub stop: Arc<AtomicBool>,
    pub handle: Option<JoinHandle<RunSummary>>,
    pub metrics: Arc<khien_sensor::Metrics>,
    pub bound: Vec<(usize, khien_sensor::BoundInput)>,
}

impl Running {
    pub fn start(config: SensorConfig) -> Running {
        let sensor = Sensor::build(config).expect("build sensor");
        let metrics = sensor.metrics();
        let bound = sensor.bound_inputs();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle =
            std::thread::spawn(move || sensor.run(s, Duration::from_secs(5)).expect("sensor run"));
        Running {
            stop,
            handle: Some(handle),
            metrics,
            bound,
        }
    }

    pub fn finish(mut self) -> RunSummary {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("running")
            .join()
            .expect("sensor thread")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn read_hits(path: &Path) -> Vec<Hit> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad hit line {l}: {e}")))
        .collect()
}

/// Sum of counts by (client, indicator), over every part of every bucket.
pub fn totals(hits: &[Hit]) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for h in hits {
        *out.entry((h.client.to_string(), h.indicator.clone()))
            .or_insert(0) += h.count;
    }
    out
}

pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Whether an external tool is there; under CI=true its absence fails.
pub fn require(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} || test -x /usr/sbin/{tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    let msg = format!("{tool} is needed (Debian package `{package}`)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n*** SKIP: {msg}; not found ***\n");
    false
}
