//! Infection cases: one per (subscriber, family), moved by attributed
//! hits, by staff and by the resolution job; and their statistics.
//!
//! Hits reach cases as [`CaseHits`] — a batch's attributed hits summed per
//! (subscriber, family) — applied in the same transaction that stores the
//! hits, so an idempotent batch moves its cases exactly once. The rules
//! are the model's ([`CaseState`]): a new (subscriber, family) opens a
//! case; hits newer than a case's resolution reinfect it; hits older than
//! it (a sensor's spool arriving late) only add to the counts.
//!
//! Days (the daily hit counts of the timeline, the per-day statistics) are
//! counted in Asia/Ho_Chi_Minh, UTC+7 without daylight saving:
//! `(unix seconds + 25200) / 86400`.
//!
//! Time to remediation, per resolution: from the start of the episode
//! (the first hit, or the hit that reinfected) to its last hit when the
//! job resolves a case after days of silence, or to the moment staff
//! resolved it by hand.

use std::collections::HashMap;

use chrono::Utc;
use khien_model::{CaseState, Timestamp};
use serde::Serialize;

use crate::merge::{from_secs, secs};
use crate::sql::{SqlRow, Value, vals};
use crate::tenants::Page;
use crate::{Backend, Error, Store};

/// Seconds Asia/Ho_Chi_Minh is ahead of UTC.
pub const LOCAL_OFFSET_SECONDS: i64 = 7 * 3600;

/// The day number (days since 1970-01-01, Asia/Ho_Chi_Minh) of `t`.
pub fn local_day(t: i64) -> i64 {
    (t + LOCAL_OFFSET_SECONDS).div_euclid(86_400)
}

/// The family a case of hits without one is filed under.
pub const UNKNOWN_FAMILY: &str = "unknown";

/// Attributed hits of one (subscriber, family), summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseHits {
    pub subscriber_id: i64,
    pub family: String,
    pub count: u64,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    /// Hits per local day.
    pub days: Vec<(i64, u64)>,
}

/// Sums `(subscriber, family, count, first_seen, last_seen)` parts into
/// [`CaseHits`], in (subscriber, family) order so that concurrent writers
/// lock rows in the same order.
pub fn sum_case_hits(parts: impl IntoIterator<Item = CasePart>) -> Vec<CaseHits> {
    let mut by: HashMap<(i64, String), (CaseHits, HashMap<i64, u64>)> = HashMap::new();
    for (subscriber_id, family, count, first, last) in parts {
        let family = family.unwrap_or_else(|| UNKNOWN_FAMILY.to_string());
        let day = local_day(first);
        let (c, days) = by
            .entry((subscriber_id, family.clone()))
            .or_insert_with(|| {
                (
                    CaseHits {
                        subscriber_id,
                        family,
                        count: 0,
                        first_seen: first,
                        last_seen: last,
                        days: Vec::new(),
                    },
                    HashMap::new(),
                )
            });
        c.count = c.count.saturating_add(count);
        c.first_seen = c.first_seen.min(first);
        c.last_seen = c.last_seen.max(last);
        *days.entry(day).or_default() += count;
    }
    let mut out: Vec<CaseHits> = by
        .into_values()
        .map(|(mut c, days)| {
            c.days = days.into_iter().collect();
            c.days.sort_unstable();
            c
        })
        .collect();
    out.sort_by(|a, b| (a.subscriber_id, &a.family).cmp(&(b.subscriber_id, &b.family)));
    out
}

/// What applying hits did to cases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CaseOutcome {
    pub opened: u64,
    pub reinfected: u64,
    pub updated: u64,
}

impl std::ops::AddAssign for CaseOutcome {
    fn add_assign(&mut self, o: Self) {
        self.opened += o.opened;
        self.reinfected += o.reinfected;
        self.updated += o.updated;
    }
}

/// A stored case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    pub id: i64,
    pub org_id: i64,
    pub subscriber_id: i64,
    /// The subscriber's pseudonym.
    pub subscriber: String,
    pub family: String,
    pub state: CaseState,
    pub opened_at: Timestamp,
    pub active_since: Timestamp,
    pub first_hit_at: Timestamp,
    pub last_hit_at: Timestamp,
    pub hit_count: u64,
    pub state_changed_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub reinfections: u64,
    pub assignee_id: Option<i64>,
    pub updated_at: Timestamp,
}

/// One entry of a case's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseEvent {
    pub id: i64,
    pub at: Timestamp,
    /// `opened`, `state`, `comment`, `assigned`, `notification`.
    pub kind: String,
    pub from_state: Option<CaseState>,
    pub to_state: Option<CaseState>,
    /// `user:ID` or `system`.
    pub actor: String,
    pub text: Option<String>,
}

/// Which cases [`Store::cases`] lists.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub states: Vec<CaseState>,
    pub family: Option<String>,
    pub subscriber_id: Option<i64>,
    pub assignee_id: Option<i64>,
}

/// Counts of one (organisation, family) over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseStats {
    pub org_id: i64,
    pub family: String,
    /// Active cases now (whatever the period).
    pub open: u64,
    /// Cases opened in the period.
    pub new: u64,
    pub resolved: u64,
    pub reinfected: u64,
    /// Median time to remediation of the period's resolutions, seconds.
    pub median_remediation_seconds: Option<i64>,
}

/// One day of one (organisation, family).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseDay {
    pub org_id: i64,
    pub family: String,
    /// Days since 1970-01-01 in Asia/Ho_Chi_Minh.
    pub day: i64,
    pub new: u64,
    pub resolved: u64,
    pub reinfected: u64,
}

/// Statistics for [`Store::case_stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CaseStatistics {
    pub totals: Vec<CaseStats>,
    pub days: Vec<CaseDay>,
}

const CASE_COLS: &str = "c.id, c.org_id, c.subscriber_id, s.pseudonym, c.family, c.state, \
     c.opened_at, c.active_since, c.first_hit_at, c.last_hit_at, c.hit_count, c.state_changed_at, \
     c.resolved_at, c.reinfections, c.assignee_id, c.updated_at \
     FROM cases c JOIN subscribers s ON s.id = c.subscriber_id";

fn state(s: &str) -> Result<CaseState, Error> {
    s.parse().map_err(|e| Error::corrupt("case state", e))
}

fn case(r: &SqlRow) -> Result<Case, Error> {
    let t = |i: usize, what: &str| from_secs(what, r.int(i)?);
    Ok(Case {
        id: r.int(0)?,
        org_id: r.int(1)?,
        subscriber_id: r.int(2)?,
        subscriber: r.text(3)?,
        family: r.text(4)?,
        state: state(&r.text(5)?)?,
        opened_at: t(6, "case opened_at")?,
        active_since: t(7, "case active_since")?,
        first_hit_at: t(8, "case first_hit_at")?,
        last_hit_at: t(9, "case last_hit_at")?,
        hit_count: u64::try_from(r.int(10)?).unwrap_or(0),
        state_changed_at: t(11, "case state_changed_at")?,
        resolved_at: r
            .opt_int(12)?
            .map(|v| from_secs("case resolved_at", v))
            .transpose()?,
        reinfections: u64::try_from(r.int(13)?).unwrap_or(0),
        assignee_id: r.opt_int(14)?,
        updated_at: t(15, "case updated_at")?,
    })
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored case as the case job needs it: (id, state, resolved at).
type CaseHead = (i64, CaseState, Option<i64>);

/// One part of a case's hits: (subscriber, family, count, first seen,
/// last seen), as [`sum_case_hits`] takes them.
pub(crate) type CasePart = (i64, Option<String>, u64, i64, i64);

/// Subscribers looked up per query when a batch finds its cases; the
/// list is padded to this length so that one prepared statement serves.
const CASE_LOOKUP: usize = 256;

/// The cases of `hits` that exist: (subscriber, family) → (id, state,
/// resolved at), a query per [`CASE_LOOKUP`] subscribers instead of one per
/// case.
fn existing_cases(
    b: &mut Backend,
    org_id: i64,
    hits: &[CaseHits],
) -> Result<HashMap<(i64, String), CaseHead>, Error> {
    let mut subscribers: Vec<i64> = hits.iter().map(|h| h.subscriber_id).collect();
    subscribers.dedup();
    let placeholders: Vec<String> = (0..CASE_LOOKUP).map(|i| format!("?{}", i + 2)).collect();
    let sql = format!(
        "SELECT id, subscriber_id, family, state, resolved_at FROM cases
         WHERE org_id = ?1 AND subscriber_id IN ({})",
        placeholders.join(", ")
    );
    let mut out = HashMap::with_capacity(hits.len());
    for chunk in subscribers.chunks(CASE_LOOKUP) {
        let mut params = Vec::with_capacity(CASE_LOOKUP + 1);
        params.push(Value::Int(org_id));
        params.extend(chunk.iter().map(|&s| Value::Int(s)));
        // Padding that matches no subscriber.
        params.resize(CASE_LOOKUP + 1, Value::Int(-1));
        for r in b.query(&sql, &params)? {
            out.insert(
                (r.int(1)?, r.text(2)?),
                (r.int(0)?, state(&r.text(3)?)?, r.opt_int(4)?),
            );
        }
    }
    Ok(out)
}

/// Applies summed hits to cases; `now` is the hub's time of the change.
pub(crate) fn apply_case_hits(
    b: &mut Backend,
    org_id: i64,
    hits: &[CaseHits],
    now: i64,
) -> Result<CaseOutcome, Error> {
    let mut out = CaseOutcome::default();
    if hits.is_empty() {
        return Ok(out);
    }
    let existing = existing_cases(b, org_id, hits)?;
    for h in hits {
        let case_id = match existing.get(&(h.subscriber_id, h.family.clone())) {
            None => {
                // The opening is the case row itself (created_at); the
                // timeline shows it without an event row of its own.
                let id = b.insert_id(
                    "INSERT INTO cases (org_id, subscriber_id, family, state, opened_at,
                         active_since, first_hit_at, last_hit_at, hit_count, state_changed_at,
                         created_at, updated_at)
                     VALUES (?1, ?2, ?3, 'open', ?4, ?4, ?4, ?5, ?6, ?7, ?7, ?7)",
                    vals![
                        org_id,
                        h.subscriber_id,
                        h.family.as_str(),
                        h.first_seen,
                        h.last_seen,
                        clamp(h.count),
                        now
                    ],
                )?;
                out.opened += 1;
                id
            }
            Some(&(id, current, resolved_at)) => {
                let reinfects =
                    current == CaseState::Resolved && resolved_at.is_some_and(|t| h.last_seen >= t);
                if reinfects {
                    // The new episode starts at the first hit after the
                    // resolution (or the resolution itself, if the batch
                    // spans it).
                    let since = h.first_seen.max(resolved_at.unwrap_or(h.first_seen));
                    b.execute(
                        "UPDATE cases SET state = 'reinfected', reinfections = reinfections + 1,
                             active_since = ?2, resolved_at = NULL, state_changed_at = ?3,
                             notice_round = 0, noticed_at = NULL,
                             hit_count = hit_count + ?4,
                             first_hit_at = CASE WHEN ?5 < first_hit_at THEN ?5 ELSE first_hit_at END,
                             last_hit_at = CASE WHEN ?6 > last_hit_at THEN ?6 ELSE last_hit_at END,
                             updated_at = ?3
                         WHERE id = ?1",
                        vals![id, since, now, clamp(h.count), h.first_seen, h.last_seen],
                    )?;
                    insert_event(
                        b,
                        id,
                        org_id,
                        now,
                        "state",
                        Some(CaseState::Resolved),
                        Some(CaseState::Reinfected),
                        "system",
                        None,
                        None,
                    )?;
                    out.reinfected += 1;
                } else {
                    b.execute(
                        "UPDATE cases SET hit_count = hit_count + ?2,
                             first_hit_at = CASE WHEN ?3 < first_hit_at THEN ?3 ELSE first_hit_at END,
                             last_hit_at = CASE WHEN ?4 > last_hit_at THEN ?4 ELSE last_hit_at END,
                             updated_at = ?5
                         WHERE id = ?1",
                        vals![id, clamp(h.count), h.first_seen, h.last_seen, now],
                    )?;
                    out.updated += 1;
                }
                id
            }
        };
        for &(day, n) in &h.days {
            b.execute(
                "INSERT INTO case_daily_hits (case_id, day, count) VALUES (?1, ?2, ?3)
                 ON CONFLICT (case_id, day) DO UPDATE SET count = case_daily_hits.count + excluded.count",
                vals![case_id, day, clamp(n)],
            )?;
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_event(
    b: &mut Backend,
    case_id: i64,
    org_id: i64,
    at: i64,
    kind: &str,
    from: Option<CaseState>,
    to: Option<CaseState>,
    actor: &str,
    text: Option<&str>,
    duration: Option<i64>,
) -> Result<(), Error> {
    b.execute(
        "INSERT INTO case_events (case_id, org_id, at, kind, from_state, to_state, actor, text,
                                  duration)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        vals![
            case_id,
            org_id,
            at,
            kind,
            from.map(CaseState::as_str),
            to.map(CaseState::as_str),
            actor,
            text,
            duration
        ],
    )?;
    Ok(())
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

impl Store {
    /// Cases of `org_id` matching `filter`, by id.
    pub fn cases(
        &mut self,
        org_id: i64,
        filter: &CaseFilter,
        page: Page,
    ) -> Result<Vec<Case>, Error> {
        let mut sql = format!("SELECT {CASE_COLS} WHERE c.org_id = ?1 AND c.id > ?2");
        let mut params = vec![Value::Int(org_id), Value::Int(page.after())];
        let mut bind = |sql: &mut String, cond: &str, v: Value| {
            params.push(v);
            sql.push_str(&format!(" AND {cond} ?{}", params.len()));
        };
        if !filter.states.is_empty() {
            let list: Vec<String> = filter
                .states
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            sql.push_str(&format!(" AND c.state IN ({})", list.join(", ")));
        }
        if let Some(f) = &filter.family {
            bind(&mut sql, "c.family =", Value::from(f.as_str()));
        }
        if let Some(s) = filter.subscriber_id {
            bind(&mut sql, "c.subscriber_id =", Value::Int(s));
        }
        if let Some(a) = filter.assignee_id {
            bind(&mut sql, "c.assignee_id =", Value::Int(a));
        }
        params.push(Value::Int(page.limit()));
        sql.push_str(&format!(" ORDER BY c.id LIMIT ?{}", params.len()));
        self.backend
            .query(&sql, &params)?
            .iter()
            .map(case)
            .collect()
    }

    /// One case of `org_id`.
    pub fn case(&mut self, org_id: i64, id: i64) -> Result<Option<Case>, Error> {
        self.backend
            .query_opt(
                &format!("SELECT {CASE_COLS} WHERE c.org_id = ?1 AND c.id = ?2"),
                vals![org_id, id],
            )?
            .map(|r| case(&r))
            .transpose()
    }

    /// A case's timeline, oldest first.
    pub fn case_events(&mut self, org_id: i64, case_id: i64) -> Result<Vec<CaseEvent>, Error> {
        let Some(created) = self.backend.query_opt(
            "SELECT created_at FROM cases WHERE org_id = ?1 AND id = ?2",
            vals![org_id, case_id],
        )?
        else {
            return Ok(Vec::new());
        };
        let opened = CaseEvent {
            id: 0,
            at: from_secs("case created_at", created.int(0)?)?,
            kind: "opened".into(),
            from_state: None,
            to_state: Some(CaseState::Open),
            actor: "system".into(),
            text: None,
        };
        let events: Result<Vec<CaseEvent>, Error> = self
            .backend
            .query(
                "SELECT id, at, kind, from_state, to_state, actor, text FROM case_events
                 WHERE org_id = ?1 AND case_id = ?2 ORDER BY id",
                vals![org_id, case_id],
            )?
            .iter()
            .map(|r| {
                Ok(CaseEvent {
                    id: r.int(0)?,
                    at: from_secs("case event at", r.int(1)?)?,
                    kind: r.text(2)?,
                    from_state: r.opt_text(3)?.map(|s| state(&s)).transpose()?,
                    to_state: r.opt_text(4)?.map(|s| state(&s)).transpose()?,
                    actor: r.text(5)?,
                    text: r.opt_text(6)?,
                })
            })
            .collect();
        Ok(std::iter::once(opened).chain(events?).collect())
    }

    /// A case's hits per local day, oldest first.
    pub fn case_daily_hits(&mut self, org_id: i64, case_id: i64) -> Result<Vec<(i64, u64)>, Error> {
        self.backend
            .query(
                "SELECT d.day, d.count FROM case_daily_hits d JOIN cases c ON c.id = d.case_id
                 WHERE c.org_id = ?1 AND d.case_id = ?2 ORDER BY d.day",
                vals![org_id, case_id],
            )?
            .iter()
            .map(|r| Ok((r.int(0)?, u64::try_from(r.int(1)?).unwrap_or(0))))
            .collect()
    }

    /// Staff move a case of `org_id` to `to` (see
    /// [`CaseState::can_move_to`]). `None` when there is no such case;
    /// [`Error::Conflict`] when its state does not allow the move.
    pub fn transition_case(
        &mut self,
        org_id: i64,
        id: i64,
        to: CaseState,
        actor: &str,
        note: Option<&str>,
    ) -> Result<Option<Case>, Error> {
        let Some(current) = self.case(org_id, id)? else {
            return Ok(None);
        };
        if !current.state.can_move_to(to) {
            return Err(Error::Conflict {
                what: "case state",
                reason: format!("a case that is {} cannot become {to}", current.state),
            });
        }
        let now = secs(Utc::now());
        let duration = (to == CaseState::Resolved).then(|| now - secs(current.active_since));
        self.in_transaction(|b| {
            // The state in the WHERE makes a concurrent move lose cleanly.
            let n = b.execute(
                "UPDATE cases SET state = ?3, state_changed_at = ?4, updated_at = ?4,
                     resolved_at = CASE WHEN ?3 = 'resolved' THEN ?4 ELSE resolved_at END
                 WHERE id = ?1 AND state = ?2",
                vals![id, current.state.as_str(), to.as_str(), now],
            )?;
            if n == 0 {
                return Err(Error::Conflict {
                    what: "case state",
                    reason: "the case changed meanwhile; reload it".into(),
                });
            }
            insert_event(
                b,
                id,
                org_id,
                now,
                "state",
                Some(current.state),
                Some(to),
                actor,
                note,
                duration,
            )
        })?;
        self.case(org_id, id)
    }

    /// Assigns a case of `org_id` to a user of the same organisation, or
    /// unassigns it. `None` when the case or the user is not in `org_id`.
    pub fn assign_case(
        &mut self,
        org_id: i64,
        id: i64,
        assignee: Option<i64>,
        actor: &str,
    ) -> Result<Option<Case>, Error> {
        if self.case(org_id, id)?.is_none() {
            return Ok(None);
        }
        if let Some(u) = assignee
            && self.user(u)?.is_none_or(|u| u.org_id != org_id)
        {
            return Ok(None);
        }
        let now = secs(Utc::now());
        self.in_transaction(|b| {
            b.execute(
                "UPDATE cases SET assignee_id = ?2, updated_at = ?3 WHERE id = ?1",
                vals![id, assignee, now],
            )?;
            let text = assignee.map_or_else(|| "unassigned".to_string(), |u| format!("user:{u}"));
            insert_event(
                b,
                id,
                org_id,
                now,
                "assigned",
                None,
                None,
                actor,
                Some(&text),
                None,
            )
        })?;
        self.case(org_id, id)
    }

    /// Adds a comment to a case of `org_id`; false when there is no such
    /// case.
    pub fn comment_case(
        &mut self,
        org_id: i64,
        id: i64,
        actor: &str,
        text: &str,
    ) -> Result<bool, Error> {
        if text.trim().is_empty() || text.chars().count() > 10_000 {
            return Err(Error::Invalid {
                what: "comment",
                reason: "a comment has 1 to 10,000 characters".into(),
            });
        }
        if self.case(org_id, id)?.is_none() {
            return Ok(false);
        }
        let now = secs(Utc::now());
        self.in_transaction(|b| {
            insert_event(
                b,
                id,
                org_id,
                now,
                "comment",
                None,
                None,
                actor,
                Some(text),
                None,
            )?;
            b.execute(
                "UPDATE cases SET updated_at = ?2 WHERE id = ?1",
                vals![id, now],
            )?;
            Ok(())
        })?;
        Ok(true)
    }

    /// Adds an entry of another kind (a notification) to a case's
    /// timeline.
    pub fn case_note(
        &mut self,
        org_id: i64,
        id: i64,
        kind: &str,
        actor: &str,
        text: &str,
    ) -> Result<(), Error> {
        let now = secs(Utc::now());
        insert_event(
            &mut self.backend,
            id,
            org_id,
            now,
            kind,
            None,
            None,
            actor,
            Some(text),
            None,
        )
    }

    /// The resolution job: resolves every active case whose last hit is at
    /// or before `cutoff`, with its time to remediation up to that hit.
    /// Returns how many it resolved.
    pub fn resolve_quiet_cases(&mut self, cutoff: Timestamp, days: u32) -> Result<u64, Error> {
        let cutoff = secs(cutoff);
        let now = secs(Utc::now());
        let note = format!("no hits for {days} days");
        self.in_transaction(|b| {
            let rows = b.query(
                "SELECT id, org_id, state, active_since, last_hit_at FROM cases
                 WHERE state <> 'resolved' AND last_hit_at <= ?1 ORDER BY id",
                vals![cutoff],
            )?;
            let mut n = 0;
            for r in &rows {
                let (id, org_id, from) = (r.int(0)?, r.int(1)?, state(&r.text(2)?)?);
                let duration = (r.int(4)? - r.int(3)?).max(0);
                b.execute(
                    "UPDATE cases SET state = 'resolved', resolved_at = ?2, state_changed_at = ?2,
                         updated_at = ?2
                     WHERE id = ?1",
                    vals![id, now],
                )?;
                insert_event(
                    b,
                    id,
                    org_id,
                    now,
                    "state",
                    Some(from),
                    Some(CaseState::Resolved),
                    "system",
                    Some(&note),
                    Some(duration),
                )?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Statistics per (organisation, family) for local days `from_day` up
    /// to, not including, `to_day`: of one organisation, or of all.
    pub fn case_stats(
        &mut self,
        org_id: Option<i64>,
        from_day: i64,
        to_day: i64,
    ) -> Result<CaseStatistics, Error> {
        let org = org_id.map_or(Value::Null, Value::Int);
        let from = from_day * 86_400 - LOCAL_OFFSET_SECONDS;
        let to = to_day * 86_400 - LOCAL_OFFSET_SECONDS;
        type Key = (i64, String);
        let mut totals: HashMap<Key, CaseStats> = HashMap::new();
        let mut durations: HashMap<Key, Vec<i64>> = HashMap::new();
        let mut days: HashMap<(i64, String, i64), CaseDay> = HashMap::new();
        fn total<'a>(totals: &'a mut HashMap<Key, CaseStats>, k: &Key) -> &'a mut CaseStats {
            totals.entry(k.clone()).or_insert_with(|| CaseStats {
                org_id: k.0,
                family: k.1.clone(),
                open: 0,
                new: 0,
                resolved: 0,
                reinfected: 0,
                median_remediation_seconds: None,
            })
        }
        let count = |r: &SqlRow, i: usize| -> Result<u64, Error> {
            Ok(u64::try_from(r.int(i)?).unwrap_or(0))
        };
        for r in self.backend.query(
            "SELECT org_id, family, COUNT(*) FROM cases
             WHERE state <> 'resolved' AND (CAST(?1 AS BIGINT) IS NULL OR org_id = ?1)
             GROUP BY org_id, family",
            std::slice::from_ref(&org),
        )? {
            total(&mut totals, &(r.int(0)?, r.text(1)?)).open = count(&r, 2)?;
        }
        for r in self.backend.query(
            "SELECT org_id, family, (opened_at + 25200) / 86400, COUNT(*) FROM cases
             WHERE opened_at >= ?2 AND opened_at < ?3 AND (CAST(?1 AS BIGINT) IS NULL OR org_id = ?1)
             GROUP BY org_id, family, (opened_at + 25200) / 86400",
            &[org.clone(), Value::Int(from), Value::Int(to)],
        )? {
            let k = (r.int(0)?, r.text(1)?);
            let n = count(&r, 3)?;
            total(&mut totals, &k).new += n;
            let day = r.int(2)?;
            days.entry((k.0, k.1.clone(), day))
                .or_insert_with(|| CaseDay {
                    org_id: k.0,
                    family: k.1.clone(),
                    day,
                    new: 0,
                    resolved: 0,
                    reinfected: 0,
                })
                .new += n;
        }
        for r in self.backend.query(
            "SELECT e.org_id, c.family, (e.at + 25200) / 86400, e.to_state, e.duration
             FROM case_events e JOIN cases c ON c.id = e.case_id
             WHERE e.kind = 'state' AND e.to_state IN ('resolved', 'reinfected')
               AND e.at >= ?2 AND e.at < ?3 AND (CAST(?1 AS BIGINT) IS NULL OR e.org_id = ?1)",
            &[org.clone(), Value::Int(from), Value::Int(to)],
        )? {
            let k = (r.int(0)?, r.text(1)?);
            let day = r.int(2)?;
            let resolved = r.text(3)? == "resolved";
            let t = total(&mut totals, &k);
            let d = days
                .entry((k.0, k.1.clone(), day))
                .or_insert_with(|| CaseDay {
                    org_id: k.0,
                    family: k.1.clone(),
                    day,
                    new: 0,
                    resolved: 0,
                    reinfected: 0,
                });
            if resolved {
                t.resolved += 1;
                d.resolved += 1;
                if let Some(s) = r.opt_int(4)? {
                    durations.entry(k).or_default().push(s);
                }
            } else {
                t.reinfected += 1;
                d.reinfected += 1;
            }
        }
        for (k, v) in durations {
            if let Some(t) = totals.get_mut(&k) {
                t.median_remediation_seconds = median(v);
            }
        }
        let mut totals: Vec<CaseStats> = totals.into_values().collect();
        totals.sort_by(|a, b| (a.org_id, &a.family).cmp(&(b.org_id, &b.family)));
        let mut days: Vec<CaseDay> = days.into_values().collect();
        days.sort_by(|a, b| (a.day, a.org_id, &a.family).cmp(&(b.day, b.org_id, &b.family)));
        Ok(CaseStatistics { totals, days })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days_turn_at_midnight_in_ho_chi_minh_city() {
        // 2026-11-24T16:59:59Z is 23:59:59 local; a second later is the
        // next local day.
        let before = 1_795_539_599;
        assert_eq!(local_day(before) + 1, local_day(before + 1));
    }

    #[test]
    fn parts_sum_per_subscriber_and_family_with_days() {
        let day = 86_400;
        let t0 = 1_795_500_000;
        let sums = sum_case_hits([
            (2, Some("mirai".into()), 3, t0, t0 + 10),
            (1, None, 1, t0, t0),
            (2, Some("mirai".into()), 2, t0 + day, t0 + day + 5),
            (2, Some("emotet".into()), 1, t0, t0),
        ]);
        assert_eq!(sums.len(), 3);
        assert_eq!(
            (sums[0].subscriber_id, sums[0].family.as_str()),
            (1, "unknown")
        );
        let mirai = &sums[2];
        assert_eq!(mirai.family, "mirai");
        assert_eq!(mirai.count, 5);
        assert_eq!((mirai.first_seen, mirai.last_seen), (t0, t0 + day + 5));
        assert_eq!(mirai.days, vec![(local_day(t0), 3), (local_day(t0) + 1, 2)]);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5, 1, 3]), Some(3));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2));
    }
}
