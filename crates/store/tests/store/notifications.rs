//! The notification queue: planning with tickets, claiming, sending,
//! failing and retrying, acknowledgements and their effect on cases.

use chrono::{TimeZone, Utc};
use khien_model::{
    CaseState, Channel, Hit, NotificationStatus, ObservableKind, OrgRole, ThreatType,
};
use khien_store::{
    CaseFilter, EncryptedContacts, HitBatch, NewNotification, NotificationFilter, Page, Store,
    SubscriberUpsert,
};

use super::TestDb;

store_tests!(
    rounds_are_planned_with_gapless_tickets_and_reminders_wait,
    claimed_once_sent_moves_the_case_and_failures_retry_or_die,
    acknowledgement_moves_the_case_and_ends_web_notices,
    escalations_and_exports_and_delivery_reports,
    warnings_not_yet_out_are_cancelled_when_the_case_no_longer_needs_them,
);

const T0: i64 = 1_795_500_000;

/// How long after an acknowledgement hits are still taken as the
/// clean-up in progress.
const GRACE: i64 = 86_400;

fn record_hit(s: &mut Store, org: i64, sub: i64, batch: &str, at: i64) {
    let t = Utc.timestamp_opt(at, 0).single().unwrap();
    s.record_hits(&HitBatch {
        org_id: org,
        sensor: "s1",
        batch_id: batch,
        hits: &[Hit {
            bucket: khien_model::bucket_start(t, 3600),
            client: "10.0.0.1".parse().unwrap(),
            client_port: None,
            indicator: "c2.example".into(),
            kind: ObservableKind::Domain,
            indicator_id: None,
            family: Some("mirai".into()),
            threat_type: ThreatType::C2,
            count: 3,
            first_seen: t,
            last_seen: t,
            sensor: "s1".into(),
            evidence: None,
        }],
        subscribers: &[Some(sub)],
    })
    .unwrap();
    s.apply_pending_hits(1000).unwrap();
}

/// Call-queue rows still to handle (the open export).
fn open_calls(s: &mut Store, org: i64) -> usize {
    s.notifications(
        org,
        &NotificationFilter {
            channel: Some(Channel::CallQueue),
            open_only: true,
            ..NotificationFilter::default()
        },
        Page {
            after: None,
            limit: 10,
        },
    )
    .unwrap()
    .len()
}

fn setup(s: &mut Store) -> (i64, i64) {
    let org = s.create_org("isp", "ISP", OrgRole::Operator).unwrap().id;
    s.upsert_subscribers(
        org,
        &[SubscriberUpsert {
            external_id: "HN-1".into(),
            pseudonym: "sub_1".into(),
            language: "vi".into(),
            contacts: Some((
                EncryptedContacts {
                    email: Some(vec![1]),
                    ..EncryptedContacts::default()
                },
                "k".into(),
            )),
            identities: vec![],
        }],
    )
    .unwrap();
    let sub = s.subscriber_by_pseudonym(org, "sub_1").unwrap().unwrap().id;
    record_hit(s, org, sub, "b1", T0);
    s.apply_pending_hits(1000).unwrap();
    let case = s
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
    (org, case)
}

fn rounds_are_planned_with_gapless_tickets_and_reminders_wait(db: &TestDb) {
    let mut s = db.open();
    let (org, case) = setup(&mut s);
    let due = s.cases_to_notify(org, T0, 3, GRACE, 100).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (
            due[0].case_id,
            due[0].round,
            due[0].has_email,
            due[0].has_phone
        ),
        (case, 0, true, false)
    );
    let made = s
        .plan_notifications(
            org,
            &due[0],
            &[
                NewNotification {
                    channel: Channel::Email,
                    round: 1,
                },
                NewNotification {
                    channel: Channel::Web,
                    round: 1,
                },
            ],
            Some(1),
            T0,
        )
        .unwrap();
    // 1795500000 is 2026-11-24T03:20Z, the same day in Asia/Ho_Chi_Minh.
    assert_eq!(made[0].1, "20261124-00000001");
    assert_eq!(made[1].1, "20261124-00000002");
    // Not due again until the reminder interval has passed.
    assert!(
        s.cases_to_notify(org, T0 - 1, 3, GRACE, 100)
            .unwrap()
            .is_empty()
    );
    let again = s.cases_to_notify(org, T0, 3, GRACE, 100).unwrap();
    assert_eq!(again[0].round, 1);
    // At most max_rounds rounds.
    assert!(
        s.cases_to_notify(org, T0, 1, GRACE, 100)
            .unwrap()
            .is_empty()
    );
}

fn claimed_once_sent_moves_the_case_and_failures_retry_or_die(db: &TestDb) {
    let mut s = db.open();
    let (org, case) = setup(&mut s);
    let c = s.cases_to_notify(org, T0, 3, GRACE, 100).unwrap().remove(0);
    let made = s
        .plan_notifications(
            org,
            &c,
            &[
                NewNotification {
                    channel: Channel::Email,
                    round: 1,
                },
                NewNotification {
                    channel: Channel::Sms,
                    round: 1,
                },
            ],
            Some(1),
            T0,
        )
        .unwrap();
    let (email, sms) = (made[0].0, made[1].0);
    let due = s.due_notifications(T0, &[Channel::Email], 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].family, "mirai");
    assert_eq!(due[0].contacts.email, Some(vec![1]));
    assert!(s.claim_notification(email, T0, T0 + 60).unwrap());
    assert!(
        !s.claim_notification(email, T0, T0 + 60).unwrap(),
        "claimed once"
    );
    assert!(
        s.due_notifications(T0 + 30, &[Channel::Email], 10)
            .unwrap()
            .is_empty()
    );
    s.notification_sent(email, T0 + 1, None).unwrap();
    let n = s.notification(org, email).unwrap().unwrap().notification;
    assert_eq!((n.status, n.attempts), (NotificationStatus::Sent, 1));
    assert_eq!(
        s.case(org, case).unwrap().unwrap().state,
        CaseState::Notified
    );
    let kinds: Vec<String> = s
        .case_events(org, case)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec!["opened", "notification", "state"]);
    assert_eq!(s.sent_since(org, Channel::Email, T0).unwrap(), 1);
    assert_eq!(
        s.sent_to_subscriber_since(c.subscriber_id, Channel::Email, T0 + 2)
            .unwrap(),
        0
    );

    // A failure is retried later, a last failure dies and can be retried by hand.
    assert!(s.claim_notification(sms, T0, T0 + 60).unwrap());
    s.notification_failed(sms, T0, "gateway 500", Some(T0 + 300))
        .unwrap();
    assert!(
        s.due_notifications(T0 + 299, &[Channel::Sms], 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.due_notifications(T0 + 300, &[Channel::Sms], 10)
            .unwrap()
            .len(),
        1
    );
    s.notification_failed(sms, T0 + 300, "gateway 500", None)
        .unwrap();
    let dead = s
        .notifications(
            org,
            &NotificationFilter {
                status: Some(NotificationStatus::Failed),
                ..NotificationFilter::default()
            },
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(s.notification_attempts(org, sms).unwrap().len(), 2);
    let other = s
        .create_org("other", "Other", OrgRole::Operator)
        .unwrap()
        .id;
    assert!(
        !s.retry_notification(other, sms, T0 + 400).unwrap(),
        "another tenant's"
    );
    assert!(s.retry_notification(org, sms, T0 + 400).unwrap());
    assert_eq!(
        s.due_notifications(T0 + 400, &[Channel::Sms], 10)
            .unwrap()
            .len(),
        1
    );
}

fn acknowledgement_moves_the_case_and_ends_web_notices(db: &TestDb) {
    let mut s = db.open();
    let (org, case) = setup(&mut s);
    let c = s.cases_to_notify(org, T0, 3, GRACE, 100).unwrap().remove(0);
    let made = s
        .plan_notifications(
            org,
            &c,
            &[
                NewNotification {
                    channel: Channel::Email,
                    round: 1,
                },
                NewNotification {
                    channel: Channel::Web,
                    round: 1,
                },
            ],
            Some(1),
            T0,
        )
        .unwrap();
    s.notification_sent(made[1].0, T0, None).unwrap();
    assert_eq!(s.active_web_notices(org, c.subscriber_id).unwrap().len(), 1);
    assert_eq!(
        s.acknowledge_notification(made[0].0, "link", T0 + 5)
            .unwrap(),
        Some(case)
    );
    assert_eq!(
        s.case(org, case).unwrap().unwrap().state,
        CaseState::Acknowledged
    );
    assert!(
        s.active_web_notices(org, c.subscriber_id)
            .unwrap()
            .is_empty()
    );
    let web = s
        .notification(org, made[1].0)
        .unwrap()
        .unwrap()
        .notification;
    assert_eq!(web.status, NotificationStatus::Acknowledged);
    assert!(
        s.cases_to_notify(org, T0 + 10_000, 3, GRACE, 100)
            .unwrap()
            .is_empty(),
        "no reminders"
    );
    // Hits within the grace period are the clean-up in progress.
    record_hit(&mut s, org, c.subscriber_id, "b2", T0 + 3600);
    assert!(
        s.cases_to_notify(org, T0 + 10_000, 3, GRACE, 100)
            .unwrap()
            .is_empty()
    );
    // Hits long after the acknowledgement: warned again, and the web
    // notice of the new round is up although the case stays acknowledged.
    record_hit(&mut s, org, c.subscriber_id, "b3", T0 + 2 * GRACE);
    let again = s
        .cases_to_notify(org, T0 + 2 * GRACE, 3, GRACE, 100)
        .unwrap();
    assert_eq!((again.len(), again[0].round), (1, 1));
    let round2 = s
        .plan_notifications(
            org,
            &again[0],
            &[NewNotification {
                channel: Channel::Web,
                round: 2,
            }],
            Some(2),
            T0 + 2 * GRACE,
        )
        .unwrap();
    s.notification_sent(round2[0].0, T0 + 2 * GRACE, None)
        .unwrap();
    let up = s.active_web_notices(org, c.subscriber_id).unwrap();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].notification.id, round2[0].0);
    s.acknowledge_notification(round2[0].0, "web", T0 + 2 * GRACE + 60)
        .unwrap();
    assert!(
        s.active_web_notices(org, c.subscriber_id)
            .unwrap()
            .is_empty()
    );
    let events = s.case_events(org, case).unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e
                .text
                .as_deref()
                .is_some_and(|t| t.contains("acknowledged by the subscriber")))
            .count(),
        2,
        "both acknowledgements are on the timeline"
    );
    assert_eq!(
        s.acknowledge_notification(999_999, "link", T0).unwrap(),
        None
    );
}

fn escalations_and_exports_and_delivery_reports(db: &TestDb) {
    let mut s = db.open();
    let (org, case) = setup(&mut s);
    let c = s.cases_to_notify(org, T0, 3, GRACE, 100).unwrap().remove(0);
    assert!(
        s.cases_to_escalate(org, Channel::CallQueue, T0 + 86_400, 10)
            .unwrap()
            .is_empty(),
        "nothing before the first round"
    );
    let made = s
        .plan_notifications(
            org,
            &c,
            &[NewNotification {
                channel: Channel::Sms,
                round: 1,
            }],
            Some(1),
            T0,
        )
        .unwrap();
    s.claim_notification(made[0].0, T0, T0 + 60).unwrap();
    s.notification_sent(made[0].0, T0, Some("gw-77")).unwrap();
    assert_eq!(
        s.notification_by_provider_id("gw-77")
            .unwrap()
            .map(|n| n.id),
        Some(made[0].0)
    );
    assert!(
        s.notification_delivered(made[0].0, true, None, T0 + 9)
            .unwrap()
    );
    let n = s
        .notification(org, made[0].0)
        .unwrap()
        .unwrap()
        .notification;
    assert_eq!(n.status, NotificationStatus::Delivered);
    // The episode began at the hit (T0): due for escalation after it.
    assert!(
        s.cases_to_escalate(org, Channel::CallQueue, T0 - 1, 10)
            .unwrap()
            .is_empty()
    );
    let esc = s
        .cases_to_escalate(org, Channel::CallQueue, T0, 10)
        .unwrap();
    assert_eq!(esc.len(), 1);
    let call = s
        .plan_notifications(
            org,
            &esc[0],
            &[NewNotification {
                channel: Channel::CallQueue,
                round: 1,
            }],
            None,
            T0 + 10,
        )
        .unwrap();
    assert!(
        s.cases_to_escalate(org, Channel::CallQueue, T0, 10)
            .unwrap()
            .is_empty(),
        "once"
    );
    assert_eq!(open_calls(&mut s, org), 1);
    assert!(s.mark_notification_done(org, call[0].0, T0 + 20).unwrap());
    assert!(
        !s.mark_notification_done(org, call[0].0, T0 + 20).unwrap(),
        "once"
    );
    assert!(
        !s.mark_notification_done(org, made[0].0, T0 + 20).unwrap(),
        "only call-queue and bill"
    );
    let _ = case;
}

fn warnings_not_yet_out_are_cancelled_when_the_case_no_longer_needs_them(db: &TestDb) {
    let mut s = db.open();
    let (org, case) = setup(&mut s);
    let c = s.cases_to_notify(org, T0, 3, GRACE, 100).unwrap().remove(0);
    let channels = [Channel::Email, Channel::Web, Channel::CallQueue];
    let made = s
        .plan_notifications(
            org,
            &c,
            &channels.map(|channel| NewNotification { channel, round: 1 }),
            Some(1),
            T0,
        )
        .unwrap();
    let (email, web, call) = (made[0].0, made[1].0, made[2].0);
    // The notice and the call-queue row are out; the e-mail waits for the
    // end of quiet hours.
    s.notification_sent(web, T0, None).unwrap();
    s.notification_sent(call, T0, None).unwrap();
    s.defer_notification(email, T0 + 3600).unwrap();
    assert_eq!(open_calls(&mut s, org), 1);
    // The subscriber acknowledges on the notice page.
    s.acknowledge_notification(web, "web", T0 + 60).unwrap();
    let status = |s: &mut Store, id: i64| {
        s.notification(org, id)
            .unwrap()
            .unwrap()
            .notification
            .status
    };
    assert_eq!(status(&mut s, web), NotificationStatus::Acknowledged);
    assert_eq!(status(&mut s, email), NotificationStatus::Cancelled);
    assert_eq!(status(&mut s, call), NotificationStatus::Cancelled);
    assert_eq!(open_calls(&mut s, org), 0, "nobody calls about it");
    assert!(
        s.due_notifications(T0 + 7200, &channels, 10)
            .unwrap()
            .is_empty(),
        "the e-mail does not go out after quiet hours"
    );
    assert!(
        !s.mark_notification_done(org, call, T0 + 7200).unwrap(),
        "a cancelled row is not marked done"
    );

    // Hits long after the acknowledgement: a new round, whose e-mail is
    // still queued when the case resolves.
    record_hit(&mut s, org, c.subscriber_id, "b2", T0 + 2 * GRACE);
    let again = s
        .cases_to_notify(org, T0 + 2 * GRACE, 3, GRACE, 100)
        .unwrap()
        .remove(0);
    let round2 = s
        .plan_notifications(
            org,
            &again,
            &[NewNotification {
                channel: Channel::Email,
                round: 2,
            }],
            Some(2),
            T0 + 2 * GRACE,
        )
        .unwrap();
    let later = T0 + 2 * GRACE + 10;
    let due = s.due_notifications(later, &channels, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert!(!due[0].is_stale(), "a round after the acknowledgement");
    let cutoff = Utc.timestamp_opt(T0 + 2 * GRACE, 0).single().unwrap();
    assert_eq!(s.resolve_quiet_cases(cutoff, 7).unwrap(), 1);
    assert_eq!(
        s.case(org, case).unwrap().unwrap().state,
        CaseState::Resolved
    );
    let due = s.due_notifications(later, &channels, 10).unwrap();
    assert!(due[0].is_stale(), "its case resolved");
    let id = due[0].notification.id;
    assert_eq!(s.cancel_notifications(&[id], later).unwrap(), 1);
    assert_eq!(s.cancel_notifications(&[id], later).unwrap(), 0, "once");
    assert_eq!(status(&mut s, round2[0].0), NotificationStatus::Cancelled);
    assert!(
        s.due_notifications(later, &channels, 10)
            .unwrap()
            .is_empty()
    );
    let cancelled = s
        .notifications(
            org,
            &NotificationFilter {
                status: Some(NotificationStatus::Cancelled),
                ..NotificationFilter::default()
            },
            Page {
                after: None,
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(cancelled.len(), 3, "listed by their status");
}
