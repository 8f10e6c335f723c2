//! The PostgreSQL back end: set-based imports through binary COPY into
//! session-local staging tables, so a batch costs a handful of round trips
//! whatever its size.

use std::collections::HashMap;

use khien_model::{Indicator, Observable, SourceAttributes};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Row};

use crate::filter::{self, Param};
use crate::merge::{self, Existing, Group, RawSource, secs, tlp_rank};
use crate::{BatchOutcome, Error, ExpireOutcome, IndicatorFilter, STATS_PAIRS};

const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "hub",
        include_str!("../migrations/postgres/0002_hub.sql"),
    ),
    (
        3,
        "tenants",
        include_str!("../migrations/postgres/0003_tenants.sql"),
    ),
    (
        4,
        "notifications",
        include_str!("../migrations/postgres/0004_notifications.sql"),
    ),
];

/// Serialises migrations between processes opening the same database.
const MIGRATION_LOCK: i64 = 0x6b68_6965_6e00_0001;

/// Rows fetched per round trip when streaming.
pub(crate) const FETCH: i32 = 10_000;

pub(crate) struct Db {
    pub(crate) client: Client,
    pub(crate) statements: crate::sql::PgStatements,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("pg::Db").finish_non_exhaustive()
    }
}

// Casts make the parameter types explicit so that i64 binds against the
// SMALLINT columns.
pub(crate) fn placeholder(n: usize, p: &Param) -> String {
    match p {
        Param::Int(_) => format!("${n}::bigint"),
        Param::Text(_) => format!("${n}::text"),
    }
}

pub(crate) fn bound(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            Param::Int(i) => i as &(dyn ToSql + Sync),
            Param::Text(s) => s as &(dyn ToSql + Sync),
        })
        .collect()
}

const SOURCE_COLS: &str = "s.source, s.tlp::bigint, s.confidence::bigint, s.family, s.threat_type, \
     s.reference, s.first_seen, s.last_seen, s.expires_at";

fn raw_source(r: &Row, at: usize) -> Result<RawSource, Error> {
    Ok(RawSource {
        source: r.try_get(at)?,
        tlp: r.try_get(at + 1)?,
        confidence: r.try_get(at + 2)?,
        family: r.try_get(at + 3)?,
        threat_type: r.try_get(at + 4)?,
        reference: r.try_get(at + 5)?,
        first_seen: r.try_get(at + 6)?,
        last_seen: r.try_get(at + 7)?,
        expires_at: r.try_get(at + 8)?,
    })
}

const STAGE_TYPES: [Type; 11] = [
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT2,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
];

const SOURCE_TYPES: [Type; 10] = [
    Type::INT8,
    Type::TEXT,
    Type::INT2,
    Type::INT2,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];

fn conf(c: khien_model::Confidence) -> i16 {
    i16::from(c.get())
}

fn rank(t: khien_model::Tlp) -> i16 {
    // Ranks are 0..=4.
    tlp_rank(t) as i16
}

fn write_source(
    w: &mut BinaryCopyInWriter<'_>,
    id: i64,
    s: &SourceAttributes,
) -> Result<(), Error> {
    w.write(&[
        &id,
        &s.source,
        &rank(s.tlp),
        &conf(s.confidence),
        &s.family.as_ref().map(|f| f.as_str()),
        &s.threat_type.as_str(),
        &s.reference,
        &secs(s.first_seen),
        &secs(s.last_seen),
        &s.expires_at.map(secs),
    ])?;
    Ok(())
}

fn write_indicator(
    w: &mut BinaryCopyInWriter<'_>,
    key: i64,
    ind: &Indicator,
    with_observable: bool,
) -> Result<(), Error> {
    let family = ind.family.as_ref().map(|f| f.as_str());
    let tt = ind.threat_type.as_str();
    let (c, t) = (conf(ind.confidence), rank(ind.tlp));
    let (fs, ls, ex) = (
        secs(ind.first_seen),
        secs(ind.last_seen),
        ind.expires_at.map(secs),
    );
    if with_observable {
        let key = key as i32;
        w.write(&[
            &key,
            &ind.observable.kind().as_str(),
            &ind.observable.value(),
            &c,
            &t,
            &family,
            &tt,
            &fs,
            &ls,
            &ex,
            &ind.allowlisted_by,
        ])?;
    } else {
        w.write(&[
            &key,
            &c,
            &t,
            &family,
            &tt,
            &fs,
            &ls,
            &ex,
            &ind.allowlisted_by,
        ])?;
    }
    Ok(())
}

impl Db {
    pub(crate) fn open(url: &str) -> Result<Self, Error> {
        let client = Client::connect(url, NoTls)?;
        let mut db = Self {
            client,
            statements: crate::sql::PgStatements::default(),
        };
        db.migrate()?;
        // Session-local staging tables for set-based imports; TEMP keeps
        // them out of WAL and invisible to other sessions.
        db.client.batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS khien_stage (
                 ord INT NOT NULL, kind TEXT COLLATE \"C\" NOT NULL, value TEXT COLLATE \"C\" NOT NULL,
                 confidence SMALLINT NOT NULL, tlp SMALLINT NOT NULL, family TEXT, threat_type TEXT NOT NULL,
                 first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, expires_at BIGINT, allowlisted_by TEXT);
             CREATE TEMP TABLE IF NOT EXISTS khien_stage_update (
                 id BIGINT NOT NULL, confidence SMALLINT NOT NULL, tlp SMALLINT NOT NULL, family TEXT,
                 threat_type TEXT NOT NULL, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL,
                 expires_at BIGINT, allowlisted_by TEXT);
             CREATE TEMP TABLE IF NOT EXISTS khien_stage_sources (
                 indicator_id BIGINT NOT NULL, source TEXT NOT NULL, tlp SMALLINT NOT NULL,
                 confidence SMALLINT NOT NULL, family TEXT, threat_type TEXT NOT NULL, reference TEXT,
                 first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, expires_at BIGINT);",
        )?;
        Ok(db)
    }

    fn migrate(&mut self) -> Result<(), Error> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at BIGINT NOT NULL)",
        )?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )?
            .try_get(0)?;
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if i64::from(current) > i64::from(known) {
            return Err(Error::SchemaTooNew {
                found: i64::from(current),
                known,
            });
        }
        for &(version, name, sql) in MIGRATIONS {
            if i64::from(version) <= i64::from(current) {
                continue;
            }
            let fail = |e: postgres::Error| Error::Migration {
                version,
                name,
                reason: e.to_string(),
            };
            tx.batch_execute(sql).map_err(fail)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[&(version as i32), &name, &secs(chrono::Utc::now())],
            )
            .map_err(fail)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn exec(&mut self, sql: &str) -> Result<(), Error> {
        self.client.batch_execute(sql).map_err(Error::from)
    }

    pub(crate) fn add_batch(&mut self, groups: &[Group<'_>]) -> Result<BatchOutcome, Error> {
        let as_new: Vec<merge::Applied> = groups
            .iter()
            .filter_map(|g| merge::apply(None, g))
            .collect();
        if as_new.is_empty() {
            return Ok(BatchOutcome::default());
        }
        // 1. Stage every observable with its aggregate as if it were new.
        self.client.batch_execute("TRUNCATE khien_stage")?;
        {
            let sink = self.client.copy_in(
                "COPY khien_stage (ord, kind, value, confidence, tlp, family, threat_type,
                     first_seen, last_seen, expires_at, allowlisted_by) FROM STDIN (FORMAT binary)",
            )?;
            let mut w = BinaryCopyInWriter::new(sink, &STAGE_TYPES);
            for (ord, a) in as_new.iter().enumerate() {
                write_indicator(&mut w, ord as i64, &a.indicator, true)?;
            }
            w.finish()?;
        }
        // 2. Insert the new ones; the unique index decides which are new,
        //    also against concurrent importers.
        let rows = self.client.query(
            "INSERT INTO indicators (kind, value, confidence, tlp, family, threat_type,
                 first_seen, last_seen, expires_at, allowlisted_by)
             SELECT kind, value, confidence, tlp, family, threat_type,
                 first_seen, last_seen, expires_at, allowlisted_by
             FROM khien_stage ORDER BY ord
             ON CONFLICT (kind, value) DO NOTHING RETURNING id, kind, value",
            &[],
        )?;
        let mut new_id: Vec<Option<i64>> = vec![None; as_new.len()];
        for r in &rows {
            let (id, kind, value): (i64, &str, &str) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            // as_new is in (kind, value) order, like the groups.
            if let Ok(i) = as_new.binary_search_by(|a| {
                (
                    a.indicator.observable.kind().as_str(),
                    a.indicator.observable.value(),
                )
                    .cmp(&(kind, value))
            }) {
                new_id[i] = Some(id);
            }
        }
        let mut total = BatchOutcome::default();
        // 3. Their sources go straight into the table.
        if !rows.is_empty() {
            let sink = self.client.copy_in(
                "COPY indicator_sources (indicator_id, source, tlp, confidence, family, threat_type,
                     reference, first_seen, last_seen, expires_at) FROM STDIN (FORMAT binary)",
            )?;
            let mut w = BinaryCopyInWriter::new(sink, &SOURCE_TYPES);
            for (a, id) in as_new.iter().zip(&new_id) {
                if let Some(id) = id {
                    total += a.outcome;
                    for s in &a.indicator.sources {
                        write_source(&mut w, *id, s)?;
                    }
                }
            }
            w.finish()?;
        }
        // 4. The others existed: load them (locked against a concurrent
        //    merge), merge in Rust, write back what changed.
        let conflicts: Vec<i32> = (0..as_new.len())
            .filter(|&i| new_id[i].is_none())
            .map(|i| i as i32)
            .collect();
        if conflicts.is_empty() {
            return Ok(total);
        }
        let rows = self.client.query(
            &format!(
                "SELECT st.ord, i.id, i.allowlisted_by, {SOURCE_COLS}
                 FROM khien_stage st
                 JOIN indicators i ON i.kind = st.kind AND i.value = st.value
                 JOIN indicator_sources s ON s.indicator_id = i.id
                 WHERE st.ord = ANY($1)
                 ORDER BY st.ord, s.source
                 FOR UPDATE OF i"
            ),
            &[&conflicts],
        )?;
        let mut existing: HashMap<i32, Existing> = HashMap::with_capacity(conflicts.len());
        for r in &rows {
            let ord: i32 = r.try_get(0)?;
            let src = raw_source(r, 3)?.into_attributes()?;
            match existing.get_mut(&ord) {
                Some(e) => e.sources.push(src),
                None => {
                    existing.insert(
                        ord,
                        Existing {
                            id: r.try_get(1)?,
                            allowlisted_by: r.try_get(2)?,
                            sources: vec![src],
                        },
                    );
                }
            }
        }
        let mut updates: Vec<merge::Applied> = Vec::new();
        for ord in conflicts {
            let g = &groups[ord as usize];
            let e = existing.get(&ord).ok_or_else(|| {
                Error::corrupt(g.observable.to_string(), "listed but has no sources")
            })?;
            if let Some(mut a) = merge::apply(Some(e), g) {
                total += a.outcome;
                if a.changed {
                    a.indicator.id = e.id;
                    updates.push(a);
                }
            }
        }
        if updates.is_empty() {
            return Ok(total);
        }
        self.client
            .batch_execute("TRUNCATE khien_stage_update, khien_stage_sources")?;
        {
            let sink = self.client.copy_in(
                "COPY khien_stage_update (id, confidence, tlp, family, threat_type, first_seen,
                     last_seen, expires_at, allowlisted_by) FROM STDIN (FORMAT binary)",
            )?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[
                    Type::INT8,
                    Type::INT2,
                    Type::INT2,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::INT8,
                    Type::INT8,
                    Type::TEXT,
                ],
            );
            for a in &updates {
                write_indicator(&mut w, a.indicator.id, &a.indicator, false)?;
            }
            w.finish()?;
        }
        {
            let sink = self
                .client
                .copy_in("COPY khien_stage_sources FROM STDIN (FORMAT binary)")?;
            let mut w = BinaryCopyInWriter::new(sink, &SOURCE_TYPES);
            for a in &updates {
                for s in a
                    .indicator
                    .sources
                    .iter()
                    .filter(|s| a.dirty.contains(&s.source))
                {
                    write_source(&mut w, a.indicator.id, s)?;
                }
            }
            w.finish()?;
        }
        self.client.batch_execute(
            "UPDATE indicators i SET confidence = u.confidence, tlp = u.tlp, family = u.family,
                 threat_type = u.threat_type, first_seen = u.first_seen, last_seen = u.last_seen,
                 expires_at = u.expires_at, allowlisted_by = u.allowlisted_by
             FROM khien_stage_update u WHERE i.id = u.id;
             INSERT INTO indicator_sources SELECT * FROM khien_stage_sources
             ON CONFLICT (indicator_id, source) DO UPDATE SET
                 tlp = excluded.tlp, confidence = excluded.confidence,
                 family = excluded.family, threat_type = excluded.threat_type,
                 reference = excluded.reference, first_seen = excluded.first_seen,
                 last_seen = excluded.last_seen, expires_at = excluded.expires_at;",
        )?;
        Ok(total)
    }

    fn sources_of(&mut self, id: i64) -> Result<Vec<SourceAttributes>, Error> {
        let rows = self.client.query(
            &format!(
                "SELECT {SOURCE_COLS} FROM indicator_sources s WHERE s.indicator_id = $1 ORDER BY s.source"
            ),
            &[&id],
        )?;
        rows.iter()
            .map(|r| raw_source(r, 0)?.into_attributes())
            .collect()
    }

    pub(crate) fn get(&mut self, o: &Observable) -> Result<Option<Indicator>, Error> {
        let row = self.client.query_opt(
            "SELECT id, allowlisted_by FROM indicators WHERE kind = $1 AND value = $2",
            &[&o.kind().as_str(), &o.value()],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: i64 = row.try_get(0)?;
        let sources = self.sources_of(id)?;
        merge::indicator(id, o.kind().as_str(), o.value(), row.try_get(1)?, sources).map(Some)
    }

    pub(crate) fn for_each(
        &mut self,
        filter: &IndicatorFilter,
        f: &mut dyn FnMut(Indicator) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let (sql, params) = filter::stream_query(filter, placeholder);
        let params = bound(&params);
        // A portal inside a read-only transaction streams in chunks, so
        // memory stays flat however many rows match.
        let mut tx = self.client.build_transaction().read_only(true).start()?;
        let portal = tx.bind(sql.as_str(), &params)?;
        let mut grouper = merge::Grouper::default();
        let mut count = 0u64;
        loop {
            let rows = tx.query_portal(&portal, FETCH)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let id: i64 = r.try_get(0)?;
                let kind: &str = r.try_get(1)?;
                let value: &str = r.try_get(2)?;
                if let Some(ind) =
                    grouper.push(id, kind, value, r.try_get(3)?, raw_source(r, 4)?)?
                {
                    count += 1;
                    f(ind)?;
                }
            }
        }
        if let Some(ind) = grouper.finish()? {
            count += 1;
            f(ind)?;
        }
        tx.commit()?;
        Ok(count)
    }

    pub(crate) fn scalars(&mut self, sql: &str, now: i64) -> Result<Vec<i64>, Error> {
        let sql = sql.replace("?1", "$1::bigint");
        let row = self.client.query_one(sql.as_str(), &[&now])?;
        (0..row.len())
            .map(|i| Ok(row.try_get::<_, Option<i64>>(i)?.unwrap_or(0)))
            .collect()
    }

    pub(crate) fn pairs(&mut self) -> Result<Vec<Vec<(String, u64)>>, Error> {
        let mut out = Vec::new();
        for sql in STATS_PAIRS {
            let rows = self.client.query(*sql, &[])?;
            let v = rows
                .iter()
                .map(|r| {
                    let n: i64 = r.try_get(1)?;
                    Ok((r.try_get::<_, String>(0)?, u64::try_from(n).unwrap_or(0)))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            out.push(v);
        }
        Ok(out)
    }

    /// Runs inside a transaction opened by the caller.
    pub(crate) fn expire(&mut self, cutoff: i64) -> Result<ExpireOutcome, Error> {
        let mut out = ExpireOutcome::default();
        self.client.batch_execute(
            "DROP TABLE IF EXISTS pg_temp.khien_expired;
             CREATE TEMP TABLE khien_expired (id BIGINT PRIMARY KEY) ON COMMIT DROP;",
        )?;
        self.client.execute(
            "INSERT INTO khien_expired (id) SELECT DISTINCT indicator_id FROM indicator_sources
             WHERE expires_at IS NOT NULL AND expires_at <= $1",
            &[&cutoff],
        )?;
        out.sources_removed = self.client.execute(
            "DELETE FROM indicator_sources WHERE expires_at IS NOT NULL AND expires_at <= $1",
            &[&cutoff],
        )?;
        out.indicators_removed = self.client.execute(
            "DELETE FROM indicators i USING khien_expired e WHERE i.id = e.id
             AND NOT EXISTS (SELECT 1 FROM indicator_sources s WHERE s.indicator_id = i.id)",
            &[],
        )?;
        let rows = self.client.query(
            "SELECT i.id, i.kind, i.value, i.allowlisted_by FROM khien_expired e
             JOIN indicators i ON i.id = e.id",
            &[],
        )?;
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let sources = self.sources_of(id)?;
            let ind = merge::indicator(id, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, sources)?;
            self.client.execute(
                "UPDATE indicators SET confidence = $2, tlp = $3, family = $4, threat_type = $5,
                     first_seen = $6, last_seen = $7, expires_at = $8, allowlisted_by = $9
                 WHERE id = $1",
                &[
                    &ind.id,
                    &conf(ind.confidence),
                    &rank(ind.tlp),
                    &ind.family.as_ref().map(|f| f.as_str()),
                    &ind.threat_type.as_str(),
                    &secs(ind.first_seen),
                    &secs(ind.last_seen),
                    &ind.expires_at.map(secs),
                    &ind.allowlisted_by,
                ],
            )?;
            out.indicators_updated += 1;
        }
        Ok(out)
    }

    /// Opens its own transaction: the read runs through a portal, and the
    /// changes are written in the same transaction.
    pub(crate) fn reapply_allowlist(
        &mut self,
        check: &dyn Fn(&Observable) -> Option<String>,
    ) -> Result<u64, Error> {
        let mut changes: Vec<(i64, Option<String>)> = Vec::new();
        let mut tx = self.client.transaction()?;
        {
            let portal = tx.bind(
                "SELECT id, kind, value, allowlisted_by FROM indicators",
                &[],
            )?;
            loop {
                let rows = tx.query_portal(&portal, FETCH)?;
                if rows.is_empty() {
                    break;
                }
                for r in &rows {
                    let old: Option<String> = r.try_get(3)?;
                    let new = check(&merge::observable(r.try_get(1)?, r.try_get(2)?)?);
                    if new != old {
                        changes.push((r.try_get(0)?, new));
                    }
                }
            }
        }
        let st = tx.prepare("UPDATE indicators SET allowlisted_by = $2 WHERE id = $1")?;
        for (id, v) in &changes {
            tx.execute(&st, &[id, v])?;
        }
        if !changes.is_empty() {
            tx.batch_execute(crate::snapshot::BUMP_GENERATION)?;
        }
        tx.commit()?;
        Ok(changes.len() as u64)
    }
}
