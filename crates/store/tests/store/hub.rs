//! What the hub needs from the store: idempotent hit batches, exact-host
//! marks, the snapshot stream and its change marker, API keys.

use std::net::IpAddr;

use chrono::{Duration, Utc};
use khien_model::{Hit, ObservableKind, ThreatType};
use khien_store::{
    ApiKeyInfo, ApiKeyRef, Error, HitBatch, HitBatchOutcome, HitFilter, HitTotals, NewApiKey,
    SnapshotRow, Store,
};

use super::{TestDb, day, obs, rec, with};

store_tests!(
    hit_batch_is_idempotent,
    hits_of_one_key_merge_across_and_within_batches,
    concurrent_duplicate_batches_apply_once,
    hit_naming_another_sensor_applies_nothing,
    batch_id_is_checked,
    hits_filter_by_client_indicator_sensor_and_time,
    hit_count_saturates_instead_of_overflowing,
    exact_host_round_trip,
    import_marks_domains_exact_host_on_request,
    snapshot_rows_exclude_allowlisted_expired_and_other_kinds,
    changed_marker_moves_with_every_snapshot_change,
    api_key_create_verify_revoke_and_wrong_keys,
);

fn hit(client: &str, indicator: &str, count: u64, minute: i64) -> Hit {
    let bucket = day(5);
    Hit {
        bucket,
        client: client.parse().unwrap(),
        client_port: None,
        indicator: indicator.into(),
        kind: ObservableKind::Domain,
        indicator_id: Some(7),
        family: Some("mirai".into()),
        threat_type: ThreatType::C2,
        count,
        first_seen: bucket + Duration::minutes(minute),
        last_seen: bucket + Duration::minutes(minute + 1),
        sensor: "s1".into(),
        evidence: Some(format!("m{minute}.{indicator}")),
    }
}

/// The ingest calls of these tests: organisation 1, nothing attributed.
trait Ingest {
    fn record(
        &mut self,
        sensor: &str,
        batch_id: &str,
        hits: &[Hit],
    ) -> Result<HitBatchOutcome, Error>;
    fn key(&mut self, name: &str, scopes: &[&str]) -> Result<(ApiKeyInfo, String), Error>;
}

impl Ingest for Store {
    fn record(
        &mut self,
        sensor: &str,
        batch_id: &str,
        hits: &[Hit],
    ) -> Result<HitBatchOutcome, Error> {
        self.record_hits(&HitBatch {
            org_id: 1,
            sensor,
            batch_id,
            hits,
            subscribers: &[],
        })
    }

    fn key(&mut self, name: &str, scopes: &[&str]) -> Result<(ApiKeyInfo, String), Error> {
        self.create_api_key(&NewApiKey {
            org_id: 1,
            name,
            scopes,
            created_by: None,
        })
    }
}

fn totals(s: &mut Store) -> (u64, u64) {
    let HitTotals { rows, count } = s.hit_totals().unwrap();
    (rows, count)
}

fn hit_batch_is_idempotent(db: &TestDb) {
    let mut s = db.open();
    let batch = [
        hit("192.0.2.1", "evil.com", 3, 1),
        hit("192.0.2.2", "evil.com", 4, 2),
    ];
    let first = s.record("s1", "b-1", &batch).unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.stored, 2);
    let again = s.record("s1", "b-1", &batch).unwrap();
    assert!(again.duplicate, "same id again is a duplicate");
    assert_eq!(
        again.stored, 2,
        "a retry is told what the first call stored"
    );
    assert_eq!(totals(&mut s), (2, 7));
    // The id is per sensor: another sensor may use it.
    let mut other = batch.clone();
    for h in &mut other {
        h.sensor = "s2".into();
    }
    assert!(!s.record("s2", "b-1", &other).unwrap().duplicate);
    assert_eq!(totals(&mut s), (4, 14));
}

fn hits_of_one_key_merge_across_and_within_batches(db: &TestDb) {
    let mut s = db.open();
    let mut a = hit("192.0.2.1", "evil.com", 2, 10);
    a.evidence = None;
    let b = hit("192.0.2.1", "evil.com", 3, 20);
    s.record("s1", "b-1", &[a.clone(), b.clone()]).unwrap();
    let c = hit("192.0.2.1", "evil.com", 5, 5);
    let mut d = hit("192.0.2.1", "evil.com", 1, 30);
    d.family = Some("other".into());
    s.record("s1", "b-2", &[c.clone(), d.clone()]).unwrap();
    let stored = s.hits(&HitFilter::default()).unwrap();
    assert_eq!(stored.len(), 1);
    let mut expected = a;
    for part in [&b, &c, &d] {
        expected.merge(part);
    }
    assert_eq!(stored[0], expected);
    assert_eq!(stored[0].count, 11);
    assert_eq!(stored[0].first_seen, c.first_seen);
    assert_eq!(stored[0].last_seen, d.last_seen);
    assert_eq!(stored[0].evidence, c.evidence, "the earliest part's sample");
    assert_eq!(
        stored[0].family.as_deref(),
        Some("mirai"),
        "the first part's"
    );
}

fn concurrent_duplicate_batches_apply_once(db: &TestDb) {
    // Migrate once before the threads race.
    drop(db.open());
    let batch: Vec<Hit> = (0..200)
        .map(|i| hit(&format!("198.51.100.{}", i % 250), "evil.com", 1, 1))
        .collect();
    let outcomes: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let batch = &batch;
                scope.spawn(move || {
                    let mut s = db.open();
                    s.record("s1", "same", batch).unwrap().duplicate
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|d| !**d).count(), 1, "{outcomes:?}");
    assert_eq!(totals(&mut db.open()), (200, 200));
}

fn hit_naming_another_sensor_applies_nothing(db: &TestDb) {
    let mut s = db.open();
    let mut bad = hit("192.0.2.1", "evil.com", 1, 1);
    bad.sensor = "intruder".into();
    let r = s.record("s1", "b-1", &[hit("192.0.2.2", "evil.com", 1, 1), bad]);
    assert!(
        matches!(r, Err(Error::SensorMismatch { index: 1, .. })),
        "{r:?}"
    );
    assert_eq!(totals(&mut s), (0, 0));
    // The id was not used up by the refused batch.
    let ok = s
        .record("s1", "b-1", &[hit("192.0.2.2", "evil.com", 1, 1)])
        .unwrap();
    assert!(!ok.duplicate);
}

fn batch_id_is_checked(db: &TestDb) {
    let mut s = db.open();
    let h = [hit("192.0.2.1", "evil.com", 1, 1)];
    for bad in ["", &"x".repeat(129), "a\nb"] {
        let r = s.record("s1", bad, &h);
        assert!(matches!(r, Err(Error::Invalid { .. })), "{bad:?}: {r:?}");
    }
    assert!(s.record("s1", &"x".repeat(128), &h).is_ok());
}

fn hits_filter_by_client_indicator_sensor_and_time(db: &TestDb) {
    let mut s = db.open();
    let mut later = hit("192.0.2.1", "bad.org", 1, 1);
    later.bucket = day(6);
    s.record(
        "s1",
        "b-1",
        &[
            hit("192.0.2.1", "evil.com", 1, 1),
            hit("2001:db8::1", "evil.com", 1, 1),
            later,
        ],
    )
    .unwrap();
    let mut s2 = hit("192.0.2.1", "evil.com", 1, 1);
    s2.sensor = "s2".into();
    s.record("s2", "b-1", &[s2]).unwrap();
    let n = |s: &mut Store, f: HitFilter| s.hits(&f).unwrap().len();
    let client: IpAddr = "192.0.2.1".parse().unwrap();
    let v6: IpAddr = "2001:0db8:0:0::1".parse().unwrap();
    assert_eq!(n(&mut s, HitFilter::default()), 4);
    let by_client = HitFilter {
        client: Some(client),
        ..Default::default()
    };
    assert_eq!(n(&mut s, by_client.clone()), 3);
    let by_v6 = HitFilter {
        client: Some(v6),
        ..Default::default()
    };
    assert_eq!(n(&mut s, by_v6), 1, "addresses compare in canonical form");
    let f = HitFilter {
        indicator: Some("evil.com".into()),
        sensor: Some("s1".into()),
        ..Default::default()
    };
    assert_eq!(n(&mut s, f), 2);
    let f = HitFilter {
        since: Some(day(6)),
        ..by_client.clone()
    };
    assert_eq!(n(&mut s, f), 1);
    let f = HitFilter {
        until: Some(day(6)),
        ..by_client.clone()
    };
    assert_eq!(n(&mut s, f), 2);
    let f = HitFilter {
        limit: Some(1),
        ..by_client
    };
    assert_eq!(n(&mut s, f), 1);
}

fn hit_count_saturates_instead_of_overflowing(db: &TestDb) {
    let mut s = db.open();
    s.record("s1", "b-1", &[hit("192.0.2.1", "evil.com", u64::MAX, 1)])
        .unwrap();
    s.record("s1", "b-2", &[hit("192.0.2.1", "evil.com", 10, 1)])
        .unwrap();
    let h = s.hits(&HitFilter::default()).unwrap();
    assert_eq!(h[0].count, i64::MAX as u64);
}

fn exact_host_round_trip(db: &TestDb) {
    let mut s = db.open();
    super::import(&mut s, &[rec("shared.example.com", "feed", 50, day(5))]);
    assert_eq!(
        s.exact_host(&obs("shared.example.com")).unwrap(),
        Some(false)
    );
    assert!(s.set_exact_host(&obs("shared.example.com"), true).unwrap());
    assert_eq!(
        s.exact_host(&obs("shared.example.com")).unwrap(),
        Some(true)
    );
    assert!(s.set_exact_host(&obs("shared.example.com"), true).unwrap());
    assert!(s.set_exact_host(&obs("shared.example.com"), false).unwrap());
    assert_eq!(
        s.exact_host(&obs("shared.example.com")).unwrap(),
        Some(false)
    );
    assert!(!s.set_exact_host(&obs("unknown.example.com"), true).unwrap());
    assert_eq!(s.exact_host(&obs("unknown.example.com")).unwrap(), None);
    let r = s.set_exact_host(&obs("192.0.2.1"), true);
    assert!(matches!(r, Err(Error::Invalid { .. })), "{r:?}");
    // A re-import never clears the mark.
    s.set_exact_host(&obs("shared.example.com"), true).unwrap();
    super::import(&mut s, &[rec("shared.example.com", "feed", 50, day(6))]);
    assert_eq!(
        s.exact_host(&obs("shared.example.com")).unwrap(),
        Some(true)
    );
}

fn import_marks_domains_exact_host_on_request(db: &TestDb) {
    let mut s = db.open();
    super::import(&mut s, &[rec("old.example.com", "feed", 50, day(5))]);
    let mut imp = s.import(false).unwrap();
    imp.mark_exact_host(true);
    let records = [
        rec("old.example.com", "other", 50, day(5)),
        rec("new.example.com", "other", 50, day(5)),
        rec("192.0.2.9", "other", 50, day(5)),
    ];
    imp.add_batch(&records, &[None, None, None]).unwrap();
    imp.commit().unwrap();
    for d in ["old.example.com", "new.example.com"] {
        assert_eq!(s.exact_host(&obs(d)).unwrap(), Some(true), "{d}");
    }
}

fn snapshot(s: &mut Store, now: chrono::DateTime<Utc>) -> Vec<SnapshotRow> {
    let mut rows = Vec::new();
    let n = s
        .for_each_snapshot_entry(now, &mut |r| {
            rows.push(r);
            Ok(())
        })
        .unwrap();
    assert_eq!(n as usize, rows.len());
    rows
}

fn snapshot_rows_exclude_allowlisted_expired_and_other_kinds(db: &TestDb) {
    let mut s = db.open();
    let records = [
        with(rec("evil.com", "feed", 50, day(5)), |a| {
            a.family = Some(khien_model::Family::new("emotet").unwrap());
        }),
        rec("198.51.100.7", "feed", 50, day(5)),
        rec("203.0.113.0/24", "feed", 50, day(5)),
        rec("http://evil.com/x", "feed", 50, day(5)),
        rec(&"a".repeat(64), "feed", 50, day(5)),
        rec("bad@evil.com", "feed", 50, day(5)),
        with(rec("gone.com", "feed", 50, day(1)), |a| {
            a.expires_at = Some(day(2));
        }),
        rec("google.com", "feed", 50, day(5)),
    ];
    let verdicts: Vec<Option<String>> = records
        .iter()
        .map(|r| (r.observable.value() == "google.com").then(|| "top-domains".to_string()))
        .collect();
    let mut imp = s.import(false).unwrap();
    imp.add_batch(&records, &verdicts).unwrap();
    imp.commit().unwrap();
    s.set_exact_host(&obs("evil.com"), true).unwrap();
    let rows = snapshot(&mut s, day(10));
    let got: Vec<(ObservableKind, &str)> =
        rows.iter().map(|r| (r.kind, r.value.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (ObservableKind::Cidr, "203.0.113.0/24"),
            (ObservableKind::Domain, "evil.com"),
            (ObservableKind::Ipv4, "198.51.100.7"),
            (ObservableKind::Sha256, "a".repeat(64).as_str()),
            (ObservableKind::Url, "http://evil.com/x"),
        ]
    );
    let evil = &rows[1];
    assert!(evil.exact_host);
    assert_eq!(evil.family.as_deref(), Some("emotet"));
    assert_eq!(evil.threat_type, ThreatType::C2);
    assert_eq!(
        Some(evil.id),
        s.get(&obs("evil.com")).unwrap().map(|i| i.id)
    );
    assert!(
        rows.iter()
            .filter(|r| r.value != "evil.com")
            .all(|r| !r.exact_host)
    );
    // Before its expiry the expired one is in.
    assert!(
        snapshot(&mut s, day(1))
            .iter()
            .any(|r| r.value == "gone.com")
    );
}

fn changed_marker_moves_with_every_snapshot_change(db: &TestDb) {
    let mut s = db.open();
    let mut last = s.indicators_changed_marker().unwrap();
    let mut moved = |s: &mut Store, what: &str, expect: bool| {
        let now = s.indicators_changed_marker().unwrap();
        assert_eq!(now != last, expect, "{what}: {last} -> {now}");
        last = now;
    };
    super::import(&mut s, &[rec("evil.com", "feed", 50, day(5))]);
    moved(&mut s, "new indicator", true);
    super::import(&mut s, &[rec("evil.com", "feed", 50, day(5))]);
    moved(&mut s, "unchanged re-import", false);
    super::import(&mut s, &[rec("evil.com", "feed", 50, day(6))]);
    moved(&mut s, "updated indicator", true);
    s.set_exact_host(&obs("evil.com"), true).unwrap();
    moved(&mut s, "exact-host mark", true);
    s.set_exact_host(&obs("evil.com"), true).unwrap();
    moved(&mut s, "same mark again", false);
    s.reapply_allowlist(&|o| (o.value() == "evil.com").then(|| "list".to_string()))
        .unwrap();
    moved(&mut s, "allow-listed", true);
    s.expire(day(1), Duration::zero()).unwrap();
    moved(&mut s, "expiry removing nothing", false);
    s.expire(day(5) + Duration::days(400), Duration::zero())
        .unwrap();
    moved(&mut s, "expiry removing one", true);
    s.record("s1", "b", &[hit("192.0.2.1", "evil.com", 1, 1)])
        .unwrap();
    moved(&mut s, "hits", false);
}

fn api_key_create_verify_revoke_and_wrong_keys(db: &TestDb) {
    let mut s = db.open();
    let (info, secret) = s.key("sensor-1", &["hits:write"]).unwrap();
    assert_eq!(info.name, "sensor-1");
    assert!(info.has_scope("hits:write") && !info.has_scope("read"));
    assert!(secret.starts_with("khk_") && secret.len() == 47, "{secret}");
    assert!(secret.starts_with(&info.prefix));
    let (other, other_secret) = s.key("analyst", &["read"]).unwrap();
    assert_ne!(info.id, other.id);

    let v = s.verify_api_key(&secret).unwrap().expect("valid key");
    assert_eq!((v.id, v.name.as_str()), (info.id, "sensor-1"));
    assert!(v.last_used_at.is_some());
    let listed = s.list_api_keys(None).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].last_used_at.is_some(), "use recorded");
    assert!(listed[1].last_used_at.is_none());

    // Wrong keys: another secret with the same prefix, garbage, empty.
    let mut forged = secret.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for wrong in [
        forged.as_str(),
        "",
        "khk_",
        "Bearer x",
        &secret[..46],
        "khk_ü",
    ] {
        assert!(s.verify_api_key(wrong).unwrap().is_none(), "{wrong:?}");
    }

    assert_eq!(
        s.revoke_api_key(ApiKeyRef::Name("sensor-1"), None).unwrap(),
        1
    );
    assert!(s.verify_api_key(&secret).unwrap().is_none(), "revoked");
    assert_eq!(
        s.revoke_api_key(ApiKeyRef::Name("sensor-1"), None).unwrap(),
        0
    );
    assert!(s.verify_api_key(&other_secret).unwrap().is_some());
    assert_eq!(s.revoke_api_key(ApiKeyRef::Id(other.id), None).unwrap(), 1);
    assert!(s.verify_api_key(&other_secret).unwrap().is_none());
    let listed = s.list_api_keys(None).unwrap();
    assert!(listed.iter().all(|k| k.is_revoked()));

    for (name, scopes) in [
        ("", &["read"][..]),
        ("a b", &["read"]),
        ("x", &[]),
        ("x", &["a b"]),
    ] {
        let r = s.key(name, scopes);
        assert!(
            matches!(r, Err(Error::Invalid { .. })),
            "{name:?} {scopes:?}"
        );
    }
}
