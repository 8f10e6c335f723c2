//! Persistence of indicators for Khiên: SQLite (the embedded default) and
//! PostgreSQL (for scale), behind one [`Store`].
//!
//! # Schema
//!
//! Two tables, the same on both back ends (migrations are numbered SQL files
//! under `migrations/{sqlite,postgres}/`, embedded in the binary, applied in
//! order at [`Store::open`] and recorded in `schema_migrations`):
//!
//! - `indicators` — one row per (kind, value), carrying the *aggregate* over
//!   its sources in plain columns (confidence, TLP as a rank 0 = clear …
//!   4 = red, family, threat type, first/last seen, expiry, allow-list
//!   verdict), so that filters and exports are index scans and never
//!   recompute anything.
//! - `indicator_sources` — what each source says, keyed by
//!   (indicator, source): a source listing the same observable again
//!   updates its row, never adds one.
//!
//! Migration 0002 adds what the hub needs: `indicators.exact_host` (a
//! domain that matches only itself), `hits` and `hit_batches` (sensor hits,
//! merged per key, and the batch ids that make resubmission harmless; see
//! [`Store::record_hits`]), `api_keys` (hashed secrets; see
//! [`Store::create_api_key`]) and `store_meta`, whose indicator generation
//! tells the snapshot builder when to rebuild
//! ([`Store::indicators_changed_marker`]).
//!
//! Timestamps are stored as unix seconds (UTC) on both back ends; sub-second
//! parts are dropped at import. Two deliberate omissions keep imports fast:
//! no index on `indicator_sources.expires_at` (the expiry job scans the
//! table once per run instead), and on PostgreSQL no foreign key from
//! `indicator_sources` to `indicators` (it is checked by one query per
//! inserted row; the store is the only writer and removes sources before
//! their indicator). SQLite keeps the key, deferred to commit, where it
//! costs little.
//!
//! # Merging
//!
//! The indicator-level rule lives in the model,
//! [`khien_model::Indicator::aggregate`], and the store calls nothing else,
//! so the back ends cannot disagree. The store adds the source-level rule,
//! for a source that lists an observable it listed before: first/last seen
//! only widen; confidence, TLP, family, threat type and reference follow
//! the newer listing (by `last_seen`; an older listing cannot overwrite a
//! newer one, so re-importing an old file is harmless; a newer listing
//! without family or reference keeps the known one); the expiry is the
//! later of the two, or none if either says never.
//!
//! **Default lifetimes are applied here, at import:** a record without
//! `expires_at` expires at `last_seen + kind.default_lifetime()` (never, for
//! file hashes). Callers pass what the feed said and nothing more.
//!
//! The allow-list verdict is the caller's (it owns the warninglists): the
//! newest verdict for an observable replaces the stored one, and
//! [`Store::reapply_allowlist`] re-evaluates everything when lists change.
//!
//! # Expiry
//!
//! An indicator's expiry is the latest of its sources'. Reads apply it —
//! [`IndicatorFilter`] leaves expired indicators out unless asked — and the
//! [`Store::expire`] job deletes source entries past expiry plus a grace
//! period, recomputes what they touched and drops indicators left without
//! sources.
//!
//! # Imports and speed
//!
//! An [`Importer`] takes batches. New observables take a fast path (one
//! insert of the indicator and its sources); existing ones are loaded,
//! merged in Rust and written back only if something changed. SQLite runs
//! in WAL mode with `synchronous = NORMAL` and cached prepared statements;
//! PostgreSQL stages each batch with binary `COPY` into temporary tables and
//! inserts set-based, so a batch costs a few round trips whatever its size.
//!
//! # Why synchronous drivers
//!
//! The CLI is synchronous, and both drivers are: rusqlite has no async API
//! at all, and an async PostgreSQL path would double the code for no gain
//! in a batch importer. The hub calls the store from `spawn_blocking`.
//!
//! ```no_run
//! # fn main() -> Result<(), khien_store::Error> {
//! use khien_store::{IndicatorFilter, Store};
//! let mut store = Store::open("sqlite:/var/lib/khien/khien.db")?;
//! let n = store.for_each_indicator(&IndicatorFilter::default(), &mut |ind| {
//!     let _ = ind.observable.value();
//!     Ok(())
//! })?;
//! # let _ = n; Ok(()) }
//! ```

mod audit;
mod cases;
mod error;
mod filter;
mod hits;
mod keys;
mod merge;
mod notifications;
mod pg;
mod secret;
mod snapshot;
mod sql;
mod sqlite;
mod subscribers;
mod tenants;

use std::ops::AddAssign;
use std::path::Path;

use khien_model::{Confidence, Indicator, IndicatorRecord, Observable, ObservableKind};
use khien_model::{ThreatType, Timestamp, Tlp};
use serde::Serialize;

pub use audit::{AuditEntry, AuditEvent, AuditFilter};
pub use cases::{
    Case, CaseDay, CaseEvent, CaseFilter, CaseHits, CaseOutcome, CaseStatistics, CaseStats,
    LOCAL_OFFSET_SECONDS, UNKNOWN_FAMILY, local_day, sum_case_hits,
};
pub use error::Error;
pub use hits::{
    HitBatch, HitBatchOutcome, HitFilter, HitTotals, MAX_BATCH_ID_LEN, UnattributedHit,
};
pub use keys::{ApiKeyInfo, ApiKeyRef, NewApiKey};
pub use notifications::{
    CaseToNotify, NewNotification, NotificationAttempt, NotificationContext, NotificationFilter,
    NotificationRecord,
};
pub use secret::{HashKey, random_bytes};
pub use snapshot::{SNAPSHOT_KINDS, SnapshotRow};
pub use subscribers::{
    AssignmentChange, AssignmentOutcome, AssignmentRow, AssignmentUpsert, EncryptedContacts,
    SubscriberOutcome, SubscriberRecord, SubscriberUpsert,
};
pub use tenants::{
    LoginRecord, NewUser, Organization, Page, Session, User, UserUpdate, normalize_email,
};

/// Which indicators to read. The default reads every active indicator:
/// allow-listed and expired ones are left out unless included.
#[derive(Default, Clone, Debug)]
pub struct IndicatorFilter {
    /// Only these kinds (empty: all).
    pub kinds: Vec<ObservableKind>,
    /// Only these (aggregate) families, normalised like [`khien_model::Family`].
    pub families: Vec<String>,
    /// Only these (aggregate) threat types.
    pub threat_types: Vec<ThreatType>,
    /// Only indicators whose combined confidence is at least this.
    pub min_confidence: Option<Confidence>,
    /// Only indicators whose TLP is this or less restrictive.
    pub tlp_ceiling: Option<Tlp>,
    /// Only indicators that at least one of these sources lists.
    pub sources: Vec<String>,
    /// Only indicators last seen at or after this.
    pub seen_since: Option<Timestamp>,
    pub include_allowlisted: bool,
    pub include_expired: bool,
    /// The time expiry is judged at; `None` = now.
    pub now: Option<Timestamp>,
    /// At most this many indicators (in (kind, value) order).
    pub limit: Option<u64>,
}

/// What one [`Importer::add_batch`] did, counted per record:
/// `new + updated + unchanged` is the number of records.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    /// Records that created an indicator.
    pub new: u64,
    /// Records that changed an existing indicator: a new source, a moved
    /// or changed entry of a known source, or a new allow-list verdict.
    pub updated: u64,
    /// Records that told the store nothing new.
    pub unchanged: u64,
    /// Records whose indicator is allow-listed (also counted above).
    pub allowlisted: u64,
}

impl AddAssign for BatchOutcome {
    fn add_assign(&mut self, o: Self) {
        self.new += o.new;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.allowlisted += o.allowlisted;
    }
}

/// Counts over the whole store. The breakdowns count every stored
/// indicator (active, expired and allow-listed alike); `by_source` counts
/// the indicators each source lists.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub indicators: u64,
    /// Neither expired nor allow-listed.
    pub active: u64,
    pub allowlisted: u64,
    /// Past their expiry but not yet removed by [`Store::expire`].
    pub expired: u64,
    /// Distinct source names.
    pub sources: u64,
    pub by_kind: Vec<(String, u64)>,
    pub by_source: Vec<(String, u64)>,
    pub by_threat_type: Vec<(String, u64)>,
    pub by_tlp: Vec<(String, u64)>,
    /// The 20 most frequent families.
    pub top_families: Vec<(String, u64)>,
}

/// What one run of [`Store::expire`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpireOutcome {
    pub sources_removed: u64,
    pub indicators_removed: u64,
    /// Indicators that lost a source but kept others, re-aggregated.
    pub indicators_updated: u64,
}

// Shared by both back ends; `?1` is the current time in unix seconds
// (rewritten to `$1` for PostgreSQL).
const STATS_TOTALS: &str = "SELECT COUNT(*),
    SUM(CASE WHEN allowlisted_by IS NULL AND (expires_at IS NULL OR expires_at > ?1) THEN 1 ELSE 0 END),
    SUM(CASE WHEN allowlisted_by IS NOT NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN expires_at IS NOT NULL AND expires_at <= ?1 THEN 1 ELSE 0 END),
    (SELECT COUNT(DISTINCT source) FROM indicator_sources)
    FROM indicators";

const STATS_PAIRS: &[&str] = &[
    "SELECT kind, COUNT(*) FROM indicators GROUP BY kind ORDER BY 2 DESC, 1",
    "SELECT source, COUNT(*) FROM indicator_sources GROUP BY source ORDER BY 2 DESC, 1",
    "SELECT threat_type, COUNT(*) FROM indicators GROUP BY threat_type ORDER BY 2 DESC, 1",
    "SELECT CASE tlp WHEN 0 THEN 'clear' WHEN 1 THEN 'green' WHEN 2 THEN 'amber'
         WHEN 3 THEN 'amber+strict' ELSE 'red' END, COUNT(*)
     FROM indicators GROUP BY tlp ORDER BY tlp",
    "SELECT family, COUNT(*) FROM indicators WHERE family IS NOT NULL
     GROUP BY family ORDER BY 2 DESC, 1 LIMIT 20",
];

// One per connection, so the size difference between variants costs
// nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::Db),
    Postgres(pg::Db),
}

/// A connection to the database.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
    /// Keys the hashes of API keys, sessions and setup tokens; see
    /// [`Store::set_hash_key`].
    hash_key: Option<secret::HashKey>,
}

impl Store {
    /// Opens (creating if needed) and migrates a database:
    /// `postgres://…` or `postgresql://…` is PostgreSQL (URL parameters such
    /// as `options=-c search_path=…` pass through); `sqlite:PATH` or a plain
    /// path is a SQLite file, whose directory is created.
    pub fn open(database: &str) -> Result<Store, Error> {
        let backend =
            if database.starts_with("postgres://") || database.starts_with("postgresql://") {
                Backend::Postgres(pg::Db::open(database)?)
            } else {
                let path = database
                    .strip_prefix("sqlite://")
                    .or_else(|| database.strip_prefix("sqlite:"))
                    .unwrap_or(database);
                Backend::Sqlite(sqlite::Db::open(Path::new(path))?)
            };
        Ok(Store {
            backend,
            hash_key: None,
        })
    }

    /// Sets the key of the keyed hashes of secrets (API keys, sessions,
    /// setup tokens). Operations on secrets fail until it is set.
    pub fn set_hash_key(&mut self, key: HashKey) {
        self.hash_key = Some(key);
    }

    fn hash_key(&self) -> Result<&HashKey, Error> {
        self.hash_key.as_ref().ok_or(Error::Invalid {
            what: "store configuration",
            reason: "no key for hashing secrets was set (Store::set_hash_key)".into(),
        })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    fn exec(&mut self, sql: &str) -> Result<(), Error> {
        match &mut self.backend {
            Backend::Sqlite(db) => db.exec(sql),
            Backend::Postgres(db) => db.exec(sql),
        }
    }

    /// Opens a write transaction. SQLite's IMMEDIATE takes the write lock
    /// up front, so the read-then-write of a merge cannot race another
    /// writer.
    fn begin(&mut self) -> Result<(), Error> {
        match self.backend {
            Backend::Sqlite(_) => self.exec("BEGIN IMMEDIATE"),
            Backend::Postgres(_) => self.exec("BEGIN"),
        }
    }

    /// Runs `f` in a transaction of its own, rolled back on error.
    fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Backend) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.begin()?;
        match f(&mut self.backend) {
            Ok(v) => {
                self.exec("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                // The original error matters more than a failed rollback.
                let _ = self.exec("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Starts an import. With `all_or_nothing` everything until
    /// [`Importer::commit`] is one transaction (for `--strict`); otherwise
    /// each batch commits on its own and a crash loses at most the batch
    /// in flight. Either way a failed batch leaves nothing of itself.
    pub fn import(&mut self, all_or_nothing: bool) -> Result<Importer<'_>, Error> {
        if all_or_nothing {
            self.begin()?;
        }
        Ok(Importer {
            store: self,
            all_or_nothing,
            open: all_or_nothing,
            exact_host: false,
        })
    }

    /// The merged indicator of exactly this observable, expired or not.
    pub fn get(&mut self, observable: &Observable) -> Result<Option<Indicator>, Error> {
        match &mut self.backend {
            Backend::Sqlite(db) => db.get(observable),
            Backend::Postgres(db) => db.get(observable),
        }
    }

    /// Looks up a value as a user types it (defanged or not): the exact
    /// observable, plus every listed indicator that covers it — parent
    /// domains of a domain (or of a URL's or address's host) and networks
    /// containing an address. Expired and allow-listed indicators are
    /// included; check [`Indicator::is_active`] at `now` to flag them.
    /// The exact match comes first, then the closest cover.
    pub fn search(&mut self, query: &str, now: Timestamp) -> Result<Vec<Indicator>, Error> {
        let _ = now; // Part of the contract so that ranking can use it later.
        let o = Observable::detect(query).map_err(|source| Error::Query {
            query: query.to_string(),
            source,
        })?;
        let mut out: Vec<Indicator> = Vec::new();
        for (kind, value) in merge::covering(&o) {
            let Ok(c) = Observable::parse(kind, &value) else {
                continue;
            };
            if let Some(ind) = self.get(&c)?
                && !out.iter().any(|x| x.id == ind.id)
            {
                out.push(ind);
            }
        }
        Ok(out)
    }

    /// Streams the indicators matching `filter` in (kind, value) order to
    /// `f` and returns how many it saw. Memory stays flat: SQLite iterates
    /// one statement, PostgreSQL fetches from a portal in chunks. An error
    /// from `f` stops the walk and is returned.
    pub fn for_each_indicator(
        &mut self,
        filter: &IndicatorFilter,
        f: &mut dyn FnMut(Indicator) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        match &mut self.backend {
            Backend::Sqlite(db) => db.for_each(filter, f),
            Backend::Postgres(db) => db.for_each(filter, f),
        }
    }

    /// Counts for `khien intel stats`, with expiry judged at `now`.
    pub fn stats(&mut self, now: Timestamp) -> Result<Stats, Error> {
        let now = merge::secs(now);
        let (totals, pairs) = match &mut self.backend {
            Backend::Sqlite(db) => (db.scalars(STATS_TOTALS, now)?, db.pairs()?),
            Backend::Postgres(db) => (db.scalars(STATS_TOTALS, now)?, db.pairs()?),
        };
        let n = |i: usize| totals.get(i).map_or(0, |&v| u64::try_from(v).unwrap_or(0));
        let mut pairs = pairs.into_iter();
        let mut next = || pairs.next().unwrap_or_default();
        Ok(Stats {
            indicators: n(0),
            active: n(1),
            allowlisted: n(2),
            expired: n(3),
            sources: n(4),
            by_kind: next(),
            by_source: next(),
            by_threat_type: next(),
            by_tlp: next(),
            top_families: next(),
        })
    }

    /// The expiry job, in one transaction: deletes source entries whose
    /// expiry is at or before `now - grace`, re-aggregates the indicators
    /// that keep other sources and deletes those left without any.
    pub fn expire(
        &mut self,
        now: Timestamp,
        grace: chrono::Duration,
    ) -> Result<ExpireOutcome, Error> {
        let cutoff = merge::secs(now) - grace.num_seconds();
        self.in_transaction(|b| {
            let out = match b {
                Backend::Sqlite(db) => db.expire(cutoff),
                Backend::Postgres(db) => db.expire(cutoff),
            }?;
            if out != ExpireOutcome::default() {
                snapshot::bump_generation(b)?;
            }
            Ok(out)
        })
    }

    /// Re-evaluates every indicator's allow-list verdict with `check`
    /// (after the warninglists changed) and returns how many changed.
    pub fn reapply_allowlist(
        &mut self,
        check: &dyn Fn(&Observable) -> Option<String>,
    ) -> Result<u64, Error> {
        match &mut self.backend {
            Backend::Sqlite(_) => self.in_transaction(|b| {
                let changed = match b {
                    Backend::Sqlite(db) => db.reapply_allowlist(check),
                    Backend::Postgres(db) => db.reapply_allowlist(check),
                }?;
                if changed > 0 {
                    snapshot::bump_generation(b)?;
                }
                Ok(changed)
            }),
            // PostgreSQL reads through a portal, which needs a transaction
            // of the driver's own.
            Backend::Postgres(db) => db.reapply_allowlist(check),
        }
    }
}

/// An import in progress; see [`Store::import`]. Dropping it without
/// [`Importer::commit`] rolls back whatever is not yet committed.
#[derive(Debug)]
pub struct Importer<'a> {
    store: &'a mut Store,
    all_or_nothing: bool,
    /// A transaction spanning batches is open.
    open: bool,
    /// Mark every domain added as exact-host.
    exact_host: bool,
}

impl Importer<'_> {
    /// Marks every domain of the following batches exact-host (see
    /// [`Store::set_exact_host`]). Off by default; an import without it
    /// never clears a mark.
    pub fn mark_exact_host(&mut self, on: bool) {
        self.exact_host = on;
    }

    /// Merges a batch. `allowlisted[i]` is the warninglist that
    /// `records[i]` hit, as the caller decided. Records naming the same
    /// observable and source — in this batch or earlier — merge into one
    /// source entry.
    pub fn add_batch(
        &mut self,
        records: &[IndicatorRecord],
        allowlisted: &[Option<String>],
    ) -> Result<BatchOutcome, Error> {
        let groups = merge::fold(records, allowlisted)?;
        if groups.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let (start, ok, fail): (&str, &[&str], &[&str]) = if self.all_or_nothing {
            (
                "SAVEPOINT khien_batch",
                &["RELEASE SAVEPOINT khien_batch"],
                &[
                    "ROLLBACK TO SAVEPOINT khien_batch",
                    "RELEASE SAVEPOINT khien_batch",
                ],
            )
        } else {
            ("", &["COMMIT"], &["ROLLBACK"])
        };
        if self.all_or_nothing {
            self.store.exec(start)?;
        } else {
            self.store.begin()?;
        }
        let exact_host = self.exact_host;
        let backend = &mut self.store.backend;
        let result = match backend {
            Backend::Sqlite(db) => db.add_batch(&groups),
            Backend::Postgres(db) => db.add_batch(&groups),
        }
        .and_then(|outcome| {
            let marked = if exact_host {
                snapshot::mark_exact_host(backend, &groups)?
            } else {
                0
            };
            // Whatever a snapshot would hold changed: the hub rebuilds.
            if outcome.new + outcome.updated + marked > 0 {
                snapshot::bump_generation(backend)?;
            }
            Ok(outcome)
        });
        match result {
            Ok(outcome) => {
                for sql in ok {
                    self.store.exec(sql)?;
                }
                Ok(outcome)
            }
            Err(e) => {
                for sql in fail {
                    let _ = self.store.exec(sql);
                }
                Err(e)
            }
        }
    }

    /// Makes everything added durable.
    pub fn commit(mut self) -> Result<(), Error> {
        if self.open {
            self.open = false;
            self.store.exec("COMMIT")?;
        }
        Ok(())
    }
}

impl Drop for Importer<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to report to in drop; the next statement on the
            // connection would surface a broken connection anyway.
            let _ = self.store.exec("ROLLBACK");
        }
    }
}
