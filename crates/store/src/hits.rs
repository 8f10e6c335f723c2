//! Sensor hits: idempotent batches, merged per key, and their reads.
//!
//! A batch is identified by (sensor, batch id). [`Store::record_hits`]
//! applies it in one transaction that also inserts its `hit_batches` row,
//! whose primary key makes a second submission of the same id — a retry
//! after a lost response, or two submissions racing each other — a no-op
//! that reports `duplicate`. On PostgreSQL the batch row is inserted first
//! (`ON CONFLICT DO NOTHING`): a concurrent submission of the same id waits
//! on the key until the first commits or rolls back, then sees the outcome.
//! SQLite takes the write lock at `BEGIN IMMEDIATE`, which serialises them.
//!
//! Hits with the same key (bucket, sensor, client, kind, indicator) add up
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

use crate::filter::{Param, Placeholder};
use crate::merge::{from_secs, secs};
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
}

/// Which hits [`Store::hits`] returns; every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct HitFilter {
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
fn fold(sensor: &str, hits: &[Hit]) -> Result<Vec<Row>, Error> {
    let mut keyed: BTreeMap<(i64, String, &'static str, &str), Hit> = BTreeMap::new();
    for (index, h) in hits.iter().enumerate() {
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
            Some(stored) => stored.merge(h),
            None => {
                keyed.insert(key, h.clone());
            }
        }
    }
    Ok(keyed
        .into_iter()
        .map(|((bucket, client, kind, _), h)| Row {
            bucket,
            client,
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
const UPSERT_TAIL: &str = "ON CONFLICT (bucket, sensor, client, kind, indicator) DO UPDATE SET
    count = CASE WHEN excluded.count > 9223372036854775807 - hits.count
                 THEN 9223372036854775807 ELSE hits.count + excluded.count END,
    evidence = CASE WHEN excluded.first_seen < hits.first_seen AND excluded.evidence IS NOT NULL
                    THEN excluded.evidence ELSE COALESCE(hits.evidence, excluded.evidence) END,
    first_seen = {min}(hits.first_seen, excluded.first_seen),
    last_seen = {max}(hits.last_seen, excluded.last_seen),
    received_at = excluded.received_at";

const HIT_COLS: &str = "bucket, sensor, client, kind, indicator, indicator_id, family, \
     threat_type, count, first_seen, last_seen, evidence";

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
) -> Result<Hit, Error> {
    Ok(Hit {
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
    /// Records one batch of hits from `sensor` in one transaction: if
    /// (sensor, `batch_id`) was recorded before, nothing is applied and the
    /// outcome says `duplicate`; otherwise every hit is merged into its row
    /// and the batch is recorded. Every hit must name `sensor`
    /// ([`Error::SensorMismatch`] otherwise, and nothing is applied). When
    /// this returns `Ok`, the batch is committed.
    pub fn record_hits(
        &mut self,
        sensor: &str,
        batch_id: &str,
        hits: &[Hit],
    ) -> Result<HitBatchOutcome, Error> {
        check_batch_id(batch_id)?;
        let rows = fold(sensor, hits)?;
        let received = secs(Utc::now());
        let hit_count = i64::try_from(hits.len()).unwrap_or(i64::MAX);
        self.in_transaction(|b| match b {
            Backend::Sqlite(db) => record_sqlite(db, sensor, batch_id, &rows, hit_count, received),
            Backend::Postgres(db) => record_pg(db, sensor, batch_id, &rows, hit_count, received),
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
    sensor: &str,
    batch_id: &str,
    rows: &[Row],
    hit_count: i64,
    received: i64,
) -> Result<HitBatchOutcome, Error> {
    use rusqlite::OptionalExtension;
    let seen: Option<i64> = db
        .conn
        .prepare_cached("SELECT hit_count FROM hit_batches WHERE sensor = ?1 AND batch_id = ?2")?
        .query_row([sensor, batch_id], |r| r.get(0))
        .optional()?;
    if let Some(n) = seen {
        return Ok(HitBatchOutcome {
            duplicate: true,
            stored: u64::try_from(n).unwrap_or(0),
        });
    }
    db.conn
        .prepare_cached(
            "INSERT INTO hit_batches (sensor, batch_id, received_at, hit_count)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![sensor, batch_id, received, hit_count])?;
    let sql = format!(
        "INSERT INTO hits ({HIT_COLS}, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) {}",
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
            received,
        ])?;
    }
    Ok(HitBatchOutcome {
        duplicate: false,
        stored: u64::try_from(hit_count).unwrap_or(0),
    })
}

fn record_pg(
    db: &mut pg::Db,
    sensor: &str,
    batch_id: &str,
    rows: &[Row],
    hit_count: i64,
    received: i64,
) -> Result<HitBatchOutcome, Error> {
    // The batch row first: a concurrent submission of the same id blocks
    // here until this transaction ends, then finds the row.
    let inserted = db.client.execute(
        "INSERT INTO hit_batches (sensor, batch_id, received_at, hit_count)
         VALUES ($1, $2, $3, $4) ON CONFLICT (sensor, batch_id) DO NOTHING",
        &[&sensor, &batch_id, &received, &hit_count],
    )?;
    if inserted == 0 {
        let n: i64 = db
            .client
            .query_one(
                "SELECT hit_count FROM hit_batches WHERE sensor = $1 AND batch_id = $2",
                &[&sensor, &batch_id],
            )?
            .try_get(0)?;
        return Ok(HitBatchOutcome {
            duplicate: true,
            stored: u64::try_from(n).unwrap_or(0),
        });
    }
    let sql = format!(
        "INSERT INTO hits ({HIT_COLS}, received_at)
         SELECT b, $1, c, k, i, iid, f, t, n, fs, ls, e, $2
         FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                     $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[],
                     $13::text[])
              AS u(b, c, k, i, iid, f, t, n, fs, ls, e)
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
            ],
        )?;
    }
    Ok(HitBatchOutcome {
        duplicate: false,
        stored: u64::try_from(hit_count).unwrap_or(0),
    })
}
