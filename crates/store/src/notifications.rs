//! Notifications: the warnings of a case, one per channel and round, and
//! what happened to each.
//!
//! The hub plans them (which cases need a warning or a reminder, which
//! channels) and delivers them; the store keeps the queue and the rules
//! that must hold whatever process does the work:
//!
//! - a notification is **claimed** before it is sent (its `next_attempt_at`
//!   moves to the end of a lease in one conditional update), so two senders
//!   never send the same one;
//! - the first notification of an episode that goes out moves its case
//!   from `open` (or `reinfected`) to `notified`, in the same transaction;
//! - an acknowledgement moves the case to `acknowledged` and ends the
//!   case's web notices;
//! - ticket numbers are `YYYYMMDD-NNNNNNNN`, counted per day in
//!   `ticket_days` inside the planning transaction, so they are unique and
//!   gapless per day.
//!
//! Times are the caller's `now` (unix seconds), so that the hub's clock —
//! a test's manual one included — decides everything.

use std::collections::HashMap;

use khien_model::{CaseState, Channel, NotificationStatus, Timestamp};
use serde::Serialize;

use crate::cases::insert_event;
use crate::merge::from_secs;
use crate::sql::{SqlRow, Value, vals};
use crate::subscribers::EncryptedContacts;
use crate::tenants::Page;
use crate::{Backend, Error, Store};

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationRecord {
    pub id: i64,
    pub org_id: i64,
    pub case_id: i64,
    pub subscriber_id: i64,
    pub channel: Channel,
    pub language: String,
    pub round: u32,
    pub ticket: String,
    pub status: NotificationStatus,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
    pub done_at: Option<Timestamp>,
}

/// One try at delivering a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationAttempt {
    pub at: Timestamp,
    pub ok: bool,
    pub error: Option<String>,
}

/// What a notification says and to whom: the notification, its case and
/// its subscriber (contacts still encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationContext {
    pub notification: NotificationRecord,
    pub family: String,
    pub case_state: CaseState,
    /// When the case last changed state.
    pub case_state_changed_at: Timestamp,
    pub first_hit_at: Timestamp,
    pub last_hit_at: Timestamp,
    pub hit_count: u64,
    pub external_id: String,
    pub pseudonym: String,
    pub contacts: EncryptedContacts,
}

/// A case that needs a warning (or a reminder, or an escalation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseToNotify {
    pub case_id: i64,
    pub org_id: i64,
    pub subscriber_id: i64,
    pub family: String,
    pub state: CaseState,
    /// Rounds of warnings this episode had.
    pub round: u32,
    pub language: String,
    pub has_email: bool,
    pub has_phone: bool,
}

/// A notification to create; see [`Store::plan_notifications`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewNotification {
    pub channel: Channel,
    pub round: u32,
}

/// Which notifications [`Store::notifications`] lists.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub status: Option<NotificationStatus>,
    pub channel: Option<Channel>,
    pub case_id: Option<i64>,
    /// Created at or after this (unix seconds).
    pub created_from: Option<i64>,
    /// Created before this.
    pub created_to: Option<i64>,
    /// Only call-queue or bill rows still to handle: not marked done, not
    /// cancelled, of a case that still needs work.
    pub open_only: bool,
}

const N_COLS: &str = "n.id, n.org_id, n.case_id, n.subscriber_id, n.channel, n.language, n.round, \
     n.ticket, n.status, n.attempts, n.next_attempt_at, n.last_error, n.provider_id, n.created_at, \
     n.sent_at, n.delivered_at, n.acknowledged_at, n.done_at";

/// Columns after [`N_COLS`] for a [`NotificationContext`].
const CTX_COLS: &str = "c.family, c.state, c.first_hit_at, c.last_hit_at, c.hit_count, \
     s.external_id, s.pseudonym, s.name_enc, s.email_enc, s.phone_enc, s.address_enc, \
     c.state_changed_at";

const CTX_FROM: &str = "FROM notifications n JOIN cases c ON c.id = n.case_id \
     JOIN subscribers s ON s.id = n.subscriber_id";

fn word<T: std::str::FromStr>(what: &str, v: String) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| Error::corrupt(what, e))
}

fn opt_time(r: &SqlRow, i: usize) -> Result<Option<Timestamp>, Error> {
    r.opt_int(i)?
        .map(|t| from_secs("notification time", t))
        .transpose()
}

fn record(r: &SqlRow) -> Result<NotificationRecord, Error> {
    Ok(NotificationRecord {
        id: r.int(0)?,
        org_id: r.int(1)?,
        case_id: r.int(2)?,
        subscriber_id: r.int(3)?,
        channel: word("notification channel", r.text(4)?)?,
        language: r.text(5)?,
        round: u32::try_from(r.int(6)?).unwrap_or(0),
        ticket: r.text(7)?,
        status: word("notification status", r.text(8)?)?,
        attempts: u32::try_from(r.int(9)?).unwrap_or(0),
        next_attempt_at: from_secs("notification next_attempt_at", r.int(10)?)?,
        last_error: r.opt_text(11)?,
        provider_id: r.opt_text(12)?,
        created_at: from_secs("notification created_at", r.int(13)?)?,
        sent_at: opt_time(r, 14)?,
        delivered_at: opt_time(r, 15)?,
        acknowledged_at: opt_time(r, 16)?,
        done_at: opt_time(r, 17)?,
    })
}

fn context(r: &SqlRow) -> Result<NotificationContext, Error> {
    Ok(NotificationContext {
        notification: record(r)?,
        family: r.text(18)?,
        case_state: word("case state", r.text(19)?)?,
        first_hit_at: from_secs("case first_hit_at", r.int(20)?)?,
        last_hit_at: from_secs("case last_hit_at", r.int(21)?)?,
        hit_count: u64::try_from(r.int(22)?).unwrap_or(0),
        external_id: r.text(23)?,
        pseudonym: r.text(24)?,
        contacts: EncryptedContacts {
            name: r.opt_blob(25)?,
            email: r.opt_blob(26)?,
            phone: r.opt_blob(27)?,
            address: r.opt_blob(28)?,
        },
        case_state_changed_at: from_secs("case state_changed_at", r.int(29)?)?,
    })
}

impl NotificationContext {
    /// Whether its case no longer needs it: resolved, or acknowledged
    /// (by the subscriber or by staff) after it was planned. The rule of
    /// [`Store::active_web_notices`] too.
    pub fn is_stale(&self) -> bool {
        match self.case_state {
            CaseState::Resolved => true,
            CaseState::Acknowledged => self.case_state_changed_at >= self.notification.created_at,
            _ => false,
        }
    }
}

const CASE_COLS: &str = "c.id, c.org_id, c.subscriber_id, c.family, c.state, c.notice_round, \
     s.language, s.email_enc IS NOT NULL, s.phone_enc IS NOT NULL \
     FROM cases c JOIN subscribers s ON s.id = c.subscriber_id";

fn case_to_notify(r: &SqlRow) -> Result<CaseToNotify, Error> {
    Ok(CaseToNotify {
        case_id: r.int(0)?,
        org_id: r.int(1)?,
        subscriber_id: r.int(2)?,
        family: r.text(3)?,
        state: word("case state", r.text(4)?)?,
        round: u32::try_from(r.int(5)?).unwrap_or(0),
        language: r.text(6)?,
        has_email: r.int(7)? != 0,
        has_phone: r.int(8)? != 0,
    })
}

/// The next ticket number of `day` (`YYYYMMDD`).
fn next_ticket(b: &mut Backend, day: &str) -> Result<String, Error> {
    let n = b
        .query_one(
            "INSERT INTO ticket_days (day, last) VALUES (?1, 1)
             ON CONFLICT (day) DO UPDATE SET last = ticket_days.last + 1
             RETURNING last",
            vals![day],
        )?
        .int(0)?;
    Ok(format!("{day}-{n:08}"))
}

impl Store {
    /// An organisation's notification policy (the hub's JSON), if set.
    pub fn notification_policy(&mut self, org_id: i64) -> Result<Option<String>, Error> {
        self.backend
            .query_opt(
                "SELECT policy FROM notification_policies WHERE org_id = ?1",
                vals![org_id],
            )?
            .map(|r| r.text(0))
            .transpose()
    }

    pub fn set_notification_policy(
        &mut self,
        org_id: i64,
        policy: &str,
        now: i64,
    ) -> Result<(), Error> {
        self.backend.execute(
            "INSERT INTO notification_policies (org_id, policy, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (org_id) DO UPDATE SET policy = excluded.policy,
                 updated_at = excluded.updated_at",
            vals![org_id, policy, now],
        )?;
        Ok(())
    }

    /// Forgets an organisation's own policy (the hub's default applies
    /// again); false when it had none.
    pub fn delete_notification_policy(&mut self, org_id: i64) -> Result<bool, Error> {
        Ok(self.backend.execute(
            "DELETE FROM notification_policies WHERE org_id = ?1",
            vals![org_id],
        )? == 1)
    }

    /// Organisations that have cases still needing work.
    pub fn orgs_with_active_cases(&mut self) -> Result<Vec<i64>, Error> {
        self.backend
            .query(
                "SELECT DISTINCT org_id FROM cases
                 WHERE state IN ('open', 'notified', 'reinfected', 'acknowledged') ORDER BY org_id",
                &[],
            )?
            .iter()
            .map(|r| r.int(0))
            .collect()
    }

    /// Cases of `org_id` due a round of warnings: fewer than `max_rounds`
    /// rounds, either none yet or the last one at or before
    /// `remind_before`, and needing one — not resolved, and not
    /// acknowledged unless hits came more than `ack_grace` seconds after
    /// the acknowledgement (the subscriber said they dealt with it; the
    /// device says otherwise).
    pub fn cases_to_notify(
        &mut self,
        org_id: i64,
        remind_before: i64,
        max_rounds: u32,
        ack_grace: i64,
        limit: u32,
    ) -> Result<Vec<CaseToNotify>, Error> {
        self.backend
            .query(
                &format!(
                    "SELECT {CASE_COLS}
                     WHERE c.org_id = ?1
                       AND (c.state IN ('open', 'notified', 'reinfected')
                            OR (c.state = 'acknowledged' AND c.last_hit_at > c.state_changed_at + ?5))
                       AND c.notice_round < ?2
                       AND (c.notice_round = 0 OR c.noticed_at <= ?3)
                     ORDER BY c.id LIMIT ?4"
                ),
                vals![
                    org_id,
                    i64::from(max_rounds),
                    remind_before,
                    i64::from(limit),
                    ack_grace
                ],
            )?
            .iter()
            .map(case_to_notify)
            .collect()
    }

    /// Cases of `org_id` whose episode began at or before `started_before`,
    /// still not acknowledged, without a `channel` notification in this
    /// episode: due an escalation to `channel`.
    pub fn cases_to_escalate(
        &mut self,
        org_id: i64,
        channel: Channel,
        started_before: i64,
        limit: u32,
    ) -> Result<Vec<CaseToNotify>, Error> {
        self.backend
            .query(
                &format!(
                    "SELECT {CASE_COLS}
                     WHERE c.org_id = ?1 AND c.state IN ('open', 'notified', 'reinfected')
                       AND c.active_since <= ?2 AND c.notice_round > 0
                       AND NOT EXISTS (SELECT 1 FROM notifications n
                                       WHERE n.case_id = c.id AND n.channel = ?3
                                         AND n.created_at >= c.active_since)
                     ORDER BY c.id LIMIT ?4"
                ),
                vals![org_id, started_before, channel.as_str(), i64::from(limit)],
            )?
            .iter()
            .map(case_to_notify)
            .collect()
    }

    /// Queues notifications of one case in one transaction, with new
    /// ticket numbers of `now`'s day (Asia/Ho_Chi_Minh); with `round`, the
    /// case records that round as done. Returns (id, ticket) of each.
    pub fn plan_notifications(
        &mut self,
        org_id: i64,
        case: &CaseToNotify,
        items: &[NewNotification],
        round: Option<u32>,
        now: i64,
    ) -> Result<Vec<(i64, String)>, Error> {
        let day = from_secs("now", now + crate::cases::LOCAL_OFFSET_SECONDS)?
            .format("%Y%m%d")
            .to_string();
        self.in_transaction(|b| {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let ticket = next_ticket(b, &day)?;
                let id = b.insert_id(
                    "INSERT INTO notifications (org_id, case_id, subscriber_id, channel, language,
                         round, ticket, status, next_attempt_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?8)",
                    vals![
                        org_id,
                        case.case_id,
                        case.subscriber_id,
                        item.channel.as_str(),
                        case.language.as_str(),
                        i64::from(item.round),
                        ticket.as_str(),
                        now
                    ],
                )?;
                out.push((id, ticket));
            }
            if let Some(r) = round {
                b.execute(
                    "UPDATE cases SET notice_round = ?3, noticed_at = ?4
                     WHERE id = ?1 AND org_id = ?2",
                    vals![case.case_id, org_id, i64::from(r), now],
                )?;
            }
            Ok(out)
        })
    }

    /// Queued notifications on `channels` due at `now`, oldest first.
    pub fn due_notifications(
        &mut self,
        now: i64,
        channels: &[Channel],
        limit: u32,
    ) -> Result<Vec<NotificationContext>, Error> {
        if channels.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = channels
            .iter()
            .map(|c| format!("'{}'", c.as_str()))
            .collect();
        self.backend
            .query(
                &format!(
                    "SELECT {N_COLS}, {CTX_COLS} {CTX_FROM}
                     WHERE n.status = 'queued' AND n.next_attempt_at <= ?1
                       AND n.channel IN ({})
                     ORDER BY n.next_attempt_at, n.id LIMIT ?2",
                    list.join(", ")
                ),
                vals![now, i64::from(limit)],
            )?
            .iter()
            .map(context)
            .collect()
    }

    /// Cancels queued notifications that are no longer needed (see
    /// [`NotificationContext::is_stale`]); returns how many.
    pub fn cancel_notifications(&mut self, ids: &[i64], now: i64) -> Result<u64, Error> {
        let list = id_placeholders(2);
        let sql = format!(
            "UPDATE notifications SET status = 'cancelled', done_at = ?1
             WHERE id IN ({list}) AND status = 'queued'"
        );
        let mut n = 0;
        for chunk in ids.chunks(ID_CHUNK) {
            let mut params = vals![now].to_vec();
            params.extend(id_params(chunk));
            n += self.backend.execute(&sql, &params)?;
        }
        Ok(n)
    }

    /// Takes a due notification for sending until `lease_until`; false
    /// when another sender took it first (or it is no longer due).
    pub fn claim_notification(
        &mut self,
        id: i64,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, Error> {
        Ok(self.backend.execute(
            "UPDATE notifications SET next_attempt_at = ?3
             WHERE id = ?1 AND status = 'queued' AND next_attempt_at <= ?2",
            vals![id, now, lease_until],
        )? == 1)
    }

    /// Puts a claimed notification back without an attempt (quiet hours,
    /// a rate limit): due again at `until`.
    pub fn defer_notification(&mut self, id: i64, until: i64) -> Result<(), Error> {
        self.backend.execute(
            "UPDATE notifications SET next_attempt_at = ?2 WHERE id = ?1 AND status = 'queued'",
            vals![id, until],
        )?;
        Ok(())
    }

    /// A notification went out (the channel took it): it is `sent`, the
    /// case's timeline says so, and the case becomes `notified` if it was
    /// `open` or `reinfected`.
    pub fn notification_sent(
        &mut self,
        id: i64,
        now: i64,
        provider_id: Option<&str>,
    ) -> Result<(), Error> {
        self.in_transaction(|b| {
            let Some(r) = b.query_opt(
                "SELECT n.case_id, n.org_id, n.channel, n.ticket, c.state
                 FROM notifications n JOIN cases c ON c.id = n.case_id WHERE n.id = ?1",
                vals![id],
            )?
            else {
                return Ok(());
            };
            let (case_id, org_id, channel, ticket) = (r.int(0)?, r.int(1)?, r.text(2)?, r.text(3)?);
            let state: CaseState = word("case state", r.text(4)?)?;
            b.execute(
                "UPDATE notifications SET status = 'sent', sent_at = ?2, attempts = attempts + 1,
                     provider_id = COALESCE(?3, provider_id), last_error = NULL
                 WHERE id = ?1",
                vals![id, now, provider_id],
            )?;
            b.execute(
                "INSERT INTO notification_attempts (notification_id, at, ok) VALUES (?1, ?2, 1)",
                vals![id, now],
            )?;
            let text = format!("{channel} {ticket} sent");
            insert_event(
                b,
                case_id,
                org_id,
                now,
                "notification",
                None,
                None,
                "system",
                Some(&text),
                None,
            )?;
            if state.can_move_to(CaseState::Notified) {
                b.execute(
                    "UPDATE cases SET state = 'notified', state_changed_at = ?2, updated_at = ?2
                     WHERE id = ?1 AND state = ?3",
                    vals![case_id, now, state.as_str()],
                )?;
                insert_event(
                    b,
                    case_id,
                    org_id,
                    now,
                    "state",
                    Some(state),
                    Some(CaseState::Notified),
                    "system",
                    None,
                    None,
                )?;
            }
            Ok(())
        })
    }

    /// An attempt failed: retried at `retry_at`, or with `None` given up
    /// (status `failed`, the dead-letter list).
    pub fn notification_failed(
        &mut self,
        id: i64,
        now: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), Error> {
        let error: String = error.chars().take(1000).collect();
        self.in_transaction(|b| {
            match retry_at {
                Some(t) => b.execute(
                    "UPDATE notifications SET attempts = attempts + 1, last_error = ?2,
                         next_attempt_at = ?3 WHERE id = ?1",
                    vals![id, error.as_str(), t],
                )?,
                None => b.execute(
                    "UPDATE notifications SET attempts = attempts + 1, last_error = ?2,
                         status = 'failed' WHERE id = ?1",
                    vals![id, error.as_str()],
                )?,
            };
            b.execute(
                "INSERT INTO notification_attempts (notification_id, at, ok, error)
                 VALUES (?1, ?2, 0, ?3)",
                vals![id, now, error.as_str()],
            )?;
            if retry_at.is_none()
                && let Some(r) = b.query_opt(
                    "SELECT case_id, org_id, channel, ticket FROM notifications WHERE id = ?1",
                    vals![id],
                )?
            {
                let text = format!("{} {} failed: {error}", r.text(2)?, r.text(3)?);
                insert_event(
                    b,
                    r.int(0)?,
                    r.int(1)?,
                    now,
                    "notification",
                    None,
                    None,
                    "system",
                    Some(&text),
                    None,
                )?;
            }
            Ok(())
        })
    }

    /// Notifications of `org_id` on `channel` sent since `since`.
    pub fn sent_since(&mut self, org_id: i64, channel: Channel, since: i64) -> Result<u64, Error> {
        let n = self
            .backend
            .query_one(
                "SELECT COUNT(*) FROM notifications
                 WHERE org_id = ?1 AND channel = ?2 AND sent_at >= ?3",
                vals![org_id, channel.as_str(), since],
            )?
            .int(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Notifications of one subscriber on `channel` sent since `since`.
    pub fn sent_to_subscriber_since(
        &mut self,
        subscriber_id: i64,
        channel: Channel,
        since: i64,
    ) -> Result<u64, Error> {
        let n = self
            .backend
            .query_one(
                "SELECT COUNT(*) FROM notifications
                 WHERE subscriber_id = ?1 AND channel = ?2 AND sent_at >= ?3",
                vals![subscriber_id, channel.as_str(), since],
            )?
            .int(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// [`Store::sent_to_subscriber_since`] for many subscribers at once:
    /// those with none sent are left out.
    pub fn sent_to_subscribers_since(
        &mut self,
        subscriber_ids: &[i64],
        channel: Channel,
        since: i64,
    ) -> Result<HashMap<i64, u64>, Error> {
        let mut out = HashMap::new();
        let list = id_placeholders(3);
        let sql = format!(
            "SELECT subscriber_id, COUNT(*) FROM notifications
             WHERE subscriber_id IN ({list}) AND channel = ?1 AND sent_at >= ?2
             GROUP BY subscriber_id"
        );
        for chunk in subscriber_ids.chunks(ID_CHUNK) {
            let mut params = vals![channel.as_str(), since].to_vec();
            params.extend(id_params(chunk));
            for r in self.backend.query(&sql, &params)? {
                out.insert(r.int(0)?, u64::try_from(r.int(1)?).unwrap_or(0));
            }
        }
        Ok(out)
    }

    /// [`Store::claim_notification`] for many at once, one statement per
    /// [`ID_CHUNK`] ids; returns the ids this caller got.
    pub fn claim_notifications(
        &mut self,
        ids: &[i64],
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<i64>, Error> {
        let mut claimed = Vec::with_capacity(ids.len());
        let list = id_placeholders(3);
        let sql = format!(
            "UPDATE notifications SET next_attempt_at = ?2
             WHERE id IN ({list}) AND status = 'queued' AND next_attempt_at <= ?1
             RETURNING id"
        );
        for chunk in ids.chunks(ID_CHUNK) {
            let mut params = vals![now, lease_until].to_vec();
            params.extend(id_params(chunk));
            for r in self.backend.query(&sql, &params)? {
                claimed.push(r.int(0)?);
            }
        }
        Ok(claimed)
    }

    /// One notification of `org_id`.
    pub fn notification(
        &mut self,
        org_id: i64,
        id: i64,
    ) -> Result<Option<NotificationContext>, Error> {
        self.backend
            .query_opt(
                &format!(
                    "SELECT {N_COLS}, {CTX_COLS} {CTX_FROM} WHERE n.org_id = ?1 AND n.id = ?2"
                ),
                vals![org_id, id],
            )?
            .map(|r| context(&r))
            .transpose()
    }

    /// A notification by ticket, any organisation (acknowledgement links,
    /// verification, delivery reports).
    pub fn notification_by_ticket(
        &mut self,
        ticket: &str,
    ) -> Result<Option<NotificationContext>, Error> {
        self.backend
            .query_opt(
                &format!("SELECT {N_COLS}, {CTX_COLS} {CTX_FROM} WHERE n.ticket = ?1"),
                vals![ticket],
            )?
            .map(|r| context(&r))
            .transpose()
    }

    /// A notification by id, any organisation (a signed link names it).
    pub fn notification_by_id(&mut self, id: i64) -> Result<Option<NotificationContext>, Error> {
        self.backend
            .query_opt(
                &format!("SELECT {N_COLS}, {CTX_COLS} {CTX_FROM} WHERE n.id = ?1"),
                vals![id],
            )?
            .map(|r| context(&r))
            .transpose()
    }

    /// The notification an SMS gateway's id names.
    pub fn notification_by_provider_id(
        &mut self,
        provider_id: &str,
    ) -> Result<Option<NotificationRecord>, Error> {
        self.backend
            .query_opt(
                &format!("SELECT {N_COLS} FROM notifications n WHERE n.provider_id = ?1"),
                vals![provider_id],
            )?
            .map(|r| record(&r))
            .transpose()
    }

    /// A notification's attempts, oldest first.
    pub fn notification_attempts(
        &mut self,
        org_id: i64,
        id: i64,
    ) -> Result<Vec<NotificationAttempt>, Error> {
        self.backend
            .query(
                "SELECT a.at, a.ok, a.error FROM notification_attempts a
                 JOIN notifications n ON n.id = a.notification_id
                 WHERE n.org_id = ?1 AND a.notification_id = ?2 ORDER BY a.id",
                vals![org_id, id],
            )?
            .iter()
            .map(|r| {
                Ok(NotificationAttempt {
                    at: from_secs("attempt at", r.int(0)?)?,
                    ok: r.int(1)? != 0,
                    error: r.opt_text(2)?,
                })
            })
            .collect()
    }

    /// Notifications of `org_id` matching `filter`, by id.
    pub fn notifications(
        &mut self,
        org_id: i64,
        filter: &NotificationFilter,
        page: Page,
    ) -> Result<Vec<NotificationContext>, Error> {
        let opt = |v: Option<i64>| v.map_or(Value::Null, Value::Int);
        let text = |v: Option<&'static str>| v.map_or(Value::Null, Value::from);
        self.backend
            .query(
                &format!(
                    "SELECT {N_COLS}, {CTX_COLS} {CTX_FROM}
                     WHERE n.org_id = ?1 AND n.id > ?2
                       AND (CAST(?3 AS TEXT) IS NULL OR n.status = ?3)
                       AND (CAST(?4 AS TEXT) IS NULL OR n.channel = ?4)
                       AND (CAST(?5 AS BIGINT) IS NULL OR n.case_id = ?5)
                       AND (CAST(?6 AS BIGINT) IS NULL OR n.created_at >= ?6)
                       AND (CAST(?7 AS BIGINT) IS NULL OR n.created_at < ?7)
                       AND (?8 = 0 OR (n.done_at IS NULL
                            AND n.status IN ('queued', 'sent', 'delivered')
                            AND c.state <> 'resolved'
                            AND NOT (c.state = 'acknowledged'
                                     AND c.state_changed_at >= n.created_at)))
                     ORDER BY n.id LIMIT ?9"
                ),
                &[
                    Value::Int(org_id),
                    Value::Int(page.after()),
                    text(filter.status.map(NotificationStatus::as_str)),
                    text(filter.channel.map(Channel::as_str)),
                    opt(filter.case_id),
                    opt(filter.created_from),
                    opt(filter.created_to),
                    Value::Int(i64::from(filter.open_only)),
                    Value::Int(page.limit()),
                ],
            )?
            .iter()
            .map(context)
            .collect()
    }

    /// A delivery report: `delivered`, or failed with `error` (a report
    /// cannot undo an acknowledgement).
    pub fn notification_delivered(
        &mut self,
        id: i64,
        delivered: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool, Error> {
        let n = if delivered {
            self.backend.execute(
                "UPDATE notifications SET status = 'delivered', delivered_at = ?2
                 WHERE id = ?1 AND status IN ('sent', 'delivered')",
                vals![id, now],
            )?
        } else {
            self.backend.execute(
                "UPDATE notifications SET status = 'failed', last_error = ?2
                 WHERE id = ?1 AND status IN ('sent', 'queued')",
                vals![id, error.unwrap_or("not delivered")],
            )?
        };
        Ok(n > 0)
    }

    /// The subscriber acknowledged notification `id` (`via`: `web`,
    /// `link`, `staff`): it and the case's web notices are
    /// `acknowledged`, and the case becomes `acknowledged` when its state
    /// allows. Returns the case id, or `None` for no such notification.
    pub fn acknowledge_notification(
        &mut self,
        id: i64,
        via: &str,
        now: i64,
    ) -> Result<Option<i64>, Error> {
        self.in_transaction(|b| {
            let Some(r) = b.query_opt(
                "SELECT n.case_id, n.org_id, c.state, n.ticket
                 FROM notifications n JOIN cases c ON c.id = n.case_id WHERE n.id = ?1",
                vals![id],
            )?
            else {
                return Ok(None);
            };
            let (case_id, org_id) = (r.int(0)?, r.int(1)?);
            let state: CaseState = word("case state", r.text(2)?)?;
            let ticket = r.text(3)?;
            b.execute(
                "UPDATE notifications SET status = 'acknowledged', acknowledged_at = ?2
                 WHERE (id = ?1 OR (case_id = ?3 AND channel = 'web'))
                   AND status IN ('queued', 'sent', 'delivered')",
                vals![id, now, case_id],
            )?;
            // The rest of the round has nothing left to say: warnings not
            // yet sent, calls not yet made, bill notes not yet printed.
            b.execute(
                "UPDATE notifications SET status = 'cancelled', done_at = ?2
                 WHERE case_id = ?1 AND id <> ?3
                   AND (status = 'queued'
                        OR (channel IN ('call-queue', 'bill') AND status IN ('sent', 'delivered')
                            AND done_at IS NULL))",
                vals![case_id, now, id],
            )?;
            let text = format!("acknowledged by the subscriber ({via}, {ticket})");
            if state.can_move_to(CaseState::Acknowledged) {
                b.execute(
                    "UPDATE cases SET state = 'acknowledged', state_changed_at = ?2, updated_at = ?2
                     WHERE id = ?1 AND state = ?3",
                    vals![case_id, now, state.as_str()],
                )?;
                insert_event(
                    b,
                    case_id,
                    org_id,
                    now,
                    "state",
                    Some(state),
                    Some(CaseState::Acknowledged),
                    "subscriber",
                    Some(&text),
                    None,
                )?;
            } else {
                // Acknowledged again (a later round), or after staff moved
                // the case on: the timeline still shows it.
                if state == CaseState::Acknowledged {
                    b.execute(
                        "UPDATE cases SET state_changed_at = ?2, updated_at = ?2 WHERE id = ?1",
                        vals![case_id, now],
                    )?;
                }
                insert_event(
                    b,
                    case_id,
                    org_id,
                    now,
                    "notification",
                    None,
                    None,
                    "subscriber",
                    Some(&text),
                    None,
                )?;
            }
            Ok(Some(case_id))
        })
    }

    /// Puts a failed notification of `org_id` back in the queue (from the
    /// dead-letter list). False when there is no such failed notification.
    pub fn retry_notification(&mut self, org_id: i64, id: i64, now: i64) -> Result<bool, Error> {
        Ok(self.backend.execute(
            "UPDATE notifications SET status = 'queued', next_attempt_at = ?3, last_error = NULL
             WHERE org_id = ?1 AND id = ?2 AND status = 'failed'",
            vals![org_id, id, now],
        )? == 1)
    }

    /// Marks a call-queue or bill row of `org_id` handled (called, printed).
    pub fn mark_notification_done(
        &mut self,
        org_id: i64,
        id: i64,
        now: i64,
    ) -> Result<bool, Error> {
        Ok(self.backend.execute(
            "UPDATE notifications SET done_at = ?3, delivered_at = COALESCE(delivered_at, ?3),
                 status = CASE WHEN status IN ('queued', 'sent') THEN 'delivered' ELSE status END
             WHERE org_id = ?1 AND id = ?2 AND channel IN ('call-queue', 'bill') AND done_at IS NULL",
            vals![org_id, id, now],
        )? == 1)
    }

    /// The subscribers of `org_id` with a web notice up (as
    /// [`Store::active_web_notices`]) that was posted at or after `since`.
    pub fn subscribers_with_web_notices(
        &mut self,
        org_id: i64,
        since: i64,
    ) -> Result<Vec<i64>, Error> {
        self.backend
            .query(
                "SELECT DISTINCT n.subscriber_id
                 FROM notifications n JOIN cases c ON c.id = n.case_id
                 WHERE n.org_id = ?1 AND n.channel = 'web'
                   AND n.status IN ('sent', 'delivered') AND n.sent_at >= ?2
                   AND (c.state IN ('open', 'notified', 'reinfected')
                        OR (c.state = 'acknowledged' AND n.created_at > c.state_changed_at))
                 ORDER BY n.subscriber_id",
                vals![org_id, since],
            )?
            .iter()
            .map(|r| r.int(0))
            .collect()
    }

    /// The web notices of a subscriber that are up: sent or delivered and
    /// not acknowledged, of a case still needing work (for an acknowledged
    /// case, only notices of a round after the acknowledgement).
    pub fn active_web_notices(
        &mut self,
        org_id: i64,
        subscriber_id: i64,
    ) -> Result<Vec<NotificationContext>, Error> {
        self.backend
            .query(
                &format!(
                    "SELECT {N_COLS}, {CTX_COLS} {CTX_FROM}
                     WHERE n.org_id = ?1 AND n.subscriber_id = ?2 AND n.channel = 'web'
                       AND n.status IN ('sent', 'delivered')
                       AND (c.state IN ('open', 'notified', 'reinfected')
                            OR (c.state = 'acknowledged' AND n.created_at > c.state_changed_at))
                     ORDER BY n.id DESC"
                ),
                vals![org_id, subscriber_id],
            )?
            .iter()
            .map(context)
            .collect()
    }
}

/// Ids per statement of the batched queries. Every statement has exactly
/// this many id parameters (a short chunk repeats its last id), so there is
/// one statement shape to prepare, not one per chunk length.
const ID_CHUNK: usize = 200;

/// `?first, ?first+1, …` for [`ID_CHUNK`] ids.
fn id_placeholders(first: usize) -> String {
    (first..first + ID_CHUNK)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A chunk of ids as [`ID_CHUNK`] parameters.
fn id_params(chunk: &[i64]) -> Vec<Value> {
    let last = chunk.last().copied().unwrap_or(0);
    (0..ID_CHUNK)
        .map(|i| Value::Int(chunk.get(i).copied().unwrap_or(last)))
        .collect()
}
