//! The SQLite back end: one connection, WAL, prepared cached statements.

use std::path::Path;

use khien_model::{Indicator, Observable};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::filter::{self, Param};
use crate::merge::{self, Existing, Group, RawSource, secs, tlp_rank};
use crate::{BatchOutcome, Error, ExpireOutcome, IndicatorFilter, STATS_PAIRS};

const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (2, "hub", include_str!("../migrations/sqlite/0002_hub.sql")),
    (
        3,
        "tenants",
        include_str!("../migrations/sqlite/0003_tenants.sql"),
    ),
    (
        4,
        "notifications",
        include_str!("../migrations/sqlite/0004_notifications.sql"),
    ),
];

#[derive(Debug)]
pub(crate) struct Db {
    pub(crate) conn: Connection,
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Int(i) => i.to_sql(),
            Param::Text(s) => s.to_sql(),
        }
    }
}

pub(crate) fn placeholder(n: usize, _: &Param) -> String {
    format!("?{n}")
}

const SOURCE_COLS: &str =
    "source, tlp, confidence, family, threat_type, reference, first_seen, last_seen, expires_at";

fn raw_source(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<RawSource> {
    Ok(RawSource {
        source: r.get(at)?,
        tlp: r.get(at + 1)?,
        confidence: r.get(at + 2)?,
        family: r.get(at + 3)?,
        threat_type: r.get(at + 4)?,
        reference: r.get(at + 5)?,
        first_seen: r.get(at + 6)?,
        last_seen: r.get(at + 7)?,
        expires_at: r.get(at + 8)?,
    })
}

impl Db {
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        // WAL + NORMAL: a commit is one sequential WAL append and survives a
        // process crash (an OS crash may lose the last commits, never
        // corrupt). The cache keeps the upper index levels of millions of
        // rows in memory during imports.
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -1048576;
             PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = 10000;",
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        let db = Self { conn };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&self) -> Result<(), Error> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at INTEGER NOT NULL)",
        )?;
        // IMMEDIATE takes the write lock first, so two processes opening a
        // new file cannot both apply a migration.
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let r = self.migrate_locked();
        match r {
            Ok(()) => self.conn.execute_batch("COMMIT")?,
            Err(_) => {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
        r
    }

    fn migrate_locked(&self) -> Result<(), Error> {
        let current: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )?;
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > i64::from(known) {
            return Err(Error::SchemaTooNew {
                found: current,
                known,
            });
        }
        for &(version, name, sql) in MIGRATIONS {
            if i64::from(version) <= current {
                continue;
            }
            let fail = |e: rusqlite::Error| Error::Migration {
                version,
                name,
                reason: e.to_string(),
            };
            self.conn.execute_batch(sql).map_err(fail)?;
            self.conn
                .execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                    params![version, name, secs(chrono::Utc::now())],
                )
                .map_err(fail)?;
        }
        Ok(())
    }

    pub(crate) fn exec(&self, sql: &str) -> Result<(), Error> {
        self.conn.execute_batch(sql).map_err(Error::from)
    }

    pub(crate) fn add_batch(&mut self, groups: &[Group<'_>]) -> Result<BatchOutcome, Error> {
        let mut total = BatchOutcome::default();
        for g in groups {
            let Some(as_new) = merge::apply(None, g) else {
                continue;
            };
            let ind = &as_new.indicator;
            // Not RETURNING: SQLite materialises RETURNING rows in a
            // temporary table, which costs more than the insert itself.
            let inserted = self
                .conn
                .prepare_cached(
                    "INSERT OR FAIL INTO indicators (kind, value, confidence, tlp, family, threat_type,
                         first_seen, last_seen, expires_at, allowlisted_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (kind, value) DO NOTHING",
                )?
                .execute(params![
                    ind.observable.kind().as_str(),
                    ind.observable.value(),
                    ind.confidence.get(),
                    tlp_rank(ind.tlp),
                    ind.family.as_ref().map(|f| f.as_str()),
                    ind.threat_type.as_str(),
                    secs(ind.first_seen),
                    secs(ind.last_seen),
                    ind.expires_at.map(secs),
                    ind.allowlisted_by.as_deref(),
                ])?;
            let id = (inserted == 1).then(|| self.conn.last_insert_rowid());
            if let Some(id) = id {
                for s in &ind.sources {
                    self.upsert_source(id, s)?;
                }
                total += as_new.outcome;
                continue;
            }
            let existing = self
                .load(g.observable)?
                .ok_or_else(|| Error::corrupt(g.observable.to_string(), "conflict but no row"))?;
            let Some(applied) = merge::apply(Some(&existing), g) else {
                continue;
            };
            total += applied.outcome;
            if !applied.changed {
                continue;
            }
            // `apply` keeps the stored id, so this updates `existing`.
            let ind = &applied.indicator;
            self.write_aggregate(ind)?;
            for s in ind
                .sources
                .iter()
                .filter(|s| applied.dirty.contains(&s.source))
            {
                self.upsert_source(existing.id, s)?;
            }
        }
        Ok(total)
    }

    fn upsert_source(&self, id: i64, s: &khien_model::SourceAttributes) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "INSERT OR FAIL INTO indicator_sources (indicator_id, source, tlp, confidence, family,
                     threat_type, reference, first_seen, last_seen, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (indicator_id, source) DO UPDATE SET
                     tlp = excluded.tlp, confidence = excluded.confidence,
                     family = excluded.family, threat_type = excluded.threat_type,
                     reference = excluded.reference, first_seen = excluded.first_seen,
                     last_seen = excluded.last_seen, expires_at = excluded.expires_at",
            )?
            .execute(params![
                id,
                s.source,
                tlp_rank(s.tlp),
                s.confidence.get(),
                s.family.as_ref().map(|f| f.as_str()),
                s.threat_type.as_str(),
                s.reference,
                secs(s.first_seen),
                secs(s.last_seen),
                s.expires_at.map(secs),
            ])?;
        Ok(())
    }

    fn sources_of(&self, id: i64) -> Result<Vec<khien_model::SourceAttributes>, Error> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SOURCE_COLS} FROM indicator_sources WHERE indicator_id = ?1 ORDER BY source"
        ))?;
        let raws = st
            .query_map([id], |r| raw_source(r, 0))?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(RawSource::into_attributes).collect()
    }

    fn load(&self, o: &Observable) -> Result<Option<Existing>, Error> {
        let row: Option<(i64, Option<String>)> = self
            .conn
            .prepare_cached(
                "SELECT id, allowlisted_by FROM indicators WHERE kind = ?1 AND value = ?2",
            )?
            .query_row(params![o.kind().as_str(), o.value()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((id, allowlisted_by)) = row else {
            return Ok(None);
        };
        Ok(Some(Existing {
            id,
            allowlisted_by,
            sources: self.sources_of(id)?,
        }))
    }

    pub(crate) fn get(&self, o: &Observable) -> Result<Option<Indicator>, Error> {
        match self.load(o)? {
            None => Ok(None),
            Some(e) => merge::indicator(
                e.id,
                o.kind().as_str(),
                o.value(),
                e.allowlisted_by,
                e.sources,
            )
            .map(Some),
        }
    }

    pub(crate) fn for_each(
        &self,
        filter: &IndicatorFilter,
        f: &mut dyn FnMut(Indicator) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let (sql, params) = filter::stream_query(filter, placeholder);
        let mut st = self.conn.prepare(&sql)?;
        let mut rows = st.query(params_from_iter(params.iter()))?;
        let mut grouper = merge::Grouper::default();
        let mut count = 0u64;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let kind: String = r.get(1)?;
            let value: String = r.get(2)?;
            if let Some(ind) = grouper.push(id, &kind, &value, r.get(3)?, raw_source(r, 4)?)? {
                count += 1;
                f(ind)?;
            }
        }
        if let Some(ind) = grouper.finish()? {
            count += 1;
            f(ind)?;
        }
        Ok(count)
    }

    pub(crate) fn scalars(&self, sql: &str, now: i64) -> Result<Vec<i64>, Error> {
        let mut st = self.conn.prepare(sql)?;
        let n = st.column_count();
        let v = st.query_row([now], |r| {
            (0..n)
                .map(|i| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0)))
                .collect::<rusqlite::Result<Vec<i64>>>()
        })?;
        Ok(v)
    }

    pub(crate) fn pairs(&self) -> Result<Vec<Vec<(String, u64)>>, Error> {
        STATS_PAIRS
            .iter()
            .map(|sql| {
                let mut st = self.conn.prepare(sql)?;
                let v = st
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                    .map(|r| r.map(|(k, n)| (k, u64::try_from(n).unwrap_or(0))))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(v)
            })
            .collect()
    }

    /// Runs inside a transaction opened by the caller.
    pub(crate) fn expire(&self, cutoff: i64) -> Result<ExpireOutcome, Error> {
        let mut out = ExpireOutcome::default();
        self.conn.execute_batch(
            "DROP TABLE IF EXISTS temp.khien_expired;
             CREATE TEMP TABLE khien_expired (id INTEGER PRIMARY KEY);",
        )?;
        self.conn.execute(
            "INSERT INTO temp.khien_expired (id) SELECT DISTINCT indicator_id FROM indicator_sources
             WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            [cutoff],
        )?;
        out.sources_removed = self.conn.execute(
            "DELETE FROM indicator_sources WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            [cutoff],
        )? as u64;
        out.indicators_removed = self.conn.execute(
            "DELETE FROM indicators WHERE id IN (SELECT id FROM temp.khien_expired)
             AND NOT EXISTS (SELECT 1 FROM indicator_sources s WHERE s.indicator_id = indicators.id)",
            [],
        )? as u64;
        let mut st = self.conn.prepare(
            "SELECT i.id, i.kind, i.value, i.allowlisted_by FROM temp.khien_expired e
             JOIN indicators i ON i.id = e.id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let kind: String = r.get(1)?;
            let value: String = r.get(2)?;
            let ind = merge::indicator(id, &kind, &value, r.get(3)?, self.sources_of(id)?)?;
            self.write_aggregate(&ind)?;
            out.indicators_updated += 1;
        }
        drop(rows);
        drop(st);
        self.conn.execute_batch("DROP TABLE temp.khien_expired")?;
        Ok(out)
    }

    fn write_aggregate(&self, ind: &Indicator) -> Result<(), Error> {
        self.conn
            .prepare_cached(
                "UPDATE indicators SET confidence = ?2, tlp = ?3, family = ?4, threat_type = ?5,
                     first_seen = ?6, last_seen = ?7, expires_at = ?8, allowlisted_by = ?9
                 WHERE id = ?1",
            )?
            .execute(params![
                ind.id,
                ind.confidence.get(),
                tlp_rank(ind.tlp),
                ind.family.as_ref().map(|f| f.as_str()),
                ind.threat_type.as_str(),
                secs(ind.first_seen),
                secs(ind.last_seen),
                ind.expires_at.map(secs),
                ind.allowlisted_by.as_deref(),
            ])?;
        Ok(())
    }

    /// Runs inside a transaction opened by the caller.
    pub(crate) fn reapply_allowlist(
        &self,
        check: &dyn Fn(&Observable) -> Option<String>,
    ) -> Result<u64, Error> {
        let mut changes: Vec<(i64, Option<String>)> = Vec::new();
        {
            let mut st = self
                .conn
                .prepare("SELECT id, kind, value, allowlisted_by FROM indicators")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let kind: String = r.get(1)?;
                let value: String = r.get(2)?;
                let old: Option<String> = r.get(3)?;
                let new = check(&merge::observable(&kind, &value)?);
                if new != old {
                    changes.push((r.get(0)?, new));
                }
            }
        }
        let mut st = self
            .conn
            .prepare_cached("UPDATE indicators SET allowlisted_by = ?2 WHERE id = ?1")?;
        for (id, v) in &changes {
            st.execute(params![id, v])?;
        }
        Ok(changes.len() as u64)
    }
}
