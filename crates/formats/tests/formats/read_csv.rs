//! CSV feeds: presets for URLhaus, ThreatFox and Shadowserver dumps, custom
//! mappings, and bad rows reported by line without stopping the read.

use khien_formats::Location;
use khien_formats::read::{CsvMapping, Format, ReadEvent, SkipReason, read_csv};
use khien_model::{ObservableKind, ThreatType};

use super::support::{defaults, fixture, records};

fn collect(format: Format, data: &[u8]) -> Vec<ReadEvent> {
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let Format::Csv(mapping) = format else {
        panic!("not CSV: {format:?}")
    };
    read_csv(data, &mapping, &defaults(), &mut sink).expect("read");
    events
}

fn rejected(events: &[ReadEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Rejected {
                location: Location::Line(n),
                reason,
            } => Some((*n, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn urlhaus_dump_is_detected_and_mapped() {
    let data = fixture("urlhaus.csv");
    let format = Format::detect(&data, Some("csv.txt"));
    assert_eq!(
        format,
        Format::Csv(CsvMapping::preset("urlhaus").expect("preset"))
    );
    let events = collect(format, &data);
    let recs = records(&events);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].observable.value(), "http://123.5.171.58:46783/i");
    assert_eq!(
        recs[1].observable.value(),
        "https://example-payload.top/loader.EXE"
    );
    assert_eq!(recs[2].observable.value(), "http://dl.evil-cdn.vn/a.apk");
    assert!(
        recs.iter()
            .all(|r| r.attributes.threat_type == ThreatType::MalwareDownload)
    );
    assert_eq!(
        recs[0].attributes.reference.as_deref(),
        Some("https://urlhaus.abuse.ch/url/3101001/")
    );
    assert_eq!(
        recs[0].attributes.first_seen.to_rfc3339(),
        "2026-08-22T09:51:07+00:00"
    );
    let bad = rejected(&events);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, 9, "the -bad-.com row");
    assert!(bad[0].1.contains("hyphen"), "{}", bad[0].1);
}

#[test]
fn threatfox_export_with_spaces_after_commas() {
    let data = fixture("threatfox.csv");
    let format = Format::detect(&data, None);
    let events = collect(format, &data);
    let recs = records(&events);
    let values: Vec<_> = recs
        .iter()
        .map(|r| (r.observable.kind(), r.observable.value()))
        .collect();
    assert_eq!(
        values,
        vec![
            (ObservableKind::Ipv4, "45.61.136.10"),
            (ObservableKind::Domain, "lumma-c2.shop"),
            (ObservableKind::Url, "http://185.172.128.7/stage2.bin"),
            (ObservableKind::Md5, "0123456789abcdef0123456789abcdef"),
        ]
    );
    assert_eq!(
        recs[0].attributes.family.as_ref().map(|f| f.as_str()),
        Some("cobalt-strike")
    );
    assert_eq!(recs[0].attributes.threat_type, ThreatType::C2);
    assert_eq!(recs[0].attributes.confidence.get(), 100);
    assert_eq!(recs[1].attributes.confidence.get(), 75);
    assert!(recs[1].attributes.last_seen > recs[1].attributes.first_seen);
    assert_eq!(
        recs[2].attributes.family, None,
        "`Unknown malware` is no family"
    );
    assert_eq!(recs[2].attributes.threat_type, ThreatType::MalwareDownload);
    let bad = rejected(&events);
    assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![10, 11]);
    assert!(bad[1].1.contains("confidence"), "{}", bad[1].1);
}

#[test]
fn shadowserver_report() {
    let data = fixture("shadowserver.csv");
    let format = Format::detect(&data, Some("2026-08-21-drone.csv"));
    let events = collect(format, &data);
    let recs = records(&events);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].observable.value(), "203.113.131.5");
    assert_eq!(recs[1].observable.kind(), ObservableKind::Ipv6);
    assert_eq!(
        recs[1].attributes.family.as_ref().map(|f| f.as_str()),
        Some("andromeda")
    );
    assert_eq!(rejected(&events).len(), 1);
}

#[test]
fn custom_mapping_with_semicolons_and_named_columns() {
    let data = fixture("custom.csv");
    let m = CsvMapping::parse("value=indicator,type=why,first_seen=first seen,delimiter=;")
        .expect("mapping");
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    read_csv(&data[..], &m, &defaults(), &mut sink).expect("read");
    let recs = records(&events);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].observable.value(), "+84912345678");
    assert!(
        recs.iter()
            .all(|r| r.attributes.threat_type == ThreatType::Scam)
    );
    assert_eq!(
        rejected(&events).len(),
        1,
        "a ; inside quotes stays in the value, which is then invalid"
    );
    assert!(
        matches!(
            events[0],
            ReadEvent::Skipped {
                reason: SkipReason::Comment,
                ..
            }
        ),
        "header"
    );
}

#[test]
fn mapping_naming_a_missing_column_is_a_clear_error() {
    let m = CsvMapping::parse("value=ioc").expect("mapping");
    let mut sink = |_: ReadEvent| -> Result<(), String> { Ok(()) };
    let err = read_csv(
        &b"indicator,type\nevil.com,c2\n"[..],
        &m,
        &defaults(),
        &mut sink,
    )
    .expect_err("no such column");
    assert!(err.to_string().contains("\"ioc\""), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn headerless_csv_reads_first_column() {
    let events = collect(
        Format::Csv(CsvMapping::default()),
        b"evil.com,c2\n1.2.3.4,c2\n\"unterminated,x\n",
    );
    assert_eq!(records(&events).len(), 2);
    let bad = rejected(&events);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].1.contains("unterminated"));
}
