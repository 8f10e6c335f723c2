use serde::{Deserialize, Serialize};

use crate::{Confidence, Family, Observable, ThreatType, Timestamp, Tlp};

/// What one source says about an observable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceAttributes {
    /// The feed or organisation, e.g. `maltrail`, `threatfox`, `member:vnpt`.
    pub source: String,
    pub tlp: Tlp,
    pub confidence: Confidence,
    pub family: Option<Family>,
    pub threat_type: ThreatType,
    /// Where the source describes it: a report URL, a STIX or MISP id.
    pub reference: Option<String>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// When this source stops vouching for it; `None` means the kind's
    /// default lifetime applies from `last_seen`.
    pub expires_at: Option<Timestamp>,
}

/// One observable as one source gives it: the unit every importer yields
/// and the store merges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorRecord {
    pub observable: Observable,
    pub attributes: SourceAttributes,
}

/// The merged view of one observable over every source that named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicator {
    pub id: i64,
    pub observable: Observable,
    /// Combined over the sources (noisy-OR, see [`Confidence::combine`]).
    pub confidence: Confidence,
    /// The least restrictive TLP among the sources: a value that one
    /// source published as CLEAR is no secret because another marked it RED.
    pub tlp: Tlp,
    /// From the most confident source that names one (newest on a tie).
    pub family: Option<Family>,
    pub threat_type: ThreatType,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The latest expiry among the sources: active while any source vouches.
    pub expires_at: Option<Timestamp>,
    /// Name of the warninglist that matched, if any. Allow-listed
    /// indicators are kept but never exported for blocking or matching.
    pub allowlisted_by: Option<String>,
    pub sources: Vec<SourceAttributes>,
}

impl Indicator {
    /// Merges the sources' attributes into the indicator's own. Sources are
    /// sorted by name so the result does not depend on arrival order.
    /// Returns `None` when there are no sources.
    pub fn aggregate(
        id: i64,
        observable: Observable,
        mut sources: Vec<SourceAttributes>,
        allowlisted_by: Option<String>,
    ) -> Option<Self> {
        if sources.is_empty() {
            return None;
        }
        sources.sort_by(|a, b| a.source.cmp(&b.source));
        let confidence = Confidence::combine(sources.iter().map(|s| s.confidence));
        let tlp = sources.iter().map(|s| s.tlp).min().unwrap_or_default();
        let leader = sources
            .iter()
            .max_by_key(|s| (s.confidence, s.last_seen))
            .map(|s| (s.threat_type, s.family.clone()));
        let family = sources
            .iter()
            .filter(|s| s.family.is_some())
            .max_by_key(|s| (s.confidence, s.last_seen))
            .and_then(|s| s.family.clone());
        let threat_type = sources
            .iter()
            .filter(|s| s.threat_type != ThreatType::Unknown)
            .max_by_key(|s| (s.confidence, s.last_seen))
            .map(|s| s.threat_type)
            .or(leader.map(|l| l.0))
            .unwrap_or_default();
        let first_seen = sources.iter().map(|s| s.first_seen).min()?;
        let last_seen = sources.iter().map(|s| s.last_seen).max()?;
        let expires_at = if sources.iter().any(|s| s.expires_at.is_none()) {
            None
        } else {
            sources.iter().filter_map(|s| s.expires_at).max()
        };
        Some(Self {
            id,
            observable,
            confidence,
            tlp,
            family,
            threat_type,
            first_seen,
            last_seen,
            expires_at,
            allowlisted_by,
            sources,
        })
    }

    /// True when the indicator may be used at `now`: not expired and not
    /// allow-listed.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.allowlisted_by.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn src(name: &str, tlp: Tlp, conf: u8, fam: Option<&str>, day: u32) -> SourceAttributes {
        let t = Utc
            .with_ymd_and_hms(2026, 1, day, 0, 0, 0)
            .single()
            .expect("valid date");
        SourceAttributes {
            source: name.into(),
            tlp,
            confidence: Confidence::new(conf).expect("in range"),
            family: fam.map(|f| Family::new(f).expect("valid family")),
            threat_type: ThreatType::C2,
            reference: None,
            first_seen: t,
            last_seen: t,
            expires_at: None,
        }
    }

    #[test]
    fn aggregate_merges_sources() {
        let o = Observable::detect("evil.com").expect("domain");
        let ind = Indicator::aggregate(
            1,
            o,
            vec![
                src("b", Tlp::Red, 80, Some("emotet"), 3),
                src("a", Tlp::Green, 50, None, 1),
            ],
            None,
        )
        .expect("sources");
        assert_eq!(ind.tlp, Tlp::Green);
        assert_eq!(ind.confidence.get(), 90);
        assert_eq!(ind.family.as_ref().map(Family::as_str), Some("emotet"));
        assert_eq!(ind.sources[0].source, "a");
        assert_eq!(ind.first_seen.format("%d").to_string(), "01");
        assert_eq!(ind.last_seen.format("%d").to_string(), "03");
    }
}
