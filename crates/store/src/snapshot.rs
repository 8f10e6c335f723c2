//! What the hub's snapshot builder reads: the active, non-allow-listed
//! indicators of the kinds a matcher can match, streamed, plus the
//! exact-host mark and the generation counter that says when to rebuild.
//!
//! The generation (`store_meta.indicators_generation`) is bumped in the
//! same transaction as every write that can change a snapshot: an import
//! batch that created or changed an indicator, the expiry job, a changed
//! allow-list verdict, an exact-host mark. The store is the only writer of
//! these tables, so the counter cannot miss a change; a reader that sees a
//! new value also sees the committed rows. Time alone also changes a
//! snapshot (an indicator passes its expiry without any write), which the
//! counter cannot show: the hub rebuilds after a maximum age as well.

use khien_model::{Observable, ObservableKind, ThreatType, Timestamp, Tlp};
use rusqlite::params;

use crate::merge::{Group, secs};
use crate::{Backend, Error, Store, pg};

pub(crate) const BUMP_GENERATION: &str =
    "UPDATE store_meta SET value = value + 1 WHERE key = 'indicators_generation'";

/// The kinds a snapshot holds; e-mail addresses and phone numbers are not
/// seen in DNS or flow telemetry.
pub const SNAPSHOT_KINDS: [ObservableKind; 8] = [
    ObservableKind::Ipv4,
    ObservableKind::Ipv6,
    ObservableKind::Cidr,
    ObservableKind::Domain,
    ObservableKind::Url,
    ObservableKind::Sha256,
    ObservableKind::Sha1,
    ObservableKind::Md5,
];

/// One indicator as the snapshot builder needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub id: i64,
    pub kind: ObservableKind,
    /// The normalised value, as [`Observable::value`] gives it.
    pub value: String,
    /// A domain that matches only itself, not its subdomains.
    pub exact_host: bool,
    pub family: Option<String>,
    pub threat_type: ThreatType,
}

fn snapshot_sql(now: &str, tlp_ceiling: Option<Tlp>) -> String {
    let kinds: Vec<String> = SNAPSHOT_KINDS
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect();
    format!(
        "SELECT id, kind, value, exact_host, family, threat_type FROM indicators
         WHERE kind IN ({}) AND allowlisted_by IS NULL
           AND (expires_at IS NULL OR expires_at > {now}){}
         ORDER BY kind, value",
        kinds.join(", "),
        tlp_ceiling.map_or_else(String::new, |t| format!(
            " AND tlp <= {}",
            crate::merge::tlp_rank(t)
        ))
    )
}

fn row(
    id: i64,
    kind: &str,
    value: String,
    exact_host: bool,
    family: Option<String>,
    threat_type: &str,
) -> Result<SnapshotRow, Error> {
    Ok(SnapshotRow {
        id,
        kind: kind
            .parse()
            .map_err(|e| Error::corrupt(format!("kind of indicator {id}"), e))?,
        value,
        exact_host,
        family,
        threat_type: threat_type
            .parse()
            .map_err(|e| Error::corrupt(format!("threat type of indicator {id}"), e))?,
    })
}

pub(crate) fn bump_generation(b: &mut Backend) -> Result<(), Error> {
    match b {
        Backend::Sqlite(db) => db.exec(BUMP_GENERATION),
        Backend::Postgres(db) => db.exec(BUMP_GENERATION),
    }
}

/// Marks the domains of an import batch exact-host; returns how many
/// changed. Runs inside the batch's transaction.
pub(crate) fn mark_exact_host(b: &mut Backend, groups: &[Group<'_>]) -> Result<u64, Error> {
    let domains = groups
        .iter()
        .filter(|g| g.observable.kind() == ObservableKind::Domain)
        .map(|g| g.observable.value());
    match b {
        Backend::Sqlite(db) => {
            let mut st = db.conn.prepare_cached(
                "UPDATE indicators SET exact_host = 1
                 WHERE kind = 'domain' AND value = ?1 AND exact_host = 0",
            )?;
            let mut n = 0u64;
            for d in domains {
                n += st.execute([d])? as u64;
            }
            Ok(n)
        }
        Backend::Postgres(db) => {
            let values: Vec<&str> = domains.collect();
            if values.is_empty() {
                return Ok(0);
            }
            Ok(db.client.execute(
                "UPDATE indicators SET exact_host = TRUE
                 WHERE kind = 'domain' AND value = ANY($1) AND NOT exact_host",
                &[&values],
            )?)
        }
    }
}

impl Store {
    /// Marks (or unmarks) a domain indicator exact-host: it then matches
    /// only the name itself, not its subdomains — for a bad site on a
    /// shared-hosting name whose neighbours are innocent. Returns whether
    /// the indicator exists. Only domains can be marked.
    pub fn set_exact_host(&mut self, domain: &Observable, on: bool) -> Result<bool, Error> {
        if domain.kind() != ObservableKind::Domain {
            return Err(Error::Invalid {
                what: "exact-host mark",
                reason: format!("{} is a {}, not a domain", domain.value(), domain.kind()),
            });
        }
        let value = domain.value();
        self.in_transaction(|b| {
            let (found, changed) = match b {
                Backend::Sqlite(db) => {
                    let found = db
                        .conn
                        .prepare_cached(
                            "SELECT COUNT(*) FROM indicators WHERE kind = 'domain' AND value = ?1",
                        )?
                        .query_row([value], |r| r.get::<_, i64>(0))?;
                    let changed = db
                        .conn
                        .prepare_cached(
                            "UPDATE indicators SET exact_host = ?2
                             WHERE kind = 'domain' AND value = ?1 AND exact_host <> ?2",
                        )?
                        .execute(params![value, on])?;
                    (found > 0, changed > 0)
                }
                Backend::Postgres(db) => {
                    let found: i64 = db
                        .client
                        .query_one(
                            "SELECT COUNT(*) FROM indicators WHERE kind = 'domain' AND value = $1",
                            &[&value],
                        )?
                        .try_get(0)?;
                    let changed = db.client.execute(
                        "UPDATE indicators SET exact_host = $2
                         WHERE kind = 'domain' AND value = $1 AND exact_host <> $2",
                        &[&value, &on],
                    )?;
                    (found > 0, changed > 0)
                }
            };
            if changed {
                bump_generation(b)?;
            }
            Ok(found)
        })
    }

    /// Whether this domain is marked exact-host (`None`: no such indicator).
    pub fn exact_host(&mut self, domain: &Observable) -> Result<Option<bool>, Error> {
        let (kind, value) = (domain.kind().as_str(), domain.value());
        match &mut self.backend {
            Backend::Sqlite(db) => {
                use rusqlite::OptionalExtension;
                Ok(db
                    .conn
                    .prepare_cached(
                        "SELECT exact_host FROM indicators WHERE kind = ?1 AND value = ?2",
                    )?
                    .query_row([kind, value], |r| r.get::<_, bool>(0))
                    .optional()?)
            }
            Backend::Postgres(db) => Ok(db
                .client
                .query_opt(
                    "SELECT exact_host FROM indicators WHERE kind = $1 AND value = $2",
                    &[&kind, &value],
                )?
                .map(|r| r.try_get::<_, bool>(0))
                .transpose()?),
        }
    }

    /// Streams what a snapshot built at `now` holds: active (unexpired),
    /// non-allow-listed indicators of the [`SNAPSHOT_KINDS`], in (kind,
    /// value) order, and returns how many. Memory stays flat (SQLite walks
    /// one statement, PostgreSQL fetches from a portal in chunks), so ten
    /// million rows cost the callback's memory only. An error from `f`
    /// stops the walk and is returned.
    pub fn for_each_snapshot_entry(
        &mut self,
        now: Timestamp,
        f: &mut dyn FnMut(SnapshotRow) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        self.for_each_snapshot_entry_within(now, None, f)
    }

    /// As [`Store::for_each_snapshot_entry`], only indicators whose TLP is
    /// at most `tlp_ceiling` (the public lookups' snapshot holds
    /// TLP:CLEAR only).
    pub fn for_each_snapshot_entry_within(
        &mut self,
        now: Timestamp,
        tlp_ceiling: Option<Tlp>,
        f: &mut dyn FnMut(SnapshotRow) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        let now = secs(now);
        let mut count = 0u64;
        match &mut self.backend {
            Backend::Sqlite(db) => {
                let mut st = db.conn.prepare(&snapshot_sql("?1", tlp_ceiling))?;
                let mut rows = st.query([now])?;
                while let Some(r) = rows.next()? {
                    let kind: String = r.get(1)?;
                    let tt: String = r.get(5)?;
                    f(row(r.get(0)?, &kind, r.get(2)?, r.get(3)?, r.get(4)?, &tt)?)?;
                    count += 1;
                }
            }
            Backend::Postgres(db) => {
                let mut tx = db.client.build_transaction().read_only(true).start()?;
                let sql = snapshot_sql("$1::bigint", tlp_ceiling);
                let portal = tx.bind(sql.as_str(), &[&now])?;
                loop {
                    let rows = tx.query_portal(&portal, pg::FETCH)?;
                    if rows.is_empty() {
                        break;
                    }
                    for r in &rows {
                        f(row(
                            r.try_get(0)?,
                            r.try_get(1)?,
                            r.try_get(2)?,
                            r.try_get(3)?,
                            r.try_get(4)?,
                            r.try_get(5)?,
                        )?)?;
                        count += 1;
                    }
                }
                tx.commit()?;
            }
        }
        Ok(count)
    }

    /// A short value that changes whenever a write changes what
    /// [`Store::for_each_snapshot_entry`] would return (one indexed row
    /// read): the hub polls it and rebuilds when it differs. It does not
    /// change when an indicator merely passes its expiry; see the module
    /// documentation.
    pub fn indicators_changed_marker(&mut self) -> Result<String, Error> {
        const SQL: &str = "SELECT value FROM store_meta WHERE key = 'indicators_generation'";
        let generation: i64 = match &mut self.backend {
            Backend::Sqlite(db) => db.conn.query_row(SQL, [], |r| r.get(0))?,
            Backend::Postgres(db) => db.client.query_one(SQL, &[])?.try_get(0)?,
        };
        Ok(format!("g{generation}"))
    }
}
