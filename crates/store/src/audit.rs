//! The audit log: every admin action and every read of personal data,
//! append-only.
//!
//! Rows are only ever inserted; triggers on both back ends refuse
//! `UPDATE` and `DELETE` (and `TRUNCATE` on PostgreSQL), so not even a bug
//! in the hub can rewrite history. An entry names the organisation whose
//! data or settings were touched, so that each tenant's admins see what
//! happened to their tenant.

use chrono::Utc;
use khien_model::Timestamp;
use serde::Serialize;

use crate::merge::{from_secs, secs};
use crate::sql::{SqlRow, Value, vals};
use crate::tenants::Page;
use crate::{Error, Store};

/// An entry to append.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// The organisation whose data or settings were touched.
    pub org_id: Option<i64>,
    /// `user:ID`, `key:ID`, `cli` or `system`.
    pub actor: String,
    pub actor_org_id: Option<i64>,
    /// What was done, `noun.verb`: `user.create`, `subscriber.read`, …
    pub action: String,
    /// What it was done to: `user:12`, `subscriber:sub_…`.
    pub target: Option<String>,
    /// More, as JSON.
    pub detail: Option<serde_json::Value>,
    /// The client's address.
    pub client: Option<String>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: Timestamp,
    pub org_id: Option<i64>,
    pub actor: String,
    pub actor_org_id: Option<i64>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<serde_json::Value>,
    pub client: Option<String>,
}

/// Which entries [`Store::audit_events`] returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this organisation's (`None`: all, for the national CERT).
    pub org_id: Option<i64>,
    /// Only actions starting with this (`subscriber.` for all of them).
    pub action_prefix: Option<String>,
    pub actor: Option<String>,
    pub since: Option<Timestamp>,
}

fn event(r: &SqlRow) -> Result<AuditEvent, Error> {
    Ok(AuditEvent {
        id: r.int(0)?,
        at: from_secs("audit at", r.int(1)?)?,
        org_id: r.opt_int(2)?,
        actor: r.text(3)?,
        actor_org_id: r.opt_int(4)?,
        action: r.text(5)?,
        target: r.opt_text(6)?,
        detail: r
            .opt_text(7)?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| Error::corrupt("audit detail", e))?,
        client: r.opt_text(8)?,
    })
}

impl Store {
    /// Appends an entry and returns its id.
    pub fn audit(&mut self, entry: &AuditEntry) -> Result<i64, Error> {
        append(&mut self.backend, entry)
    }

    /// Entries matching `filter`, newest first, before `page.after` when
    /// given (ids descend).
    pub fn audit_events(
        &mut self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<Vec<AuditEvent>, Error> {
        let opt_int = |v: Option<i64>| v.map_or(Value::Null, Value::Int);
        let opt_text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
        let prefix = filter.action_prefix.as_ref().map(|p| {
            let escaped = p
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("{escaped}%")
        });
        self.backend
            .query(
                "SELECT id, at, org_id, actor, actor_org_id, action, target, detail, client
                 FROM audit_events
                 WHERE (CAST(?1 AS BIGINT) IS NULL OR id < ?1)
                   AND (CAST(?2 AS BIGINT) IS NULL OR org_id = ?2)
                   AND (CAST(?3 AS TEXT) IS NULL OR action LIKE ?3 ESCAPE '\\')
                   AND (CAST(?4 AS TEXT) IS NULL OR actor = ?4)
                   AND (CAST(?5 AS BIGINT) IS NULL OR at >= ?5)
                 ORDER BY id DESC LIMIT ?6",
                &[
                    opt_int(page.after),
                    opt_int(filter.org_id),
                    opt_text(&prefix),
                    opt_text(&filter.actor),
                    opt_int(filter.since.map(secs)),
                    Value::Int(page.limit()),
                ],
            )?
            .iter()
            .map(event)
            .collect()
    }
}

pub(crate) fn append(backend: &mut crate::Backend, entry: &AuditEntry) -> Result<i64, Error> {
    let r = backend.query_one(
        "INSERT INTO audit_events (at, org_id, actor, actor_org_id, action, target, detail, client)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        vals![
            secs(Utc::now()),
            entry.org_id,
            entry.actor.as_str(),
            entry.actor_org_id,
            entry.action.as_str(),
            entry.target.clone(),
            entry.detail.as_ref().map(|d| d.to_string()),
            entry.client.clone()
        ],
    )?;
    r.int(0)
}
