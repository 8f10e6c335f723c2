//! Building the matcher snapshot from the store, and keeping the one the
//! hub serves current.
//!
//! [`build_from_store`] streams the store's snapshot rows into a
//! [`khien_matcher::SnapshotBuilder`]; rows the builder refuses (a value it
//! cannot compile) are counted and skipped, never fatal. The result is
//! loaded back with [`Snapshot::from_bytes`] before it is served or
//! written, so the hub never hands out a file a sensor cannot load.
//!
//! A second snapshot of the TLP:CLEAR indicators alone is built with it
//! and kept loaded for the public indicator lookup.
//!
//! The server builds at start and then, every `snapshot_refresh_seconds`,
//! compares the store's [`indicators_changed_marker`] with the one the
//! current snapshot was built at; it rebuilds when they differ or when the
//! snapshot is older than `snapshot_max_age_seconds` (indicators expire
//! without any write). Builds use a connection of their own, so ingest
//! does not wait for them.
//!
//! [`indicators_changed_marker`]: khien_store::Store::indicators_changed_marker

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use chrono::Utc;
use khien_matcher::{Entry, Snapshot, SnapshotBuilder};
use khien_model::{ObservableKind, Timestamp, Tlp};
use khien_store::Store;
use serde::{Serialize, Serializer};

use crate::Error;
use crate::metrics::add;
use crate::server::AppState;

/// Rejected rows listed in a [`BuildSummary`]; all are counted.
const REJECTIONS_LISTED: usize = 20;

/// What a build read, kept and refused.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSummary {
    /// Rows the store handed over.
    pub read: u64,
    /// Entries in the snapshot.
    pub indicators: u64,
    /// Of which, by kind.
    pub domains: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub cidrs: u64,
    pub urls: u64,
    pub hashes: u64,
    /// Rows the builder refused.
    pub rejected: u64,
    /// The first refused rows, with the builder's reason.
    pub rejections: Vec<RejectedEntry>,
    /// The snapshot's checksum, as hex in JSON (it is the HTTP ETag).
    #[serde(serialize_with = "hex_u64")]
    pub checksum: u64,
    /// Size of the snapshot file.
    pub bytes: u64,
    pub built_at: Timestamp,
}

impl BuildSummary {
    /// The checksum as 16 hex digits: the snapshot's ETag value.
    pub fn checksum_hex(&self) -> String {
        format!("{:016x}", self.checksum)
    }
}

fn hex_u64<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:016x}"))
}

/// A row the snapshot builder refused.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedEntry {
    pub id: i64,
    pub kind: ObservableKind,
    pub value: String,
    pub reason: String,
}

/// Builds a snapshot of the store's active, non-allow-listed indicators
/// at `now`; returns the file's bytes and what went in.
pub fn build_from_store(
    store: &mut Store,
    now: Timestamp,
) -> Result<(Vec<u8>, BuildSummary), Error> {
    build_within(store, now, None)
}

/// As [`build_from_store`], only indicators whose TLP is at most
/// `tlp_ceiling`.
pub fn build_within(
    store: &mut Store,
    now: Timestamp,
    tlp_ceiling: Option<Tlp>,
) -> Result<(Vec<u8>, BuildSummary), Error> {
    let mut builder = SnapshotBuilder::new();
    let (mut read, mut rejected) = (0u64, 0u64);
    let mut rejections = Vec::new();
    store.for_each_snapshot_entry_within(now, tlp_ceiling, &mut |row| {
        read += 1;
        let entry = Entry {
            id: row.id,
            kind: row.kind,
            value: &row.value,
            exact_host: row.exact_host,
            family: row.family.as_deref(),
            threat_type: row.threat_type,
        };
        if let Err(e) = builder.add(&entry) {
            rejected += 1;
            if rejections.len() < REJECTIONS_LISTED {
                rejections.push(RejectedEntry {
                    id: row.id,
                    kind: row.kind,
                    value: row.value.clone(),
                    reason: e.to_string(),
                });
            }
        }
        Ok(())
    })?;
    let bytes = builder.build(now);
    let loaded = Snapshot::from_bytes(bytes.clone())
        .map_err(|e| Error::Snapshot(format!("the built snapshot does not load: {e}")))?;
    let info = loaded.info();
    let indicators = info.total;
    let summary = BuildSummary {
        read,
        indicators,
        domains: info.domains,
        ipv4: info.ipv4,
        ipv6: info.ipv6,
        cidrs: info.cidrs,
        urls: info.urls,
        hashes: info.hashes,
        rejected,
        rejections,
        checksum: info.checksum,
        bytes: bytes.len() as u64,
        built_at: now,
    };
    Ok((bytes, summary))
}

/// The snapshot being served.
#[derive(Debug)]
pub(crate) struct Current {
    pub bytes: Bytes,
    /// Quoted, as sent in the ETag header.
    pub etag: String,
    pub marker: String,
    pub built: Instant,
    pub summary: BuildSummary,
}

/// Builds when the store changed or the current snapshot is too old.
/// Returns whether it built. Runs in a blocking task.
pub(crate) fn refresh_once(state: &AppState, store: &mut Store) -> Result<bool, Error> {
    let marker = store.indicators_changed_marker()?;
    let max_age = Duration::from_secs(state.config.snapshot_max_age_seconds);
    let fresh = state
        .current_snapshot()
        .is_some_and(|c| c.marker == marker && c.built.elapsed() < max_age);
    if fresh {
        return Ok(false);
    }
    let started = Instant::now();
    let now = Utc::now();
    let (bytes, summary) = build_from_store(store, now)?;
    // The public lookups' snapshot: TLP:CLEAR only, kept loaded.
    let (public, _) = build_within(store, now, Some(Tlp::Clear))?;
    let public = Snapshot::from_bytes(public)
        .map_err(|e| Error::Snapshot(format!("the public snapshot does not load: {e}")))?;
    state.set_public_snapshot(Arc::new(public));
    tracing::info!(
        event = "hub_snapshot_built",
        indicators = summary.indicators,
        rejected = summary.rejected,
        bytes = summary.bytes,
        checksum = %summary.checksum_hex(),
        marker = %marker,
        millis = started.elapsed().as_millis() as u64,
    );
    add(&state.metrics.snapshot_builds, 1);
    state
        .metrics
        .snapshot_indicators
        .store(summary.indicators, std::sync::atomic::Ordering::Relaxed);
    let current = Current {
        bytes: Bytes::from(bytes),
        etag: format!("\"{}\"", summary.checksum_hex()),
        marker,
        built: Instant::now(),
        summary,
    };
    state.set_snapshot(Arc::new(current));
    Ok(true)
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, as
/// RFC 9110 §13.1.2 asks for this header).
pub(crate) fn none_match(header: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let want = strip(etag);
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || strip(t) == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_wildcards_and_weak_tags() {
        let etag = "\"00ff\"";
        assert!(none_match("\"00ff\"", etag));
        assert!(none_match("\"aa\", W/\"00ff\"", etag));
        assert!(none_match("*", etag));
        assert!(!none_match("\"00fe\"", etag));
        assert!(!none_match("", etag));
    }
}
