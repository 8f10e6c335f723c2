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
    pub hits_attributed: AtomicU64,
    pub hits_unattributed: AtomicU64,
    pub hits_rejected_future: AtomicU64,
    pub cases_opened: AtomicU64,
    pub cases_reinfected: AtomicU64,
    pub cases_resolved: AtomicU64,
    pub attribution_events: AtomicU64,
    pub attribution_rejected: AtomicU64,
    pub lookups: AtomicU64,
    pub lookups_limited: AtomicU64,
    pub notifications_planned: AtomicU64,
    pub notifications_sent: AtomicU64,
    pub notifications_failed: AtomicU64,
    pub notifications_rate_limited: AtomicU64,
    pub notifications_cancelled: AtomicU64,
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
            "hub_hits_attributed_total",
            "counter",
            "Stored hits by attribution at ingest.",
            &[
                ("{result=\"subscriber\"}", get(&self.hits_attributed)),
                ("{result=\"nobody\"}", get(&self.hits_unattributed)),
            ],
        );
        family(
            "hub_hits_rejected_total",
            "counter",
            "Hits refused inside accepted batches.",
            &[("{reason=\"future\"}", get(&self.hits_rejected_future))],
        );
        family(
            "hub_cases_total",
            "counter",
            "Case changes by kind.",
            &[
                ("{change=\"opened\"}", get(&self.cases_opened)),
                ("{change=\"reinfected\"}", get(&self.cases_reinfected)),
                ("{change=\"resolved\"}", get(&self.cases_resolved)),
            ],
        );
        family(
            "hub_attribution_records_total",
            "counter",
            "Attribution file records by outcome.",
            &[
                ("{result=\"stored\"}", get(&self.attribution_events)),
                ("{result=\"rejected\"}", get(&self.attribution_rejected)),
            ],
        );
        family(
            "hub_lookups_total",
            "counter",
            "Public lookups by outcome.",
            &[
                ("{result=\"answered\"}", get(&self.lookups)),
                ("{result=\"rate_limited\"}", get(&self.lookups_limited)),
            ],
        );
        family(
            "hub_notifications_total",
            "counter",
            "Notifications by what happened to them (a retried one counts each time).",
            &[
                ("{result=\"planned\"}", get(&self.notifications_planned)),
                ("{result=\"sent\"}", get(&self.notifications_sent)),
                ("{result=\"failed\"}", get(&self.notifications_failed)),
                (
                    "{result=\"rate_limited\"}",
                    get(&self.notifications_rate_limited),
                ),
                ("{result=\"cancelled\"}", get(&self.notifications_cancelled)),
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
