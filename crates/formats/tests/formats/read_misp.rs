//! MISP reader on real events (PyMISP test events, ESET's OceanLotus
//! exports in the older `response` shape, a TweetFeed feed directory) and a
//! small fixture of flags and composite types.

use std::path::Path;

use chrono::TimeZone;
use khien_formats::read::{
    ImportDefaults, ReadEvent, ReadSummary, SkipReason, read_misp, read_misp_feed_dir,
};
use khien_formats::{Error, Location};
use khien_model::{ObservableKind, Tlp};
use serde_json::Value;

use super::support::{records, shared};

fn read(data: &[u8]) -> (Vec<ReadEvent>, Result<ReadSummary, Error>) {
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let r = read_misp(data, &defaults(), &mut sink);
    (events, r)
}

fn read_shared(rel: &str) -> (Vec<ReadEvent>, ReadSummary) {
    let data = std::fs::read(shared(rel)).expect("read");
    let (events, r) = read(&data);
    (events, r.expect("read"))
}

fn skipped_ids(events: &[ReadEvent], reason: SkipReason) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Skipped {
                location: Location::Object { id: Some(id), .. },
                reason: r,
            } if *r == reason => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// The attributes of every event in a MISP JSON value, walked independently
/// of the reader.
fn attributes(v: &Value) -> Vec<Value> {
    let events: Vec<&Value> = if let Some(list) = v["response"].as_array() {
        list.iter().map(|e| &e["Event"]).collect()
    } else if v.get("Event").is_some() {
        vec![&v["Event"]]
    } else {
        vec![v]
    };
    let mut out = Vec::new();
    for e in events {
        out.extend(e["Attribute"].as_array().cloned().unwrap_or_default());
        for o in e["Object"].as_array().cloned().unwrap_or_default() {
            out.extend(o["Attribute"].as_array().cloned().unwrap_or_default());
        }
    }
    out
}

/// Records an attribute should give: 2 for `domain|ip`, 1 for the other
/// supported types, 0 for the rest.
fn yield_of(t: &str) -> u64 {
    match t {
        "domain|ip" => 2,
        "ip-src" | "ip-dst" | "ip-src|port" | "ip-dst|port" | "domain" | "hostname" | "url"
        | "md5" | "sha1" | "sha256" | "filename|md5" | "filename|sha1" | "filename|sha256"
        | "email" | "email-src" | "email-dst" => 1,
        _ => 0,
    }
}

fn to_ids(a: &Value) -> bool {
    matches!(&a["to_ids"], Value::Bool(true)) || a["to_ids"] == "1"
}

#[test]
fn bare_event_with_nothing_for_detection() {
    let (events, summary) = read_shared("misp/misp_event.json");
    // The URL is to_ids false, the other attribute is `text`.
    assert_eq!(
        summary,
        ReadSummary {
            records: 0,
            skipped: 2,
            rejected: 0
        }
    );
    assert_eq!(
        skipped_ids(&events, SkipReason::NotForDetection),
        ["575c8598-f1f0-4c16-a94a-0612c0a83866"]
    );
    assert_eq!(
        skipped_ids(&events, SkipReason::UnsupportedType),
        ["575c8549-9010-4555-8b37-057ac0a83866"]
    );
}

#[test]
fn existing_event_counts_and_tags() {
    let path = shared("misp/existing_event.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let expected: u64 = attributes(&v)
        .iter()
        .filter(|a| to_ids(a))
        .map(|a| yield_of(a["type"].as_str().unwrap_or("")))
        .sum();
    assert_eq!(expected, 68);
    let (events, summary) = read_shared("misp/existing_event.json");
    assert_eq!(summary.records, expected);
    let recs = records(&events);
    // Event tag tlp:white.
    assert!(recs.iter().all(|r| r.attributes.tlp == Tlp::Clear));
    // Galaxy tags name families.
    assert!(recs.iter().all(|r| r.attributes.family.is_some()));
    assert!(recs.iter().all(|r| {
        r.attributes
            .reference
            .as_deref()
            .is_some_and(|s| s.contains("5a3c2fcd-8328-42bb-a95e-4f4402de0b81"))
    }));
    assert_eq!(
        recs.iter()
            .filter(|r| r.observable.kind() == ObservableKind::Sha1)
            .count(),
        37
    );
    assert_eq!(
        recs.iter()
            .filter(|r| r.observable.kind() == ObservableKind::Ipv4)
            .count(),
        12
    );
}

#[test]
fn object_attributes_are_read() {
    let (events, summary) = read_shared("misp/event_obj_attr_tag.json");
    assert_eq!(
        summary,
        ReadSummary {
            records: 1,
            skipped: 1,
            rejected: 0
        }
    );
    let r = records(&events)[0];
    assert_eq!(r.observable.kind(), ObservableKind::Url);
    assert!(r.observable.value().starts_with("https://www.circl.lu"));
}

#[test]
fn long_event_counts() {
    let path = shared("misp/long_event.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let attrs = attributes(&v);
    assert_eq!(attrs.len(), 370);
    let expected: u64 = attrs
        .iter()
        .filter(|a| to_ids(a))
        .map(|a| yield_of(a["type"].as_str().unwrap_or("")))
        .sum();
    assert_eq!(expected, 250);
    let (_, summary) = read_shared("misp/long_event.json");
    assert_eq!(summary.records + summary.rejected, expected, "{summary:?}");
    assert_eq!(summary.records + summary.skipped + summary.rejected, 370);
}

#[test]
fn eset_oceanlotus_response_shape_all_not_for_detection() {
    let rel = "misp/eset/oceanlotus.misp.event.json";
    let v: Value =
        serde_json::from_slice(&std::fs::read(shared(rel)).expect("read")).expect("json");
    let attrs = attributes(&v);
    assert_eq!(attrs.len(), 111);
    let (events, summary) = read_shared(rel);
    // ESET marks every attribute to_ids false: nothing is imported.
    assert_eq!(
        summary,
        ReadSummary {
            records: 0,
            skipped: 111,
            rejected: 0
        }
    );
    let not_ids = skipped_ids(&events, SkipReason::NotForDetection);
    let type_of = |id: &str| {
        attrs
            .iter()
            .find(|a| a["uuid"] == id)
            .and_then(|a| a["type"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let count = |t: &str| not_ids.iter().filter(|id| type_of(id) == t).count();
    assert_eq!(count("domain"), 62);
    assert_eq!(count("ip-dst"), 22);
    assert_eq!(count("domain|ip"), 3);
    assert_eq!(count("filename|sha1"), 5);
    assert_eq!(not_ids.len(), 92);
    assert_eq!(skipped_ids(&events, SkipReason::UnsupportedType).len(), 19);
}

#[test]
fn eset_other_events_read() {
    for rel in [
        "misp/eset/oceanlotus-wateringhole-2018.misp.event.json",
        "misp/eset/signsight-misp-event.json",
    ] {
        let v: Value =
            serde_json::from_slice(&std::fs::read(shared(rel)).expect("read")).expect("json");
        let n = attributes(&v).len() as u64;
        let (_, s) = read_shared(rel);
        assert_eq!(s.records + s.skipped + s.rejected, n, "{rel}");
    }
}

#[test]
fn feed_directory_yields_every_to_ids_attribute() {
    let dir = shared("misp/feed-tweetfeed");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("json");
    let uuids: Vec<&String> = manifest.as_object().expect("map").keys().collect();
    assert_eq!(uuids.len(), 3);
    let mut expected = 0;
    for uuid in &uuids {
        let ev: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{uuid}.json"))).expect("event"),
        )
        .expect("json");
        expected += attributes(&ev)
            .iter()
            .filter(|a| to_ids(a))
            .map(|a| yield_of(a["type"].as_str().unwrap_or("")))
            .sum::<u64>();
    }
    assert_eq!(expected, 375);
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let summary = read_misp_feed_dir(&dir, &defaults(), &mut sink).expect("feed");
    assert_eq!(summary.records + summary.rejected, expected, "{summary:?}");
    let recs = records(&events);
    assert!(recs.iter().all(|r| r.attributes.tlp == Tlp::Clear));
    assert!(recs.iter().any(|r| r.observable.value() == "leap39.com"));
    for e in &events {
        if let ReadEvent::Skipped { location, .. } | ReadEvent::Rejected { location, .. } = e {
            assert!(
                matches!(location, Location::File { path, .. } if path.ends_with(".json")),
                "{location:?}"
            );
        }
    }
}

#[test]
fn feed_directory_with_a_missing_event_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = shared("misp/feed-tweetfeed");
    std::fs::copy(src.join("manifest.json"), tmp.path().join("manifest.json")).expect("copy");
    let kept = "67317f07-5461-555f-9491-d7685196f614.json";
    std::fs::copy(src.join(kept), tmp.path().join(kept)).expect("copy");
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let summary = read_misp_feed_dir(tmp.path(), &defaults(), &mut sink).expect("feed");
    assert_eq!(summary.records, 59);
    let missing: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Rejected {
                location: Location::File { path, inner },
                ..
            } if **inner == Location::Input => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(missing.len(), 2, "{missing:?}");
    // No manifest at all stops the read.
    let empty = tempfile::tempdir().expect("tmp");
    assert!(read_misp_feed_dir(empty.path(), &defaults(), &mut |_: ReadEvent| Ok(())).is_err());
}

#[test]
fn flags_and_composite_types() {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/read/misp_flags.json"),
    )
    .expect("fixture");
    let (events, r) = read(&data);
    let summary = r.expect("read");
    // to_ids "0" → not for detection; regkey → unsupported type.
    assert_eq!(
        skipped_ids(&events, SkipReason::NotForDetection),
        ["6f1c2a3b-0000-4000-8000-000000000011"]
    );
    assert_eq!(
        skipped_ids(&events, SkipReason::UnsupportedType),
        ["6f1c2a3b-0000-4000-8000-000000000012"]
    );
    let recs = records(&events);
    let values: Vec<(ObservableKind, &str)> = recs
        .iter()
        .map(|r| (r.observable.kind(), r.observable.value()))
        .collect();
    assert_eq!(
        values,
        [
            (ObservableKind::Domain, "c2.example.vn"),
            (ObservableKind::Ipv4, "198.51.100.23"),
            (ObservableKind::Ipv4, "203.0.113.5"),
            (
                ObservableKind::Sha256,
                "ab62b50e50d8148e7c894df644e62f365dbe2bd7f7ec0039b7d1af42c555562e"
            ),
        ]
    );
    // Attribute tag tlp:amber over the event's tlp:green.
    assert_eq!(recs[0].attributes.tlp, Tlp::Amber);
    assert_eq!(recs[2].attributes.tlp, Tlp::Green);
    assert_eq!(
        recs[0].attributes.first_seen,
        chrono::Utc
            .timestamp_opt(1_787_187_115, 0)
            .single()
            .expect("t")
    );
    // -bad-.com
    assert_eq!(
        summary,
        ReadSummary {
            records: 4,
            skipped: 2,
            rejected: 1
        }
    );
    assert!(events.iter().any(|e| matches!(e, ReadEvent::Rejected { location: Location::Object { id: Some(id), index: 5 }, .. } if id == "6f1c2a3b-0000-4000-8000-000000000016")));
}

#[test]
fn broken_input_is_an_error_not_a_crash() {
    for input in [
        &b"not json"[..],
        b"",
        b"{\"Event\": {\"Attribute\": [",
        b"{\"foo\": 1}",
    ] {
        let (_, r) = read(input);
        assert!(
            matches!(r, Err(Error::Malformed { .. })),
            "{input:?}: {r:?}"
        );
    }
    let deep = format!("{{\"Event\":{{\"Attribute\":{}", "[".repeat(10_000));
    let (_, r) = read(deep.as_bytes());
    assert!(matches!(r, Err(Error::Malformed { .. })), "{r:?}");
}

fn defaults() -> ImportDefaults {
    ImportDefaults {
        source: "misp-test".into(),
        ..super::support::defaults()
    }
}
