//! STIX 2.1 bundles, read as a stream.
//!
//! The bundle's `objects` array is walked with a serde visitor that
//! deserializes one object at a time and hands it on at once, so a bundle of
//! any size is read in the memory of its largest object. The price is that
//! nothing can look ahead: TLP marking definitions and malware names are
//! remembered as they pass (producers put them first), and a relationship
//! that arrives after its indicator cannot change a record already sent.
//!
//! Indicators with `pattern_type` `stix` become one record per value of
//! their pattern (see [`super::pattern`]). Every other object is skipped as
//! not an indicator; a revoked or expired indicator is skipped as revoked.
//! Broken JSON stops the reader with [`Error::Malformed`], after the objects
//! before the break were delivered.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;
use std::str::FromStr;

use khien_model::{
    Confidence, Family, IndicatorRecord, Observable, ObservableKind, ThreatType, Tlp,
};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::csv::parse_time;
use super::labels::{self, Label};
use super::pattern::{PatternError, parse_pattern};
use super::{ImportDefaults, ReadEvent, ReadSink, ReadSummary, SkipReason};
use crate::{Error, Location};

/// The fixed ids of the TLP 1.0 and 2.0 marking definitions.
const TLP_IDS: &[(&str, Tlp)] = &[
    (
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        Tlp::Clear,
    ),
    (
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        Tlp::Green,
    ),
    (
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        Tlp::Amber,
    ),
    (
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        Tlp::Red,
    ),
    (
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Tlp::Clear,
    ),
    (
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Tlp::Green,
    ),
    (
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Tlp::Amber,
    ),
    (
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Tlp::AmberStrict,
    ),
    (
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        Tlp::Red,
    ),
];

/// How many marking definitions and malware names are remembered; a bundle
/// with more is hostile or not a feed, and the rest fall back to defaults.
const MAX_REMEMBERED: usize = 100_000;

/// Reads a STIX 2.1 bundle (or a bare array of objects, or a single object).
pub fn read_stix(
    input: impl BufRead,
    defaults: &ImportDefaults,
    sink: &mut dyn ReadSink,
) -> Result<ReadSummary, Error> {
    let mut state = State {
        defaults,
        sink,
        summary: ReadSummary::default(),
        markings: HashMap::new(),
        malware: HashMap::new(),
        indicates: HashMap::new(),
        stopped: None,
        index: 0,
    };
    let mut de = serde_json::Deserializer::from_reader(input);
    let result = TopSeed { state: &mut state }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Some(stopped) = state.stopped.take() {
        return Err(stopped);
    }
    if let Err(e) = result {
        return Err(json_error("stix", &e));
    }
    Ok(state.summary)
}

pub(crate) fn json_error(format: &'static str, e: &serde_json::Error) -> Error {
    if e.is_io() {
        return Error::Io(std::io::Error::other(e.to_string()));
    }
    Error::Malformed {
        format,
        location: if e.line() > 0 {
            Location::Line(e.line() as u64)
        } else {
            Location::Input
        },
        reason: e.to_string(),
    }
}

struct State<'a> {
    defaults: &'a ImportDefaults,
    sink: &'a mut dyn ReadSink,
    summary: ReadSummary,
    /// Marking-definition id → TLP, for bundles that carry their own.
    markings: HashMap<String, Tlp>,
    /// Malware id → family, from `malware` objects seen so far.
    malware: HashMap<String, Family>,
    /// Indicator id → family, from `indicates` relationships seen before
    /// the indicator (rare, but free to honour).
    indicates: HashMap<String, Family>,
    /// The sink's refusal, carried out of serde's error type.
    stopped: Option<Error>,
    index: u64,
}

impl State<'_> {
    fn emit(&mut self, event: ReadEvent, location: impl FnOnce() -> Location) -> Result<(), ()> {
        self.summary.count(&event);
        self.sink.event(event).map_err(|reason| {
            self.stopped = Some(Error::Stopped {
                location: location(),
                reason,
            });
        })
    }

    fn object(&mut self, obj: Value) -> Result<(), ()> {
        let index = self.index;
        self.index += 1;
        let id = obj.get("id").and_then(Value::as_str).map(str::to_string);
        let location = || Location::Object {
            id: id.clone(),
            index,
        };
        let Some(map) = obj.as_object() else {
            return self.emit(
                ReadEvent::Rejected {
                    location: location(),
                    reason: "not a JSON object".into(),
                },
                location,
            );
        };
        let Some(kind) = map.get("type").and_then(Value::as_str) else {
            return self.emit(
                ReadEvent::Rejected {
                    location: location(),
                    reason: "missing field `type`".into(),
                },
                location,
            );
        };
        match kind {
            "indicator" => {}
            "marking-definition" => {
                if let (Some(id), Some(tlp)) = (&id, marking_tlp(&obj))
                    && self.markings.len() < MAX_REMEMBERED
                {
                    self.markings.insert(id.clone(), tlp);
                }
                return self.skip(location(), SkipReason::NotIndicator);
            }
            "malware" => {
                let family = map
                    .get("name")
                    .and_then(Value::as_str)
                    .and_then(|n| Family::new(n).ok());
                if let (Some(id), Some(f)) = (&id, family)
                    && self.malware.len() < MAX_REMEMBERED
                {
                    self.malware.insert(id.clone(), f);
                }
                return self.skip(location(), SkipReason::NotIndicator);
            }
            "relationship" => {
                let get = |k: &str| map.get(k).and_then(Value::as_str);
                if get("relationship_type") == Some("indicates")
                    && let (Some(src), Some(dst)) = (get("source_ref"), get("target_ref"))
                    && let Some(f) = self.malware.get(dst).cloned()
                    && self.indicates.len() < MAX_REMEMBERED
                {
                    self.indicates.insert(src.to_string(), f);
                }
                return self.skip(location(), SkipReason::NotIndicator);
            }
            _ => return self.skip(location(), SkipReason::NotIndicator),
        }
        let Some(id) = id.clone() else {
            return self.emit(
                ReadEvent::Rejected {
                    location: location(),
                    reason: "indicator: missing field `id`".into(),
                },
                location,
            );
        };
        match self.indicator(&id, map) {
            Ok(records) => {
                for r in records {
                    let event = match r {
                        Ok(record) => ReadEvent::Record(record),
                        Err(reason) => ReadEvent::Rejected {
                            location: location(),
                            reason,
                        },
                    };
                    self.emit(event, location)?;
                }
                Ok(())
            }
            Err(Outcome::Skip(reason)) => self.skip(location(), reason),
            Err(Outcome::Reject(reason)) => self.emit(
                ReadEvent::Rejected {
                    location: location(),
                    reason,
                },
                location,
            ),
        }
    }

    fn skip(&mut self, location: Location, reason: SkipReason) -> Result<(), ()> {
        let l = location.clone();
        self.emit(ReadEvent::Skipped { location, reason }, || l)
    }

    /// The records of one indicator, each value separately so that one bad
    /// value in an OR does not lose the others.
    #[allow(clippy::type_complexity)]
    fn indicator(
        &self,
        id: &str,
        map: &serde_json::Map<String, Value>,
    ) -> Result<Vec<Result<IndicatorRecord, String>>, Outcome> {
        let str_field = |k: &str| map.get(k).and_then(Value::as_str);
        let pattern = str_field("pattern")
            .ok_or_else(|| Outcome::Reject("indicator: missing field `pattern`".into()))?;
        let pattern_type = str_field("pattern_type")
            .ok_or_else(|| Outcome::Reject("indicator: missing field `pattern_type`".into()))?;
        if pattern_type != "stix" {
            return Err(Outcome::Skip(SkipReason::UnsupportedPattern));
        }
        if map.get("revoked").and_then(Value::as_bool) == Some(true) {
            return Err(Outcome::Skip(SkipReason::Revoked));
        }
        let time = |k: &str| -> Result<Option<khien_model::Timestamp>, Outcome> {
            match str_field(k) {
                None => Ok(None),
                Some(t) => parse_time(t).map(Some).ok_or_else(|| {
                    Outcome::Reject(format!("indicator: field `{k}`: {t:?} is not a time"))
                }),
            }
        };
        let valid_until = time("valid_until")?;
        if valid_until.is_some_and(|t| t <= self.defaults.now) {
            return Err(Outcome::Skip(SkipReason::Revoked));
        }
        let values = match parse_pattern(pattern) {
            Ok(v) => v,
            Err(PatternError::Unsupported(_)) => {
                return Err(Outcome::Skip(SkipReason::UnsupportedPattern));
            }
            Err(PatternError::Syntax(e)) => {
                return Err(Outcome::Reject(format!("indicator: field `pattern`: {e}")));
            }
        };

        let d = self.defaults;
        let mut a = d.attributes();
        a.reference = Some(id.to_string());
        if let Some(t) = time("valid_from")?.or(time("created")?) {
            a.first_seen = t;
            a.last_seen = t;
        }
        if let Some(t) = time("modified")? {
            a.last_seen = t.max(a.first_seen);
        }
        a.expires_at = valid_until;

        let mut tlp: Option<Tlp> = None;
        let mut threat: Option<ThreatType> = None;
        let mut family: Option<Family> = self.indicates.get(id).cloned();
        for r in map
            .get("object_marking_refs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(r) = r.as_str() else { continue };
            let known = TLP_IDS.iter().find(|(k, _)| *k == r).map(|(_, t)| *t);
            if let Some(t) = known.or_else(|| self.markings.get(r).copied()) {
                // Several TLP markings: honour the strictest.
                tlp = Some(tlp.map_or(t, |old| old.max(t)));
            }
        }
        for l in map
            .get("labels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match l.as_str().map(labels::classify) {
                Some(Label::Threat(t)) => {
                    threat.get_or_insert(t);
                }
                Some(Label::Family(f)) => {
                    family.get_or_insert(f);
                }
                Some(Label::Tlp(t)) => {
                    tlp.get_or_insert(t);
                }
                _ => {}
            }
        }
        if threat.is_none() {
            threat = map
                .get("indicator_types")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|t| ThreatType::from_str(t).ok())
                .find(|t| *t != ThreatType::Unknown);
        }
        if !d.force {
            if let Some(t) = tlp {
                a.tlp = t;
            }
            if let Some(t) = threat {
                a.threat_type = t;
            }
            if family.is_some() {
                a.family = family;
            }
            if let Some(c) = map.get("confidence").and_then(Value::as_u64) {
                a.confidence = u8::try_from(c)
                    .ok()
                    .and_then(|c| Confidence::new(c).ok())
                    .ok_or_else(|| {
                        Outcome::Reject(format!("indicator: field `confidence`: {c} is not 0-100"))
                    })?;
            }
        } else if a.family.is_none() {
            a.family = family;
        }

        Ok(values
            .into_iter()
            .map(|(kind, value)| {
                let kind = match kind {
                    ObservableKind::Ipv4 | ObservableKind::Ipv6 if value.contains('/') => {
                        ObservableKind::Cidr
                    }
                    k => k,
                };
                Observable::parse(kind, &value)
                    .map(|observable| IndicatorRecord {
                        observable,
                        attributes: a.clone(),
                    })
                    .map_err(|e| format!("indicator: pattern value {value:?}: {e}"))
            })
            .collect())
    }
}

enum Outcome {
    Skip(SkipReason),
    Reject(String),
}

/// The TLP a marking-definition object stands for: its fixed id, the TLP
/// 2.0 extension, a STIX 2.0 `definition_type: tlp`, or a `TLP:…` name.
fn marking_tlp(obj: &Value) -> Option<Tlp> {
    let id = obj.get("id").and_then(Value::as_str).unwrap_or_default();
    if let Some((_, t)) = TLP_IDS.iter().find(|(k, _)| *k == id) {
        return Some(*t);
    }
    if let Some(ext) = obj.get("extensions").and_then(Value::as_object) {
        for e in ext.values() {
            if let Some(t) = e
                .get("tlp_2_0")
                .and_then(Value::as_str)
                .and_then(|t| Tlp::from_str(t).ok())
            {
                return Some(t);
            }
        }
    }
    if obj.get("definition_type").and_then(Value::as_str) == Some("tlp")
        && let Some(t) = obj.pointer("/definition/tlp").and_then(Value::as_str)
    {
        return Tlp::from_str(t).ok();
    }
    obj.get("name")
        .and_then(Value::as_str)
        .filter(|n| n.to_ascii_uppercase().starts_with("TLP:"))
        .and_then(|n| Tlp::from_str(n).ok())
}

/// Turns a stop requested by the sink into a serde error; the real error
/// waits in [`State::stopped`].
fn stop<E: de::Error>(_: ()) -> E {
    E::custom("stopped by the sink")
}

/// The document: a bundle, an array of objects, or one object.
struct TopSeed<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a STIX bundle")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        ObjectsSeed { state: self.state }.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut bundle_type: Option<String> = None;
        let mut had_objects = false;
        // Everything but `objects` is small and kept, so that a single
        // top-level object can be read as one.
        let mut rest = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "objects" => {
                    had_objects = true;
                    map.next_value_seed(ObjectsSeed {
                        state: &mut *self.state,
                    })?;
                }
                "type" => {
                    let v: Value = map.next_value()?;
                    bundle_type = v.as_str().map(str::to_string);
                    rest.insert(key, v);
                }
                _ if rest.len() < 1024 => {
                    let v: Value = map.next_value()?;
                    rest.insert(key, v);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (bundle_type.as_deref(), had_objects) {
            (Some("bundle"), _) => Ok(()),
            (Some(_), false) => self.state.object(Value::Object(rest)).map_err(stop),
            (_, _) => {
                let reason = match bundle_type {
                    None => "bundle: missing field `type`".to_string(),
                    Some(t) => format!("bundle: field `type` is {t:?}, not \"bundle\""),
                };
                let id = rest.get("id").and_then(Value::as_str).map(str::to_string);
                let location = Location::Object { id, index: 0 };
                let l = location.clone();
                self.state
                    .emit(ReadEvent::Rejected { location, reason }, || l)
                    .map_err(stop)
            }
        }
    }
}

struct ObjectsSeed<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for ObjectsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ObjectsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of STIX objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(obj) = seq.next_element::<Value>()? {
            self.state.object(obj).map_err(stop)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn defaults() -> ImportDefaults {
        ImportDefaults {
            source: "t".into(),
            tlp: Tlp::Amber,
            confidence: Confidence::DEFAULT,
            family: None,
            threat_type: ThreatType::Unknown,
            now: chrono::Utc
                .with_ymd_and_hms(2026, 8, 22, 0, 0, 0)
                .single()
                .expect("time"),
            force: false,
            include_not_for_detection: false,
        }
    }

    fn read(json: &str) -> (Vec<ReadEvent>, Result<ReadSummary, Error>) {
        let mut events = Vec::new();
        let mut sink = |e: ReadEvent| -> Result<(), String> {
            events.push(e);
            Ok(())
        };
        let r = read_stix(json.as_bytes(), &defaults(), &mut sink);
        (events, r)
    }

    #[test]
    fn bundle_markings_and_malware_seen_earlier_apply() {
        let json = r#"{"type":"bundle","id":"bundle--1","objects":[
          {"type":"marking-definition","id":"marking-definition--x","name":"TLP:GREEN"},
          {"type":"malware","id":"malware--m","name":"Poison Ivy"},
          {"type":"relationship","id":"relationship--r","relationship_type":"indicates","source_ref":"indicator--i","target_ref":"malware--m"},
          {"type":"indicator","id":"indicator--i","pattern":"[domain-name:value = 'evil.com']","pattern_type":"stix",
           "valid_from":"2026-01-01T00:00:00Z","modified":"2026-02-01T00:00:00Z","confidence":80,
           "indicator_types":["malicious-activity"],"object_marking_refs":["marking-definition--x"]}
        ]}"#;
        let (events, r) = read(json);
        let s = r.expect("read");
        assert_eq!((s.records, s.skipped, s.rejected), (1, 3, 0));
        let Some(ReadEvent::Record(rec)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(rec.attributes.tlp, Tlp::Green);
        assert_eq!(
            rec.attributes.family.as_ref().map(Family::as_str),
            Some("poison-ivy")
        );
        assert_eq!(rec.attributes.threat_type, ThreatType::Malicious);
        assert_eq!(rec.attributes.confidence.get(), 80);
        assert_eq!(rec.attributes.reference.as_deref(), Some("indicator--i"));
        assert!(rec.attributes.last_seen > rec.attributes.first_seen);
    }

    #[test]
    fn single_object_and_sink_stop() {
        let json = r#"{"type":"indicator","id":"indicator--a","pattern":"[ipv4-addr:value = '1.2.3.4']","pattern_type":"stix"}"#;
        let (events, r) = read(json);
        assert_eq!(r.expect("read").records, 1, "{events:?}");
        let mut sink = |_: ReadEvent| -> Result<(), String> { Err("no".into()) };
        let r = read_stix(json.as_bytes(), &defaults(), &mut sink);
        assert!(matches!(r, Err(Error::Stopped { .. })), "{r:?}");
    }
}
