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
//! with the hit and, in the same transaction, applies the batch's
//! attributed hits to cases ([`crate::cases`]). A hit nobody held the
//! address for is stored unattributed; when attribution data arrives
//! later, [`Store::attribute_hits`] attributes it and moves cases then.
//!
//! Hits with the same key (organisation, bucket, sensor, client, kind,
//! indicator) add up
//! with the rule of [`Hit::merge`]: counts sum (saturating at `i64::MAX`,
//! the column's limit), `first_seen` is the minimum, `last_seen` the
//! maximum, the evidence of the earliest part is kept, and the other
//! attributes (indicator id, family, threat type) stay as the first part
//! gave them. Times are stored in whole seconds, like every time in the
//! store.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::Utc;
use khien_model::{Hit, Timestamp};
use rusqlite::{params, params_from_iter};
use serde::Serialize;

use crate::cases::{CaseOutcome, apply_case_hits, sum_case_hits};
use crate::filter::{Param, Placeholder};
use crate::merge::{from_secs, secs};
use crate::sql::{Value, vals};
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
    /// Hits attributed to a subscriber (0 for a duplicate).
    pub attributed: u64,
    /// What the batch did to cases (nothing for a duplicate).
    pub cases: CaseOutcome,
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

/// A stored hit nobody was attributed to; see [`Store::unattributed_hits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnattributedHit {
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
    /// Stored rows (distinct keys).
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
fn fold(sensor: &str, hits: &[Hit], subscribers: &[Option<i64>]) -> Result<Vec<Row>, Error> {
    type Key<'h> = (i64, String, &'static str, &'h str);
    let mut keyed: BTreeMap<Key<'_>, (Hit, Option<i64>)> = BTreeMap::new();
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
        );
        match keyed.get_mut(&key) {
            Some((stored, sub)) => {
                stored.merge(h);
                *sub = sub.or(subscriber);
            }
            None => {
                keyed.insert(key, (h.clone(), subscriber));
            }
        }
    }
    Ok(keyed
        .into_iter()
        .map(|((bucket, client, kind, _), (h, subscriber_id))| Row {
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

/// The merge rule of [`Hit::merge`] in SQL; `{min}`/`{max}` are the
/// back end's two-argument minimum and maximum.
const UPSERT_TAIL: &str = "ON CONFLICT (org_id, bucket, sensor, client, kind, indicator) DO UPDATE SET
    count = CASE WHEN excluded.count > 9223372036854775807 - hits.count
                 THEN 9223372036854775807 ELSE hits.count + excluded.count END,
    evidence = CASE WHEN excluded.first_seen < hits.first_seen AND excluded.evidence IS NOT NULL
                    THEN excluded.evidence ELSE COALESCE(hits.evidence, excluded.evidence) END,
    first_seen = {min}(hits.first_seen, excluded.first_seen),
    last_seen = {max}(hits.last_seen, excluded.last_seen),
    client_port = CASE WHEN excluded.first_seen < hits.first_seen AND excluded.client_port IS NOT NULL
                       THEN excluded.client_port ELSE COALESCE(hits.client_port, excluded.client_port) END,
    subscriber_id = COALESCE(hits.subscriber_id, excluded.subscriber_id),
    received_at = excluded.received_at";

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
        let attributed: Vec<(i64, Option<String>, u64, i64, i64)> = batch
            .hits
            .iter()
            .zip(batch.subscribers)
            .filter_map(|(h, s)| {
                s.map(|s| {
                    (
                        s,
                        h.family.clone(),
                        h.count,
                        secs(h.first_seen),
                        secs(h.last_seen),
                    )
                })
            })
            .collect();
        let attributed_count = attributed.len() as u64;
        let case_hits = sum_case_hits(attributed);
        let (org, sensor, id) = (batch.org_id, batch.sensor, batch.batch_id);
        self.in_transaction(|b| {
            let mut outcome = match b {
                Backend::Sqlite(db) => {
                    record_sqlite(db, org, sensor, id, &rows, hit_count, received)
                }
                Backend::Postgres(db) => record_pg(db, org, sensor, id, &rows, hit_count, received),
            }?;
            if !outcome.duplicate {
                outcome.attributed = attributed_count;
                outcome.cases = apply_case_hits(b, org, &case_hits, received)?;
            }
            Ok(outcome)
        })
    }

    /// Hits of `org_id` in buckets from `since` that nobody was attributed
    /// to, at most `limit`, in key order after `after` (a key from the
    /// previous page).
    pub fn unattributed_hits(
        &mut self,
        org_id: i64,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<UnattributedHit>, Error> {
        self.backend
            .query(
                "SELECT bucket, sensor, client, client_port, kind, indicator, family, count,
                        first_seen, last_seen
                 FROM hits WHERE org_id = ?1 AND subscriber_id IS NULL AND bucket >= ?2
                 ORDER BY bucket, sensor, client, kind, indicator LIMIT ?3",
                vals![org_id, secs(since), i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                let client = r.text(2)?;
                Ok(UnattributedHit {
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
                    "UPDATE hits SET subscriber_id = ?7
                     WHERE org_id = ?1 AND bucket = ?2 AND sensor = ?3 AND client = ?4
                       AND kind = ?5 AND indicator = ?6 AND subscriber_id IS NULL",
                    &[
                        Value::Int(org_id),
                        Value::Int(h.bucket),
                        Value::from(h.sensor.as_str()),
                        Value::Text(h.client.to_string()),
                        Value::from(h.kind.as_str()),
                        Value::from(h.indicator.as_str()),
                        Value::Int(*subscriber),
                    ],
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

    /// The latest hits from `client` in buckets from `since`, across
    /// organisations: the public "is my address infected" lookup.
    pub fn recent_hits_from(
        &mut self,
        client: IpAddr,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<Hit>, Error> {
        self.hits(&HitFilter {
            client: Some(client),
            since: Some(since),
            limit: Some(u64::from(limit)),
            ..HitFilter::default()
        })
    }

    /// Stored hits matching `filter`, by (bucket, sensor, client, kind,
    /// indicator).
    pub fn hits(&mut self, filter: &HitFilter) -> Result<Vec<Hit>, Error> {
        let limit = filter
            .limit
            .map(|n| format!(" LIMIT {}", n.min(i64::MAX as u64)))
            .unwrap_or_default();
        let mut out = Vec::new();
        match &mut self.backend {
            Backend::Sqlite(db) => {
                let (cond, params) = where_clause(filter, sqlite::placeholder);
                let sql = format!(
                    "SELECT {HIT_COLS} FROM hits WHERE {cond}
                     ORDER BY bucket, sensor, client, kind, indicator{limit}"
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
                     ORDER BY bucket, sensor, client, kind, indicator{limit}"
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
        Ok(out)
    }

    /// Stored hit rows and the sum of their counts.
    pub fn hit_totals(&mut self) -> Result<HitTotals, Error> {
        // NUMERIC on PostgreSQL: a sum of BIGINTs may exceed BIGINT.
        let (rows, count): (i64, i64) = match &mut self.backend {
            Backend::Sqlite(db) => db.conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM hits",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?,
            Backend::Postgres(db) => {
                let r = db.client.query_one(
                    "SELECT COUNT(*), LEAST(COALESCE(SUM(count), 0), 9223372036854775807)::bigint
                     FROM hits",
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
    let sql = format!(
        "INSERT INTO hits ({HIT_COLS}, received_at, subscriber_id, org_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) {}",
        UPSERT_TAIL.replace("{min}", "MIN").replace("{max}", "MAX")
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
        ])?;
    }
    Ok(accepted(hit_count))
}

fn duplicate(stored: i64) -> HitBatchOutcome {
    HitBatchOutcome {
        duplicate: true,
        stored: u64::try_from(stored).unwrap_or(0),
        attributed: 0,
        cases: CaseOutcome::default(),
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
    let inserted = db.client.execute(
        "INSERT INTO hit_batches (org_id, sensor, batch_id, received_at, hit_count)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, sensor, batch_id) DO NOTHING",
        &[&org_id, &sensor, &batch_id, &received, &hit_count],
    )?;
    if inserted == 0 {
        let n: i64 = db
            .client
            .query_one(
                "SELECT hit_count FROM hit_batches
                 WHERE org_id = $1 AND sensor = $2 AND batch_id = $3",
                &[&org_id, &sensor, &batch_id],
            )?
            .try_get(0)?;
        return Ok(duplicate(n));
    }
    let sql = format!(
        "INSERT INTO hits ({HIT_COLS}, received_at, subscriber_id, org_id)
         SELECT b, $1, c, k, i, iid, f, t, n, fs, ls, e, cp, $2, sid, $16
         FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                     $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[],
                     $13::text[], $14::bigint[], $15::bigint[])
              AS u(b, c, k, i, iid, f, t, n, fs, ls, e, cp, sid)
         {}",
        UPSERT_TAIL
            .replace("{min}", "LEAST")
            .replace("{max}", "GREATEST")
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
            ],
        )?;
    }
    Ok(accepted(hit_count))
}
