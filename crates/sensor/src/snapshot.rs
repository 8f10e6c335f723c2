//! The snapshot in use and its hot swap.
//!
//! Workers take an `Arc` of the current snapshot per batch of work; a
//! reload builds the new snapshot aside and replaces the `Arc`. Batches in
//! flight finish on the old one, the next take the new one: nothing stops
//! and no event is dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use khien_matcher::Snapshot;

use crate::Error;
use crate::metrics::Metrics;

/// Largest snapshot accepted from the hub (10 M indicators fit in ~0.6 GB).
const MAX_DOWNLOAD: u64 = 4 << 30;

/// The current snapshot, shared by every worker.
#[derive(Debug)]
pub struct SnapshotCell {
    current: RwLock<Arc<Snapshot>>,
}

impl SnapshotCell {
    pub fn new(snapshot: Snapshot) -> Self {
        SnapshotCell {
            current: RwLock::new(Arc::new(snapshot)),
        }
    }

    pub fn get(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn swap(&self, snapshot: Snapshot) {
        let new = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

/// Where snapshots come from.
#[derive(Debug, Clone)]
pub enum SnapshotSource {
    File(PathBuf),
    Hub {
        url: String,
        api_key: Option<String>,
        /// The last downloaded snapshot, used when the hub is unreachable
        /// at start.
        cache: PathBuf,
    },
}

pub fn load_file(path: &Path) -> Result<Snapshot, Error> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::Io(format!("snapshot {}: {e}", path.display())))?;
    Snapshot::from_bytes(bytes).map_err(|e| Error::Snapshot(format!("{}: {e}", path.display())))
}

/// Outcome of one look at the hub.
enum Fetched {
    NotModified,
    New(Box<Snapshot>, String),
}

/// Downloads a new snapshot if there is one. The bytes are written to the
/// cache file only once they have loaded as a valid snapshot.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    api_key: Option<&str>,
    etag: Option<&str>,
    cache: &Path,
) -> Result<Fetched, Error> {
    let mut request = agent.get(url);
    if let Some(key) = api_key {
        request = request.header("Authorization", &format!("Bearer {key}"));
    }
    if let Some(tag) = etag {
        request = request.header("If-None-Match", tag);
    }
    let mut response = request
        .call()
        .map_err(|e| Error::Hub(format!("GET {url}: {e}")))?;
    match response.status().as_u16() {
        304 => Ok(Fetched::NotModified),
        200 => {
            let tag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = response
                .body_mut()
                .with_config()
                .limit(MAX_DOWNLOAD)
                .read_to_vec()
                .map_err(|e| Error::Hub(format!("GET {url}: {e}")))?;
            let pending = cache.with_extension("download");
            crate::state::write_atomic(&pending, &bytes)?;
            let snapshot = match Snapshot::from_bytes(bytes) {
                Ok(s) => s,
                Err(e) => {
                    let _ = std::fs::remove_file(&pending);
                    return Err(Error::Snapshot(format!("from {url}: {e}")));
                }
            };
            std::fs::rename(&pending, cache)
                .map_err(|e| Error::Io(format!("snapshot cache {}: {e}", cache.display())))?;
            Ok(Fetched::New(Box::new(snapshot), tag))
        }
        status => Err(Error::Hub(format!("GET {url}: HTTP {status}"))),
    }
}

/// Loads the first snapshot. A hub that cannot be reached falls back to
/// the cached copy; with neither, start-up fails with both reasons.
pub fn load_initial(source: &SnapshotSource) -> Result<(Snapshot, Option<String>), Error> {
    match source {
        SnapshotSource::File(path) => Ok((load_file(path)?, None)),
        SnapshotSource::Hub {
            url,
            api_key,
            cache,
        } => {
            let agent = hub_agent(Duration::from_secs(60));
            match fetch(&agent, url, api_key.as_deref(), None, cache) {
                Ok(Fetched::New(snapshot, tag)) => Ok((*snapshot, Some(tag))),
                Ok(Fetched::NotModified) => Err(Error::Hub(format!(
                    "GET {url}: 304 without a cached snapshot"
                ))),
                Err(hub_error) => match load_file(cache) {
                    Ok(snapshot) => {
                        tracing::warn!(error = %hub_error, cache = %cache.display(), "sensor_snapshot_from_cache");
                        Ok((snapshot, None))
                    }
                    Err(cache_error) => Err(Error::Snapshot(format!(
                        "{hub_error}; and no usable cached snapshot ({cache_error})"
                    ))),
                },
            }
        }
    }
}

pub(crate) fn hub_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Watches the source and swaps new snapshots in until `stop` is set.
pub(crate) fn spawn_reloader(
    source: SnapshotSource,
    mut etag: Option<String>,
    cell: Arc<SnapshotCell>,
    metrics: Arc<Metrics>,
    refresh: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("snapshot".into())
        .spawn(move || {
            let agent = hub_agent(Duration::from_secs(60));
            let mut last_file_state = match &source {
                SnapshotSource::File(path) => file_state(path),
                SnapshotSource::Hub { .. } => None,
            };
            // Files are cheap to stat, so they are watched every second;
            // the hub is asked every `refresh`.
            let tick = match &source {
                SnapshotSource::File(_) => Duration::from_secs(1).min(refresh),
                SnapshotSource::Hub { .. } => refresh,
            };
            while !crate::sleep_unless(&stop, tick) {
                match &source {
                    SnapshotSource::File(path) => {
                        let state = file_state(path);
                        if state.is_none() || state == last_file_state {
                            continue;
                        }
                        // A writer may still be writing: a failed load is
                        // retried at the next tick, the old snapshot stays.
                        match load_file(path) {
                            Ok(snapshot) => {
                                last_file_state = state;
                                install(&cell, &metrics, snapshot);
                            }
                            Err(e) => {
                                Metrics::add(&metrics.snapshot_errors, 1);
                                tracing::warn!(error = %e, "sensor_snapshot_load_failed");
                            }
                        }
                    }
                    SnapshotSource::Hub {
                        url,
                        api_key,
                        cache,
                    } => match fetch(&agent, url, api_key.as_deref(), etag.as_deref(), cache) {
                        Ok(Fetched::NotModified) => {}
                        Ok(Fetched::New(snapshot, tag)) => {
                            etag = Some(tag);
                            install(&cell, &metrics, *snapshot);
                        }
                        Err(e) => {
                            Metrics::add(&metrics.snapshot_errors, 1);
                            tracing::warn!(error = %e, "sensor_snapshot_fetch_failed");
                        }
                    },
                }
            }
        })
}

fn install(cell: &SnapshotCell, metrics: &Metrics, snapshot: Snapshot) {
    let total = snapshot.info().total;
    tracing::info!(
        indicators = total,
        checksum = format!("{:016x}", snapshot.info().checksum),
        "sensor_snapshot_swapped"
    );
    metrics.snapshot_indicators.store(total, Ordering::Relaxed);
    Metrics::add(&metrics.snapshot_swaps, 1);
    cell.swap(snapshot);
}

fn file_state(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
