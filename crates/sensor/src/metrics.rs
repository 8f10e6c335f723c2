//! Counters shared by every thread, the Prometheus text for `/metrics` and
//! the periodic log line. Hot paths count into locals and add here once
//! per batch, so the atomics are touched thousands of times a second, not
//! millions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Everything the sensor counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Telemetry records decoded (DNS lookups, flows, HTTP, TLS).
    pub events: AtomicU64,
    /// Lines, frames and datagrams read, decodable or not.
    pub units_read: AtomicU64,
    /// Events that matched an indicator.
    pub hits: AtomicU64,
    /// Aggregated hit records handed to the outputs.
    pub hit_records: AtomicU64,
    /// Events dropped because the workers were behind (UDP only; other
    /// sources wait instead).
    pub drops: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub spool_batches: AtomicU64,
    /// Batches removed unsent because the spool was full.
    pub spool_dropped_batches: AtomicU64,
    pub hub_batches_sent: AtomicU64,
    pub hub_batches_failed: AtomicU64,
    /// Batches the hub refused for good (4xx); kept under `spool/rejected`.
    pub hub_batches_rejected: AtomicU64,
    pub snapshot_indicators: AtomicU64,
    pub snapshot_swaps: AtomicU64,
    pub snapshot_errors: AtomicU64,
    pub files_rotated: AtomicU64,
    pub files_truncated: AtomicU64,
    pub dnstap_connections: AtomicU64,
    decode_errors: Mutex<BTreeMap<&'static str, u64>>,
    error_samples: Mutex<BTreeMap<&'static str, Instant>>,
    started: OnceInstant,
}

#[derive(Debug)]
struct OnceInstant(Instant);

impl Default for OnceInstant {
    fn default() -> Self {
        OnceInstant(Instant::now())
    }
}

/// The gap between two log samples of the same error kind.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts decode errors by their stable kind.
    pub fn add_decode_errors(&self, counts: &BTreeMap<&'static str, u64>) {
        if counts.is_empty() {
            return;
        }
        if let Ok(mut map) = self.decode_errors.lock() {
            for (kind, n) in counts {
                *map.entry(kind).or_insert(0) += n;
            }
        }
    }

    pub fn decode_errors(&self) -> BTreeMap<&'static str, u64> {
        self.decode_errors
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Whether a sample of this error kind may be logged now: at most one
    /// per kind every ten seconds, so garbage cannot flood the log.
    pub fn should_sample(&self, kind: &'static str) -> bool {
        let Ok(mut map) = self.error_samples.lock() else {
            return false;
        };
        let now = Instant::now();
        match map.get(kind) {
            Some(last) if now.duration_since(*last) < SAMPLE_INTERVAL => false,
            _ => {
                map.insert(kind, now);
                true
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn prometheus(&self, sensor: &str) -> String {
        let mut out = String::with_capacity(2048);
        let label = format!("sensor=\"{}\"", escape_label(sensor));
        let mut counter = |name: &str, help: &str, value: u64, kind: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name}{{{label}}} {value}");
        };
        let g = Self::get;
        counter(
            "sensor_events_total",
            "Telemetry records decoded.",
            g(&self.events),
            "counter",
        );
        counter(
            "sensor_units_read_total",
            "Lines, frames and datagrams read.",
            g(&self.units_read),
            "counter",
        );
        counter(
            "sensor_hits_total",
            "Events that matched an indicator.",
            g(&self.hits),
            "counter",
        );
        counter(
            "sensor_hit_records_total",
            "Aggregated hit records handed to outputs.",
            g(&self.hit_records),
            "counter",
        );
        counter(
            "sensor_drops_total",
            "Events dropped because workers were behind.",
            g(&self.drops),
            "counter",
        );
        counter(
            "sensor_spool_bytes",
            "Bytes in the disk spool.",
            g(&self.spool_bytes),
            "gauge",
        );
        counter(
            "sensor_spool_batches",
            "Batches in the disk spool.",
            g(&self.spool_batches),
            "gauge",
        );
        counter(
            "sensor_spool_dropped_batches_total",
            "Batches dropped because the spool was full.",
            g(&self.spool_dropped_batches),
            "counter",
        );
        counter(
            "sensor_hub_batches_sent_total",
            "Batches the hub accepted.",
            g(&self.hub_batches_sent),
            "counter",
        );
        counter(
            "sensor_hub_batches_failed_total",
            "Failed attempts to send a batch (retried).",
            g(&self.hub_batches_failed),
            "counter",
        );
        counter(
            "sensor_hub_batches_rejected_total",
            "Batches the hub refused for good.",
            g(&self.hub_batches_rejected),
            "counter",
        );
        counter(
            "sensor_snapshot_indicators",
            "Indicators in the snapshot in use.",
            g(&self.snapshot_indicators),
            "gauge",
        );
        counter(
            "sensor_snapshot_swaps_total",
            "Snapshots swapped in.",
            g(&self.snapshot_swaps),
            "counter",
        );
        counter(
            "sensor_snapshot_errors_total",
            "Snapshots that failed to load or download.",
            g(&self.snapshot_errors),
            "counter",
        );
        counter(
            "sensor_files_rotated_total",
            "Followed files that were rotated.",
            g(&self.files_rotated),
            "counter",
        );
        counter(
            "sensor_files_truncated_total",
            "Followed files that were truncated.",
            g(&self.files_truncated),
            "counter",
        );
        counter(
            "sensor_dnstap_connections_total",
            "dnstap connections accepted.",
            g(&self.dnstap_connections),
            "counter",
        );
        let _ = writeln!(
            out,
            "# HELP sensor_decode_errors_total Input that could not be decoded, by kind."
        );
        let _ = writeln!(out, "# TYPE sensor_decode_errors_total counter");
        for (kind, n) in self.decode_errors() {
            let _ = writeln!(
                out,
                "sensor_decode_errors_total{{{label},kind=\"{kind}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP sensor_uptime_seconds Seconds since start.");
        let _ = writeln!(out, "# TYPE sensor_uptime_seconds gauge");
        let _ = writeln!(
            out,
            "sensor_uptime_seconds{{{label}}} {}",
            self.started.0.elapsed().as_secs()
        );
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `/metrics` on `listen` until the process ends.
pub(crate) fn serve(
    listen: std::net::SocketAddr,
    metrics: std::sync::Arc<Metrics>,
    sensor: String,
) -> Result<std::thread::JoinHandle<()>, crate::Error> {
    let server = tiny_http::Server::http(listen)
        .map_err(|e| crate::Error::Io(format!("metrics listener {listen}: {e}")))?;
    let handle = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = if request.url() == "/metrics" {
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"text/plain; version=0.0.4"[..],
                    );
                    let mut r = tiny_http::Response::from_string(metrics.prometheus(&sensor));
                    if let Ok(h) = header {
                        r.add_header(h);
                    }
                    r
                } else {
                    tiny_http::Response::from_string("not found").with_status_code(404)
                };
                let _ = request.respond(response);
            }
        })
        .map_err(|e| crate::Error::Io(format!("metrics thread: {e}")))?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_lists_decode_errors_by_kind() {
        let m = Metrics::default();
        Metrics::add(&m.events, 5);
        let mut errs = BTreeMap::new();
        errs.insert("line_too_long", 2);
        m.add_decode_errors(&errs);
        m.add_decode_errors(&errs);
        let text = m.prometheus("s\"1");
        assert!(
            text.contains("sensor_events_total{sensor=\"s\\\"1\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("sensor_decode_errors_total{sensor=\"s\\\"1\",kind=\"line_too_long\"} 4"),
            "{text}"
        );
    }

    #[test]
    fn samples_are_rate_limited_per_kind() {
        let m = Metrics::default();
        assert!(m.should_sample("a"));
        assert!(!m.should_sample("a"));
        assert!(m.should_sample("b"));
    }
}
