//! The aggregator: sums the workers' partial hits per (bucket, client,
//! kind, indicator), and at each flush turns them into one [`Batch`] for
//! every output, together with the file positions the batch covers.
//!
//! The client's port is not part of that key (nor of the hub's storage
//! key): a hit carries the port of its earliest event that had one, which
//! the hub uses to attribute it through a CGNAT port-block log. Behind
//! CGNAT the subscribers sharing a public address add up into one hit with
//! one port, so attribution by port block covers only the earliest event of
//! each bucket; a deployment whose sensor would see post-NAT traffic should
//! run it where it sees inside addresses when it can.
//!
//! Chunks of one file may finish out of order on several workers; the
//! aggregator applies them in order (a small reorder buffer), so at every
//! flush its sums hold exactly the hits of every line up to the saved
//! positions — the property that lets a killed sensor resume without loss
//! or duplicates.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use khien_model::{Family, Hit, ObservableKind};

use crate::Error;
use crate::metrics::Metrics;
use crate::spool::Batch;
use crate::state::{FilePosition, SensorState};
use crate::worker::{Done, PartialHit};

/// Most distinct (bucket, client, indicator) sums held before an early
/// flush, to bound memory when a popular name is listed by mistake.
const MAX_ENTRIES: usize = 1_000_000;

/// Somewhere batches go. Called on the aggregator thread; an error stops
/// the sensor (the state is not advanced, so nothing is lost).
pub(crate) trait Output: Send {
    fn write(&mut self, batch: &Batch) -> Result<(), Error>;
}

/// A positioned input: a followed file, or stdin (which has no position).
#[derive(Debug)]
pub(crate) struct Ordered {
    /// Key in the state's `files` map; `None` for stdin.
    pub state_key: Option<String>,
    next_seq: u64,
    pending: BTreeMap<u64, (Option<FilePosition>, Vec<PartialHit>)>,
    finished_at: Option<u64>,
}

impl Ordered {
    pub fn new(state_key: Option<String>) -> Self {
        Ordered {
            state_key,
            next_seq: 0,
            pending: BTreeMap::new(),
            finished_at: None,
        }
    }

    fn is_done(&self) -> bool {
        self.finished_at.is_some_and(|end| self.next_seq >= end)
    }
}

pub(crate) struct Aggregator {
    pub sensor: String,
    pub state_dir: PathBuf,
    pub state: SensorState,
    pub metrics: Arc<Metrics>,
    pub flush_every: Duration,
    pub outputs: Vec<Box<dyn Output>>,
    /// Ordered inputs by input index.
    pub ordered: HashMap<usize, Ordered>,
    /// Stop when every ordered input has finished (`--once`).
    pub exit_when_inputs_done: bool,
    sums: HashMap<(i64, IpAddr, ObservableKind, Arc<str>), PartialHit>,
    /// File positions as last saved, to skip saving when none moved.
    saved_files: BTreeMap<String, FilePosition>,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("sensor", &self.sensor)
            .field("sums", &self.sums.len())
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sensor: String,
        state_dir: PathBuf,
        state: SensorState,
        metrics: Arc<Metrics>,
        flush_every: Duration,
        outputs: Vec<Box<dyn Output>>,
        ordered: HashMap<usize, Ordered>,
        exit_when_inputs_done: bool,
    ) -> Self {
        Aggregator {
            sensor,
            state_dir,
            state,
            metrics,
            flush_every,
            outputs,
            ordered,
            exit_when_inputs_done,
            sums: HashMap::new(),
            saved_files: BTreeMap::new(),
        }
    }

    /// Runs until the workers hang up (shutdown) or, with
    /// `exit_when_inputs_done`, every ordered input is done; flushes last.
    pub fn run(mut self, done: Receiver<Done>) -> Result<SensorState, Error> {
        let mut next_flush = Instant::now() + self.flush_every;
        loop {
            if self.exit_when_inputs_done && self.ordered.values().all(Ordered::is_done) {
                break;
            }
            let wait = next_flush.saturating_duration_since(Instant::now());
            match done.recv_timeout(wait) {
                Ok(msg) => self.apply(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_flush || self.sums.len() >= MAX_ENTRIES {
                self.flush()?;
                next_flush = Instant::now() + self.flush_every;
            }
        }
        self.flush()?;
        Ok(self.state)
    }

    fn apply(&mut self, msg: Done) {
        match msg {
            Done::Unordered { hits } => self.add(hits),
            Done::Chunk {
                input,
                seq,
                position,
                hits,
            } => {
                let Some(ordered) = self.ordered.get_mut(&input) else {
                    self.add(hits);
                    return;
                };
                ordered.pending.insert(seq, (position, hits));
                self.drain(input);
            }
            Done::Finished { input, seq } => {
                if let Some(ordered) = self.ordered.get_mut(&input) {
                    ordered.finished_at = Some(seq);
                }
            }
        }
    }

    /// Applies the chunks of `input` that are next in order.
    fn drain(&mut self, input: usize) {
        loop {
            let Some(ordered) = self.ordered.get_mut(&input) else {
                return;
            };
            let Some((position, hits)) = ordered.pending.remove(&ordered.next_seq) else {
                return;
            };
            ordered.next_seq += 1;
            if let (Some(key), Some(position)) = (&ordered.state_key, position) {
                self.state.files.insert(key.clone(), position);
            }
            self.add(hits);
        }
    }

    fn add(&mut self, hits: Vec<PartialHit>) {
        for h in hits {
            let key = (h.bucket, h.client, h.kind, h.indicator.clone());
            match self.sums.get_mut(&key) {
                Some(sum) => sum.merge(h),
                None => {
                    self.sums.insert(key, h);
                }
            }
        }
    }

    /// Hands the sums to every output as one batch, then saves the state.
    /// Positions advance only after every output took the batch. A flush
    /// with no hits still saves positions, so a restart does not re-read.
    fn flush(&mut self) -> Result<(), Error> {
        let hits: Vec<Hit> = self
            .sums
            .drain()
            .map(|(_, p)| to_hit(&self.sensor, p))
            .collect();
        let positions_moved = self.state.files != self.saved_files;
        if hits.is_empty() && !positions_moved {
            return Ok(());
        }
        if !hits.is_empty() {
            self.state.seq += 1;
            let mut hits = hits;
            hits.sort_by(|a, b| {
                (a.bucket, a.client, &a.indicator).cmp(&(b.bucket, b.client, &b.indicator))
            });
            let batch = Batch {
                batch_id: format!("{}-{:010}", self.state.instance, self.state.seq),
                seq: self.state.seq,
                hits,
                positions: self.state.files.clone(),
            };
            for output in &mut self.outputs {
                output.write(&batch)?;
            }
            Metrics::add(&self.metrics.hit_records, batch.hits.len() as u64);
        }
        self.state.save(&self.state_dir)?;
        self.saved_files.clone_from(&self.state.files);
        Ok(())
    }
}

fn to_hit(sensor: &str, p: PartialHit) -> Hit {
    let time = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    Hit {
        bucket: DateTime::<Utc>::from_timestamp(p.bucket, 0).unwrap_or_default(),
        client: p.client,
        client_port: p.client_port,
        indicator: p.indicator.to_string(),
        kind: p.kind,
        indicator_id: (p.indicator_id > 0).then_some(p.indicator_id),
        family: p
            .family
            .and_then(|f| Family::new(&f).ok())
            .map(|f| f.as_str().to_owned()),
        threat_type: p.threat_type,
        count: p.count,
        first_seen: time(p.first_ms),
        last_seen: time(p.last_ms),
        sensor: sensor.to_owned(),
        evidence: (!p.evidence.is_empty()).then_some(p.evidence),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use khien_model::ThreatType;

    use super::*;

    /// Keeps every batch it is given.
    struct Capture(Arc<Mutex<Vec<Batch>>>);

    impl Output for Capture {
        fn write(&mut self, batch: &Batch) -> Result<(), Error> {
            self.0.lock().unwrap().push(batch.clone());
            Ok(())
        }
    }

    /// One partial hit of 192.0.2.7 on `c2.evil.example` in the bucket of
    /// 2025-11-25T14:00Z, first seen `at_s` seconds into it.
    fn part(at_s: i64, client_port: Option<u16>, evidence: &str) -> PartialHit {
        let bucket = 1_764_079_200;
        PartialHit {
            bucket,
            client: "192.0.2.7".parse().unwrap(),
            kind: ObservableKind::Domain,
            indicator: Arc::from("c2.evil.example"),
            indicator_id: 1,
            family: Some(Arc::from("mirai")),
            threat_type: ThreatType::C2,
            count: 1,
            first_ms: (bucket + at_s) * 1000,
            last_ms: (bucket + at_s) * 1000,
            evidence: evidence.into(),
            client_port,
        }
    }

    /// Sums `parts`, arriving in this order from different units of work,
    /// and returns the flushed hits.
    fn flushed(parts: Vec<Vec<PartialHit>>) -> Vec<Hit> {
        let dir = tempfile::tempdir().unwrap();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let mut a = Aggregator::new(
            "s1".into(),
            dir.path().to_path_buf(),
            SensorState::load(dir.path()).unwrap(),
            Arc::new(Metrics::default()),
            Duration::from_secs(60),
            vec![Box::new(Capture(batches.clone()))],
            HashMap::new(),
            false,
        );
        for hits in parts {
            a.apply(Done::Unordered { hits });
        }
        a.flush().unwrap();
        let batches = batches.lock().unwrap();
        batches.iter().flat_map(|b| b.hits.clone()).collect()
    }

    #[test]
    fn earlier_part_read_later_gives_its_port() {
        let hits = flushed(vec![
            vec![part(600, Some(40001), "late.c2.evil.example.")],
            vec![part(60, Some(51234), "early.c2.evil.example.")],
        ]);
        assert_eq!(hits.len(), 1, "{hits:?}");
        let h = &hits[0];
        assert_eq!(h.count, 2);
        assert_eq!(h.client_port, Some(51234));
        assert_eq!(h.evidence.as_deref(), Some("early.c2.evil.example."));
        assert_eq!(h.first_seen.timestamp(), 1_764_079_200 + 60);
        assert_eq!(h.last_seen.timestamp(), 1_764_079_200 + 600);
    }

    #[test]
    fn later_part_does_not_replace_the_earliest_port() {
        let hits = flushed(vec![
            vec![part(60, Some(51234), "early.c2.evil.example.")],
            vec![part(600, Some(40001), "late.c2.evil.example.")],
        ]);
        assert_eq!(hits[0].client_port, Some(51234));
    }

    /// The rule of `Hit::merge` and of the hub's store, so the port does
    /// not depend on where a bucket was cut into parts.
    #[test]
    fn earliest_part_without_a_port_keeps_the_port_of_another() {
        let hits = flushed(vec![
            vec![part(600, Some(40001), "late.c2.evil.example.")],
            vec![part(60, None, "early.c2.evil.example.")],
        ]);
        assert_eq!(hits[0].client_port, Some(40001));
        assert_eq!(hits[0].evidence.as_deref(), Some("early.c2.evil.example."));
        let hits = flushed(vec![
            vec![part(60, None, "a.")],
            vec![part(600, None, "b.")],
        ]);
        assert_eq!(hits[0].client_port, None);
    }

    #[test]
    fn port_is_not_part_of_the_key() {
        let mut other_client = part(30, Some(51234), "x.");
        other_client.client = "192.0.2.8".parse().unwrap();
        let hits = flushed(vec![vec![
            part(60, Some(1111), "a."),
            part(90, Some(2222), "b."),
            other_client,
        ]]);
        assert_eq!(hits.len(), 2, "{hits:?}");
        let seven = hits
            .iter()
            .find(|h| h.client.to_string() == "192.0.2.7")
            .unwrap();
        assert_eq!((seven.count, seven.client_port), (2, Some(1111)));
    }

    #[test]
    fn ndjson_record_carries_the_port_only_when_known() {
        let with =
            serde_json::to_value(&flushed(vec![vec![part(1, Some(5353), "a.")]])[0]).unwrap();
        assert_eq!(with["client_port"], 5353);
        let without = serde_json::to_value(&flushed(vec![vec![part(1, None, "a.")]])[0]).unwrap();
        assert!(without.get("client_port").is_none(), "{without}");
    }
}
