//! The store's side of merging: folding a batch by observable, merging a
//! source's new listing into its stored one, and converting rows. The
//! indicator-level aggregate is always [`Indicator::aggregate`].

use std::collections::HashMap;

use chrono::DateTime;
use khien_model::{
    Confidence, Family, Indicator, IndicatorRecord, Observable, ObservableKind, SourceAttributes,
    ThreatType, Timestamp, Tlp,
};

use crate::{BatchOutcome, Error};

/// Unix seconds: what both schemas store.
pub(crate) fn secs(t: Timestamp) -> i64 {
    t.timestamp()
}

pub(crate) fn from_secs(what: &str, s: i64) -> Result<Timestamp, Error> {
    DateTime::from_timestamp(s, 0).ok_or_else(|| Error::corrupt(what, format!("timestamp {s}")))
}

/// Stored as a rank so that `tlp <= ceiling` is an index-friendly range.
pub(crate) fn tlp_rank(t: Tlp) -> i64 {
    match t {
        Tlp::Clear => 0,
        Tlp::Green => 1,
        Tlp::Amber => 2,
        Tlp::AmberStrict => 3,
        Tlp::Red => 4,
    }
}

pub(crate) fn tlp_from_rank(r: i64) -> Result<Tlp, Error> {
    usize::try_from(r)
        .ok()
        .and_then(|i| Tlp::ALL.get(i).copied())
        .ok_or_else(|| Error::corrupt("tlp", format!("rank {r}")))
}

/// Normalises one record's attributes the way they are stored: whole
/// seconds, and the kind's default lifetime from `last_seen` when the
/// source gave no expiry (hashes have none, so they never expire).
pub(crate) fn prepare(kind: ObservableKind, a: &SourceAttributes) -> SourceAttributes {
    let trunc = |t: Timestamp| DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t);
    let last_seen = trunc(a.last_seen);
    let expires_at = match a.expires_at {
        Some(e) => Some(trunc(e)),
        None => kind
            .default_lifetime()
            .and_then(|d| last_seen.checked_add_signed(d)),
    };
    SourceAttributes {
        source: a.source.clone(),
        tlp: a.tlp,
        confidence: a.confidence,
        family: a.family.clone(),
        threat_type: a.threat_type,
        reference: a.reference.clone(),
        first_seen: trunc(a.first_seen).min(last_seen),
        last_seen,
        expires_at,
    }
}

/// Merges a source's new listing into what the same source said before.
/// Seen times only widen; the descriptive fields follow the newer listing
/// (a listing that is older than the stored one cannot overwrite it, so
/// replaying an old feed file is harmless); a newer listing without a
/// family or reference keeps the known one.
pub(crate) fn merge_source(stored: &SourceAttributes, rec: &SourceAttributes) -> SourceAttributes {
    let newer = rec.last_seen >= stored.last_seen;
    let (base, other) = if newer { (rec, stored) } else { (stored, rec) };
    SourceAttributes {
        source: stored.source.clone(),
        tlp: base.tlp,
        confidence: base.confidence,
        family: base.family.clone().or_else(|| other.family.clone()),
        threat_type: base.threat_type,
        reference: base.reference.clone().or_else(|| other.reference.clone()),
        first_seen: stored.first_seen.min(rec.first_seen),
        last_seen: stored.last_seen.max(rec.last_seen),
        expires_at: match (stored.expires_at, rec.expires_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        },
    }
}

/// The records of one batch that name the same observable, in arrival
/// order.
#[derive(Debug)]
pub(crate) struct Group<'r> {
    pub observable: &'r Observable,
    pub records: Vec<SourceAttributes>,
    /// The caller's newest verdict for this observable.
    pub allowlisted_by: Option<String>,
}

/// Folds a batch by observable and sorts the groups by (kind, value), the
/// order of the unique index, so that inserts touch neighbouring pages.
pub(crate) fn fold<'r>(
    records: &'r [IndicatorRecord],
    allowlisted: &[Option<String>],
) -> Result<Vec<Group<'r>>, Error> {
    if records.len() != allowlisted.len() {
        return Err(Error::BatchShape {
            records: records.len(),
            allowlisted: allowlisted.len(),
        });
    }
    let mut index: HashMap<&Observable, usize> = HashMap::with_capacity(records.len());
    let mut groups: Vec<Group<'r>> = Vec::with_capacity(records.len());
    for (r, verdict) in records.iter().zip(allowlisted) {
        let attrs = prepare(r.observable.kind(), &r.attributes);
        match index.get(&r.observable) {
            Some(&i) => {
                let g = &mut groups[i];
                g.records.push(attrs);
                g.allowlisted_by = verdict.clone();
            }
            None => {
                index.insert(&r.observable, groups.len());
                groups.push(Group {
                    observable: &r.observable,
                    records: vec![attrs],
                    allowlisted_by: verdict.clone(),
                });
            }
        }
    }
    groups.sort_by(|a, b| {
        (a.observable.kind().as_str(), a.observable.value())
            .cmp(&(b.observable.kind().as_str(), b.observable.value()))
    });
    Ok(groups)
}

/// An indicator as stored, before a batch touches it.
#[derive(Debug)]
pub(crate) struct Existing {
    pub id: i64,
    pub allowlisted_by: Option<String>,
    pub sources: Vec<SourceAttributes>,
}

/// The result of replaying a group's records over the stored state.
#[derive(Debug)]
pub(crate) struct Applied {
    pub indicator: Indicator,
    /// Sources (by name) whose rows must be written.
    pub dirty: Vec<String>,
    /// Whether the indicator row must be written.
    pub changed: bool,
    pub outcome: BatchOutcome,
}

/// Replays a group's records, one by one, over `existing` (None = a new
/// observable) and counts each record as new (created the indicator),
/// updated (changed a source or the allow-list verdict) or unchanged.
pub(crate) fn apply(existing: Option<&Existing>, group: &Group<'_>) -> Option<Applied> {
    let mut sources: Vec<SourceAttributes> =
        existing.map(|e| e.sources.clone()).unwrap_or_default();
    let mut dirty: Vec<String> = Vec::new();
    let mut outcome = BatchOutcome::default();
    let verdict_changed = existing.is_some_and(|e| e.allowlisted_by != group.allowlisted_by);
    for (k, rec) in group.records.iter().enumerate() {
        let changed = match sources.iter().position(|s| s.source == rec.source) {
            Some(i) => {
                let merged = merge_source(&sources[i], rec);
                let changed = merged != sources[i];
                sources[i] = merged;
                changed
            }
            None => {
                sources.push(rec.clone());
                true
            }
        };
        if changed && !dirty.contains(&rec.source) {
            dirty.push(rec.source.clone());
        }
        if existing.is_none() && k == 0 {
            outcome.new += 1;
        } else if changed || (k == 0 && verdict_changed) {
            outcome.updated += 1;
        } else {
            outcome.unchanged += 1;
        }
    }
    if group.allowlisted_by.is_some() {
        outcome.allowlisted = group.records.len() as u64;
    }
    let changed = !dirty.is_empty() || verdict_changed;
    let indicator = Indicator::aggregate(
        existing.map_or(0, |e| e.id),
        group.observable.clone(),
        sources,
        group.allowlisted_by.clone(),
    )?;
    Some(Applied {
        indicator,
        dirty,
        changed,
        outcome,
    })
}

/// A source row as both back ends read it.
#[derive(Debug)]
pub(crate) struct RawSource {
    pub source: String,
    pub tlp: i64,
    pub confidence: i64,
    pub family: Option<String>,
    pub threat_type: String,
    pub reference: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub expires_at: Option<i64>,
}

impl RawSource {
    pub(crate) fn into_attributes(self) -> Result<SourceAttributes, Error> {
        let confidence = u8::try_from(self.confidence)
            .ok()
            .and_then(|c| Confidence::new(c).ok())
            .ok_or_else(|| Error::corrupt("confidence", self.confidence))?;
        let family = self
            .family
            .as_deref()
            .map(Family::new)
            .transpose()
            .map_err(|e| Error::corrupt("family", e))?;
        let threat_type: ThreatType = self
            .threat_type
            .parse()
            .map_err(|e| Error::corrupt("threat type", e))?;
        Ok(SourceAttributes {
            tlp: tlp_from_rank(self.tlp)?,
            confidence,
            family,
            threat_type,
            reference: self.reference,
            first_seen: from_secs("first_seen", self.first_seen)?,
            last_seen: from_secs("last_seen", self.last_seen)?,
            expires_at: self
                .expires_at
                .map(|e| from_secs("expires_at", e))
                .transpose()?,
            source: self.source,
        })
    }
}

pub(crate) fn observable(kind: &str, value: &str) -> Result<Observable, Error> {
    let k: ObservableKind = kind
        .parse()
        .map_err(|e| Error::corrupt("observable kind", e))?;
    Observable::parse(k, value).map_err(|e| Error::corrupt(format!("{kind} {value:?}"), e))
}

/// Builds the merged view of a stored indicator from its source rows.
pub(crate) fn indicator(
    id: i64,
    kind: &str,
    value: &str,
    allowlisted_by: Option<String>,
    sources: Vec<SourceAttributes>,
) -> Result<Indicator, Error> {
    let obs = observable(kind, value)?;
    Indicator::aggregate(id, obs, sources, allowlisted_by)
        .ok_or_else(|| Error::corrupt(format!("indicator {id}"), "it has no sources"))
}

/// Turns a stream of joined (indicator, source) rows ordered by indicator
/// into indicators, holding only the current one in memory.
#[derive(Debug, Default)]
pub(crate) struct Grouper {
    current: Option<(i64, String, String, Option<String>)>,
    sources: Vec<SourceAttributes>,
}

impl Grouper {
    /// Feeds one row; returns the previous indicator when this row starts
    /// a new one.
    pub(crate) fn push(
        &mut self,
        id: i64,
        kind: &str,
        value: &str,
        allowlisted_by: Option<String>,
        source: RawSource,
    ) -> Result<Option<Indicator>, Error> {
        let mut done = None;
        if self.current.as_ref().is_none_or(|c| c.0 != id) {
            done = self.finish()?;
            self.current = Some((id, kind.to_string(), value.to_string(), allowlisted_by));
        }
        self.sources.push(source.into_attributes()?);
        Ok(done)
    }

    pub(crate) fn finish(&mut self) -> Result<Option<Indicator>, Error> {
        match self.current.take() {
            None => Ok(None),
            Some((id, kind, value, allow)) => {
                let sources = std::mem::take(&mut self.sources);
                indicator(id, &kind, &value, allow, sources).map(Some)
            }
        }
    }
}

/// The observables whose listing covers `o`: itself, for a domain (or the
/// host of a URL or e-mail address) every parent domain, and for an address
/// or network every network that contains it.
pub(crate) fn covering(o: &Observable) -> Vec<(ObservableKind, String)> {
    let mut out = vec![(o.kind(), o.value().to_string())];
    let add_parents = |host: &str, out: &mut Vec<(ObservableKind, String)>| {
        let mut rest = host;
        while let Some((_, parent)) = rest.split_once('.') {
            out.push((ObservableKind::Domain, parent.to_string()));
            rest = parent;
        }
    };
    match o.kind() {
        ObservableKind::Domain => add_parents(o.value(), &mut out),
        ObservableKind::Url | ObservableKind::Email => {
            if let Some(host) = o.host() {
                match Observable::detect(host.trim_start_matches('[').trim_end_matches(']')) {
                    Ok(h) if h.kind() == ObservableKind::Domain => {
                        out.push((ObservableKind::Domain, h.value().to_string()));
                        add_parents(h.value(), &mut out);
                    }
                    Ok(h) if h.kind().is_ip() => out.extend(covering(&h)),
                    _ => {}
                }
            }
        }
        ObservableKind::Ipv4 | ObservableKind::Ipv6 | ObservableKind::Cidr => {
            if let Some(net) = o.as_net() {
                for len in (0..net.prefix_len()).rev() {
                    if let Ok(n) = ipnet::IpNet::new(net.addr(), len) {
                        out.push((ObservableKind::Cidr, n.trunc().to_string()));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_lists_parents_and_networks() {
        let d = Observable::detect("a.b.evil.com").expect("domain");
        let c: Vec<String> = covering(&d).into_iter().map(|(_, v)| v).collect();
        assert_eq!(c, ["a.b.evil.com", "b.evil.com", "evil.com", "com"]);
        let ip = Observable::detect("10.1.2.3").expect("ip");
        let c = covering(&ip);
        assert_eq!(c.len(), 33);
        assert!(c.contains(&(ObservableKind::Cidr, "10.0.0.0/8".into())));
        assert!(c.contains(&(ObservableKind::Cidr, "0.0.0.0/0".into())));
        let u = Observable::detect("http://x.evil.com/a").expect("url");
        assert!(covering(&u).contains(&(ObservableKind::Domain, "evil.com".into())));
    }
}
