use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ObservableKind, ThreatType, Timestamp};

/// A client address seen reaching one indicator within one time bucket,
/// as a sensor aggregates it and the hub stores it.
///
/// The key is (`bucket`, `sensor`, `client`, `kind`, `indicator`); two hits
/// with the same key add up ([`Hit::merge`]), so a sensor may ship a bucket
/// in several parts and the hub still holds one row with the right count.
/// This is also the NDJSON record of the sensor's file sink and of
/// `POST /api/v1/hits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hit {
    /// Start of the time bucket (RFC 3339).
    pub bucket: Timestamp,
    /// The address that asked for or talked to the indicator.
    pub client: IpAddr,
    /// The client's source port in the earliest event, when the telemetry
    /// had one: behind carrier-grade NAT the address alone does not name a
    /// subscriber, the port block does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// The matched indicator's value, as the snapshot holds it.
    pub indicator: String,
    /// The matched indicator's kind.
    pub kind: ObservableKind,
    /// The matched indicator's id in the hub's store, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indicator_id: Option<i64>,
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub threat_type: ThreatType,
    /// Events in the bucket for this client and indicator.
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Name of the sensor that saw it.
    pub sensor: String,
    /// One sample of what was seen (the queried name, or the flow), so an
    /// analyst can check the hit without the raw telemetry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

impl Hit {
    /// Adds another part of the same (bucket, sensor, client, indicator).
    /// The earliest evidence sample is kept.
    pub fn merge(&mut self, other: &Hit) {
        self.count = self.count.saturating_add(other.count);
        if other.first_seen < self.first_seen {
            self.first_seen = other.first_seen;
            if other.evidence.is_some() {
                self.evidence.clone_from(&other.evidence);
            }
            if other.client_port.is_some() {
                self.client_port = other.client_port;
            }
        }
        if other.last_seen > self.last_seen {
            self.last_seen = other.last_seen;
        }
        if self.evidence.is_none() {
            self.evidence.clone_from(&other.evidence);
        }
        if self.client_port.is_none() {
            self.client_port = other.client_port;
        }
    }
}

/// The start of the bucket of `bucket_seconds` that holds `time`; buckets
/// are aligned to the Unix epoch, so every sensor cuts them alike.
pub fn bucket_start(time: Timestamp, bucket_seconds: u32) -> Timestamp {
    let width = i64::from(bucket_seconds.max(1));
    let start = time.timestamp().div_euclid(width) * width;
    DateTime::<Utc>::from_timestamp(start, 0).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn buckets_align_to_the_hour() {
        assert_eq!(
            bucket_start(at("2026-11-25T14:05:09Z"), 3600),
            at("2026-11-25T14:00:00Z")
        );
        assert_eq!(
            bucket_start(at("1969-12-31T23:59:59Z"), 3600),
            at("1969-12-31T23:00:00Z")
        );
    }

    #[test]
    fn merge_adds_counts_and_widens_times() {
        let mut a = Hit {
            bucket: at("2026-11-25T14:00:00Z"),
            client: "192.0.2.7".parse().unwrap(),
            client_port: None,
            indicator: "evil.example".into(),
            kind: ObservableKind::Domain,
            indicator_id: Some(1),
            family: Some("mirai".into()),
            threat_type: ThreatType::C2,
            count: 2,
            first_seen: at("2026-11-25T14:10:00Z"),
            last_seen: at("2026-11-25T14:20:00Z"),
            sensor: "s1".into(),
            evidence: Some("b.evil.example".into()),
        };
        let mut b = a.clone();
        b.count = 3;
        b.first_seen = at("2026-11-25T14:01:00Z");
        b.last_seen = at("2026-11-25T14:15:00Z");
        b.evidence = Some("a.evil.example".into());
        a.merge(&b);
        assert_eq!(a.count, 5);
        assert_eq!(a.first_seen, at("2026-11-25T14:01:00Z"));
        assert_eq!(a.last_seen, at("2026-11-25T14:20:00Z"));
        assert_eq!(a.evidence.as_deref(), Some("a.evil.example"));
    }
}
