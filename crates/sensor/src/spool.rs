//! The disk spool between the aggregator and the hub.
//!
//! Every batch for the hub is written here first (gzip JSON, fsync,
//! rename) and deleted only after the hub answered 200, so a hub that is
//! down, a network that drops, or a sensor that is killed loses nothing:
//! the next start replays the spool with the same batch ids, and the hub
//! stores a retried batch once.
//!
//! The spool is bounded. When it is full the **oldest** batches are
//! deleted — new infections matter more than old ones, and the hub's
//! cases already hold what the old hits said — with an error log line and
//! `sensor_spool_dropped_batches_total`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use khien_model::Hit;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::metrics::Metrics;
use crate::state::FilePosition;

/// Largest batch file read back (a batch holds at most a flush's hits).
const MAX_BATCH_BYTES: u64 = 1 << 30;

/// One flush of the aggregator: the hits and the file positions they cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub batch_id: String,
    pub seq: u64,
    pub hits: Vec<Hit>,
    #[serde(default)]
    pub positions: BTreeMap<String, FilePosition>,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    metrics: Arc<Metrics>,
    /// Sizes of the batch files present, by sequence number.
    files: Mutex<BTreeMap<u64, u64>>,
}

impl Spool {
    /// Opens (creating) the spool directory and counts what it holds.
    pub fn open(dir: PathBuf, max_bytes: u64, metrics: Arc<Metrics>) -> Result<Spool, Error> {
        let io = |e: std::io::Error| Error::Io(format!("spool {}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".batch"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map_err(io)?.len();
            files.insert(seq, len);
        }
        let spool = Spool {
            dir,
            max_bytes,
            metrics,
            files: Mutex::new(files),
        };
        spool.update_gauges();
        Ok(spool)
    }

    fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.batch"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
        match self.files.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn update_gauges(&self) {
        let files = self.lock();
        let bytes: u64 = files.values().sum();
        self.metrics.spool_bytes.store(bytes, Ordering::Relaxed);
        self.metrics
            .spool_batches
            .store(files.len() as u64, Ordering::Relaxed);
    }

    /// Writes a batch durably, then makes room by dropping the oldest
    /// batches if the spool is over its bound.
    pub fn push(&self, batch: &Batch) -> Result<(), Error> {
        let json = serde_json::to_vec(batch)
            .map_err(|e| Error::State(format!("encoding batch {}: {e}", batch.batch_id)))?;
        let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
        gz.write_all(&json)
            .and_then(|_| gz.flush())
            .map_err(|e| Error::Io(format!("compressing batch: {e}")))?;
        let bytes = gz
            .finish()
            .map_err(|e| Error::Io(format!("compressing batch: {e}")))?;
        let path = self.path_of(batch.seq);
        crate::state::write_atomic(&path, &bytes)?;
        let mut dropped = Vec::new();
        {
            let mut files = self.lock();
            files.insert(batch.seq, bytes.len() as u64);
            let mut total: u64 = files.values().sum();
            // The batch just written is never the one dropped.
            while total > self.max_bytes && files.len() > 1 {
                let Some((&oldest, &len)) = files.iter().next() else {
                    break;
                };
                files.remove(&oldest);
                total -= len;
                dropped.push(oldest);
            }
        }
        for seq in dropped {
            let _ = std::fs::remove_file(self.path_of(seq));
            Metrics::add(&self.metrics.spool_dropped_batches, 1);
            tracing::error!(
                seq,
                max_bytes = self.max_bytes,
                "sensor_spool_full: oldest batch dropped unsent; the hub has been unreachable too long or the spool is too small"
            );
        }
        self.update_gauges();
        Ok(())
    }

    /// The oldest batch waiting, if any.
    pub fn oldest(&self) -> Option<u64> {
        self.lock().keys().next().copied()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every batch waiting, oldest first, read back (used at start to
    /// recover file positions newer than the state file's).
    pub fn max_seq(&self) -> Option<u64> {
        self.lock().keys().next_back().copied()
    }

    pub fn load(&self, seq: u64) -> Result<Batch, Error> {
        let path = self.path_of(seq);
        let file = std::fs::File::open(&path)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let mut json = Vec::new();
        GzDecoder::new(file)
            .take(MAX_BATCH_BYTES)
            .read_to_end(&mut json)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&json).map_err(|e| Error::State(format!("{}: {e}", path.display())))
    }

    /// Removes a batch the hub accepted.
    pub fn remove(&self, seq: u64) {
        let _ = std::fs::remove_file(self.path_of(seq));
        self.lock().remove(&seq);
        self.update_gauges();
    }

    /// Moves a batch the hub refused for good (or that cannot be read)
    /// aside, so it stops blocking the ones behind it but is not lost.
    pub fn reject(&self, seq: u64) {
        let rejected = self.dir.join("rejected");
        let _ = std::fs::create_dir_all(&rejected);
        let from = self.path_of(seq);
        let to = rejected.join(from.file_name().unwrap_or_default());
        if std::fs::rename(&from, &to).is_err() {
            let _ = std::fs::remove_file(&from);
        }
        self.lock().remove(&seq);
        self.update_gauges();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64, hits: usize) -> Batch {
        let hit: Hit = serde_json::from_value(serde_json::json!({
            "bucket": "2026-11-25T14:00:00Z", "client": "192.0.2.7",
            "indicator": "evil.example", "kind": "domain", "family": "mirai",
            "threat_type": "c2", "count": 3,
            "first_seen": "2026-11-25T14:01:00Z", "last_seen": "2026-11-25T14:02:00Z",
            "sensor": "s1"
        }))
        .unwrap();
        Batch {
            batch_id: format!("x-{seq}"),
            seq,
            hits: vec![hit; hits],
            positions: BTreeMap::new(),
        }
    }

    #[test]
    fn batches_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::default());
        let spool = Spool::open(dir.path().join("spool"), 1 << 20, m.clone()).unwrap();
        spool.push(&batch(2, 1)).unwrap();
        spool.push(&batch(1, 2)).unwrap();
        drop(spool);
        let spool = Spool::open(dir.path().join("spool"), 1 << 20, m.clone()).unwrap();
        assert_eq!(spool.oldest(), Some(1));
        assert_eq!(spool.load(1).unwrap(), batch(1, 2));
        spool.remove(1);
        assert_eq!(spool.oldest(), Some(2));
        assert_eq!(Metrics::get(&m.spool_batches), 1);
    }

    #[test]
    fn full_spool_drops_oldest_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::default());
        let one = {
            let s = Spool::open(dir.path().join("probe"), u64::MAX, m.clone()).unwrap();
            s.push(&batch(1, 50)).unwrap();
            Metrics::get(&m.spool_bytes)
        };
        let spool = Spool::open(dir.path().join("spool"), one * 2 + one / 2, m.clone()).unwrap();
        for seq in 1..=4 {
            spool.push(&batch(seq, 50)).unwrap();
        }
        assert_eq!(spool.len(), 2);
        assert_eq!(spool.oldest(), Some(3));
        assert_eq!(Metrics::get(&m.spool_dropped_batches), 2);
    }
}
