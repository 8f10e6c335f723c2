//! Outputs (sinks): NDJSON to a file or standard output, and the hub
//! through the disk spool and the shipping thread.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::Error;
use crate::aggregate::Output;
use crate::metrics::Metrics;
use crate::spool::{Batch, Spool};

/// One JSON hit per line. Appends; each batch is flushed before the
/// sensor saves its positions.
pub(crate) struct NdjsonOutput {
    target: Box<dyn Write + Send>,
    name: String,
}

impl NdjsonOutput {
    pub fn open(path: &Path) -> Result<Self, Error> {
        if path.as_os_str() == "-" {
            return Ok(NdjsonOutput {
                target: Box::new(std::io::stdout()),
                name: "standard output".into(),
            });
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::Io(format!("output {}: {e}", path.display())))?;
        Ok(NdjsonOutput {
            target: Box::new(std::io::BufWriter::new(file)),
            name: path.display().to_string(),
        })
    }
}

impl Output for NdjsonOutput {
    fn write(&mut self, batch: &Batch) -> Result<(), Error> {
        let io = |e: std::io::Error| Error::Io(format!("output {}: {}", self.name, e));
        let mut buf = Vec::with_capacity(batch.hits.len() * 256);
        for hit in &batch.hits {
            serde_json::to_writer(&mut buf, hit)
                .map_err(|e| Error::Io(format!("encoding hit: {e}")))?;
            buf.push(b'\n');
        }
        self.target.write_all(&buf).map_err(io)?;
        self.target.flush().map_err(io)
    }
}

/// The hub output's half on the aggregator thread: spool the batch.
pub(crate) struct HubOutput {
    pub spool: Arc<Spool>,
    pub wake: crossbeam_channel::Sender<()>,
}

impl Output for HubOutput {
    fn write(&mut self, batch: &Batch) -> Result<(), Error> {
        self.spool.push(batch)?;
        let _ = self.wake.try_send(());
        Ok(())
    }
}

/// Most hits per request: ~300 bytes each as JSON, so a part stays far
/// below the hub's default 16 MiB body limit.
const PART_HITS: usize = 10_000;

/// How a send went.
enum Sent {
    Accepted,
    /// 4xx other than 408/429: the hub will never take this batch.
    Refused(String),
    /// Network error, timeout, 5xx, 408, 429: try again later.
    Retry(String),
}

/// The shipping thread: sends spooled batches oldest first, deletes each
/// after a 200, backs off exponentially (0.5 s doubling to 60 s) while the
/// hub fails.
pub(crate) struct Shipper {
    pub url: String,
    pub api_key: String,
    pub spool: Arc<Spool>,
    pub metrics: Arc<Metrics>,
    pub timeout: Duration,
}

impl Shipper {
    fn endpoint(&self) -> String {
        format!("{}/api/v1/hits", self.url)
    }

    /// Sends a batch in parts of at most [`PART_HITS`] hits, so no request
    /// nears the hub's body limit. Part ids are derived from the batch id,
    /// so a retry after a crash resends the same parts under the same ids
    /// and the hub stores each once.
    fn send(&self, agent: &ureq::Agent, batch: &Batch) -> Sent {
        let parts = batch.hits.chunks(PART_HITS).count();
        for (i, hits) in batch.hits.chunks(PART_HITS).enumerate() {
            let id = if parts == 1 {
                batch.batch_id.clone()
            } else {
                format!("{}.{}", batch.batch_id, i + 1)
            };
            match self.send_part(agent, &id, hits) {
                Sent::Accepted => {}
                other => return other,
            }
        }
        Sent::Accepted
    }

    fn send_part(&self, agent: &ureq::Agent, batch_id: &str, hits: &[khien_model::Hit]) -> Sent {
        let mut ndjson = Vec::with_capacity(hits.len() * 256);
        for hit in hits {
            if serde_json::to_writer(&mut ndjson, hit).is_err() {
                return Sent::Refused("hit cannot be encoded".into());
            }
            ndjson.push(b'\n');
        }
        let mut gz = GzEncoder::new(Vec::with_capacity(ndjson.len() / 4), Compression::fast());
        let body = match gz.write_all(&ndjson).and_then(|_| gz.finish()) {
            Ok(b) => b,
            Err(e) => return Sent::Retry(format!("compressing: {e}")),
        };
        let result = agent
            .post(&self.endpoint())
            .header("Authorization", &format!("Bearer {}", self.api_key))
            .header("Content-Type", "application/x-ndjson")
            .header("Content-Encoding", "gzip")
            .header("Idempotency-Key", batch_id)
            .send(&body[..]);
        match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut detail = || {
                    response
                        .body_mut()
                        .with_config()
                        .limit(4096)
                        .read_to_string()
                        .unwrap_or_default()
                };
                match status {
                    200..=299 => Sent::Accepted,
                    408 | 429 => Sent::Retry(format!("HTTP {status}")),
                    // A wrong or revoked key is the operator's to fix; the
                    // batches wait for it rather than being set aside.
                    401 | 403 => {
                        Sent::Retry(format!("HTTP {status} (check the API key): {}", detail()))
                    }
                    400..=499 => Sent::Refused(format!("HTTP {status}: {}", detail())),
                    _ => Sent::Retry(format!("HTTP {status}: {}", detail())),
                }
            }
            Err(e) => Sent::Retry(e.to_string()),
        }
    }

    /// Ships until `stop` is set; then keeps trying for `drain` more, so a
    /// clean shutdown empties the spool when the hub is up.
    pub fn run(
        self,
        wake: crossbeam_channel::Receiver<()>,
        stop: Arc<AtomicBool>,
        drain: Duration,
    ) {
        let agent = crate::snapshot::hub_agent(self.timeout);
        let mut backoff = Duration::from_millis(500);
        let mut stop_deadline = None;
        loop {
            if stop_deadline.is_none() && stop.load(std::sync::atomic::Ordering::Relaxed) {
                stop_deadline = Some(std::time::Instant::now() + drain);
            }
            if let Some(deadline) = stop_deadline
                && (std::time::Instant::now() >= deadline || self.spool.is_empty())
            {
                return;
            }
            let Some(seq) = self.spool.oldest() else {
                let _ = wake.recv_timeout(Duration::from_millis(200));
                continue;
            };
            let batch = match self.spool.load(seq) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(seq, error = %e, "sensor_spool_batch_unreadable");
                    self.spool.reject(seq);
                    continue;
                }
            };
            match self.send(&agent, &batch) {
                Sent::Accepted => {
                    self.spool.remove(seq);
                    Metrics::add(&self.metrics.hub_batches_sent, 1);
                    backoff = Duration::from_millis(500);
                }
                Sent::Refused(why) => {
                    Metrics::add(&self.metrics.hub_batches_rejected, 1);
                    tracing::error!(batch = %batch.batch_id, reason = %why, dir = %self.spool.dir().join("rejected").display(), "hub_batch_rejected");
                    self.spool.reject(seq);
                }
                Sent::Retry(why) => {
                    Metrics::add(&self.metrics.hub_batches_failed, 1);
                    tracing::warn!(batch = %batch.batch_id, error = %why, retry_in_ms = backoff.as_millis() as u64, "hub_batch_send_failed");
                    let until = std::time::Instant::now() + backoff;
                    while std::time::Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(50));
                        if stop_deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                            return;
                        }
                        if stop_deadline.is_none()
                            && stop.load(std::sync::atomic::Ordering::Relaxed)
                        {
                            stop_deadline = Some(std::time::Instant::now() + drain);
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}

/// Reads the API key of a hub output: the file wins over the variable.
pub(crate) fn read_api_key(file: Option<&PathBuf>, env: &str) -> Result<String, Error> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("API key file {}: {e}", path.display())))?;
        let key = text.trim().to_owned();
        if key.is_empty() {
            return Err(Error::Config(format!(
                "API key file {} is empty",
                path.display()
            )));
        }
        return Ok(key);
    }
    match std::env::var(env) {
        Ok(k) if !k.trim().is_empty() => Ok(k.trim().to_owned()),
        _ => Err(Error::Config(format!(
            "hub output: no API key (set {env} or api_key_file)"
        ))),
    }
}
