//! Tenants, users, sessions, the audit log, subscribers, attribution rows
//! and cases — the hub's tables, on both back ends.

use chrono::{Duration, TimeZone, Utc};
use khien_model::{CaseState, Hit, ObservableKind, OrgRole, ThreatType, Timestamp, UserRole};
use khien_store::{
    AssignmentChange, AssignmentUpsert, AuditEntry, AuditFilter, CaseFilter, EncryptedContacts,
    Error, HitBatch, NewUser, Page, Store, SubscriberUpsert, UserUpdate, local_day,
};

use super::TestDb;

store_tests!(
    organisations_have_unique_slugs_and_roles,
    users_log_in_lock_out_and_lose_sessions_when_disabled,
    setup_tokens_work_once_and_expire,
    audit_log_is_append_only_and_filtered_by_tenant,
    subscribers_upsert_by_external_id_and_identities_resolve,
    assignments_pair_start_interim_stop_across_uploads,
    hits_open_cases_which_resolve_and_reinfect,
    late_hits_do_not_reinfect_a_resolved_case,
    staff_moves_follow_the_life_cycle_within_the_tenant,
    unattributed_hits_are_attributed_later,
    statistics_count_new_resolved_reinfected_and_median,
    duplicate_batch_moves_cases_once,
    case_job_applies_many_batches_once_and_keeps_client_activity,
);

fn at(h: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 24, h, 0, 0)
        .single()
        .expect("valid time")
}

fn hit(client: &str, family: &str, count: u64, time: Timestamp) -> Hit {
    Hit {
        bucket: khien_model::bucket_start(time, 3600),
        client: client.parse().unwrap(),
        client_port: None,
        indicator: format!("{family}.example"),
        kind: ObservableKind::Domain,
        indicator_id: None,
        family: Some(family.into()),
        threat_type: ThreatType::C2,
        count,
        first_seen: time,
        last_seen: time + Duration::minutes(5),
        sensor: "s1".into(),
        evidence: None,
    }
}

fn operator(s: &mut Store, slug: &str) -> i64 {
    s.create_org(slug, &format!("ISP {slug}"), OrgRole::Operator)
        .unwrap()
        .id
}

fn subscriber(s: &mut Store, org: i64, external: &str) -> i64 {
    s.upsert_subscribers(
        org,
        &[SubscriberUpsert {
            external_id: external.into(),
            pseudonym: format!("sub_{org}_{external}"),
            language: "vi".into(),
            contacts: None,
            identities: vec![],
        }],
    )
    .unwrap();
    s.subscriber_by_pseudonym(org, &format!("sub_{org}_{external}"))
        .unwrap()
        .unwrap()
        .id
}

/// Records a batch and runs the case job over it.
fn ingest(s: &mut Store, org: i64, batch: &str, hits: &[Hit], subs: &[Option<i64>]) {
    s.record_hits(&HitBatch {
        org_id: org,
        sensor: "s1",
        batch_id: batch,
        hits,
        subscribers: subs,
    })
    .unwrap();
    s.apply_pending_hits(100).unwrap();
    assert!(!s.hits_pending().unwrap());
}

fn organisations_have_unique_slugs_and_roles(db: &TestDb) {
    let mut s = db.open();
    // The migration's own organisation exists from the start.
    assert_eq!(s.org(1).unwrap().unwrap().slug, "default");
    let a = s.create_org("vnpt", "VNPT", OrgRole::Operator).unwrap();
    assert_eq!(a.role, OrgRole::Operator);
    assert!(matches!(
        s.create_org("vnpt", "Other", OrgRole::Operator),
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        s.create_org("Bad Slug", "x", OrgRole::Operator),
        Err(Error::Invalid { .. })
    ));
    let b = s
        .create_org("bank-1", "Bank", OrgRole::Organization)
        .unwrap();
    let page = s
        .orgs(Page {
            after: Some(1),
            limit: 10,
        })
        .unwrap();
    assert_eq!(
        page.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    let renamed = s
        .update_org(1, "cert", "National CERT", OrgRole::National)
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name, "National CERT");
    assert!(matches!(
        s.update_org(1, "vnpt", "x", OrgRole::National),
        Err(Error::Conflict { .. })
    ));
}

fn users_log_in_lock_out_and_lose_sessions_when_disabled(db: &TestDb) {
    let mut s = db.open();
    let org = operator(&mut s, "isp");
    let u = s
        .create_user(&NewUser {
            org_id: org,
            email: " Ann@ISP.vn ",
            display_name: "Ann",
            role: UserRole::Analyst,
            language: "vi",
        })
        .unwrap();
    assert_eq!(u.email, "ann@isp.vn");
    assert!(!u.has_password);
    assert!(matches!(
        s.create_user(&NewUser {
            org_id: org,
            email: "ann@isp.vn",
            display_name: "Ann again",
            role: UserRole::Viewer,
            language: "vi",
        }),
        Err(Error::Conflict { .. })
    ));
    for bad in ["no-at", "a@b", ""] {
        assert!(
            s.create_user(&NewUser {
                org_id: org,
                email: bad,
                display_name: "x",
                role: UserRole::Viewer,
                language: "vi"
            })
            .is_err(),
            "{bad:?}"
        );
    }
    s.set_password(u.id, "$argon2id$fake").unwrap();
    let rec = s.login_record("ANN@isp.vn").unwrap().unwrap();
    assert_eq!(rec.password_hash.as_deref(), Some("$argon2id$fake"));

    // Four failures count, the fifth locks and resets the count.
    for _ in 0..4 {
        assert!(s.record_login_failure(u.id, 5, 900).unwrap().is_none());
    }
    let locked = s.record_login_failure(u.id, 5, 900).unwrap();
    assert!(locked.is_some_and(|t| t > Utc::now()));
    assert!(s.user(u.id).unwrap().unwrap().locked_until.is_some());
    s.record_login_success(u.id).unwrap();
    assert!(s.user(u.id).unwrap().unwrap().locked_until.is_none());

    let (cookie, csrf) = s.create_session(u.id, 3600, Some("192.0.2.1")).unwrap();
    let live = s.session(&cookie, 600).unwrap().expect("live session");
    assert_eq!(
        (live.user.id, live.csrf_token.as_str()),
        (u.id, csrf.as_str())
    );
    assert!(s.session("khs_forged", 600).unwrap().is_none());
    // Idle timeout of zero: the session is over.
    assert!(s.session(&cookie, 0).unwrap().is_none());
    let (cookie, _) = s.create_session(u.id, 3600, None).unwrap();
    // Another tenant cannot change the user.
    let other = operator(&mut s, "other");
    assert!(
        s.update_user(u.id, Some(other), &UserUpdate::default())
            .unwrap()
            .is_none()
    );
    let disabled = s
        .update_user(
            u.id,
            Some(org),
            &UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
        )
        .unwrap()
        .unwrap();
    assert!(disabled.disabled_at.is_some());
    assert!(s.session(&cookie, 600).unwrap().is_none(), "disabled user");
}

fn setup_tokens_work_once_and_expire(db: &TestDb) {
    let mut s = db.open();
    let u = s
        .create_user(&NewUser {
            org_id: 1,
            email: "admin@cert.vn",
            display_name: "Admin",
            role: UserRole::Admin,
            language: "vi",
        })
        .unwrap();
    let old = s.create_setup_token(u.id, 3600).unwrap();
    let token = s.create_setup_token(u.id, 3600).unwrap();
    assert!(s.use_setup_token(&old).unwrap().is_none(), "superseded");
    assert_eq!(s.use_setup_token(&token).unwrap().map(|u| u.id), Some(u.id));
    assert!(s.use_setup_token(&token).unwrap().is_none(), "used once");
    let expired = s.create_setup_token(u.id, -1).unwrap();
    assert!(s.use_setup_token(&expired).unwrap().is_none(), "expired");
}

fn audit_log_is_append_only_and_filtered_by_tenant(db: &TestDb) {
    let mut s = db.open();
    let a = operator(&mut s, "a");
    let b = operator(&mut s, "b");
    for (org, action) in [
        (a, "subscriber.read"),
        (b, "user.create"),
        (a, "user.create"),
    ] {
        s.audit(&AuditEntry {
            org_id: Some(org),
            actor: "user:1".into(),
            action: action.into(),
            target: Some("x".into()),
            detail: Some(serde_json::json!({"n": 1})),
            ..AuditEntry::default()
        })
        .unwrap();
    }
    let of_a = s
        .audit_events(
            &AuditFilter {
                org_id: Some(a),
                ..AuditFilter::default()
            },
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(
        of_a.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        vec!["user.create", "subscriber.read"],
        "newest first, only tenant a"
    );
    assert_eq!(of_a[0].detail, Some(serde_json::json!({"n": 1})));
    let reads = s
        .audit_events(
            &AuditFilter {
                action_prefix: Some("subscriber.".into()),
                ..AuditFilter::default()
            },
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(reads.len(), 1);
    // Not even the store can rewrite it.
    let url = db.url.clone();
    if url.starts_with("postgres") {
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        assert!(
            c.batch_execute("UPDATE audit_events SET action = 'x'")
                .is_err()
        );
        assert!(c.batch_execute("DELETE FROM audit_events").is_err());
    } else {
        let path = url.trim_start_matches("sqlite:");
        let c = rusqlite::Connection::open(path).unwrap();
        assert!(
            c.execute_batch("UPDATE audit_events SET action = 'x'")
                .is_err()
        );
        assert!(c.execute_batch("DELETE FROM audit_events").is_err());
    }
}

fn subscribers_upsert_by_external_id_and_identities_resolve(db: &TestDb) {
    let mut s = db.open();
    let org = operator(&mut s, "isp");
    let other = operator(&mut s, "other");
    let contacts = EncryptedContacts {
        email: Some(vec![1, 2, 3]),
        ..EncryptedContacts::default()
    };
    let up = |contacts: Option<EncryptedContacts>| SubscriberUpsert {
        external_id: "HN-001".into(),
        pseudonym: "sub_x".into(),
        language: "en".into(),
        contacts: contacts.map(|c| (c, "k1".to_string())),
        identities: vec!["00:11:22:33:44:55".into()],
    };
    let o = s
        .upsert_subscribers(org, &[up(Some(contacts.clone()))])
        .unwrap();
    assert_eq!((o.created, o.updated), (1, 0));
    let o = s.upsert_subscribers(org, &[up(None)]).unwrap();
    assert_eq!((o.created, o.updated), (0, 1));
    let rec = s.subscriber_by_pseudonym(org, "sub_x").unwrap().unwrap();
    assert_eq!(rec.contacts, contacts, "kept when not given");
    assert_eq!(rec.key_id.as_deref(), Some("k1"));
    assert!(s.subscriber_by_pseudonym(other, "sub_x").unwrap().is_none());
    assert!(s.subscriber(other, rec.id).unwrap().is_none());
    let ids = s
        .ensure_subscribers(org, &["00:11:22:33:44:55", "HN-001", "new-user"], &|i| {
            format!("sub_{i}")
        })
        .unwrap();
    assert_eq!(ids["00:11:22:33:44:55"], rec.id);
    assert_eq!(ids["HN-001"], rec.id);
    assert_ne!(ids["new-user"], rec.id);
    let created = s.subscriber(org, ids["new-user"]).unwrap().unwrap();
    assert_eq!(created.pseudonym, "sub_new-user");
    assert!(created.contacts.is_empty());
    assert_eq!(s.subscribers_not_under_key("k2", 10).unwrap().len(), 1);
    assert!(s.subscribers_not_under_key("k1", 10).unwrap().is_empty());
}

fn assignments_pair_start_interim_stop_across_uploads(db: &TestDb) {
    let mut s = db.open();
    let org = operator(&mut s, "isp");
    let sub = subscriber(&mut s, org, "u1");
    let gen0 = s.attribution_generation().unwrap();
    let ev =
        |change, start: Timestamp, end: Option<Timestamp>, event: Timestamp| AssignmentUpsert {
            change,
            network: "113.161.1.2/32".into(),
            ports: None,
            subscriber_id: Some(sub),
            inside: None,
            start_at: start,
            end_at: end,
            source: "radius-detail".into(),
            session_key: "nas/abc".into(),
            event_at: event,
            calling_station: None,
        };
    // The Stop arrives in an earlier upload than the Start.
    let o = s
        .apply_assignments(
            org,
            &[ev(AssignmentChange::Close, at(10), Some(at(12)), at(12))],
        )
        .unwrap();
    assert_eq!((o.created, o.updated), (1, 0));
    s.apply_assignments(
        org,
        &[
            ev(AssignmentChange::Open, at(9), None, at(9)),
            ev(AssignmentChange::Open, at(11), None, at(11)),
        ],
    )
    .unwrap();
    let rows = s.assignments(org, 0, 100).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].start_at, at(9).timestamp());
    assert_eq!(
        rows[0].end_at,
        Some(at(12).timestamp()),
        "a Start keeps the end"
    );
    assert!(s.attribution_generation().unwrap() > gen0);
    let x = operator(&mut s, "x");
    assert!(s.assignments(x, 0, 100).unwrap().is_empty());
}

fn hits_open_cases_which_resolve_and_reinfect(db: &TestDb) {
    let mut s = db.open();
    let org = operator(&mut s, "isp");
    let a = subscriber(&mut s, org, "a");
    let b = subscriber(&mut s, org, "b");
    ingest(
        &mut s,
        org,
        "1",
        &[
            hit("10.0.0.1", "mirai", 3, at(1)),
            hit("10.0.0.1", "emotet", 1, at(1)),
            hit("10.0.0.2", "mirai", 2, at(2)),
            hit("10.0.0.9", "mirai", 7, at(2)),
        ],
        &[Some(a), Some(a), Some(b), None],
    );
    let cases = s
        .cases(
            org,
            &CaseFilter::default(),
            Page {
                after: None,
                limit: 100,
            },
        )
        .unwrap();
    assert_eq!(
        cases.len(),
        3,
        "one per (subscriber, family); nobody for 10.0.0.9"
    );
    let mirai_a = cases
        .iter()
        .find(|c| c.subscriber_id == a && c.family == "mirai")
        .unwrap();
    assert_eq!(mirai_a.state, CaseState::Open);
    assert_eq!((mirai_a.hit_count, mirai_a.opened_at), (3, at(1)));
    assert_eq!(
        s.case_daily_hits(org, mirai_a.id).unwrap(),
        vec![(local_day(at(1).timestamp()), 3)]
    );

    // Quiet since 02:05: a cutoff after that resolves all three.
    assert_eq!(s.resolve_quiet_cases(at(3), 7).unwrap(), 3);
    let resolved = s.case(org, mirai_a.id).unwrap().unwrap();
    assert_eq!(resolved.state, CaseState::Resolved);
    assert!(resolved.resolved_at.is_some());

    // Hits after the resolution reinfect.
    let later = Utc::now() + Duration::minutes(1);
    ingest(
        &mut s,
        org,
        "2",
        &[hit("10.0.0.1", "mirai", 1, later)],
        &[Some(a)],
    );
    let again = s.case(org, mirai_a.id).unwrap().unwrap();
    assert_eq!(again.state, CaseState::Reinfected);
    assert_eq!((again.reinfections, again.hit_count), (1, 4));
    let kinds: Vec<(String, Option<CaseState>)> = s
        .case_events(org, mirai_a.id)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.to_state))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("opened".into(), Some(CaseState::Open)),
            ("state".into(), Some(CaseState::Resolved)),
            ("state".into(), Some(CaseState::Reinfected)),
        ]
    );
    // Another tenant sees none of it.
    let other = operator(&mut s, "other");
    assert!(s.case(other, mirai_a.id).unwrap().is_none());
    assert!(s.case_events(other, mirai_a.id).unwrap().is_empty());
}

fn late_hits_do_not_reinfect_a_resolved_case(db: &TestDb) {
    let mut s = db.open();
    let org = operator(&mut s, "isp");
    let a = subscriber(&mut s, org, "a");
    ingest(
        &mut s,
        org,
        "1",
        &[hit("10.0.0.1", "mirai", 1, at(1))],
        &[Some(a)],
    );
    s.resolve_quiet_cases(at(3), 7).unwrap();
    // A sensor's spool delivers an older part of the same night.
    ingest(
        &mut s,
        org,
        "2",
        &[hit("10.0.0.1", "mirai", 5, at(0))],
        &[Some(a)],
    );
    let c = &s
        .cases(
            org,
            &CaseFilter::default(),
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap()[0];
    assert_eq!(c.state, CaseState::Resolved);
    assert_eq!((c.hit_count, c.first_hit_at), (6, at(0)));
}

fn staff_moves_follow_the_life_cycle_within_the_tenant(db: &TestDb) {
    let mut s = db.open();
    let org = operator(&mut s, "isp");
    let other = operator(&mut s, "other");
    let a = subscriber(&mut s, org, "a");
    ingest(
        &mut s,
        org,
        "1",
        &[hit("10.0.0.1", "mirai", 1, at(1))],
        &[Some(a)],
    );
    let id = s
        .cases(
            org,
            &CaseFilter::default(),
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap()[0]
        .id;
    assert!(
        s.transition_case(other, id, CaseState::Notified, "user:9", None)
            .unwrap()
            .is_none()
    );
    let c = s
        .transition_case(org, id, CaseState::Notified, "user:1", Some("called"))
        .unwrap()
        .unwrap();
    assert_eq!(c.state, CaseState::Notified);
    assert!(matches!(
        s.transition_case(org, id, CaseState::Open, "user:1", None),
        Err(Error::Conflict { .. })
    ));
    let staff = s
        .create_user(&NewUser {
            org_id: org,
            email: "staff@isp.vn",
            display_name: "Staff",
            role: UserRole::Analyst,
            language: "vi",
        })
        .unwrap();
    let outsider = s
        .create_user(&NewUser {
            org_id: other,
            email: "x@other.vn",
            display_name: "X",
            role: UserRole::Analyst,
            language: "vi",
        })
        .unwrap();
    assert!(
        s.assign_case(org, id, Some(outsider.id), "user:1")
            .unwrap()
            .is_none()
    );
    let c = s
        .assign_case(org, id, Some(staff.id), "user:1")
        .unwrap()
        .unwrap();
    assert_eq!(c.assignee_id, Some(staff.id));
    assert!(s.comment_case(org, id, "user:1", "rang tai nha").unwrap());
    assert!(!s.comment_case(other, id, "user:9", "x").unwrap());
    assert!(s.comment_case(org, id, "user:1", "  ").is_err());
    let filtered = s
        .cases(
            org,
            &CaseFilter {
                states: vec![CaseState::Notified],
                assignee_id: Some(staff.id),
                ..CaseFilter::default()
            },
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(filtered.len(), 1);
    let resolved = s
        .transition_case(org, id, CaseState::Resolved, "user:1", None)
        .unwrap()
        .unwrap();
    assert_eq!(resolved.state, CaseState::Resolved);
    let events = s.case_events(org, id).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "comment" && e.text.as_deref() == Some("rang tai nha"))
    );
    assert!(events.iter().any(|e| e.kind == "assigned"));
}

fn unattributed_hits_are_attributed_later(db: &TestDb) {
    let mut s = db.open();
    let org = operator(&mut s, "isp");
    ingest(
        &mut s,
        org,
        "1",
        &[
            hit("10.0.0.1", "mirai", 2, at(1)),
            hit("10.0.0.2", "mirai", 1, at(1)),
        ],
        &[],
    );
    let pending = s.unattributed_hits(org, at(0), 100).unwrap();
    assert_eq!(pending.len(), 2);
    let a = subscriber(&mut s, org, "a");
    let first = pending
        .into_iter()
        .find(|h| h.client.to_string() == "10.0.0.1")
        .unwrap();
    let (n, cases) = s.attribute_hits(org, &[(first.clone(), a)]).unwrap();
    assert_eq!((n, cases.opened), (1, 1));
    // Attributing the same hit again changes nothing.
    let (n, cases) = s.attribute_hits(org, &[(first, a)]).unwrap();
    assert_eq!((n, cases.opened, cases.updated), (0, 0, 0));
    assert_eq!(s.unattributed_hits(org, at(0), 100).unwrap().len(), 1);
    let c = &s
        .cases(
            org,
            &CaseFilter::default(),
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap()[0];
    assert_eq!((c.subscriber_id, c.hit_count), (a, 2));
}

fn statistics_count_new_resolved_reinfected_and_median(db: &TestDb) {
    let mut s = db.open();
    let x = operator(&mut s, "x");
    let y = operator(&mut s, "y");
    let a = subscriber(&mut s, x, "a");
    let b = subscriber(&mut s, x, "b");
    let c = subscriber(&mut s, y, "c");
    ingest(
        &mut s,
        x,
        "1",
        &[
            hit("10.0.0.1", "mirai", 1, at(1)),
            hit("10.0.0.2", "mirai", 1, at(3)),
        ],
        &[Some(a), Some(b)],
    );
    ingest(
        &mut s,
        y,
        "1",
        &[hit("10.9.0.1", "emotet", 1, at(1))],
        &[Some(c)],
    );
    s.resolve_quiet_cases(at(6), 7).unwrap();
    let today = local_day(Utc::now().timestamp());
    let from = local_day(at(0).timestamp());
    let all = s.case_stats(None, from, today + 1).unwrap();
    let xm = all
        .totals
        .iter()
        .find(|t| t.org_id == x && t.family == "mirai")
        .unwrap();
    assert_eq!((xm.open, xm.new, xm.resolved, xm.reinfected), (0, 2, 2, 0));
    // Each episode lasted from its first to its last hit: five minutes.
    assert_eq!(xm.median_remediation_seconds, Some(300));
    assert!(all.totals.iter().any(|t| t.org_id == y));
    let only_x = s.case_stats(Some(x), from, today + 1).unwrap();
    assert!(only_x.totals.iter().all(|t| t.org_id == x));
    let new_day = only_x.days.iter().find(|d| d.day == from).unwrap();
    assert_eq!(new_day.new, 2);
    // A period before anything happened holds no new cases.
    let empty = s.case_stats(Some(x), from - 10, from).unwrap();
    assert!(empty.days.is_empty());
}

fn duplicate_batch_moves_cases_once(db: &TestDb) {
    let mut s = db.open();
    let org = operator(&mut s, "isp");
    let a = subscriber(&mut s, org, "a");
    let batch = [hit("10.0.0.1", "mirai", 3, at(1))];
    ingest(&mut s, org, "same", &batch, &[Some(a)]);
    let again = s
        .record_hits(&HitBatch {
            org_id: org,
            sensor: "s1",
            batch_id: "same",
            hits: &batch,
            subscribers: &[Some(a)],
        })
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(
        s.apply_pending_hits(100).unwrap().0,
        0,
        "nothing new to apply"
    );
    let c = &s
        .cases(
            org,
            &CaseFilter::default(),
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap()[0];
    assert_eq!(c.hit_count, 3);
    // The same batch id from another organisation is another batch.
    let other = operator(&mut s, "other");
    let b = subscriber(&mut s, other, "b");
    let o = s
        .record_hits(&HitBatch {
            org_id: other,
            sensor: "s1",
            batch_id: "same",
            hits: &batch,
            subscribers: &[Some(b)],
        })
        .unwrap();
    assert!(!o.duplicate);
    let (batches, cases) = s.apply_pending_hits(100).unwrap();
    assert_eq!((batches, cases.opened), (1, 1));
}

fn case_job_applies_many_batches_once_and_keeps_client_activity(db: &TestDb) {
    let mut s = db.open();
    let org = operator(&mut s, "isp");
    let a = subscriber(&mut s, org, "a");
    for (i, h) in [1, 2, 3].into_iter().enumerate() {
        s.record_hits(&HitBatch {
            org_id: org,
            sensor: "s1",
            batch_id: &format!("b{i}"),
            hits: &[
                hit("10.0.0.1", "mirai", 2, at(h)),
                hit("10.0.0.2", "emotet", 1, at(h)),
            ],
            subscribers: &[Some(a), None],
        })
        .unwrap();
    }
    assert!(s.hits_pending().unwrap());
    // Nothing is re-attributed while its batch waits for the job.
    assert!(s.unattributed_hits(org, at(0), 100).unwrap().is_empty());
    let (batches, cases) = s.apply_pending_hits(4).unwrap();
    assert_eq!((batches, cases.opened), (2, 1));
    let (batches, cases) = s.apply_pending_hits(4).unwrap();
    assert_eq!((batches, cases.opened, cases.updated), (1, 0, 1));
    assert_eq!(s.apply_pending_hits(4).unwrap().0, 0);
    let c = &s
        .cases(
            org,
            &CaseFilter::default(),
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap()[0];
    assert_eq!((c.hit_count, c.first_hit_at), (6, at(1)));
    // Every hit counts for the client's activity, attributed or not.
    let seen = s
        .client_activity("10.0.0.2".parse().unwrap(), at(0))
        .unwrap();
    assert_eq!(
        seen,
        vec![("emotet".to_string(), at(3) + Duration::minutes(5))]
    );
    assert!(
        s.client_activity("10.0.0.2".parse().unwrap(), at(4))
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.unattributed_hits(org, at(0), 100).unwrap().len(), 3);
}
