//! Sensor hits: idempotent batches, merged per key, attributed to
//! subscribers, moving cases; and their reads.
//!
//! A batch is identified by (organisation, sensor, batch id). [`Store::record_hits`]
//! applies it in one transaction that also inserts its `hit_batches` row,
//! whose primary key makes a second submission of the same id — a retry
//! after a lost response, or two submissions racing each other — a no-op
//! that reports `duplicate`. On PostgreSQL the batch row is inserted first
//! (`ON CONFLICT DO NOTHING`): a concurrent submission of the same id waits
//! on the key until the first commits or rolls back, then sees the outcome.
//! SQLite takes the write lock at `BEGIN IMMEDIATE`, which serialises them.
//!
//! The hub attributes each hit to a subscriber before it calls the store
//! (its interval index lives in memory); the store keeps the subscriber
//! with the hit. Cases and the per-client activity follow in the case job,
//! [`Store::apply_pending_hits`]: it takes the batches not applied yet,
//! many at a time, and applies their attributed hits to cases
//! ([`crate::cases`]) in the transaction that marks them applied, so each
//! moves cases exactly once. Keeping that work out of the ingest
//! transaction keeps ingest an append at the end of the table, and doing
//! it for many batches at once writes each page of the case tables once
//! per run instead of once per batch. A hit nobody held the address for
//! is stored unattributed; when attribution data arrives later,
//! [`Store::attribute_hits`] attributes it and moves cases then.
//!
//! Hits are stored as parts: a batch's hits of one key (organisation,
//! bucket, sensor, client, kind, indicator) are merged into one row, and
//! every batch's rows are appended. Reads add the parts of a key up with
//! the rule of [`Hit::merge`]: counts sum (saturating at `i64::MAX`, the
//! column's limit),
//! `first_seen` is the minimum, `last_seen` the maximum, the evidence and
//! port of the earliest part are kept, and the other attributes
//! (indicator id, family, threat type) stay as the first part gave them.
//! Appending is what makes ingest fast: the rows of a batch land at the
//! end of the table, where an upsert by key touched a random page of the
//! whole table for each hit. Times are stored in whole seconds, like
//! every time in the store.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::Utc;
use khien_model::{Hit, Timestamp};
use rusqlite::{params, params_from_iter};
use serde::Serialize;

use crate::cases::{CaseOutcome, CasePart, UNKNOWN_FAMILY, apply_case_hits, sum_case_hits};
use crate::filter::{Param, Placeholder};
use crate::merge::{from_secs, secs};
use crate::sql::vals;
use crate::{Backend, Error, Store, pg, sqlite};

/// Longest batch id accepted.
pub const MAX_BATCH_ID_LEN: usize = 128;

/// Rows per statement when PostgreSQL upserts a batch.
const PG_CHUNK: usize = 10_000;

/// What [`Store::record_hits`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HitBatchOutcome {
    /// The batch had been recorded before; nothing was applied this time.
    pub duplicate: bool,
    /// Hits the batch carried, as recorded when it was first accepted (so
    /// a retry is told the same number).
    pub stored: u64,
    /// Hits attributed to a subscriber (0 for a duplicate). The case job
    /// ([`Store::apply_pending_hits`]) applies them to cases.
    pub attributed: u64,
}

/// One batch for [`Store::record_hits`].
#[derive(Debug, Clone, Copy)]
pub struct HitBatch<'a> {
    pub org_id: i64,
    pub sensor: &'a str,
    pub batch_id: &'a str,
    pub hits: &'a [Hit],
    /// The subscriber each hit is attributed to, by position (shorter or
    /// empty: the rest unattributed).
    pub subscribers: &'a [Option<i64>],
}

/// A stored hit part nobody was attributed to; see
/// [`Store::unattributed_hits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnattributedHit {
    /// The part's row.
    pub id: i64,
    pub bucket: i64,
    pub sensor: String,
    pub client: IpAddr,
    pub client_port: Option<u16>,
    pub kind: String,
    pub indicator: String,
    pub family: Option<String>,
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// Which hits [`Store::hits`] returns; every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct HitFilter {
    /// Only this organisation's hits.
    pub org_id: Option<i64>,
    /// Only hits attributed to this subscriber.
    pub subscriber_id: Option<i64>,
    pub client: Option<IpAddr>,
    /// The indicator's value, as the hit names it.
    pub indicator: Option<String>,
    pub sensor: Option<String>,
    /// Buckets starting at or after this.
    pub since: Option<Timestamp>,
    /// Buckets starting before this.
    pub until: Option<Timestamp>,
    /// At most this many hits.
    pub limit: Option<u64>,
}

/// Totals over the `hits` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HitTotals {
    /// Distinct keys (a key's parts count once).
    pub rows: u64,
    /// The sum of their counts.
    pub count: u64,
}

/// A hit as stored: whole seconds, the count clamped to the column.
struct Row {
    bucket: i64,
    client: String,
    client_port: Option<i64>,
    subscriber_id: Option<i64>,
    kind: &'static str,
    indicator: String,
    indicator_id: Option<i64>,
    family: Option<String>,
    threat_type: &'static str,
    count: i64,
    first_seen: i64,
    last_seen: i64,
    evidence: Option<String>,
}

/// Merges the batch's parts of the same key and orders the rows by key,
/// so that concurrent upserts lock rows in the same order.
/// Hits of one key attributed to different subscribers (a CGNAT address
/// shared by several, told apart by port) stay apart: each moves its own
/// subscriber's case.
fn fold(sensor: &str, hits: &[Hit], subscribers: &[Option<i64>]) -> Result<Vec<Row>, Error> {
    type Key<'h> = (i64, String, &'static str, &'h str, Option<i64>);
    let mut keyed: BTreeMap<Key<'_>, Hit> = BTreeMap::new();
    for (index, h) in hits.iter().enumerate() {
        let subscriber = subscribers.get(index).copied().flatten();
        if h.sensor != sensor {
            return Err(Error::SensorMismatch {
                index,
                expected: sensor.to_string(),
                found: h.sensor.clone(),
            });
        }
        let key = (
            secs(h.bucket),
            h.client.to_string(),
            h.kind.as_str(),
            h.indicator.as_str(),
            subscriber,
        );
        match keyed.get_mut(&key) {
            Some(stored) => stored.merge(h),
            None => {
                keyed.insert(key, h.clone());
            }
        }
    }
    Ok(keyed
        .into_iter()
        .map(|((bucket, client, kind, _, subscriber_id), h)| Row {
            bucket,
            client,
            client_port: h.client_port.map(i64::from),
            subscriber_id,
            kind,
            indicator: h.indicator,
            indicator_id: h.indicator_id,
            family: h.family,
            threat_type: h.threat_type.as_str(),
            count: i64::try_from(h.count).unwrap_or(i64::MAX),
            first_seen: secs(h.first_seen),
            last_seen: secs(h.last_seen),
            evidence: h.evidence,
        })
        .collect())
}

const HIT_COLS: &str = "bucket, sensor, client, kind, indicator, indicator_id, family, \
     threat_type, count, first_seen, last_seen, evidence, client_port";

fn check_batch_id(batch_id: &str) -> Result<(), Error> {
    let reason = if batch_id.is_empty() {
        "it is empty".to_string()
    } else if batch_id.len() > MAX_BATCH_ID_LEN {
        format!("it is longer than {MAX_BATCH_ID_LEN} bytes")
    } else if batch_id.chars().any(char::is_control) {
        "it contains control characters".to_string()
    } else {
        return Ok(());
    };
    Err(Error::Invalid {
        what: "batch id",
        reason,
    })
}

fn where_clause(f: &HitFilter, ph: Placeholder) -> (String, Vec<Param>) {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let mut cond = |sql: &str, p: Param| {
        params.push(p);
        let placeholder = ph(params.len(), &params[params.len() - 1]);
        conds.push(format!("{sql} {placeholder}"));
    };
    if let Some(o) = f.org_id {
        cond("org_id =", Param::Int(o));
    }
    if let Some(s) = f.subscriber_id {
        cond("subscriber_id =", Param::Int(s));
    }
    if let Some(c) = f.client {
        cond("client =", Param::Text(c.to_string()));
    }
    if let Some(i) = &f.indicator {
        cond("indicator =", Param::Text(i.clone()));
    }
    if let Some(s) = &f.sensor {
        cond("sensor =", Param::Text(s.clone()));
    }
    if let Some(t) = f.since {
        cond("bucket >=", Param::Int(secs(t)));
    }
    if let Some(t) = f.until {
        cond("bucket <", Param::Int(secs(t)));
    }
    if conds.is_empty() {
        conds.push("1 = 1".into());
    }
    (conds.join(" AND "), params)
}

/// Turns stored columns back into a hit.
#[allow(clippy::too_many_arguments)]
fn hit(
    bucket: i64,
    sensor: String,
    client: &str,
    kind: &str,
    indicator: String,
    indicator_id: Option<i64>,
    family: Option<String>,
    threat_type: &str,
    count: i64,
    first_seen: i64,
    last_seen: i64,
    evidence: Option<String>,
    client_port: Option<i64>,
) -> Result<Hit, Error> {
    Ok(Hit {
        client_port: client_port.and_then(|p| u16::try_from(p).ok()),
        bucket: from_secs("hit bucket", bucket)?,
        client: client
            .parse()
            .map_err(|e| Error::corrupt(format!("hit client {client:?}"), e))?,
        kind: kind
            .parse()
            .map_err(|e| Error::corrupt(format!("hit kind {kind:?}"), e))?,
        indicator,
        indicator_id,
        family,
        threat_type: threat_type
            .parse()
            .map_err(|e| Error::corrupt(format!("hit threat type {threat_type:?}"), e))?,
        count: u64::try_from(count).unwrap_or(0),
        first_seen: from_secs("hit first_seen", first_seen)?,
        last_seen: from_secs("hit last_seen", last_seen)?,
        sensor,
        evidence,
    })
}

impl Store {
    /// Records one batch of hits from `sensor` of organisation `org_id` in
    /// one transaction: if (organisation, sensor, batch id) was recorded
    /// before, nothing is applied and the outcome says `duplicate`;
    /// otherwise every hit is merged into its row with the subscriber it
    /// was attributed to, the attributed hits move their cases, and the
    /// batch is recorded. Every hit must name `sensor`
    /// ([`Error::SensorMismatch`] otherwise, and nothing is applied). When
    /// this returns `Ok`, the batch is committed.
    pub fn record_hits(&mut self, batch: &HitBatch<'_>) -> Result<HitBatchOutcome, Error> {
        check_batch_id(batch.batch_id)?;
        let rows = fold(batch.sensor, batch.hits, batch.subscribers)?;
        let received = secs(Utc::now());
        let hit_count = i64::try_from(batch.hits.len()).unwrap_or(i64::MAX);
        let attributed = batch.subscribers.iter().flatten().count() as u64;
        let (org, sensor, id) = (batch.org_id, batch.sensor, batch.batch_id);
        self.in_transaction(|b| {
            let mut outcome = match b {
                Backend::Sqlite(db) => {
                    record_sqlite(db, org, sensor, id, &rows, hit_count, received)
                }
                Backend::Postgres(db) => record_pg(db, org, sensor, id, &rows, hit_count, received),
            }?;
            if !outcome.duplicate {
                outcome.attributed = attributed;
            }
            Ok(outcome)
        })
    }

    /// The case job: applies the attributed hits of batches not applied
    /// yet — as many as hold `max_hits` hits, at least one — to cases and
    /// to the client activity, and
    /// marks them applied, all in one transaction — so each batch moves
    /// cases exactly once, and a run over many batches dirties each page
    /// of the case tables once instead of once per batch. Returns the
    /// batches applied (0: nothing was pending) and what cases did.
    pub fn apply_pending_hits(&mut self, max_hits: u64) -> Result<(u64, CaseOutcome), Error> {
        let now = secs(Utc::now());
        let skip_locked = match self.backend {
            Backend::Sqlite(_) => "",
            // Replicas share the work instead of waiting on each other.
            Backend::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        self.in_transaction(|b| {
            // Bounded by hits, not batches: the run holds SQLite's write
            // lock, and ingest waits for it.
            let mut ids: Vec<i64> = Vec::new();
            let mut taken = 0u64;
            for r in b.query(
                &format!(
                    "SELECT id, hit_count FROM hit_batches WHERE cases_applied = 0
                     ORDER BY id LIMIT 1000{skip_locked}"
                ),
                &[],
            )? {
                if !ids.is_empty() && taken >= max_hits {
                    break;
                }
                ids.push(r.int(0)?);
                taken += u64::try_from(r.int(1)?).unwrap_or(0);
            }
            if ids.is_empty() {
                return Ok((0, CaseOutcome::default()));
            }
            let mut parts: BTreeMap<i64, Vec<CasePart>> = BTreeMap::new();
            let mut activity: BTreeMap<(String, String, i64), (i64, i64, u64)> = BTreeMap::new();
            for &id in &ids {
                for r in b.query(
                    "SELECT org_id, subscriber_id, family, count, first_seen, last_seen, client
                     FROM hits WHERE batch_row = ?1",
                    vals![id],
                )? {
                    let (org, family) = (r.int(0)?, r.opt_text(2)?);
                    let count = u64::try_from(r.int(3)?).unwrap_or(0);
                    let (first, last) = (r.int(4)?, r.int(5)?);
                    let key = (
                        r.text(6)?,
                        family.clone().unwrap_or_else(|| UNKNOWN_FAMILY.to_string()),
                        org,
                    );
                    let a = activity.entry(key).or_insert((first, last, 0));
                    a.0 = a.0.min(first);
                    a.1 = a.1.max(last);
                    a.2 = a.2.saturating_add(count);
                    if let Some(subscriber) = r.opt_int(1)? {
                        parts
                            .entry(org)
                            .or_default()
                            .push((subscriber, family, count, first, last));
                    }
                }
            }
            let mut outcome = CaseOutcome::default();
            for (org, p) in parts {
                outcome += apply_case_hits(b, org, &sum_case_hits(p), now)?;
            }
            for ((client, family, org), (first, last, count)) in activity {
                b.execute(
                    "INSERT INTO client_activity (client, family, org_id, first_seen, last_seen, count)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (client, family, org_id) DO UPDATE SET
                         first_seen = CASE WHEN excluded.first_seen < client_activity.first_seen
                                           THEN excluded.first_seen ELSE client_activity.first_seen END,
                         last_seen = CASE WHEN excluded.last_seen > client_activity.last_seen
                                          THEN excluded.last_seen ELSE client_activity.last_seen END,
                         count = CASE WHEN excluded.count > 9223372036854775807 - client_activity.count
                                      THEN 9223372036854775807
                                      ELSE client_activity.count + excluded.count END",
                    vals![client, family, org, first, last, i64::try_from(count).unwrap_or(i64::MAX)],
                )?;
            }
            for &id in &ids {
                b.execute("UPDATE hit_batches SET cases_applied = 1 WHERE id = ?1", vals![id])?;
            }
            Ok((ids.len() as u64, outcome))
        })
    }

    /// Whether any batch waits for the case job.
    pub fn hits_pending(&mut self) -> Result<bool, Error> {
        Ok(self
            .backend
            .query_opt(
                "SELECT 1 FROM hit_batches WHERE cases_applied = 0 LIMIT 1",
                &[],
            )?
            .is_some())
    }

    /// The families `client` was seen reaching since `since`, with the
    /// latest time, across organisations: the public "is my address
    /// infected" lookup.
    pub fn client_activity(
        &mut self,
        client: IpAddr,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, Error> {
        self.backend
            .query(
                "SELECT family, MAX(last_seen) FROM client_activity
                 WHERE client = ?1 AND last_seen >= ?2 GROUP BY family ORDER BY 2 DESC",
                vals![client.to_string(), secs(since)],
            )?
            .iter()
            .map(|r| Ok((r.text(0)?, from_secs("activity last_seen", r.int(1)?)?)))
            .collect()
    }

    /// Hit parts of `org_id` in buckets from `since` that nobody was
    /// attributed to, at most `limit`, oldest first — of batches the case
    /// job has applied (it attributes nothing, so the others stay its).
    pub fn unattributed_hits(
        &mut self,
        org_id: i64,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<UnattributedHit>, Error> {
        self.backend
            .query(
                "SELECT bucket, sensor, client, client_port, kind, indicator, family, count,
                        first_seen, last_seen, id
                 FROM hits WHERE org_id = ?1 AND subscriber_id IS NULL AND bucket >= ?2
                   AND (batch_row IS NULL OR batch_row IN
                        (SELECT id FROM hit_batches WHERE cases_applied = 1))
                 ORDER BY id LIMIT ?3",
                vals![org_id, secs(since), i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                let client = r.text(2)?;
                Ok(UnattributedHit {
                    id: r.int(10)?,
                    bucket: r.int(0)?,
                    sensor: r.text(1)?,
                    client: client
                        .parse()
                        .map_err(|e| Error::corrupt(format!("hit client {client:?}"), e))?,
                    client_port: r.opt_int(3)?.and_then(|p| u16::try_from(p).ok()),
                    kind: r.text(4)?,
                    indicator: r.text(5)?,
                    family: r.opt_text(6)?,
                    count: u64::try_from(r.int(7)?).unwrap_or(0),
                    first_seen: r.int(8)?,
                    last_seen: r.int(9)?,
                })
            })
            .collect()
    }

    /// Attributes stored hits of `org_id` (found by
    /// [`Store::unattributed_hits`]) to subscribers and moves their cases,
    /// in one transaction. Hits attributed meanwhile are left alone.
    /// Returns how many were attributed and what happened to cases.
    pub fn attribute_hits(
        &mut self,
        org_id: i64,
        hits: &[(UnattributedHit, i64)],
    ) -> Result<(u64, CaseOutcome), Error> {
        let now = secs(Utc::now());
        self.in_transaction(|b| {
            let mut done = Vec::with_capacity(hits.len());
            for (h, subscriber) in hits {
                let n = b.execute(
                    "UPDATE hits SET subscriber_id = ?3
                     WHERE id = ?1 AND org_id = ?2 AND subscriber_id IS NULL
                       AND (batch_row IS NULL OR batch_row IN
                            (SELECT id FROM hit_batches WHERE cases_applied = 1))",
                    vals![h.id, org_id, *subscriber],
                )?;
                if n > 0 {
                    done.push((
                        *subscriber,
                        h.family.clone(),
                        h.count,
                        h.first_seen,
                        h.last_seen,
                    ));
                }
            }
            let n = done.len() as u64;
            let cases = apply_case_hits(b, org_id, &sum_case_hits(done), now)?;
            Ok((n, cases))
        })
    }

    /// Stored hits matching `filter`, their parts added up, by (bucket,
    /// sensor, client, kind, indicator); at most `filter.limit` keys.
    pub fn hits(&mut self, filter: &HitFilter) -> Result<Vec<Hit>, Error> {
        let mut out: Vec<Hit> = Vec::new();
        match &mut self.backend {
            Backend::Sqlite(db) => {
                let (cond, params) = where_clause(filter, sqlite::placeholder);
                let sql = format!(
                    "SELECT {HIT_COLS} FROM hits WHERE {cond}
                     ORDER BY bucket, sensor, client, kind, indicator, first_seen"
                );
                let mut st = db.conn.prepare(&sql)?;
                let mut rows = st.query(params_from_iter(params.iter()))?;
                while let Some(r) = rows.next()? {
                    let client: String = r.get(2)?;
                    let kind: String = r.get(3)?;
                    let tt: String = r.get(7)?;
                    out.push(hit(
                        r.get(0)?,
                        r.get(1)?,
                        &client,
                        &kind,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        &tt,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                        r.get(12)?,
                    )?);
                }
            }
            Backend::Postgres(db) => {
                let (cond, params) = where_clause(filter, pg::placeholder);
                let sql = format!(
                    "SELECT {HIT_COLS} FROM hits WHERE {cond}
                     ORDER BY bucket, sensor, client, kind, indicator, first_seen"
                );
                for r in db.client.query(sql.as_str(), &pg::bound(&params))? {
                    out.push(hit(
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get(7)?,
                        r.try_get(8)?,
                        r.try_get(9)?,
                        r.try_get(10)?,
                        r.try_get(11)?,
                        r.try_get(12)?,
                    )?);
                }
            }
        }
        Ok(merge_parts(out, filter.limit))
    }

    /// Stored hit rows and the sum of their counts.
    pub fn hit_totals(&mut self) -> Result<HitTotals, Error> {
        // NUMERIC on PostgreSQL: a sum of BIGINTs may exceed BIGINT.
        const KEYS: &str = "(SELECT SUM(count) AS n FROM hits
             GROUP BY org_id, bucket, sensor, client, kind, indicator) AS k";
        let (rows, count): (i64, i64) = match &mut self.backend {
            // TOTAL: a float sum, where SUM would fail on overflow.
            Backend::Sqlite(db) => db.conn.query_row(
                &format!(
                    "SELECT COUNT(*), TOTAL(MIN(n, 9223372036854775807.0)) FROM {}",
                    KEYS.replace("SUM(count)", "TOTAL(count)")
                ),
                [],
                |r| Ok((r.get(0)?, r.get::<_, f64>(1)? as i64)),
            )?,
            Backend::Postgres(db) => {
                let r = db.client.query_one(
                    &format!(
                        "SELECT COUNT(*), LEAST(COALESCE(SUM(n), 0), 9223372036854775807)::bigint
                         FROM {KEYS}"
                    ),
                    &[],
                )?;
                (r.try_get(0)?, r.try_get(1)?)
            }
        };
        Ok(HitTotals {
            rows: u64::try_from(rows).unwrap_or(0),
            count: u64::try_from(count).unwrap_or(0),
        })
    }
}

fn record_sqlite(
    db: &mut sqlite::Db,
    org_id: i64,
    sensor: &str,
    batch_id: &str,
    rows: &[Row],
    hit_count: i64,
    received: i64,
) -> Result<HitBatchOutcome, Error> {
    use rusqlite::OptionalExtension;
    let seen: Option<i64> = db
        .conn
        .prepare_cached(
            "SELECT hit_count FROM hit_batches WHERE org_id = ?1 AND sensor = ?2 AND batch_id = ?3",
        )?
        .query_row(params![org_id, sensor, batch_id], |r| r.get(0))
        .optional()?;
    if let Some(n) = seen {
        return Ok(duplicate(n));
    }
    db.conn
        .prepare_cached(
            "INSERT INTO hit_batches (org_id, sensor, batch_id, received_at, hit_count)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![org_id, sensor, batch_id, received, hit_count])?;
    let batch_row = db.conn.last_insert_rowid();
    let sql = format!(
        "INSERT INTO hits ({HIT_COLS}, received_at, subscriber_id, org_id, batch_row)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    );
    let mut st = db.conn.prepare_cached(&sql)?;
    for r in rows {
        st.execute(params![
            r.bucket,
            sensor,
            r.client,
            r.kind,
            r.indicator,
            r.indicator_id,
            r.family,
            r.threat_type,
            r.count,
            r.first_seen,
            r.last_seen,
            r.evidence,
            r.client_port,
            received,
            r.subscriber_id,
            org_id,
            batch_row,
        ])?;
    }
    Ok(accepted(hit_count))
}

fn duplicate(stored: i64) -> HitBatchOutcome {
    HitBatchOutcome {
        duplicate: true,
        stored: u64::try_from(stored).unwrap_or(0),
        attributed: 0,
    }
}

fn accepted(hit_count: i64) -> HitBatchOutcome {
    HitBatchOutcome {
        duplicate: false,
        ..duplicate(hit_count)
    }
}

fn record_pg(
    db: &mut pg::Db,
    org_id: i64,
    sensor: &str,
    batch_id: &str,
    rows: &[Row],
    hit_count: i64,
    received: i64,
) -> Result<HitBatchOutcome, Error> {
    // The batch row first: a concurrent submission of the same id blocks
    // here until this transaction ends, then finds the row.
    let inserted = db.client.query_opt(
        "INSERT INTO hit_batches (org_id, sensor, batch_id, received_at, hit_count)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, sensor, batch_id) DO NOTHING
         RETURNING id",
        &[&org_id, &sensor, &batch_id, &received, &hit_count],
    )?;
    let Some(batch_row) = inserted else {
        let n: i64 = db
            .client
            .query_one(
                "SELECT hit_count FROM hit_batches
                 WHERE org_id = $1 AND sensor = $2 AND batch_id = $3",
                &[&org_id, &sensor, &batch_id],
            )?
            .try_get(0)?;
        return Ok(duplicate(n));
    };
    let batch_row: i64 = batch_row.try_get(0)?;
    let sql = format!(
        "INSERT INTO hits ({HIT_COLS}, received_at, subscriber_id, org_id, batch_row)
         SELECT b, $1, c, k, i, iid, f, t, n, fs, ls, e, cp, $2, sid, $16, $17
         FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                     $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[],
                     $13::text[], $14::bigint[], $15::bigint[])
              AS u(b, c, k, i, iid, f, t, n, fs, ls, e, cp, sid)"
    );
    let st = db.client.prepare(&sql)?;
    for chunk in rows.chunks(PG_CHUNK) {
        let bucket: Vec<i64> = chunk.iter().map(|r| r.bucket).collect();
        let client: Vec<&str> = chunk.iter().map(|r| r.client.as_str()).collect();
        let kind: Vec<&str> = chunk.iter().map(|r| r.kind).collect();
        let indicator: Vec<&str> = chunk.iter().map(|r| r.indicator.as_str()).collect();
        let indicator_id: Vec<Option<i64>> = chunk.iter().map(|r| r.indicator_id).collect();
        let family: Vec<Option<&str>> = chunk.iter().map(|r| r.family.as_deref()).collect();
        let threat_type: Vec<&str> = chunk.iter().map(|r| r.threat_type).collect();
        let count: Vec<i64> = chunk.iter().map(|r| r.count).collect();
        let first_seen: Vec<i64> = chunk.iter().map(|r| r.first_seen).collect();
        let last_seen: Vec<i64> = chunk.iter().map(|r| r.last_seen).collect();
        let evidence: Vec<Option<&str>> = chunk.iter().map(|r| r.evidence.as_deref()).collect();
        let client_port: Vec<Option<i64>> = chunk.iter().map(|r| r.client_port).collect();
        let subscriber: Vec<Option<i64>> = chunk.iter().map(|r| r.subscriber_id).collect();
        db.client.execute(
            &st,
            &[
                &sensor,
                &received,
                &bucket,
                &client,
                &kind,
                &indicator,
                &indicator_id,
                &family,
                &threat_type,
                &count,
                &first_seen,
                &last_seen,
                &evidence,
                &client_port,
                &subscriber,
                &org_id,
                &batch_row,
            ],
        )?;
    }
    Ok(accepted(hit_count))
}

/// Adds up consecutive parts of the same key (the rows come in key order,
/// earliest part first) and keeps at most `limit` keys.
fn merge_parts(parts: Vec<Hit>, limit: Option<u64>) -> Vec<Hit> {
    let max = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut out: Vec<Hit> = Vec::new();
    for h in parts {
        match out.last_mut() {
            Some(last)
                if last.bucket == h.bucket
                    && last.sensor == h.sensor
                    && last.client == h.client
                    && last.kind == h.kind
                    && last.indicator == h.indicator =>
            {
                last.merge(&h);
                // The column's limit, whatever the number of parts.
                last.count = last.count.min(i64::MAX as u64);
            }
            _ => {
                if out.len() == max {
                    break;
                }
                out.push(h);
            }
        }
    }
    out
}
