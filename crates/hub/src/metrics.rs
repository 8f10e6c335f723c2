//! Counters exposed at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub hits_received: AtomicU64,
    pub batches_stored: AtomicU64,
    pub batches_duplicate: AtomicU64,
    pub batches_rejected: AtomicU64,
    pub snapshot_builds: AtomicU64,
    pub snapshot_build_failures: AtomicU64,
    pub snapshot_indicators: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "hub_hits_received_total",
            "counter",
            "Hits in batches stored (duplicates not counted).",
            &[("", get(&self.hits_received))],
        );
        family(
            "hub_hit_batches_total",
            "counter",
            "Hit batches by outcome.",
            &[
                ("{result=\"stored\"}", get(&self.batches_stored)),
                ("{result=\"duplicate\"}", get(&self.batches_duplicate)),
                ("{result=\"rejected\"}", get(&self.batches_rejected)),
            ],
        );
        family(
            "hub_snapshot_builds_total",
            "counter",
            "Snapshots built.",
            &[("", get(&self.snapshot_builds))],
        );
        family(
            "hub_snapshot_build_failures_total",
            "counter",
            "Snapshot builds that failed.",
            &[("", get(&self.snapshot_build_failures))],
        );
        family(
            "hub_snapshot_indicators",
            "gauge",
            "Indicators in the snapshot being served.",
            &[("", get(&self.snapshot_indicators))],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_type_lines() {
        let m = Metrics::default();
        add(&m.batches_duplicate, 2);
        let text = m.render();
        assert!(text.contains("# TYPE hub_hit_batches_total counter"));
        assert!(text.contains("hub_hit_batches_total{result=\"duplicate\"} 2"));
        assert!(text.contains("hub_snapshot_indicators 0"));
    }
}
