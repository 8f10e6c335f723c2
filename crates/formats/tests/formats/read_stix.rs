//! STIX 2.1 reader on real bundles (TweetFeed, the OASIS examples, the TLP
//! 2.0 marking definitions) and on small broken fixtures.

use std::io::BufReader;
use std::path::Path;

use chrono::TimeZone;
use khien_formats::read::{ImportDefaults, ReadEvent, ReadSummary, SkipReason, read_stix};
use khien_formats::{Error, Location};
use khien_model::{Confidence, ObservableKind, ThreatType, Tlp};

use super::support::{fixture, records, shared};

fn read(data: &[u8]) -> (Vec<ReadEvent>, Result<ReadSummary, Error>) {
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let r = read_stix(data, &defaults(), &mut sink);
    (events, r)
}

fn read_file(path: &Path) -> (Vec<ReadEvent>, ReadSummary) {
    let file = std::fs::File::open(path).expect("open");
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let summary = read_stix(BufReader::new(file), &defaults(), &mut sink).expect("read");
    (events, summary)
}

fn skips(events: &[ReadEvent], reason: SkipReason) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ReadEvent::Skipped { reason: r, .. } if *r == reason))
        .count()
}

fn rejections(events: &[ReadEvent]) -> Vec<(&Location, &str)> {
    events
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Rejected { location, reason } => Some((location, reason.as_str())),
            _ => None,
        })
        .collect()
}

/// Indicators in a bundle, counted independently of the reader.
fn indicator_count(path: &Path) -> usize {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    v["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["type"] == "indicator")
        .count()
}

#[test]
fn tweetfeed_today() {
    let path = shared("stix/tweetfeed/today.json");
    assert_eq!(indicator_count(&path), 59);
    let (events, summary) = read_file(&path);
    let recs = records(&events);
    // Every indicator has a single supported value.
    assert_eq!(recs.len(), 59);
    assert_eq!(summary.records, 59);
    assert_eq!(summary.rejected, 0);
    // The identity and the TLP:CLEAR marking definition.
    assert_eq!(skips(&events, SkipReason::NotIndicator), 2);
    assert!(
        recs.iter().all(|r| r.attributes.tlp == Tlp::Clear),
        "TLP:CLEAR marking applies"
    );
    let first = recs
        .iter()
        .find(|r| r.observable.value() == "cvqgs36nhw-wtrkblpw-3i2d0e-cvq79c.pages.dev")
        .expect("first indicator of the file");
    assert_eq!(first.observable.kind(), ObservableKind::Domain);
    assert_eq!(
        first.attributes.reference.as_deref(),
        Some("indicator--c71482c1-f09c-50fc-a797-878a5aff53ad")
    );
    assert_eq!(
        first.attributes.first_seen,
        chrono::Utc
            .with_ymd_and_hms(2026, 8, 22, 2, 53, 35)
            .single()
            .expect("t")
    );
    assert_eq!(first.attributes.source, "stix-test");
    assert!(
        recs.iter()
            .all(|r| r.attributes.first_seen <= r.attributes.last_seen)
    );
}

#[test]
fn tweetfeed_week_every_indicator_accounted_for() {
    let path = shared("stix/tweetfeed/week.json");
    assert_eq!(indicator_count(&path), 1536);
    let (events, summary) = read_file(&path);
    // Single-value patterns only: each indicator is one record or one
    // rejection, never skipped.
    assert_eq!(summary.records + summary.rejected, 1536, "{summary:?}");
    assert_eq!(summary.skipped, 2);
    assert!(summary.records >= 1500, "{summary:?}");
    let recs = records(&events);
    for kind in [
        ObservableKind::Url,
        ObservableKind::Domain,
        ObservableKind::Ipv4,
        ObservableKind::Sha256,
        ObservableKind::Md5,
    ] {
        assert!(recs.iter().any(|r| r.observable.kind() == kind), "{kind}");
    }
    assert!(
        recs.iter()
            .any(|r| r.observable.value() == "154.36.188.193")
    );
}

#[test]
fn apt1_cidrs_domains_hashes_and_unsupported_certificates() {
    let path = shared("stix/apt1.json");
    let (events, summary) = read_file(&path);
    let recs = records(&events);
    let of = |k| recs.iter().filter(|r| r.observable.kind() == k).count();
    assert_eq!(of(ObservableKind::Cidr), 4);
    assert_eq!(of(ObservableKind::Domain), 3);
    assert_eq!(of(ObservableKind::Md5), 3);
    assert_eq!(summary.records, 10);
    assert!(
        recs.iter()
            .any(|r| r.observable.value() == "223.166.0.0/15")
    );
    // The two x509-certificate patterns with AND.
    assert_eq!(skips(&events, SkipReason::UnsupportedPattern), 2);
    // 76 objects: 12 indicators, 64 others.
    assert_eq!(skips(&events, SkipReason::NotIndicator), 64);
    assert_eq!(summary.rejected, 0);
}

#[test]
fn poisonivy_or_patterns_give_one_record_per_value() {
    let (events, summary) = read_file(&shared("stix/poisonivy.json"));
    let recs = records(&events);
    // `file:name` patterns are outside the IOC subset.
    assert_eq!(skips(&events, SkipReason::UnsupportedPattern), 2);
    // 'domain autuo.xicp.net' has a space: rejected, its OR partner kept.
    let rej = rejections(&events);
    assert_eq!(rej.len(), 1, "{rej:?}");
    assert!(rej[0].1.contains("autuo.xicp.net"), "{}", rej[0].1);
    assert!(
        matches!(rej[0].0, Location::Object { id: Some(id), .. } if id.starts_with("indicator--"))
    );
    assert!(recs.iter().any(|r| r.observable.value() == "60.10.1.115"));
    assert!(
        recs.iter()
            .any(|r| r.observable.value() == "www.webserver.dynssl.com")
    );
    assert!(summary.records > 23, "{summary:?}");
}

#[test]
fn c2_ip_example() {
    let (events, summary) = read_file(&shared("stix/indicator-for-c2-ip-address.json"));
    assert_eq!(
        summary,
        ReadSummary {
            records: 1,
            skipped: 0,
            rejected: 0
        }
    );
    let r = records(&events)[0];
    assert_eq!(r.observable.kind(), ObservableKind::Ipv4);
    assert_eq!(r.observable.value(), "10.0.0.0");
    assert_eq!(r.attributes.threat_type, ThreatType::Malicious);
    assert_eq!(
        r.attributes.reference.as_deref(),
        Some("indicator--33fe3b22-0201-47cf-85d0-97c02164528d")
    );
    // No marking: the import default.
    assert_eq!(r.attributes.tlp, Tlp::Amber);
}

#[test]
fn tlp2_marking_definitions_apply_to_indicators() {
    let dir = shared("stix/tlp2");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bundle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let Some(marking) = bundle["objects"]
            .as_array()
            .and_then(|o| o.first())
            .filter(|o| o["type"] == "marking-definition")
        else {
            continue;
        };
        let level = marking["extensions"]["extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"]["tlp_2_0"]
            .as_str()
            .expect("tlp_2_0");
        let expected: Tlp = level.parse().expect("tlp");
        let id = marking["id"].as_str().expect("id");
        let test_bundle = serde_json::json!({
            "type": "bundle",
            "id": "bundle--00000000-0000-4000-8000-000000000000",
            "objects": [marking, {
                "type": "indicator", "spec_version": "2.1",
                "id": "indicator--00000000-0000-4000-8000-000000000001",
                "created": "2026-08-01T00:00:00Z", "modified": "2026-08-01T00:00:00Z",
                "pattern": "[domain-name:value = 'marked.example.vn']", "pattern_type": "stix",
                "valid_from": "2026-08-01T00:00:00Z",
                "object_marking_refs": [id]
            }]
        });
        let (events, r) = read(test_bundle.to_string().as_bytes());
        r.expect("read");
        let recs = records(&events);
        assert_eq!(recs.len(), 1, "{}", path.display());
        assert_eq!(recs[0].attributes.tlp, expected, "{}", path.display());
        checked += 1;
    }
    // clear, green, amber, amber+strict, red.
    assert_eq!(checked, 5);
}

#[test]
fn custom_marking_learned_and_strictest_wins() {
    let bundle = r#"{"type":"bundle","id":"bundle--1","objects":[
      {"type":"marking-definition","id":"marking-definition--custom-red","name":"TLP:RED"},
      {"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '198.51.100.1']","pattern_type":"stix",
       "valid_from":"2026-08-01T00:00:00Z","confidence":85,
       "object_marking_refs":["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da","marking-definition--custom-red"]}]}"#;
    let (events, r) = read(bundle.as_bytes());
    r.expect("read");
    let rec = records(&events)[0];
    assert_eq!(rec.attributes.tlp, Tlp::Red);
    assert_eq!(rec.attributes.confidence.get(), 85);
}

#[test]
fn revoked_and_expired_are_skipped() {
    let bundle = r#"{"type":"bundle","id":"bundle--1","objects":[
      {"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '198.51.100.1']","pattern_type":"stix","valid_from":"2026-08-01T00:00:00Z","revoked":true},
      {"type":"indicator","id":"indicator--2","pattern":"[ipv4-addr:value = '198.51.100.2']","pattern_type":"stix","valid_from":"2026-08-01T00:00:00Z","valid_until":"2026-08-02T00:00:00Z"},
      {"type":"indicator","id":"indicator--3","pattern":"[ipv4-addr:value = '198.51.100.3']","pattern_type":"stix","valid_from":"2026-08-01T00:00:00Z","valid_until":"2027-01-01T00:00:00Z"}]}"#;
    let (events, r) = read(bundle.as_bytes());
    assert_eq!(
        r.expect("read"),
        ReadSummary {
            records: 1,
            skipped: 2,
            rejected: 0
        }
    );
    assert_eq!(skips(&events, SkipReason::Revoked), 2);
    let rec = records(&events)[0];
    assert_eq!(
        rec.attributes.expires_at,
        chrono::Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single()
    );
}

#[test]
fn force_keeps_the_users_attributes() {
    let bundle = r#"{"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '198.51.100.1']","pattern_type":"stix",
      "valid_from":"2026-08-01T00:00:00Z","indicator_types":["anomalous-activity"],"confidence":90,
      "object_marking_refs":["marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"]}"#;
    let mut d = defaults();
    d.force = true;
    d.threat_type = ThreatType::C2;
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    read_stix(bundle.as_bytes(), &d, &mut sink).expect("read");
    let rec = records(&events)[0];
    assert_eq!(rec.attributes.tlp, Tlp::Amber);
    assert_eq!(rec.attributes.threat_type, ThreatType::C2);
    assert_eq!(rec.attributes.confidence, Confidence::DEFAULT);
    // Without force the object's own attributes win.
    let (events, _) = read(bundle.as_bytes());
    let rec = records(&events)[0];
    assert_eq!(rec.attributes.tlp, Tlp::Red);
    assert_eq!(rec.attributes.threat_type, ThreatType::Suspicious);
}

#[test]
fn indicator_without_pattern_is_rejected_naming_the_field() {
    let (events, r) = read(&fixture("stix_missing_pattern.json"));
    assert_eq!(
        r.expect("read"),
        ReadSummary {
            records: 1,
            skipped: 0,
            rejected: 1
        }
    );
    let rej = rejections(&events);
    assert!(rej[0].1.contains("`pattern`"), "{}", rej[0].1);
    assert_eq!(
        rej[0].0,
        &Location::Object {
            id: Some("indicator--0c1e6f4e-2a43-4b0b-9a53-0d1a6e0f0002".into()),
            index: 0
        }
    );
}

#[test]
fn indicator_without_id_and_object_without_type_are_rejected() {
    let (events, r) = read(&fixture("stix_missing_id.json"));
    assert_eq!(
        r.expect("read"),
        ReadSummary {
            records: 0,
            skipped: 0,
            rejected: 2
        }
    );
    let rej = rejections(&events);
    assert!(rej[0].1.contains("`id`"), "{}", rej[0].1);
    assert!(matches!(rej[0].0, Location::Object { id: None, index: 0 }));
    assert!(rej[1].1.contains("`type`"), "{}", rej[1].1);
}

#[test]
fn unsupported_patterns_are_skipped_once_per_indicator() {
    let (events, r) = read(&fixture("stix_unsupported.json"));
    // AND, LIKE, process:name, and a YARA pattern.
    assert_eq!(
        r.expect("read"),
        ReadSummary {
            records: 0,
            skipped: 4,
            rejected: 0
        }
    );
    assert_eq!(skips(&events, SkipReason::UnsupportedPattern), 4);
}

#[test]
fn invalid_value_is_rejected_with_the_object_id_and_the_rest_kept() {
    let (events, r) = read(&fixture("stix_bad_domain.json"));
    assert_eq!(
        r.expect("read"),
        ReadSummary {
            records: 1,
            skipped: 0,
            rejected: 1
        }
    );
    let rej = rejections(&events);
    assert_eq!(
        rej[0].0,
        &Location::Object {
            id: Some("indicator--0c1e6f4e-2a43-4b0b-9a53-0d1a6e0f0032".into()),
            index: 0
        }
    );
    assert!(rej[0].1.contains("-bad-.com"), "{}", rej[0].1);
    assert_eq!(records(&events)[0].observable.value(), "good.example.vn");
}

#[test]
fn truncated_bundle_keeps_what_came_before_the_break() {
    let (events, r) = read(&fixture("stix_truncated.json"));
    let values: Vec<&str> = records(&events)
        .iter()
        .map(|r| r.observable.value())
        .collect();
    assert_eq!(values, ["first.example.vn", "198.51.100.9"]);
    assert!(
        matches!(r, Err(Error::Malformed { format: "stix", .. })),
        "{r:?}"
    );
}

#[test]
fn not_json_is_malformed() {
    for input in [
        &b"evil.com\n1.2.3.4\n"[..],
        b"",
        b"42",
        b"{\"objects\": 5}",
        b"\xff\xfe{",
    ] {
        let (events, r) = read(input);
        assert!(
            matches!(r, Err(Error::Malformed { .. })),
            "{input:?}: {r:?}"
        );
        assert!(records(&events).is_empty());
    }
    // A lone object without `type` is read as one object, and rejected.
    let (events, r) = read(b"{\"id\": \"x\"}");
    assert_eq!(
        r.expect("read"),
        ReadSummary {
            records: 0,
            skipped: 0,
            rejected: 1
        }
    );
    assert!(rejections(&events)[0].1.contains("`type`"));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for open in ["[", "{\"objects\":[", "{\"objects\":[{\"a\":"] {
        let mut data = open.to_string();
        data.push_str(&"[".repeat(10_000));
        let (_, r) = read(data.as_bytes());
        assert!(matches!(r, Err(Error::Malformed { .. })), "{open}: {r:?}");
    }
}

#[test]
fn sink_can_stop_the_reader() {
    let mut n = 0;
    let mut sink = |_: ReadEvent| -> Result<(), String> {
        n += 1;
        if n == 3 { Err("enough".into()) } else { Ok(()) }
    };
    let file = std::fs::File::open(shared("stix/tweetfeed/today.json")).expect("open");
    let r = read_stix(BufReader::new(file), &defaults(), &mut sink);
    assert!(
        matches!(r, Err(Error::Stopped { ref reason, .. }) if reason == "enough"),
        "{r:?}"
    );
    assert_eq!(n, 3);
}

fn defaults() -> ImportDefaults {
    ImportDefaults {
        source: "stix-test".into(),
        ..super::support::defaults()
    }
}
