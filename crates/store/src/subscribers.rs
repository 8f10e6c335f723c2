//! Subscribers and address attribution.
//!
//! A subscriber is an operator's customer: an external id (the operator's
//! own account number or login), a pseudonym (keyed hash, made by the hub)
//! and contact fields that arrive here already encrypted — the store never
//! sees a name, e-mail address, phone number or postal address in clear.
//! Identities are the other names attribution files use for the same
//! subscriber (RADIUS User-Name, a MAC address, a DHCP circuit id).
//!
//! An assignment says who held an address (or a CGNAT port block on one)
//! during `[start_at, end_at)`. Rows are keyed by (organisation, source,
//! session key), so a RADIUS Start, its Interim-Updates and its Stop land
//! on one row in any order and across uploads, and uploading the same file
//! twice changes nothing. The hub keeps the interval index that answers
//! "who had this address at this time"; the store keeps the rows it is
//! built from and bumps `attribution_generation` with every change so
//! that each hub replica knows when to reload.

use std::collections::HashMap;

use chrono::Utc;
use khien_model::Timestamp;
use serde::Serialize;

use crate::merge::{from_secs, secs};
use crate::sql::{SqlRow, Value, vals};
use crate::tenants::Page;
use crate::{Backend, Error, Store};

const BUMP_ATTRIBUTION: &str =
    "UPDATE store_meta SET value = value + 1 WHERE key = 'attribution_generation'";

/// Ciphertexts of a subscriber's contact fields (the hub's format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptedContacts {
    pub name: Option<Vec<u8>>,
    pub email: Option<Vec<u8>>,
    pub phone: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
}

impl EncryptedContacts {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.email.is_none()
            && self.phone.is_none()
            && self.address.is_none()
    }
}

/// A stored subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberRecord {
    pub id: i64,
    pub org_id: i64,
    pub external_id: String,
    pub pseudonym: String,
    pub language: String,
    pub contacts: EncryptedContacts,
    /// The key the contacts are encrypted under.
    pub key_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A subscriber to create or update, by external id.
#[derive(Debug, Clone)]
pub struct SubscriberUpsert {
    pub external_id: String,
    pub pseudonym: String,
    pub language: String,
    /// Replaces the stored contacts when `Some`.
    pub contacts: Option<(EncryptedContacts, String)>,
    /// Other names of the subscriber in attribution files.
    pub identities: Vec<String>,
}

/// What [`Store::upsert_subscribers`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SubscriberOutcome {
    pub created: u64,
    pub updated: u64,
}

/// How an attribution event changes its assignment row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentChange {
    /// Began (or still in use) at `start_at`; the end stays as stored.
    Open,
    /// Ended at `end_at`.
    Close,
    /// The whole interval is known (a lease); `end_at` replaces the stored
    /// end, `None` meaning it never expires.
    Interval,
}

/// One attribution event to apply.
#[derive(Debug, Clone)]
pub struct AssignmentUpsert {
    pub change: AssignmentChange,
    /// Canonical network (`a.b.c.d/32`, an IPv6 prefix).
    pub network: String,
    pub ports: Option<(u16, u16)>,
    pub subscriber_id: Option<i64>,
    /// CGNAT: the inside address, attributed in turn.
    pub inside: Option<String>,
    pub start_at: Timestamp,
    pub end_at: Option<Timestamp>,
    pub source: String,
    pub session_key: String,
    pub event_at: Timestamp,
    pub calling_station: Option<String>,
}

/// A stored assignment, as the hub's interval index loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentRow {
    pub id: i64,
    pub network: String,
    pub ports: Option<(u16, u16)>,
    pub subscriber_id: Option<i64>,
    pub inside: Option<String>,
    pub start_at: i64,
    pub end_at: Option<i64>,
}

/// What [`Store::apply_assignments`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AssignmentOutcome {
    pub created: u64,
    pub updated: u64,
}

const SUB_COLS: &str = "id, org_id, external_id, pseudonym, language, name_enc, email_enc, \
     phone_enc, address_enc, key_id, created_at, updated_at FROM subscribers";

fn subscriber(r: &SqlRow) -> Result<SubscriberRecord, Error> {
    Ok(SubscriberRecord {
        id: r.int(0)?,
        org_id: r.int(1)?,
        external_id: r.text(2)?,
        pseudonym: r.text(3)?,
        language: r.text(4)?,
        contacts: EncryptedContacts {
            name: r.opt_blob(5)?,
            email: r.opt_blob(6)?,
            phone: r.opt_blob(7)?,
            address: r.opt_blob(8)?,
        },
        key_id: r.opt_text(9)?,
        created_at: from_secs("subscriber created_at", r.int(10)?)?,
        updated_at: from_secs("subscriber updated_at", r.int(11)?)?,
    })
}

fn check_identity(what: &'static str, v: &str) -> Result<(), Error> {
    if v.is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
        return Err(Error::Invalid {
            what,
            reason: format!("{v:?} is empty, longer than 256 bytes or has control characters"),
        });
    }
    Ok(())
}

impl Store {
    /// Creates or updates subscribers by external id, in one transaction;
    /// their external ids and identities then resolve to them.
    pub fn upsert_subscribers(
        &mut self,
        org_id: i64,
        subscribers: &[SubscriberUpsert],
    ) -> Result<SubscriberOutcome, Error> {
        for s in subscribers {
            check_identity("subscriber id", &s.external_id)?;
            for i in &s.identities {
                check_identity("subscriber identity", i)?;
            }
        }
        let now = secs(Utc::now());
        self.in_transaction(|b| {
            let mut out = SubscriberOutcome::default();
            for s in subscribers {
                let existing = b.query_opt(
                    "SELECT id FROM subscribers WHERE org_id = ?1 AND external_id = ?2",
                    vals![org_id, s.external_id.as_str()],
                )?;
                let id = match existing {
                    Some(r) => {
                        let id = r.int(0)?;
                        b.execute(
                            "UPDATE subscribers SET language = ?2, updated_at = ?3 WHERE id = ?1",
                            vals![id, s.language.as_str(), now],
                        )?;
                        out.updated += 1;
                        id
                    }
                    None => {
                        out.created += 1;
                        b.query_one(
                            "INSERT INTO subscribers (org_id, external_id, pseudonym, language,
                                                      created_at, updated_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
                            vals![
                                org_id,
                                s.external_id.as_str(),
                                s.pseudonym.as_str(),
                                s.language.as_str(),
                                now
                            ],
                        )?
                        .int(0)?
                    }
                };
                if let Some((c, key_id)) = &s.contacts {
                    set_contacts(b, id, c, key_id, now)?;
                }
                for identity in std::iter::once(&s.external_id).chain(&s.identities) {
                    claim_identity(b, org_id, identity, id)?;
                }
            }
            Ok(out)
        })
    }

    /// The subscribers of `identities` (external ids or other identities);
    /// those nobody has are created (without contacts) with
    /// `pseudonym(identity)`. Attribution files name subscribers the
    /// directory may not know yet: the case opens anyway and the operator
    /// fills in contacts later.
    pub fn ensure_subscribers(
        &mut self,
        org_id: i64,
        identities: &[&str],
        pseudonym: &dyn Fn(&str) -> String,
    ) -> Result<HashMap<String, i64>, Error> {
        for i in identities {
            check_identity("subscriber identity", i)?;
        }
        let now = secs(Utc::now());
        self.in_transaction(|b| {
            let mut out = HashMap::with_capacity(identities.len());
            for &identity in identities {
                if out.contains_key(identity) {
                    continue;
                }
                let found = b.query_opt(
                    "SELECT subscriber_id FROM subscriber_identities
                     WHERE org_id = ?1 AND identity = ?2",
                    vals![org_id, identity],
                )?;
                let id = match found {
                    Some(r) => r.int(0)?,
                    None => {
                        let id = b
                            .query_one(
                                "INSERT INTO subscribers (org_id, external_id, pseudonym,
                                                          created_at, updated_at)
                                 VALUES (?1, ?2, ?3, ?4, ?4) RETURNING id",
                                vals![org_id, identity, pseudonym(identity), now],
                            )?
                            .int(0)?;
                        claim_identity(b, org_id, identity, id)?;
                        id
                    }
                };
                out.insert(identity.to_string(), id);
            }
            Ok(out)
        })
    }

    /// One subscriber of `org_id` by id.
    pub fn subscriber(&mut self, org_id: i64, id: i64) -> Result<Option<SubscriberRecord>, Error> {
        self.backend
            .query_opt(
                &format!("SELECT {SUB_COLS} WHERE org_id = ?1 AND id = ?2"),
                vals![org_id, id],
            )?
            .map(|r| subscriber(&r))
            .transpose()
    }

    /// One subscriber of `org_id` by pseudonym.
    pub fn subscriber_by_pseudonym(
        &mut self,
        org_id: i64,
        pseudonym: &str,
    ) -> Result<Option<SubscriberRecord>, Error> {
        self.backend
            .query_opt(
                &format!("SELECT {SUB_COLS} WHERE org_id = ?1 AND pseudonym = ?2"),
                vals![org_id, pseudonym],
            )?
            .map(|r| subscriber(&r))
            .transpose()
    }

    /// Subscribers of `org_id` by id.
    pub fn subscribers(&mut self, org_id: i64, page: Page) -> Result<Vec<SubscriberRecord>, Error> {
        self.backend
            .query(
                &format!("SELECT {SUB_COLS} WHERE org_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"),
                vals![org_id, page.after(), page.limit()],
            )?
            .iter()
            .map(subscriber)
            .collect()
    }

    /// The identities of a subscriber.
    pub fn subscriber_identities(
        &mut self,
        org_id: i64,
        subscriber_id: i64,
    ) -> Result<Vec<String>, Error> {
        self.backend
            .query(
                "SELECT identity FROM subscriber_identities
                 WHERE org_id = ?1 AND subscriber_id = ?2 ORDER BY identity",
                vals![org_id, subscriber_id],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    /// Subscribers (of any organisation) whose contacts are encrypted
    /// under another key than `key_id`, for key rotation; at most `limit`.
    pub fn subscribers_not_under_key(
        &mut self,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<SubscriberRecord>, Error> {
        self.backend
            .query(
                &format!(
                    "SELECT {SUB_COLS} WHERE key_id IS NOT NULL AND key_id <> ?1
                     ORDER BY id LIMIT ?2"
                ),
                vals![key_id, i64::from(limit)],
            )?
            .iter()
            .map(subscriber)
            .collect()
    }

    /// Replaces a subscriber's contacts (key rotation, or an edit).
    pub fn set_subscriber_contacts(
        &mut self,
        id: i64,
        contacts: &EncryptedContacts,
        key_id: &str,
    ) -> Result<(), Error> {
        let now = secs(Utc::now());
        set_contacts(&mut self.backend, id, contacts, key_id, now)
    }

    /// Applies attribution events in one transaction (see the module docs
    /// for how they combine).
    pub fn apply_assignments(
        &mut self,
        org_id: i64,
        changes: &[AssignmentUpsert],
    ) -> Result<AssignmentOutcome, Error> {
        if changes.is_empty() {
            return Ok(AssignmentOutcome::default());
        }
        self.in_transaction(|b| {
            let mut out = AssignmentOutcome::default();
            for c in changes {
                let (first, last) = c.ports.map_or((None, None), |(a, z)| (Some(a), Some(z)));
                let (end_mode, end) = match c.change {
                    AssignmentChange::Open => (0, None),
                    AssignmentChange::Close => (1, c.end_at.map(secs)),
                    AssignmentChange::Interval => (2, c.end_at.map(secs)),
                };
                let existed = b
                    .query_opt(
                        "SELECT id FROM address_assignments
                         WHERE org_id = ?1 AND source = ?2 AND session_key = ?3",
                        vals![org_id, c.source.as_str(), c.session_key.as_str()],
                    )?
                    .is_some();
                b.execute(
                    "INSERT INTO address_assignments
                         (org_id, network, port_first, port_last, subscriber_id, inside,
                          start_at, end_at, source, session_key, last_event_at, calling_station)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (org_id, source, session_key) DO UPDATE SET
                         start_at = CASE WHEN excluded.start_at < address_assignments.start_at
                                         THEN excluded.start_at ELSE address_assignments.start_at END,
                         end_at = CASE CAST(?13 AS BIGINT) WHEN 0 THEN address_assignments.end_at
                                           WHEN 1 THEN CASE WHEN address_assignments.end_at IS NULL
                                                              OR excluded.end_at > address_assignments.end_at
                                                            THEN excluded.end_at
                                                            ELSE address_assignments.end_at END
                                           ELSE excluded.end_at END,
                         subscriber_id = COALESCE(excluded.subscriber_id, address_assignments.subscriber_id),
                         inside = COALESCE(excluded.inside, address_assignments.inside),
                         calling_station = COALESCE(excluded.calling_station,
                                                    address_assignments.calling_station),
                         last_event_at = CASE WHEN excluded.last_event_at > address_assignments.last_event_at
                                              THEN excluded.last_event_at
                                              ELSE address_assignments.last_event_at END",
                    &[
                        Value::Int(org_id),
                        Value::from(c.network.as_str()),
                        first.into(),
                        last.into(),
                        c.subscriber_id.into(),
                        c.inside.clone().into(),
                        Value::Int(secs(c.start_at)),
                        end.into(),
                        Value::from(c.source.as_str()),
                        Value::from(c.session_key.as_str()),
                        Value::Int(secs(c.event_at)),
                        c.calling_station.clone().into(),
                        Value::Int(end_mode),
                    ],
                )?;
                if existed {
                    out.updated += 1;
                } else {
                    out.created += 1;
                }
            }
            b.execute(BUMP_ATTRIBUTION, &[])?;
            Ok(out)
        })
    }

    /// Assignments of `org_id` with ids after `after`, at most `limit`, by
    /// id: the hub's index loads them page by page.
    pub fn assignments(
        &mut self,
        org_id: i64,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AssignmentRow>, Error> {
        self.backend
            .query(
                "SELECT id, network, port_first, port_last, subscriber_id, inside, start_at, end_at
                 FROM address_assignments WHERE org_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                vals![org_id, after, i64::from(limit)],
            )?
            .iter()
            .map(|r| {
                let port = |i| -> Result<Option<u16>, Error> {
                    r.opt_int(i)?
                        .map(|p| u16::try_from(p).map_err(|e| Error::corrupt("assignment port", e)))
                        .transpose()
                };
                Ok(AssignmentRow {
                    id: r.int(0)?,
                    network: r.text(1)?,
                    ports: port(2)?.zip(port(3)?),
                    subscriber_id: r.opt_int(4)?,
                    inside: r.opt_text(5)?,
                    start_at: r.int(6)?,
                    end_at: r.opt_int(7)?,
                })
            })
            .collect()
    }

    /// Organisations that have assignments.
    pub fn orgs_with_assignments(&mut self) -> Result<Vec<i64>, Error> {
        self.backend
            .query(
                "SELECT DISTINCT org_id FROM address_assignments ORDER BY org_id",
                &[],
            )?
            .iter()
            .map(|r| r.int(0))
            .collect()
    }

    /// Changes whenever any assignment changes (compare for equality).
    pub fn attribution_generation(&mut self) -> Result<i64, Error> {
        self.backend
            .query_one(
                "SELECT value FROM store_meta WHERE key = 'attribution_generation'",
                &[],
            )?
            .int(0)
    }
}

fn set_contacts(
    b: &mut Backend,
    id: i64,
    c: &EncryptedContacts,
    key_id: &str,
    now: i64,
) -> Result<(), Error> {
    b.execute(
        "UPDATE subscribers SET name_enc = ?2, email_enc = ?3, phone_enc = ?4, address_enc = ?5,
                                key_id = ?6, updated_at = ?7
         WHERE id = ?1",
        vals![
            id,
            c.name.clone(),
            c.email.clone(),
            c.phone.clone(),
            c.address.clone(),
            (!c.is_empty()).then_some(key_id),
            now
        ],
    )?;
    Ok(())
}

/// Points `identity` at subscriber `id` (an identity names one subscriber;
/// the latest claim wins, as when a line moves to a new customer).
fn claim_identity(b: &mut Backend, org_id: i64, identity: &str, id: i64) -> Result<(), Error> {
    b.execute(
        "INSERT INTO subscriber_identities (org_id, identity, subscriber_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (org_id, identity) DO UPDATE SET subscriber_id = excluded.subscriber_id",
        vals![org_id, identity, id],
    )?;
    Ok(())
}
