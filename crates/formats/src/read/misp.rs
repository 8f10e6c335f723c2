//! MISP events and MISP feed directories.
//!
//! Accepted shapes: `{"Event": {…}}` (feeds, current exports), the older
//! REST shape `{"response": [{"Event": {…}}, …]}`, a JSON array of either,
//! and a bare event object. Events are read one at a time (a `response`
//! list or array is streamed), so memory is bounded by the largest event,
//! not the file.
//!
//! Attributes, including those inside `Object`s, of the network and hash
//! types become records; composite types give their indicator part
//! (`domain|ip` both). Attributes that MISP itself marks as not for
//! detection (`to_ids` false) are skipped, as are deleted ones. TLP and
//! family come from tags — attribute tags over event tags — and the
//! reference is `misp:event/<event uuid>/attribute/<attribute uuid>`, so an
//! analyst can find the attribute again.

use std::fmt;
use std::io::BufRead;
use std::path::Path;

use chrono::{DateTime, Utc};
use khien_model::{
    Family, IndicatorRecord, Observable, ObservableKind, ThreatType, Timestamp, Tlp,
};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::csv::parse_time;
use super::labels::{self, Label};
use super::stix::json_error;
use super::{ImportDefaults, ReadEvent, ReadSink, ReadSummary, SkipReason};
use crate::{Error, Location};

/// Reads MISP event JSON in any of the shapes above.
pub fn read_misp(
    input: impl BufRead,
    defaults: &ImportDefaults,
    sink: &mut dyn ReadSink,
) -> Result<ReadSummary, Error> {
    let mut state = State {
        defaults,
        sink,
        summary: ReadSummary::default(),
        stopped: None,
        events: 0,
    };
    let mut de = serde_json::Deserializer::from_reader(input);
    let result = TopSeed { state: &mut state }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Some(stopped) = state.stopped.take() {
        return Err(stopped);
    }
    if let Err(e) = result {
        return Err(json_error("misp", &e));
    }
    if state.events == 0 {
        return Err(Error::Malformed {
            format: "misp",
            location: Location::Input,
            reason: "no MISP event found (expected \"Event\", \"response\" or an event object; \
                     a feed's manifest.json is read by importing its directory)"
                .into(),
        });
    }
    Ok(state.summary)
}

/// Reads a MISP feed directory: `manifest.json`, then each `<uuid>.json` it
/// lists. Locations are wrapped in [`Location::File`]. A listed event whose
/// file is missing or broken is rejected and the others are still read.
pub fn read_misp_feed_dir(
    dir: &Path,
    defaults: &ImportDefaults,
    sink: &mut dyn ReadSink,
) -> Result<ReadSummary, Error> {
    let manifest_path = dir.join("manifest.json");
    let manifest_file = std::fs::File::open(&manifest_path)?;
    let manifest: Value = serde_json::from_reader(std::io::BufReader::new(manifest_file))
        .map_err(|e| json_error("misp feed manifest", &e))?;
    let uuids = manifest_uuids(&manifest).map_err(|reason| Error::Malformed {
        format: "misp feed manifest",
        location: Location::File {
            path: manifest_path.display().to_string(),
            inner: Box::new(Location::Input),
        },
        reason,
    })?;
    let mut total = ReadSummary::default();
    for uuid in uuids {
        let name = format!("{uuid}.json");
        let path = dir.join(&name);
        let mut wrapped = FileSink {
            path: name.clone(),
            inner: sink,
            summary: ReadSummary::default(),
        };
        let result = match std::fs::File::open(&path) {
            Ok(f) => read_misp(std::io::BufReader::new(f), defaults, &mut wrapped).map(|_| ()),
            Err(e) => Err(Error::Io(e)),
        };
        let got = wrapped.summary;
        total.records += got.records;
        total.skipped += got.skipped;
        total.rejected += got.rejected;
        match result {
            Ok(()) => {}
            Err(e @ Error::Stopped { .. }) => return Err(e),
            Err(e) => {
                let location = Location::File {
                    path: name,
                    inner: Box::new(Location::Input),
                };
                let event = ReadEvent::Rejected {
                    location: location.clone(),
                    reason: e.to_string(),
                };
                total.rejected += 1;
                sink.event(event)
                    .map_err(|reason| Error::Stopped { location, reason })?;
            }
        }
    }
    Ok(total)
}

/// The event uuids of a manifest (`{"<uuid>": {…}, …}`), checked to be
/// plain uuids so that a hostile manifest cannot name files outside the
/// directory.
pub(crate) fn manifest_uuids(manifest: &Value) -> Result<Vec<String>, String> {
    let map = manifest
        .as_object()
        .ok_or("manifest is not a JSON object")?;
    let mut out = Vec::with_capacity(map.len());
    for key in map.keys() {
        if uuid::Uuid::parse_str(key).is_err() || key.len() != 36 {
            return Err(format!("manifest key {key:?} is not an event uuid"));
        }
        out.push(key.clone());
    }
    Ok(out)
}

/// Puts a feed file's name around every location, and counts.
struct FileSink<'a> {
    path: String,
    inner: &'a mut dyn ReadSink,
    summary: ReadSummary,
}

impl ReadSink for FileSink<'_> {
    fn event(&mut self, event: ReadEvent) -> Result<(), String> {
        let wrap = |l: Location| Location::File {
            path: self.path.clone(),
            inner: Box::new(l),
        };
        let event = match event {
            ReadEvent::Skipped { location, reason } => ReadEvent::Skipped {
                location: wrap(location),
                reason,
            },
            ReadEvent::Rejected { location, reason } => ReadEvent::Rejected {
                location: wrap(location),
                reason,
            },
            r @ ReadEvent::Record(_) => r,
        };
        self.summary.count(&event);
        self.inner.event(event)
    }
}

struct State<'a> {
    defaults: &'a ImportDefaults,
    sink: &'a mut dyn ReadSink,
    summary: ReadSummary,
    stopped: Option<Error>,
    events: u64,
}

/// What an event gives all its attributes.
struct EventContext {
    uuid: String,
    tlp: Option<Tlp>,
    family: Option<(u8, Family)>,
    threat: Option<ThreatType>,
    date: Option<Timestamp>,
}

/// The indicator kinds of MISP attribute types, and which part of a
/// composite value (`a|b`) holds them.
enum Part {
    Whole,
    First,
    Second,
    Both,
}

fn attribute_kind(t: &str) -> Option<(Option<ObservableKind>, Part)> {
    use ObservableKind as K;
    Some(match t {
        // `None`: an address or network, told apart by the value.
        "ip-src" | "ip-dst" => (None, Part::Whole),
        "ip-src|port" | "ip-dst|port" => (None, Part::First),
        "domain" | "hostname" => (Some(K::Domain), Part::Whole),
        "hostname|port" => (Some(K::Domain), Part::First),
        "domain|ip" => (None, Part::Both),
        "url" => (Some(K::Url), Part::Whole),
        "md5" => (Some(K::Md5), Part::Whole),
        "sha1" => (Some(K::Sha1), Part::Whole),
        "sha256" => (Some(K::Sha256), Part::Whole),
        "filename|md5" => (Some(K::Md5), Part::Second),
        "filename|sha1" => (Some(K::Sha1), Part::Second),
        "filename|sha256" => (Some(K::Sha256), Part::Second),
        "email" | "email-src" | "email-dst" => (Some(K::Email), Part::Whole),
        _ => return None,
    })
}

fn ip_kind(value: &str) -> ObservableKind {
    if value.contains('/') {
        ObservableKind::Cidr
    } else if value.contains(':') {
        ObservableKind::Ipv6
    } else {
        ObservableKind::Ipv4
    }
}

/// `true`, `1`, `"1"`, `"true"`; MISP versions disagree on the type.
fn truthy(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_u64() != Some(0)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => Some(true),
            "0" | "false" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A MISP time: unix seconds (string or number) or a textual time.
fn misp_time(v: Option<&Value>) -> Option<Timestamp> {
    let secs = match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        Value::String(s) => return parse_time(s),
        _ => None,
    }?;
    // 0 is MISP's "not set".
    if secs <= 0 {
        return None;
    }
    DateTime::<Utc>::from_timestamp(secs, 0)
}

fn tag_names(obj: &Map<String, Value>) -> impl Iterator<Item = &str> {
    obj.get("Tag")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
}

impl State<'_> {
    fn emit(&mut self, event: ReadEvent, location: &Location) -> Result<(), ()> {
        self.summary.count(&event);
        self.sink.event(event).map_err(|reason| {
            self.stopped = Some(Error::Stopped {
                location: location.clone(),
                reason,
            });
        })
    }

    fn event(&mut self, event: Value) -> Result<(), ()> {
        self.events += 1;
        let Value::Object(ev) = event else {
            let location = Location::Object {
                id: None,
                index: self.events - 1,
            };
            return self.emit(
                ReadEvent::Rejected {
                    location: location.clone(),
                    reason: "event is not a JSON object".into(),
                },
                &location,
            );
        };
        let mut ctx = EventContext {
            uuid: ev
                .get("uuid")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            tlp: None,
            family: None,
            threat: None,
            date: ev.get("date").and_then(Value::as_str).and_then(parse_time),
        };
        for name in tag_names(&ev) {
            tag_into(name, &mut ctx.tlp, &mut ctx.family, &mut ctx.threat, false);
        }
        for g in ev
            .get("Galaxy")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let galaxy = g.get("type").and_then(Value::as_str).unwrap_or_default();
            for c in g
                .get("GalaxyCluster")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(v) = c.get("value").and_then(Value::as_str) {
                    let tag = format!("misp-galaxy:{galaxy}=\"{v}\"");
                    tag_into(&tag, &mut ctx.tlp, &mut ctx.family, &mut ctx.threat, false);
                }
            }
        }
        let direct = ev
            .get("Attribute")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let in_objects = ev
            .get("Object")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|o| truthy(o.get("deleted")) != Some(true))
            .flat_map(|o| {
                o.get("Attribute")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            });
        for (index, attr) in direct.chain(in_objects).enumerate() {
            self.attribute(attr, index as u64, &ctx)?;
        }
        Ok(())
    }

    fn attribute(&mut self, attr: &Value, index: u64, ctx: &EventContext) -> Result<(), ()> {
        let uuid = attr.get("uuid").and_then(Value::as_str);
        let location = Location::Object {
            id: uuid.map(str::to_string),
            index,
        };
        let Some(a) = attr.as_object() else {
            return self.emit(
                ReadEvent::Rejected {
                    location: location.clone(),
                    reason: "attribute is not a JSON object".into(),
                },
                &location,
            );
        };
        let skip = |reason| ReadEvent::Skipped {
            location: location.clone(),
            reason,
        };
        let reject = |reason: String| ReadEvent::Rejected {
            location: location.clone(),
            reason,
        };
        let Some(t) = a.get("type").and_then(Value::as_str) else {
            return self.emit(reject("attribute: missing field `type`".into()), &location);
        };
        let Some((kind, part)) = attribute_kind(t) else {
            return self.emit(skip(SkipReason::UnsupportedType), &location);
        };
        if truthy(a.get("deleted")) == Some(true) {
            return self.emit(skip(SkipReason::Revoked), &location);
        }
        if truthy(a.get("to_ids")) == Some(false) && !self.defaults.include_not_for_detection {
            return self.emit(skip(SkipReason::NotForDetection), &location);
        }
        let Some(value) = a.get("value").and_then(Value::as_str) else {
            return self.emit(reject("attribute: missing field `value`".into()), &location);
        };
        let parts: Vec<&str> = match (part, value.split_once('|')) {
            (Part::Whole, _) => vec![value],
            (Part::First, Some((v, _))) => vec![v],
            (Part::Second, Some((_, v))) => vec![v],
            (Part::Both, Some((x, y))) => vec![x, y],
            (_, None) => {
                return self.emit(
                    reject(format!("attribute: {t} value {value:?} has no '|'")),
                    &location,
                );
            }
        };

        let d = self.defaults;
        let mut attrs = d.attributes();
        let uuid_text = uuid.unwrap_or("unknown");
        attrs.reference = Some(format!("misp:event/{}/attribute/{uuid_text}", ctx.uuid));
        let stamp = misp_time(a.get("timestamp"));
        if let Some(t) = misp_time(a.get("first_seen")).or(stamp).or(ctx.date) {
            attrs.first_seen = t;
            attrs.last_seen = t;
        }
        if let Some(t) = misp_time(a.get("last_seen")).or(stamp) {
            attrs.last_seen = t.max(attrs.first_seen);
        }
        let (mut tlp, mut family, mut threat) = (None, None, None);
        for name in tag_names(a) {
            tag_into(name, &mut tlp, &mut family, &mut threat, true);
        }
        if !d.force {
            if let Some(t) = tlp.or(ctx.tlp) {
                attrs.tlp = t;
            }
            if let Some(t) = threat.or(ctx.threat) {
                attrs.threat_type = t;
            }
            if let Some((_, f)) = family.or_else(|| ctx.family.clone()) {
                attrs.family = Some(f);
            }
        } else if attrs.family.is_none() {
            attrs.family = family.or_else(|| ctx.family.clone()).map(|(_, f)| f);
        }

        for (i, v) in parts.iter().enumerate() {
            // `domain|ip`: the first part is the domain.
            let k = match (kind, t) {
                (None, "domain|ip") if i == 0 => ObservableKind::Domain,
                (Some(k), _) => k,
                (None, _) => ip_kind(v),
            };
            let event = match Observable::parse(k, v) {
                Ok(observable) => ReadEvent::Record(IndicatorRecord {
                    observable,
                    attributes: attrs.clone(),
                }),
                Err(e) => reject(format!("attribute: {t} value {v:?}: {e}")),
            };
            self.emit(event, &location)?;
        }
        Ok(())
    }
}

/// Reads one tag into what it says. Plain tags name a family only on
/// attributes: on events they are mostly the feed's own name (`TweetFeed`).
fn tag_into(
    name: &str,
    tlp: &mut Option<Tlp>,
    family: &mut Option<(u8, Family)>,
    threat: &mut Option<ThreatType>,
    plain_family: bool,
) {
    // Our own machine tags, as `write::misp` puts them, so a feed of ours
    // imports back whole.
    if let Some(v) = name.strip_prefix("khien:family=") {
        if let Ok(f) = Family::new(v.trim_matches('"')) {
            *family = Some((0, f));
        }
        return;
    }
    if let Some(v) = name.strip_prefix("khien:threat-type=") {
        if let Ok(t) = v.trim_matches('"').parse::<ThreatType>() {
            *threat = Some(t);
        }
        return;
    }
    if let Some((rank, f)) = labels::galaxy_family(name) {
        if family.as_ref().is_none_or(|(r, _)| rank < *r) {
            *family = Some((rank, f));
        }
        return;
    }
    match labels::classify(name) {
        Label::Tlp(t) => *tlp = Some(tlp.map_or(t, |old| old.max(t))),
        Label::Threat(t) => {
            threat.get_or_insert(t);
        }
        // Rank 2: below any galaxy.
        Label::Family(f) if plain_family && family.is_none() => *family = Some((2, f)),
        _ => {}
    }
}

fn stop<E: de::Error>(_: ()) -> E {
    E::custom("stopped by the sink")
}

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
        f.write_str("a MISP event")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        EventsSeed { state: self.state }.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut rest = Map::new();
        let mut wrapped = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "Event" => {
                    wrapped = true;
                    let ev: Value = map.next_value()?;
                    self.state.event(ev).map_err(stop)?;
                }
                "response" => {
                    wrapped = true;
                    map.next_value_seed(EventsSeed {
                        state: &mut *self.state,
                    })?;
                }
                _ if !wrapped => {
                    let v: Value = map.next_value()?;
                    rest.insert(key, v);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !wrapped && (rest.contains_key("Attribute") || rest.contains_key("Object")) {
            self.state.event(Value::Object(rest)).map_err(stop)?;
        }
        Ok(())
    }
}

/// An array of events, wrapped (`{"Event": …}`) or bare.
struct EventsSeed<'s, 'a> {
    state: &'s mut State<'a>,
}

impl<'de> DeserializeSeed<'de> for EventsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of MISP events")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        // `response` holding one event instead of a list.
        TopSeed { state: self.state }.visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            let ev = match item {
                Value::Object(mut m) if m.contains_key("Event") => {
                    m.remove("Event").unwrap_or(Value::Null)
                }
                other => other,
            };
            self.state.event(ev).map_err(stop)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use khien_model::Confidence;

    fn defaults() -> ImportDefaults {
        ImportDefaults {
            source: "t".into(),
            tlp: Tlp::Amber,
            confidence: Confidence::DEFAULT,
            family: None,
            threat_type: ThreatType::Unknown,
            now: Utc
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
        let r = read_misp(json.as_bytes(), &defaults(), &mut sink);
        (events, r)
    }

    #[test]
    fn attribute_types_tags_and_flags() {
        let json = r#"{"Event":{"uuid":"e1","date":"2026-01-02","Tag":[{"name":"tlp:green"},{"name":"misp-galaxy:malpedia=\"Emotet\""}],
          "Attribute":[
            {"uuid":"a1","type":"domain|ip","value":"evil.com|1.2.3.4","to_ids":"1","timestamp":"1767225600"},
            {"uuid":"a2","type":"filename|sha256","value":"x.exe|aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","to_ids":true,"Tag":[{"name":"tlp:red"}]},
            {"uuid":"a3","type":"ip-dst|port","value":"10.0.0.0/8|443","to_ids":true},
            {"uuid":"a4","type":"filename","value":"x.exe","to_ids":true},
            {"uuid":"a5","type":"domain","value":"ok.com","to_ids":false},
            {"uuid":"a6","type":"domain","value":"gone.com","to_ids":true,"deleted":true},
            {"uuid":"a7","type":"domain","value":"-bad-.com","to_ids":true}
          ],
          "Object":[{"Attribute":[{"uuid":"a8","type":"email-src","value":"x@evil.com","to_ids":"1"}]}]}}"#;
        let (events, r) = read(json);
        let s = r.expect("read");
        assert_eq!((s.records, s.skipped, s.rejected), (5, 3, 1), "{events:?}");
        let recs: Vec<&IndicatorRecord> = events
            .iter()
            .filter_map(|e| {
                if let ReadEvent::Record(r) = e {
                    Some(r)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(recs[0].observable.value(), "evil.com");
        assert_eq!(recs[1].observable.value(), "1.2.3.4");
        assert_eq!(recs[0].attributes.tlp, Tlp::Green);
        assert_eq!(
            recs[0].attributes.family.as_ref().map(Family::as_str),
            Some("emotet")
        );
        assert_eq!(
            recs[0].attributes.reference.as_deref(),
            Some("misp:event/e1/attribute/a1")
        );
        assert_eq!(
            recs[0].attributes.first_seen.to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        assert_eq!(recs[2].attributes.tlp, Tlp::Red);
        assert_eq!(recs[2].observable.kind(), ObservableKind::Sha256);
        assert_eq!(recs[3].observable.value(), "10.0.0.0/8");
        assert_eq!(
            recs[3].attributes.first_seen.to_rfc3339(),
            "2026-01-02T00:00:00+00:00"
        );
        assert_eq!(recs[4].observable.kind(), ObservableKind::Email);
    }

    #[test]
    fn shapes() {
        let ev = r#"{"uuid":"e","Attribute":[{"uuid":"a","type":"domain","value":"evil.com","to_ids":true}]}"#;
        for json in [
            format!(r#"{{"Event":{ev}}}"#),
            format!(r#"{{"response":[{{"Event":{ev}}}]}}"#),
            format!(r#"[{{"Event":{ev}}}]"#),
            ev.to_string(),
        ] {
            let (_, r) = read(&json);
            assert_eq!(r.expect("read").records, 1, "{json}");
        }
        let (_, r) = read(r#"{"5bf300da-6438-4372-a069-0b7b0a016219":{"info":"x"}}"#);
        assert!(matches!(r, Err(Error::Malformed { .. })), "{r:?}");
    }
}
