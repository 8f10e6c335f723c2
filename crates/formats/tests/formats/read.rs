//! STIX 2.1 and MISP readers, format detection and dispatch: the real public
//! feeds in `shared/data` and small committed fixtures of broken input.

use std::collections::HashMap;
use std::path::Path;

use khien_formats::read::{
    Format, ReadEvent, ReadSummary, SkipReason, read, read_misp, read_misp_feed_dir, read_stix,
};
use khien_formats::{Error, Location};
use khien_model::{Family, IndicatorRecord, ObservableKind, ThreatType, Tlp};

use super::support::{defaults, fixture, shared};

struct Run {
    events: Vec<ReadEvent>,
    result: Result<ReadSummary, Error>,
}

impl Run {
    fn records(&self) -> Vec<&IndicatorRecord> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ReadEvent::Record(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn values(&self) -> Vec<&str> {
        self.records()
            .iter()
            .map(|r| r.observable.value())
            .collect()
    }

    fn skips(&self) -> HashMap<SkipReason, u64> {
        let mut m = HashMap::new();
        for e in &self.events {
            if let ReadEvent::Skipped { reason, .. } = e {
                *m.entry(*reason).or_default() += 1;
            }
        }
        m
    }

    fn rejections(&self) -> Vec<(&Location, &str)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ReadEvent::Rejected { location, reason } => Some((location, reason.as_str())),
                _ => None,
            })
            .collect()
    }

    fn summary(&self) -> ReadSummary {
        match &self.result {
            Ok(s) => *s,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

fn run(format: Format, data: &[u8]) -> Run {
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let result = read(format, data, &defaults(), &mut sink);
    Run { events, result }
}

fn run_file(rel: &str) -> Run {
    let data = std::fs::read(shared(rel)).expect("read data");
    let name = Path::new(rel).file_name().and_then(|n| n.to_str());
    let format = Format::detect(&data[..data.len().min(64 * 1024)], name);
    run(format, &data)
}

fn object_id(l: &Location) -> Option<&str> {
    match l {
        Location::Object { id, .. } => id.as_deref(),
        Location::File { inner, .. } => object_id(inner),
        _ => None,
    }
}

mod stix {
    use super::*;

    #[test]
    fn tweetfeed_today_every_indicator_with_tlp_clear() {
        let r = run_file("stix/tweetfeed/today.json");
        let s = r.summary();
        assert_eq!((s.records, s.rejected), (59, 0), "{:?}", r.rejections());
        // The identity and the marking definition.
        assert_eq!(s.skipped, 2);
        assert!(r.records().iter().all(|r| r.attributes.tlp == Tlp::Clear));
        let first = r.records()[0];
        assert_eq!(
            first.observable.value(),
            "cvqgs36nhw-wtrkblpw-3i2d0e-cvq79c.pages.dev"
        );
        assert_eq!(first.observable.kind(), ObservableKind::Domain);
        assert!(
            first
                .attributes
                .reference
                .as_deref()
                .is_some_and(|r| r.starts_with("indicator--"))
        );
        // `labels: ["phishing"]` is the threat type; indicator_types alone
        // says malicious-activity.
        let zoorn = r
            .records()
            .into_iter()
            .find(|r| r.observable.value() == "live-zoorn.com")
            .expect("live-zoorn.com");
        assert_eq!(zoorn.attributes.threat_type, ThreatType::Phishing);
        let plain = r
            .records()
            .into_iter()
            .find(|r| r.observable.value() == "scr33nc0nn3ctz00m.com")
            .expect("scr33nc0nn3ctz00m.com");
        assert_eq!(plain.attributes.threat_type, ThreatType::Malicious);
    }

    #[test]
    fn tweetfeed_week_1536_indicators_with_families_from_labels() {
        let r = run_file("stix/tweetfeed/week.json");
        let s = r.summary();
        assert_eq!((s.records, s.rejected, s.skipped), (1536, 0, 2));
        let mut kinds: HashMap<ObservableKind, u64> = HashMap::new();
        for rec in r.records() {
            *kinds.entry(rec.observable.kind()).or_default() += 1;
        }
        assert!(kinds[&ObservableKind::Url] > 0 && kinds[&ObservableKind::Sha256] > 0);
        assert!(kinds[&ObservableKind::Ipv4] > 0 && kinds[&ObservableKind::Domain] > 0);
        // `Remcos` names a family (the first of `["Remcos", "Xworm"]`);
        // `ransomware` is only a category.
        let families: Vec<&str> = r
            .records()
            .iter()
            .filter_map(|r| r.attributes.family.as_ref().map(Family::as_str))
            .collect();
        assert!(families.contains(&"remcos") && families.contains(&"asyncrat"));
        assert!(!families.contains(&"ransomware"));
        let c2 = r
            .records()
            .into_iter()
            .find(|r| r.observable.value() == "154.36.188.193")
            .expect("C2 address");
        assert_eq!(c2.attributes.threat_type, ThreatType::C2);
    }

    #[test]
    fn apt1_cidrs_domains_hashes_and_certificate_patterns_skipped() {
        let r = run_file("stix/apt1.json");
        let s = r.summary();
        assert_eq!((s.records, s.rejected), (10, 0), "{:?}", r.rejections());
        assert_eq!(r.skips()[&SkipReason::UnsupportedPattern], 2);
        assert_eq!(r.skips()[&SkipReason::NotIndicator], 64);
        let values = r.values();
        assert_eq!(
            &values[..5],
            &[
                "223.166.0.0/15",
                "58.246.0.0/15",
                "112.64.0.0/15",
                "139.226.0.0/15",
                "hugesoft.org"
            ]
        );
        assert_eq!(r.records()[0].observable.kind(), ObservableKind::Cidr);
        assert_eq!(r.records()[7].observable.kind(), ObservableKind::Md5);
        assert_eq!(r.records()[0].attributes.threat_type, ThreatType::Malicious);
        // No marking in the bundle: the import default.
        assert_eq!(r.records()[0].attributes.tlp, Tlp::Amber);
    }

    #[test]
    fn poisonivy_or_patterns_give_one_record_per_value() {
        let r = run_file("stix/poisonivy.json");
        let s = r.summary();
        // 65 values in 23 supported patterns; one of them is the typo
        // `'domain autuo.xicp.net'` in the upstream file.
        assert_eq!((s.records, s.rejected), (64, 1));
        let (loc, reason) = r.rejections()[0];
        assert!(object_id(loc).is_some_and(|id| id.starts_with("indicator--")));
        assert!(reason.contains("autuo.xicp.net"), "{reason}");
        assert_eq!(r.skips()[&SkipReason::UnsupportedPattern], 2);
        assert!(r.values().contains(&"www.webserver.dynssl.com"));
        assert!(r.values().contains(&"113.10.246.30"));
    }

    #[test]
    fn small_reference_bundles() {
        let r = run_file("stix/indicator-for-c2-ip-address.json");
        assert_eq!(r.values(), vec!["10.0.0.0"]);
        let r = run_file("stix/indicators-for-C2-with-COA.json");
        assert_eq!(r.summary().records, 2);
        assert_eq!(r.records()[1].observable.kind(), ObservableKind::Sha256);
        let r = run_file("stix/malicious-email-indicator-with-attachment.json");
        assert_eq!(r.summary().records, 0);
        assert_eq!(r.skips()[&SkipReason::UnsupportedPattern], 2);
        let r = run_file("stix/infrastructure.json");
        assert_eq!(r.summary().records, 0);
        assert_eq!(r.skips()[&SkipReason::NotIndicator], 10);
    }

    #[test]
    fn tlp2_marking_definitions_in_the_same_bundle() {
        for (file, tlp) in [
            ("stix/tlp2/tlp-amber.json", Tlp::Amber),
            ("stix/tlp2/tlp-clear.json", Tlp::Clear),
            (
                "stix/tlp2/marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1.json",
                Tlp::Red,
            ),
            (
                "stix/tlp2/marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003.json",
                Tlp::AmberStrict,
            ),
            (
                "stix/tlp2/marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb.json",
                Tlp::Green,
            ),
        ] {
            let text = std::fs::read_to_string(shared(file)).expect("read");
            let marking: serde_json::Value = serde_json::from_str(&text).expect("json");
            let def = marking["objects"][0].clone();
            let id = def["id"].as_str().expect("id").to_string();
            // The official object under an id of our own, so that only the
            // object's content (name, tlp_2_0 extension) can say the TLP.
            let mut renamed = def.clone();
            renamed["id"] = "marking-definition--00000000-0000-4000-8000-000000000000".into();
            for (m, mid) in [
                (def, id.clone()),
                (
                    renamed,
                    "marking-definition--00000000-0000-4000-8000-000000000000".to_string(),
                ),
            ] {
                let bundle = serde_json::json!({"type": "bundle", "id": "bundle--x", "objects": [
                    m,
                    {"type": "indicator", "id": "indicator--x", "pattern": "[domain-name:value = 'evil.example']",
                     "pattern_type": "stix", "object_marking_refs": [mid]}
                ]});
                let r = run(Format::Stix, bundle.to_string().as_bytes());
                assert_eq!(r.records()[0].attributes.tlp, tlp, "{file} {mid}");
            }
        }
    }

    #[test]
    fn tlp1_fixed_ids_without_definitions() {
        for (id, tlp) in [
            ("613f2e26-407d-48c7-9eca-b8e91df99dc9", Tlp::Clear),
            ("34098fce-860f-48ae-8e50-ebd3cc5e41da", Tlp::Green),
            ("f88d31f6-486f-44da-b317-01333bde0b82", Tlp::Amber),
            ("5e57c739-391a-4eb3-b6be-7d15ca92d5ed", Tlp::Red),
        ] {
            let bundle = format!(
                r#"{{"type":"bundle","id":"bundle--x","objects":[{{"type":"indicator","id":"indicator--x",
                "pattern":"[domain-name:value = 'evil.example']","pattern_type":"stix",
                "object_marking_refs":["marking-definition--{id}"]}}]}}"#
            );
            assert_eq!(
                run(Format::Stix, bundle.as_bytes()).records()[0]
                    .attributes
                    .tlp,
                tlp
            );
        }
    }

    #[test]
    fn extension_definition_without_bundle_type_is_rejected_by_field() {
        let r =
            run_file("stix/tlp2/extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d.json");
        let s = r.summary();
        assert_eq!((s.records, s.skipped, s.rejected), (0, 1, 1));
        assert!(
            r.rejections()[0].1.contains("`type`"),
            "{:?}",
            r.rejections()
        );
    }

    #[test]
    fn bad_bundle_fixture_reports_each_object() {
        let r = run(Format::Stix, &fixture("bad_objects.stix.json"));
        let s = r.summary();
        let rej: Vec<(Option<&str>, &str)> = r
            .rejections()
            .into_iter()
            .map(|(l, reason)| (object_id(l), reason))
            .collect();
        let reason_of = |id: &str| {
            rej.iter()
                .filter(|(i, _)| *i == Some(id))
                .map(|(_, r)| *r)
                .collect::<Vec<_>>()
        };
        assert!(reason_of("indicator--no-pattern")[0].contains("`pattern`"));
        assert!(reason_of("indicator--no-type")[0].contains("`pattern_type`"));
        assert!(reason_of("indicator--no-object-type")[0].contains("`type`"));
        assert!(
            rej.iter().any(|(id, r)| id.is_none() && r.contains("`id`")),
            "{rej:?}"
        );
        assert!(reason_of("indicator--syntax")[0].contains("`pattern`"));
        // Four bad values of one OR pattern, each rejected; the good one kept.
        let bad = reason_of("indicator--bad-values");
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert!(bad[0].contains("-bad-.com") && bad[1].contains("63"));
        assert!(bad[2].contains("exa mple.com") && bad[3].contains("10.0.0.0/33"));
        assert!(reason_of("indicator--conf")[0].contains("`confidence`"));
        // The trailing string is not an object.
        assert!(rej.iter().any(|(_, r)| r.contains("not a JSON object")));
        // The bundle has no "type": reported once, after its objects.
        assert!(rej.last().is_some_and(|(_, r)| r.contains("bundle")));
        assert_eq!(s.rejected, 12, "{rej:?}");

        assert_eq!(
            r.values(),
            vec!["good.example.com", "198.51.100.7", "198.51.100.7"]
        );
        // Duplicates are passed on: merging is the store's job.
        let dup = r.records()[1];
        assert!(dup.attributes.expires_at.is_some());
        let skips = r.skips();
        assert_eq!(skips[&SkipReason::NotIndicator], 1);
        assert_eq!(skips[&SkipReason::UnsupportedPattern], 2);
        assert_eq!(skips[&SkipReason::Revoked], 2);
    }

    #[test]
    fn truncated_json_fails_after_delivering_what_came_before() {
        let r = run(Format::Stix, &fixture("cut_bundle.stix.json"));
        assert_eq!(r.values(), vec!["first.example", "second.example"]);
        let err = r.result.expect_err("truncated");
        assert!(
            matches!(
                err,
                Error::Malformed {
                    format: "stix",
                    location: Location::Line(_),
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn not_json_at_all() {
        for input in [
            &b"evil.com\n"[..],
            b"",
            b"{\"type\": \"bundle\", \"objects\": 3}",
            b"{} trailing",
        ] {
            let r = run(Format::Stix, input);
            assert!(
                matches!(r.result, Err(Error::Malformed { .. })),
                "{:?}",
                r.result
            );
        }
    }

    #[test]
    fn streams_a_large_generated_bundle() {
        // 200k indicators produced on the fly: nothing is collected by the
        // sink, and the reader must not need the whole bundle.
        struct Gen {
            n: u64,
            i: u64,
            buf: Vec<u8>,
            done: bool,
        }
        impl std::io::Read for Gen {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                while self.buf.len() < out.len() && !self.done {
                    if self.i == 0 {
                        self.buf
                            .extend_from_slice(br#"{"type":"bundle","id":"bundle--g","objects":["#);
                    }
                    if self.i < self.n {
                        let sep = if self.i > 0 { "," } else { "" };
                        self.buf.extend_from_slice(format!(
                            r#"{sep}{{"type":"indicator","id":"indicator--{i}","pattern":"[domain-name:value = 'h{i}.evil.example']","pattern_type":"stix"}}"#,
                            i = self.i
                        ).as_bytes());
                        self.i += 1;
                    } else {
                        self.buf.extend_from_slice(b"]}");
                        self.done = true;
                    }
                }
                let k = out.len().min(self.buf.len());
                out[..k].copy_from_slice(&self.buf[..k]);
                self.buf.drain(..k);
                Ok(k)
            }
        }
        let input = std::io::BufReader::new(Gen {
            n: 200_000,
            i: 0,
            buf: Vec::new(),
            done: false,
        });
        let mut count = 0u64;
        let mut sink = |e: ReadEvent| -> Result<(), String> {
            if matches!(e, ReadEvent::Record(_)) {
                count += 1;
            }
            Ok(())
        };
        let s = read_stix(input, &defaults(), &mut sink).expect("read");
        assert_eq!((s.records, count), (200_000, 200_000));
    }

    #[test]
    fn force_overrides_the_bundle() {
        let mut d = defaults();
        d.force = true;
        d.tlp = Tlp::Red;
        d.threat_type = ThreatType::C2;
        let data = std::fs::read(shared("stix/tweetfeed/today.json")).expect("read");
        let mut recs = Vec::new();
        let mut sink = |e: ReadEvent| -> Result<(), String> {
            if let ReadEvent::Record(r) = e {
                recs.push(r);
            }
            Ok(())
        };
        read_stix(&data[..], &d, &mut sink).expect("read");
        assert!(recs.iter().all(|r| r.attributes.tlp == Tlp::Red && r.attributes.threat_type == ThreatType::C2));
    }
}

mod misp {
    use super::*;

    #[test]
    fn tweetfeed_event_matches_the_stix_export() {
        let r = run_file("misp/feed-tweetfeed/67317f07-5461-555f-9491-d7685196f614.json");
        let s = r.summary();
        assert_eq!((s.records, s.skipped, s.rejected), (59, 0, 0));
        assert!(r.records().iter().all(|r| r.attributes.tlp == Tlp::Clear));
        // Same IOCs as the STIX file of the same day.
        let stix = run_file("stix/tweetfeed/today.json");
        let mut a: Vec<&str> = r.values();
        let mut b: Vec<&str> = stix.values();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        let first = r.records()[0];
        assert_eq!(
            first.attributes.reference.as_deref(),
            Some(
                "misp:event/67317f07-5461-555f-9491-d7685196f614/attribute/061fa960-dc3d-55fa-b600-b2610d02e5b0"
            )
        );
        assert_eq!(first.attributes.first_seen.timestamp(), 1_787_367_215);
    }

    #[test]
    fn feed_directory_reads_every_listed_event() {
        let mut events = Vec::new();
        let mut sink = |e: ReadEvent| -> Result<(), String> {
            events.push(e);
            Ok(())
        };
        let s = read_misp_feed_dir(&shared("misp/feed-tweetfeed"), &defaults(), &mut sink)
            .expect("feed");
        // 144 + 172 + 59 attributes, as many as hashes.csv lines.
        assert_eq!((s.records, s.skipped, s.rejected), (375, 0, 0));
        let hashes =
            std::fs::read_to_string(shared("misp/feed-tweetfeed/hashes.csv")).expect("csv");
        assert_eq!(hashes.lines().count() as u64, s.records);
    }

    #[test]
    fn feed_directory_with_a_missing_file_and_a_hostile_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = shared("misp/feed-tweetfeed/67317f07-5461-555f-9491-d7685196f614.json");
        std::fs::copy(
            &src,
            dir.path().join("67317f07-5461-555f-9491-d7685196f614.json"),
        )
        .expect("copy");
        std::fs::write(
            dir.path().join("manifest.json"),
            r#"{"67317f07-5461-555f-9491-d7685196f614":{},"00000000-0000-4000-8000-000000000000":{}}"#,
        )
        .expect("write");
        let mut events = Vec::new();
        let mut sink = |e: ReadEvent| -> Result<(), String> {
            events.push(e);
            Ok(())
        };
        let s = read_misp_feed_dir(dir.path(), &defaults(), &mut sink).expect("feed");
        assert_eq!((s.records, s.rejected), (59, 1));
        assert!(events.iter().any(|e| matches!(e,
            ReadEvent::Rejected { location: Location::File { path, .. }, .. }
                if path == "00000000-0000-4000-8000-000000000000.json")));

        std::fs::write(
            dir.path().join("manifest.json"),
            r#"{"../../etc/passwd":{}}"#,
        )
        .expect("write");
        let mut sink = |_: ReadEvent| -> Result<(), String> { Ok(()) };
        let err = read_misp_feed_dir(dir.path(), &defaults(), &mut sink).expect_err("hostile");
        assert!(err.to_string().contains("not an event uuid"), "{err}");
    }

    #[test]
    fn eset_oceanlotus_older_response_shape() {
        let r = run_file("misp/eset/oceanlotus.misp.event.json");
        let s = r.summary();
        // ESET publishes every attribute with to_ids false: read, and
        // skipped as not meant for detection.
        assert_eq!((s.records, s.rejected), (0, 0));
        assert_eq!(r.skips()[&SkipReason::NotForDetection], 92);
        assert_eq!(r.skips()[&SkipReason::UnsupportedType], 19);
        let r = run_file("misp/eset/oceanlotus-wateringhole-2018.misp.event.json");
        assert_eq!(r.skips()[&SkipReason::NotForDetection], 73);
        let r = run_file("misp/eset/signsight-misp-event.json");
        assert_eq!(r.summary().skipped, 13);
    }

    #[test]
    fn eset_event_with_detection_flags_gets_actor_family() {
        // The same event as a member would re-share it, flagged for
        // detection: the galaxy tag names the actor.
        let text =
            std::fs::read_to_string(shared("misp/eset/oceanlotus.misp.event.json")).expect("read");
        let text = text.replace("\"to_ids\": false", "\"to_ids\": true");
        let r = run(Format::Misp, text.as_bytes());
        let s = r.summary();
        // 62 domains, 22 addresses, 3 domain|ip (two records each), 5 hashes.
        assert_eq!(s.records, 62 + 22 + 3 * 2 + 5, "{:?}", r.rejections());
        assert!(
            r.records()
                .iter()
                .all(|r| r.attributes.family.as_ref().map(Family::as_str) == Some("apt32"))
        );
        let rec = r.records()[0];
        assert!(rec.attributes.reference.as_deref().is_some_and(|x| {
            x.starts_with("misp:event/5a610659-d718-4a1f-b020-04d80a016219/attribute/")
        }));
    }

    #[test]
    fn pymisp_events() {
        let r = run_file("misp/long_event.json");
        let s = r.summary();
        assert_eq!(s.records + s.rejected, 250);
        assert_eq!(r.skips()[&SkipReason::UnsupportedType], 99);
        assert_eq!(r.skips()[&SkipReason::NotForDetection], 21);
        assert!(r.records().iter().all(|r| r.attributes.tlp == Tlp::Clear));
        // `filename|sha256` gives the hash.
        assert!(
            r.records()
                .iter()
                .any(|r| r.observable.kind() == ObservableKind::Sha256)
        );
        // Bare events (no `Event` wrapper) from PyMISP's tests.
        let r = run_file("misp/existing_event.json");
        assert_eq!(r.summary().records + r.summary().rejected, 68);
        let r = run_file("misp/event_obj_attr_tag.json");
        assert_eq!(r.summary().records, 1);
    }

    #[test]
    fn bad_attributes_fixture() {
        let r = run(Format::Misp, &fixture("bad_attributes.misp.json"));
        let s = r.summary();
        assert_eq!(
            (s.records, s.skipped, s.rejected),
            (2, 2, 6),
            "{:?}",
            r.rejections()
        );
        let rej = r.rejections();
        let id = |i: usize| object_id(rej[i].0);
        assert_eq!(id(0), Some("a0000000-0000-4000-8000-000000000001"));
        assert!(rej[0].1.contains("-bad-.com"));
        assert!(rej[1].1.contains("10.0.0.0/33"));
        assert!(rej[2].1.contains("'|'"));
        assert!(rej[3].1.contains("`type`"));
        assert!(rej[4].1.contains("`value`"));
        assert!(rej[5].1.contains("exa mple.com"));
        assert!(matches!(rej[5].0, Location::Object { index: 5, .. }));
        // The duplicate is passed on; the attribute's own galaxy tag beats
        // the event's actor.
        let recs = r.records();
        assert_eq!(r.values(), vec!["good.example.com", "good.example.com"]);
        assert_eq!(
            recs[0].attributes.family.as_ref().map(Family::as_str),
            Some("plugx")
        );
        assert_eq!(
            recs[1].attributes.family.as_ref().map(Family::as_str),
            Some("apt32")
        );
        assert!(recs.iter().all(|r| r.attributes.tlp == Tlp::AmberStrict));
        assert_eq!(
            recs[0].attributes.first_seen.to_rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );
    }

    #[test]
    fn truncated_events_fail_after_the_complete_ones() {
        let r = run(Format::Misp, &fixture("cut_events.misp.json"));
        assert_eq!(r.values(), vec!["before-the-break.example"]);
        assert!(
            matches!(r.result, Err(Error::Malformed { format: "misp", .. })),
            "{:?}",
            r.result
        );
        let r = run(Format::Misp, b"[1, \"x\", null]");
        assert_eq!(r.summary().rejected, 3);
    }

    #[test]
    fn read_misp_directly() {
        let data = std::fs::read(shared(
            "misp/feed-tweetfeed/06159a36-6012-5d68-bff5-7fac1110a2a6.json",
        ))
        .expect("read");
        let mut n = 0;
        let mut sink = |_: ReadEvent| -> Result<(), String> {
            n += 1;
            Ok(())
        };
        let s = read_misp(&data[..], &defaults(), &mut sink).expect("read");
        assert_eq!((s.records, n), (144, 144));
    }
}

mod detect {
    use super::*;

    #[test]
    fn real_files_are_detected() {
        let head = |rel: &str| {
            let d = std::fs::read(shared(rel)).expect("read");
            d[..d.len().min(8192)].to_vec()
        };
        for f in [
            "stix/apt1.json",
            "stix/tweetfeed/week.json",
            "stix/tlp2/tlp-amber.json",
        ] {
            assert_eq!(Format::detect(&head(f), Some(f)), Format::Stix, "{f}");
        }
        for f in [
            "misp/misp_event.json",
            "misp/eset/oceanlotus.misp.event.json",
            "misp/feed-tweetfeed/manifest.json",
            "misp/feed-tweetfeed/ec185261-dda2-5256-bf1a-f93d913192fa.json",
        ] {
            assert_eq!(Format::detect(&head(f), Some(f)), Format::Misp, "{f}");
        }
        assert_eq!(
            Format::detect(&head("maltrail/emotet.txt"), Some("emotet.txt")),
            Format::List
        );
    }

    #[test]
    fn garbage_never_panics_in_any_reader() {
        let samples: [&[u8]; 8] = [
            b"",
            b"\xff\xfe\x00",
            b"[[[[[[[[[[[[[[[[[[[[",
            b"{\"objects\": [{\"type\": \"indicator\", \"pattern\": \"[[[[\", \"pattern_type\": \"stix\", \"id\": \"i\"}]}",
            b"{\"Event\": {\"Attribute\": [{\"type\": \"domain|ip\", \"value\": \"|\", \"to_ids\": 1}]}}",
            b"{\"Event\": {\"Attribute\": {\"not\": \"a list\"}}}",
            b"a,b,c\n\"unterminated,\n",
            b"\x00\x01\x02\n\n\r\r\n",
        ];
        for s in samples {
            for f in [
                Format::List,
                Format::Stix,
                Format::Misp,
                Format::detect(s, None),
            ] {
                let _ = run(f, s);
            }
        }
    }
}
