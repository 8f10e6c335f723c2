//! One suite, run against both back ends: every test is a function taking a
//! [`TestDb`], and `store_tests!` instantiates it for SQLite (a temporary
//! file) and PostgreSQL (a fresh schema on the server named by
//! `KHIEN_TEST_POSTGRES`).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use chrono::{Duration, TimeZone, Utc};
use khien_model::{
    Confidence, Family, IndicatorRecord, Observable, ObservableKind, SourceAttributes, ThreatType,
    Timestamp, Tlp,
};
use khien_store::{BatchOutcome, Error, IndicatorFilter, Store};

struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (admin URL, schema) to drop afterwards.
    pg: Option<(String, String)>,
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("sub/khien.db").display());
        Self {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// None (after a loud note) when no server is configured outside CI.
    fn postgres(test: &str) -> Option<Self> {
        let Ok(base) = std::env::var("KHIEN_TEST_POSTGRES") else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("KHIEN_TEST_POSTGRES must be set in CI (postgres://user@host:port/db)");
            }
            eprintln!("SKIP postgres: KHIEN_TEST_POSTGRES not set ({test})");
            return None;
        };
        let schema = format!(
            "khien_test_{}_{}_{}",
            test,
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or(0) % 1_000_000_000
        );
        let mut admin =
            ::postgres::Client::connect(&base, ::postgres::NoTls).expect("connect admin");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Some(Self {
            url,
            _dir: None,
            pg: Some((base, schema)),
        })
    }

    fn open(&self) -> Store {
        let mut s = Store::open(&self.url).expect("open store");
        s.set_hash_key(khien_store::HashKey::new([7; 32]));
        s
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.pg
            && let Ok(mut c) = ::postgres::Client::connect(base, ::postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
}

macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::TestDb::sqlite()); } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                if let Some(db) = super::TestDb::postgres(stringify!($name)) { super::$name(&db); }
            } )*
        }
    };
}

#[path = "store/hub.rs"]
mod hub;
#[path = "store/notifications.rs"]
mod notifications;
#[path = "store/tenants.rs"]
mod tenants;

store_tests!(
    counts_new_updated_unchanged,
    reimport_moves_last_seen_forward_never_back,
    older_listing_does_not_overwrite_newer,
    two_sources_make_one_indicator_with_combined_confidence,
    duplicate_source_within_batch_merges,
    duplicate_source_across_batches_merges,
    allowlisted_flag_persists_and_is_excluded_by_default,
    reapply_allowlist_sets_and_clears_flags,
    default_lifetime_applied_at_import,
    expired_excluded_on_read_included_on_request,
    expire_job_removes_expired_sources_and_indicators,
    expire_job_respects_grace,
    filter_by_kind,
    filter_by_family,
    filter_by_threat_type,
    filter_by_min_confidence,
    filter_by_tlp_ceiling,
    filter_by_source,
    filter_by_seen_since,
    filter_limit_in_kind_value_order,
    search_exact_parent_domain_and_containing_cidr,
    search_rejects_garbage,
    all_or_nothing_dropped_without_commit_leaves_nothing,
    all_or_nothing_failed_batch_leaves_nothing_of_itself,
    per_batch_import_keeps_first_batch_when_second_fails,
    stats_counts,
    migrations_idempotent_open_twice,
    reopen_keeps_data,
    for_each_streams_100k_rows,
    for_each_callback_error_stops_walk,
);

fn day(d: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0)
        .single()
        .expect("valid date")
}

fn rec(value: &str, source: &str, confidence: u8, seen: Timestamp) -> IndicatorRecord {
    IndicatorRecord {
        observable: Observable::detect(value).expect("observable"),
        attributes: SourceAttributes {
            source: source.into(),
            tlp: Tlp::Amber,
            confidence: Confidence::new(confidence).expect("confidence"),
            family: None,
            threat_type: ThreatType::C2,
            reference: None,
            first_seen: seen,
            last_seen: seen,
            expires_at: None,
        },
    }
}

fn with(mut r: IndicatorRecord, f: impl FnOnce(&mut SourceAttributes)) -> IndicatorRecord {
    f(&mut r.attributes);
    r
}

fn import(store: &mut Store, records: &[IndicatorRecord]) -> BatchOutcome {
    let mut imp = store.import(false).expect("import");
    let out = imp
        .add_batch(records, &vec![None; records.len()])
        .expect("batch");
    imp.commit().expect("commit");
    out
}

fn outcome(new: u64, updated: u64, unchanged: u64, allowlisted: u64) -> BatchOutcome {
    BatchOutcome {
        new,
        updated,
        unchanged,
        allowlisted,
    }
}

fn obs(v: &str) -> Observable {
    Observable::detect(v).expect("observable")
}

/// Values the filter yields, with expiry judged on day 20 of January 2026.
fn values(store: &mut Store, mut filter: IndicatorFilter) -> Vec<String> {
    filter.now.get_or_insert(day(20));
    let mut out = Vec::new();
    store
        .for_each_indicator(&filter, &mut |i| {
            out.push(i.observable.value().to_string());
            Ok(())
        })
        .expect("for_each");
    out
}

fn counts_new_updated_unchanged(db: &TestDb) {
    let mut s = db.open();
    let a = rec("a.evil.com", "feed", 60, day(5));
    let b = rec("b.evil.com", "feed", 60, day(5));
    assert_eq!(import(&mut s, &[a.clone(), b.clone()]), outcome(2, 0, 0, 0));
    assert_eq!(import(&mut s, &[a.clone(), b.clone()]), outcome(0, 0, 2, 0));
    let a_later = rec("a.evil.com", "feed", 60, day(6));
    assert_eq!(import(&mut s, &[a_later, b]), outcome(0, 1, 1, 0));
    let a_other_source = rec("a.evil.com", "other", 60, day(6));
    assert_eq!(import(&mut s, &[a_other_source]), outcome(0, 1, 0, 0));
}

fn reimport_moves_last_seen_forward_never_back(db: &TestDb) {
    let mut s = db.open();
    import(&mut s, &[rec("evil.com", "feed", 60, day(5))]);
    import(&mut s, &[rec("evil.com", "feed", 60, day(10))]);
    let i = s.get(&obs("evil.com")).unwrap().expect("stored");
    assert_eq!((i.first_seen, i.last_seen), (day(5), day(10)));
    import(&mut s, &[rec("evil.com", "feed", 60, day(3))]);
    let i = s.get(&obs("evil.com")).unwrap().expect("stored");
    assert_eq!((i.first_seen, i.last_seen), (day(3), day(10)));
    assert_eq!(i.sources.len(), 1);
}

fn older_listing_does_not_overwrite_newer(db: &TestDb) {
    let mut s = db.open();
    import(&mut s, &[rec("evil.com", "feed", 80, day(10))]);
    let old = with(rec("evil.com", "feed", 20, day(2)), |a| {
        a.family = Some(Family::new("emotet").unwrap())
    });
    import(&mut s, &[old]);
    let i = s.get(&obs("evil.com")).unwrap().expect("stored");
    assert_eq!(
        i.confidence.get(),
        80,
        "the newer listing's confidence stays"
    );
    assert_eq!(
        i.family.as_ref().map(Family::as_str),
        Some("emotet"),
        "a family nobody newer contradicted is kept"
    );
    import(&mut s, &[rec("evil.com", "feed", 30, day(11))]);
    let i = s.get(&obs("evil.com")).unwrap().expect("stored");
    assert_eq!(i.confidence.get(), 30, "a newer listing replaces it");
}

fn two_sources_make_one_indicator_with_combined_confidence(db: &TestDb) {
    let mut s = db.open();
    let a = with(rec("evil.com", "a", 50, day(5)), |a| a.tlp = Tlp::Red);
    let b = with(rec("evil.com", "b", 50, day(6)), |a| a.tlp = Tlp::Green);
    import(&mut s, &[a]);
    import(&mut s, &[b]);
    let i = s.get(&obs("evil.com")).unwrap().expect("stored");
    assert_eq!(i.confidence.get(), 75);
    assert_eq!(i.tlp, Tlp::Green);
    let names: Vec<&str> = i.sources.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(s.stats(day(7)).unwrap().indicators, 1);
    // The stored aggregate drives filters too.
    let f = IndicatorFilter {
        min_confidence: Some(Confidence::new(75).unwrap()),
        tlp_ceiling: Some(Tlp::Green),
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["evil.com"]);
}

fn duplicate_source_within_batch_merges(db: &TestDb) {
    let mut s = db.open();
    let out = import(
        &mut s,
        &[
            rec("evil.com", "feed", 40, day(5)),
            rec("evil.com", "feed", 70, day(8)),
            rec("evil.com", "feed", 70, day(8)),
        ],
    );
    assert_eq!(out, outcome(1, 1, 1, 0));
    let i = s.get(&obs("evil.com")).unwrap().expect("stored");
    assert_eq!(i.sources.len(), 1);
    assert_eq!(i.confidence.get(), 70);
    assert_eq!((i.first_seen, i.last_seen), (day(5), day(8)));
    assert_eq!(
        s.stats(day(9)).unwrap().by_source,
        [("feed".to_string(), 1)]
    );
}

fn duplicate_source_across_batches_merges(db: &TestDb) {
    let mut s = db.open();
    let mut imp = s.import(false).unwrap();
    let r = [rec("1.2.3.4", "feed", 50, day(5))];
    assert_eq!(imp.add_batch(&r, &[None]).unwrap(), outcome(1, 0, 0, 0));
    let r = [rec("1.2.3.4", "feed", 50, day(6))];
    assert_eq!(imp.add_batch(&r, &[None]).unwrap(), outcome(0, 1, 0, 0));
    imp.commit().unwrap();
    let i = s.get(&obs("1.2.3.4")).unwrap().expect("stored");
    assert_eq!(i.sources.len(), 1);
    assert_eq!(i.last_seen, day(6));
}

fn allowlisted_flag_persists_and_is_excluded_by_default(db: &TestDb) {
    {
        let mut s = db.open();
        let mut imp = s.import(false).unwrap();
        let out = imp
            .add_batch(
                &[
                    rec("google.com", "feed", 50, day(5)),
                    rec("evil.com", "feed", 50, day(5)),
                ],
                &[Some("alexa-top".into()), None],
            )
            .unwrap();
        imp.commit().unwrap();
        assert_eq!(out, outcome(2, 0, 0, 1));
    }
    let mut s = db.open();
    let g = s.get(&obs("google.com")).unwrap().expect("kept");
    assert_eq!(g.allowlisted_by.as_deref(), Some("alexa-top"));
    assert!(!g.is_active(day(6)));
    assert_eq!(values(&mut s, IndicatorFilter::default()), ["evil.com"]);
    let all = IndicatorFilter {
        include_allowlisted: true,
        ..Default::default()
    };
    assert_eq!(values(&mut s, all), ["evil.com", "google.com"]);
    let st = s.stats(day(6)).unwrap();
    assert_eq!((st.indicators, st.active, st.allowlisted), (2, 1, 1));
}

fn reapply_allowlist_sets_and_clears_flags(db: &TestDb) {
    let mut s = db.open();
    let mut imp = s.import(false).unwrap();
    imp.add_batch(
        &[
            rec("google.com", "feed", 50, day(5)),
            rec("evil.com", "feed", 50, day(5)),
        ],
        &[Some("old-list".into()), None],
    )
    .unwrap();
    imp.commit().unwrap();
    let changed = s
        .reapply_allowlist(&|o| (o.value() == "evil.com").then(|| "new-list".to_string()))
        .unwrap();
    assert_eq!(changed, 2);
    assert_eq!(values(&mut s, IndicatorFilter::default()), ["google.com"]);
    let e = s.get(&obs("evil.com")).unwrap().expect("kept");
    assert_eq!(e.allowlisted_by.as_deref(), Some("new-list"));
    let again = s
        .reapply_allowlist(&|o| (o.value() == "evil.com").then(|| "new-list".to_string()))
        .unwrap();
    assert_eq!(again, 0);
}

fn default_lifetime_applied_at_import(db: &TestDb) {
    let mut s = db.open();
    let hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let given = with(rec("given.com", "feed", 50, day(5)), |a| {
        a.expires_at = Some(day(9))
    });
    import(
        &mut s,
        &[
            rec("evil.com", "feed", 50, day(5)),
            rec("1.2.3.4", "feed", 50, day(5)),
            rec(hash, "feed", 50, day(5)),
            given,
        ],
    );
    let d = s.get(&obs("evil.com")).unwrap().expect("stored");
    assert_eq!(d.expires_at, Some(day(5) + Duration::days(180)));
    assert_eq!(d.sources[0].expires_at, d.expires_at);
    let ip = s.get(&obs("1.2.3.4")).unwrap().expect("stored");
    assert_eq!(ip.expires_at, Some(day(5) + Duration::days(30)));
    let h = s.get(&obs(hash)).unwrap().expect("stored");
    assert_eq!(h.expires_at, None, "hashes never expire");
    let g = s.get(&obs("given.com")).unwrap().expect("stored");
    assert_eq!(g.expires_at, Some(day(9)), "a source's own expiry wins");
}

fn expiring(value: &str, source: &str, expires: u32) -> IndicatorRecord {
    with(rec(value, source, 50, day(1)), |a| {
        a.expires_at = Some(day(expires))
    })
}

fn expired_excluded_on_read_included_on_request(db: &TestDb) {
    let mut s = db.open();
    import(
        &mut s,
        &[
            expiring("old.com", "feed", 10),
            expiring("new.com", "feed", 25),
        ],
    );
    assert_eq!(values(&mut s, IndicatorFilter::default()), ["new.com"]);
    let all = IndicatorFilter {
        include_expired: true,
        ..Default::default()
    };
    assert_eq!(values(&mut s, all), ["new.com", "old.com"]);
    let later = IndicatorFilter {
        now: Some(day(26)),
        ..Default::default()
    };
    assert!(values(&mut s, later).is_empty());
    // An indicator's expiry is the latest of its sources'.
    import(&mut s, &[expiring("old.com", "other", 30)]);
    assert_eq!(
        values(&mut s, IndicatorFilter::default()),
        ["new.com", "old.com"]
    );
    let st = s.stats(day(20)).unwrap();
    assert_eq!((st.active, st.expired), (2, 0));
}

fn expire_job_removes_expired_sources_and_indicators(db: &TestDb) {
    let mut s = db.open();
    import(
        &mut s,
        &[
            expiring("gone.com", "a", 10),
            expiring("kept.com", "a", 10),
            with(expiring("kept.com", "b", 25), |a| {
                a.confidence = Confidence::new(90).unwrap()
            }),
            expiring("fresh.com", "a", 25),
        ],
    );
    let st = s.stats(day(20)).unwrap();
    assert_eq!((st.indicators, st.expired), (3, 1));
    let out = s.expire(day(20), Duration::zero()).unwrap();
    assert_eq!(
        (
            out.sources_removed,
            out.indicators_removed,
            out.indicators_updated
        ),
        (2, 1, 1)
    );
    assert!(s.get(&obs("gone.com")).unwrap().is_none());
    let k = s.get(&obs("kept.com")).unwrap().expect("kept");
    assert_eq!(k.sources.len(), 1);
    assert_eq!(
        k.confidence.get(),
        90,
        "re-aggregated over the remaining source"
    );
    let st = s.stats(day(20)).unwrap();
    assert_eq!((st.indicators, st.expired), (2, 0));
    let again = s.expire(day(20), Duration::zero()).unwrap();
    assert_eq!(again.sources_removed, 0);
}

fn expire_job_respects_grace(db: &TestDb) {
    let mut s = db.open();
    import(&mut s, &[expiring("late.com", "a", 10)]);
    let out = s.expire(day(12), Duration::days(7)).unwrap();
    assert_eq!(out.sources_removed, 0, "still inside the grace period");
    let out = s.expire(day(17), Duration::days(7)).unwrap();
    assert_eq!(out.indicators_removed, 1);
}

/// Indicators that differ in every filtered field.
fn seed_filters(s: &mut Store) {
    let emotet = Family::new("Emotet").unwrap();
    import(
        s,
        &[
            with(rec("c2.evil.com", "abuse", 90, day(15)), |a| {
                a.family = Some(emotet.clone());
                a.tlp = Tlp::Clear;
            }),
            with(rec("phish.example.vn", "vncert", 40, day(5)), |a| {
                a.threat_type = ThreatType::Phishing;
                a.tlp = Tlp::Red;
            }),
            with(rec("10.9.8.7", "abuse", 60, day(10)), |a| {
                a.family = Some(Family::new("mirai").unwrap());
                a.tlp = Tlp::Green;
            }),
        ],
    );
}

fn filter_by_kind(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    let f = IndicatorFilter {
        kinds: vec![ObservableKind::Ipv4],
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["10.9.8.7"]);
}

fn filter_by_family(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    let f = IndicatorFilter {
        families: vec!["EMOTET".into()],
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["c2.evil.com"]);
}

fn filter_by_threat_type(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    let f = IndicatorFilter {
        threat_types: vec![ThreatType::Phishing],
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["phish.example.vn"]);
}

fn filter_by_min_confidence(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    let f = IndicatorFilter {
        min_confidence: Some(Confidence::new(60).unwrap()),
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["c2.evil.com", "10.9.8.7"]);
}

fn filter_by_tlp_ceiling(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    let f = IndicatorFilter {
        tlp_ceiling: Some(Tlp::Green),
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["c2.evil.com", "10.9.8.7"]);
    let f = IndicatorFilter {
        tlp_ceiling: Some(Tlp::Clear),
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["c2.evil.com"]);
}

fn filter_by_source(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    let f = IndicatorFilter {
        sources: vec!["vncert".into()],
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["phish.example.vn"]);
}

fn filter_by_seen_since(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    let f = IndicatorFilter {
        seen_since: Some(day(10)),
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["c2.evil.com", "10.9.8.7"]);
}

fn filter_limit_in_kind_value_order(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    // kind order is by name: "domain" < "ipv4".
    assert_eq!(
        values(&mut s, IndicatorFilter::default()),
        ["c2.evil.com", "phish.example.vn", "10.9.8.7"]
    );
    let f = IndicatorFilter {
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["c2.evil.com", "phish.example.vn"]);
}

fn search_exact_parent_domain_and_containing_cidr(db: &TestDb) {
    let mut s = db.open();
    import(
        &mut s,
        &[
            rec("evil.com", "feed", 50, day(5)),
            rec("b.evil.com", "feed", 50, day(5)),
            rec("10.0.0.0/8", "feed", 50, day(5)),
            rec("10.1.2.3", "feed", 50, day(5)),
        ],
    );
    let found = |s: &mut Store, q: &str| -> Vec<String> {
        s.search(q, day(6))
            .unwrap()
            .into_iter()
            .map(|i| i.observable.value().to_string())
            .collect()
    };
    assert_eq!(found(&mut s, "EVIL[.]com"), ["evil.com"]);
    assert_eq!(found(&mut s, "a.b.evil.com"), ["b.evil.com", "evil.com"]);
    assert_eq!(found(&mut s, "hxxp://x.evil.com/pay"), ["evil.com"]);
    assert_eq!(found(&mut s, "10.1.2.3"), ["10.1.2.3", "10.0.0.0/8"]);
    assert_eq!(found(&mut s, "10.200.0.1"), ["10.0.0.0/8"]);
    assert!(found(&mut s, "good.org").is_empty());
}

fn search_rejects_garbage(db: &TestDb) {
    let mut s = db.open();
    assert!(matches!(
        s.search("just words", day(1)),
        Err(Error::Query { .. })
    ));
}

fn all_or_nothing_dropped_without_commit_leaves_nothing(db: &TestDb) {
    let mut s = db.open();
    {
        let mut imp = s.import(true).unwrap();
        imp.add_batch(&[rec("a.com", "f", 50, day(1))], &[None])
            .unwrap();
        imp.add_batch(&[rec("b.com", "f", 50, day(1))], &[None])
            .unwrap();
    }
    assert_eq!(s.stats(day(2)).unwrap().indicators, 0);
    drop(s);
    let mut s = db.open();
    assert_eq!(s.stats(day(2)).unwrap().indicators, 0);
    // And committed, it keeps everything.
    let mut imp = s.import(true).unwrap();
    imp.add_batch(&[rec("a.com", "f", 50, day(1))], &[None])
        .unwrap();
    imp.commit().unwrap();
    assert_eq!(s.stats(day(2)).unwrap().indicators, 1);
}

fn all_or_nothing_failed_batch_leaves_nothing_of_itself(db: &TestDb) {
    let mut s = db.open();
    let mut imp = s.import(true).unwrap();
    imp.add_batch(&[rec("a.com", "f", 50, day(1))], &[None])
        .unwrap();
    let bad = imp.add_batch(&[rec("b.com", "f", 50, day(1))], &[]);
    assert!(matches!(bad, Err(Error::BatchShape { .. })));
    imp.add_batch(&[rec("c.com", "f", 50, day(1))], &[None])
        .unwrap();
    imp.commit().unwrap();
    let f = IndicatorFilter {
        now: Some(day(2)),
        ..Default::default()
    };
    assert_eq!(values(&mut s, f), ["a.com", "c.com"]);
}

fn per_batch_import_keeps_first_batch_when_second_fails(db: &TestDb) {
    let mut s = db.open();
    {
        let mut imp = s.import(false).unwrap();
        imp.add_batch(&[rec("a.com", "f", 50, day(1))], &[None])
            .unwrap();
        let bad = imp.add_batch(&[rec("b.com", "f", 50, day(1))], &[None, None]);
        assert!(bad.is_err());
        // Dropped without commit: per-batch commits are already durable.
    }
    drop(s);
    let mut s = db.open();
    assert_eq!(values(&mut s, IndicatorFilter::default()), ["a.com"]);
}

fn stats_counts(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    let mut imp = s.import(false).unwrap();
    imp.add_batch(
        &[
            rec("google.com", "abuse", 50, day(5)),
            expiring("old.evil.com", "abuse", 10),
        ],
        &[Some("top".into()), None],
    )
    .unwrap();
    imp.commit().unwrap();
    let st = s.stats(day(20)).unwrap();
    assert_eq!(st.indicators, 5);
    assert_eq!(st.active, 3);
    assert_eq!(st.allowlisted, 1);
    assert_eq!(st.expired, 1);
    assert_eq!(st.sources, 2);
    let p = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    assert_eq!(st.by_kind, p(&[("domain", 4), ("ipv4", 1)]));
    assert_eq!(st.by_source, p(&[("abuse", 4), ("vncert", 1)]));
    assert_eq!(st.by_threat_type, p(&[("c2", 4), ("phishing", 1)]));
    assert_eq!(
        st.by_tlp,
        p(&[("clear", 1), ("green", 1), ("amber", 2), ("red", 1)])
    );
    assert_eq!(st.top_families, p(&[("emotet", 1), ("mirai", 1)]));
    assert!(serde_json::to_string(&st).unwrap().contains("\"by_tlp\""));
}

fn migrations_idempotent_open_twice(db: &TestDb) {
    let mut a = db.open();
    import(&mut a, &[rec("evil.com", "f", 50, day(1))]);
    let mut b = db.open();
    assert_eq!(b.stats(day(2)).unwrap().indicators, 1);
    drop(b);
    let mut c = db.open();
    assert_eq!(c.stats(day(2)).unwrap().indicators, 1);
    assert!(matches!(c.backend(), "sqlite" | "postgres"));
}

fn reopen_keeps_data(db: &TestDb) {
    {
        let mut s = db.open();
        import(&mut s, &[rec("evil.com", "f", 50, day(1))]);
    }
    let mut s = db.open();
    let i = s.get(&obs("evil.com")).unwrap().expect("persisted");
    assert_eq!(i.last_seen, day(1));
}

fn for_each_streams_100k_rows(db: &TestDb) {
    let mut s = db.open();
    let mut imp = s.import(false).unwrap();
    for chunk in 0..10 {
        let records: Vec<IndicatorRecord> = (0..10_000)
            .map(|i| rec(&format!("h{chunk}-{i}.evil.com"), "bulk", 50, day(5)))
            .collect();
        let out = imp.add_batch(&records, &vec![None; records.len()]).unwrap();
        assert_eq!(out.new, 10_000);
    }
    imp.commit().unwrap();
    let mut last = String::new();
    let mut seen = 0u64;
    let filter = IndicatorFilter {
        now: Some(day(6)),
        ..Default::default()
    };
    let n = s
        .for_each_indicator(&filter, &mut |i| {
            let v = i.observable.value().to_string();
            assert!(v > last, "(kind, value) order");
            assert_eq!(i.sources.len(), 1);
            last = v;
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!((n, seen), (100_000, 100_000));
}

fn for_each_callback_error_stops_walk(db: &TestDb) {
    let mut s = db.open();
    seed_filters(&mut s);
    let mut calls = 0;
    let filter = IndicatorFilter {
        now: Some(day(20)),
        ..Default::default()
    };
    let r = s.for_each_indicator(&filter, &mut |_| {
        calls += 1;
        Err(Error::Callback("sink closed".into()))
    });
    assert!(matches!(r, Err(Error::Callback(_))));
    assert_eq!(calls, 1);
    // The store stays usable.
    assert_eq!(s.stats(day(20)).unwrap().indicators, 3);
}
