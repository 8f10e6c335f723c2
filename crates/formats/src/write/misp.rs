//! MISP feed export: a directory that MISP (and anything reading MISP
//! feeds) can subscribe to, laid out like CIRCL's and TweetFeed's feeds.
//!
//! ```text
//! <dir>/<event-uuid>.json   {"Event": {..., "Attribute": [...]}}
//! <dir>/manifest.json       {"<event-uuid>": {info, date, timestamp, Orgc, Tag, ...}}
//! <dir>/hashes.csv          md5(attribute value),event-uuid
//! ```
//!
//! Decisions:
//! - **One event per malware family**, plus one for indicators without a
//!   family. A family is what an analyst subscribes to and correlates, and
//!   it keeps events bounded and stable across exports, where one event per
//!   export would grow without end and one per day would scatter a family.
//!   Events must be whole before they are written, so this is the one
//!   writer that collects its input (compact rows, not whole indicators).
//! - Uuids are v5 (deterministic): the event from the producer and the
//!   family, the attribute from the event and `kind:value`. A re-export
//!   therefore *updates* events in a subscriber (newer `timestamp`) rather
//!   than duplicating them. The event `timestamp` is the newest
//!   `last_seen`, its `date` the oldest `first_seen`, so unchanged data
//!   gives byte-identical files.
//! - TLP: each attribute is tagged with its own TLP; the event carries the
//!   most restrictive of them (an event may not travel further than its
//!   most restricted part) and is distributed to all communities (`3`) only
//!   when that is CLEAR or GREEN, otherwise to the organisation only (`0`).
//! - Types: domain → `domain`, IPv4/IPv6/CIDR → `ip-dst` (MISP accepts
//!   networks there), URL → `url`, hashes → `md5`/`sha1`/`sha256`, e-mail →
//!   `email-src`, phone → `phone-number` (category `Financial fraud`: the
//!   phone numbers we hold are scam lines). All are `to_ids`.
//! - Files are written under a temporary name and renamed, and the manifest
//!   last, so a subscriber fetching mid-export sees the old or the new
//!   event, never half of one. Event files of families that disappeared
//!   are left in place but drop out of the manifest, which is what
//!   subscribers read.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use khien_model::{Indicator, ObservableKind, ThreatType, Timestamp, Tlp};
use md5::{Digest, Md5};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::stix::KHIEN_NAMESPACE;
use crate::Error;

/// Who the feed comes from and how its events are named.
#[derive(Debug, Clone)]
pub struct MispFeedOptions {
    /// The creator organisation (`Orgc.name`).
    pub org_name: String,
    /// `Orgc.uuid`; derived from the name in the namespace when `None`.
    pub org_uuid: Option<Uuid>,
    /// Namespace of the deterministic uuids; keep it fixed per deployment.
    pub namespace: Uuid,
    /// Event titles are `"<prefix>: <family>"`.
    pub info_prefix: String,
}

impl Default for MispFeedOptions {
    fn default() -> Self {
        Self {
            org_name: "Khiên".to_string(),
            org_uuid: None,
            namespace: KHIEN_NAMESPACE,
            info_prefix: "Khiên".to_string(),
        }
    }
}

/// What [`write_misp_feed`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MispFeedSummary {
    /// Uuids of the events written, in manifest order.
    pub events: Vec<Uuid>,
    pub attributes: u64,
}

struct Row {
    kind: ObservableKind,
    value: String,
    tlp: Tlp,
    threat_type: ThreatType,
    first_seen: Timestamp,
    last_seen: Timestamp,
    sources: String,
}

struct EventRows {
    rows: Vec<Row>,
    first_seen: Timestamp,
    last_seen: Timestamp,
    tlp: Tlp,
}

#[derive(Serialize)]
struct Tag<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    colour: Option<&'static str>,
}

#[derive(Serialize)]
struct Attribute<'a> {
    uuid: String,
    #[serde(rename = "type")]
    kind: &'static str,
    category: &'static str,
    to_ids: bool,
    value: &'a str,
    comment: String,
    timestamp: String,
    first_seen: String,
    last_seen: String,
    distribution: &'static str,
    #[serde(rename = "Tag")]
    tags: [Tag<'a>; 2],
}

/// Writes a MISP feed of `indicators` into `dir` (created if missing).
pub fn write_misp_feed<I>(
    dir: &Path,
    indicators: I,
    options: &MispFeedOptions,
) -> Result<MispFeedSummary, Error>
where
    I: IntoIterator,
    I::Item: Borrow<Indicator>,
{
    let mut events: BTreeMap<String, EventRows> = BTreeMap::new();
    for ind in indicators {
        let ind = ind.borrow();
        let family = ind.family.as_ref().map_or("", |f| f.as_str());
        let row = Row {
            kind: ind.observable.kind(),
            value: ind.observable.value().to_string(),
            tlp: ind.tlp,
            threat_type: ind.threat_type,
            first_seen: ind.first_seen,
            last_seen: ind.last_seen,
            sources: ind
                .sources
                .iter()
                .map(|s| s.source.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        };
        match events.get_mut(family) {
            Some(ev) => {
                ev.first_seen = ev.first_seen.min(row.first_seen);
                ev.last_seen = ev.last_seen.max(row.last_seen);
                ev.tlp = ev.tlp.max(row.tlp);
                ev.rows.push(row);
            }
            None => {
                events.insert(
                    family.to_string(),
                    EventRows {
                        first_seen: row.first_seen,
                        last_seen: row.last_seen,
                        tlp: row.tlp,
                        rows: vec![row],
                    },
                );
            }
        }
    }

    std::fs::create_dir_all(dir)?;
    let org_uuid = options.org_uuid.unwrap_or_else(|| {
        Uuid::new_v5(
            &options.namespace,
            format!("misp-org:{}", options.org_name).as_bytes(),
        )
    });
    let orgc = json!({"name": options.org_name, "uuid": org_uuid.to_string()});
    let mut manifest = serde_json::Map::new();
    let mut hashes = String::new();
    let mut summary = MispFeedSummary::default();

    for (family, mut ev) in events {
        ev.rows
            .sort_by(|a, b| (a.kind, &a.value).cmp(&(b.kind, &b.value)));
        let event_uuid = Uuid::new_v5(
            &options.namespace,
            format!("misp-event:{}:{family}", options.org_name).as_bytes(),
        );
        let info = if family.is_empty() {
            format!("{}: indicators without a family", options.info_prefix)
        } else {
            format!("{}: {family}", options.info_prefix)
        };
        let tlp_tag = format!("tlp:{}", ev.tlp.as_str());
        let family_tag = format!("khien:family=\"{family}\"");
        let mut tags = vec![Tag {
            name: &tlp_tag,
            colour: Some(tlp_colour(ev.tlp)),
        }];
        if !family.is_empty() {
            tags.push(Tag {
                name: &family_tag,
                colour: Some("#0b5394"),
            });
        }
        let header = json!({
            "info": info,
            "date": ev.first_seen.format("%Y-%m-%d").to_string(),
            "timestamp": ev.last_seen.timestamp().to_string(),
            "threat_level_id": "4",
            "analysis": "2",
            "distribution": if ev.tlp <= Tlp::Green { "3" } else { "0" },
            "published": true,
            "Orgc": orgc,
            "Tag": tags,
        });

        let path = dir.join(format!("{event_uuid}.json"));
        let tmp = dir.join(format!(".{event_uuid}.json.tmp"));
        let mut out = BufWriter::new(File::create(&tmp)?);
        // The header fields, then the attributes streamed one by one.
        out.write_all(b"{\"Event\":{\"uuid\":")?;
        serde_json::to_writer(&mut out, &event_uuid.to_string()).map_err(json_error)?;
        if let serde_json::Value::Object(fields) = &header {
            for (k, v) in fields {
                out.write_all(b",")?;
                serde_json::to_writer(&mut out, k).map_err(json_error)?;
                out.write_all(b":")?;
                serde_json::to_writer(&mut out, v).map_err(json_error)?;
            }
        }
        out.write_all(b",\"Attribute\":[")?;
        for (i, row) in ev.rows.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(b"\n")?;
            let (kind, category) = misp_type(row.kind);
            let tlp_tag = format!("tlp:{}", row.tlp.as_str());
            let threat_tag = format!("khien:threat-type=\"{}\"", row.threat_type.as_str());
            let attribute = Attribute {
                uuid: Uuid::new_v5(
                    &options.namespace,
                    format!("misp-attribute:{event_uuid}:{}:{}", row.kind, row.value).as_bytes(),
                )
                .to_string(),
                kind,
                category,
                to_ids: true,
                value: &row.value,
                comment: format!("sources: {}", row.sources),
                timestamp: row.last_seen.timestamp().to_string(),
                first_seen: misp_time(&row.first_seen),
                last_seen: misp_time(&row.last_seen),
                distribution: "5",
                tags: [
                    Tag {
                        name: &tlp_tag,
                        colour: Some(tlp_colour(row.tlp)),
                    },
                    Tag {
                        name: &threat_tag,
                        colour: None,
                    },
                ],
            };
            serde_json::to_writer(&mut out, &attribute).map_err(json_error)?;
            hashes.push_str(&hex_md5(&row.value));
            hashes.push(',');
            hashes.push_str(&event_uuid.to_string());
            hashes.push('\n');
            summary.attributes += 1;
        }
        out.write_all(b"\n]}}\n")?;
        finish(out, &tmp, &path)?;

        if let serde_json::Value::Object(mut fields) = header {
            fields.remove("published");
            fields.remove("distribution");
            manifest.insert(event_uuid.to_string(), serde_json::Value::Object(fields));
        }
        summary.events.push(event_uuid);
    }

    let tmp = dir.join(".hashes.csv.tmp");
    let mut out = BufWriter::new(File::create(&tmp)?);
    out.write_all(hashes.as_bytes())?;
    finish(out, &tmp, &dir.join("hashes.csv"))?;

    let tmp = dir.join(".manifest.json.tmp");
    let mut out = BufWriter::new(File::create(&tmp)?);
    serde_json::to_writer(&mut out, &manifest).map_err(json_error)?;
    out.write_all(b"\n")?;
    finish(out, &tmp, &dir.join("manifest.json"))?;
    Ok(summary)
}

fn finish(out: BufWriter<File>, tmp: &Path, path: &Path) -> Result<(), Error> {
    let file = out.into_inner().map_err(|e| Error::Io(e.into_error()))?;
    file.sync_all()?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

/// MISP attribute type and category for a kind.
pub fn misp_type(kind: ObservableKind) -> (&'static str, &'static str) {
    match kind {
        ObservableKind::Domain => ("domain", "Network activity"),
        ObservableKind::Ipv4 | ObservableKind::Ipv6 | ObservableKind::Cidr => {
            ("ip-dst", "Network activity")
        }
        ObservableKind::Url => ("url", "Network activity"),
        ObservableKind::Md5 => ("md5", "Payload delivery"),
        ObservableKind::Sha1 => ("sha1", "Payload delivery"),
        ObservableKind::Sha256 => ("sha256", "Payload delivery"),
        ObservableKind::Email => ("email-src", "Payload delivery"),
        ObservableKind::Phone => ("phone-number", "Financial fraud"),
    }
}

fn tlp_colour(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "#ffffff",
        Tlp::Green => "#33ff00",
        Tlp::Amber | Tlp::AmberStrict => "#ffc000",
        Tlp::Red => "#ff2b2b",
    }
}

/// MISP's own rendering of attribute first/last seen.
fn misp_time(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

fn hex_md5(value: &str) -> String {
    let digest = Md5::digest(value.as_bytes());
    let mut s = String::with_capacity(32);
    for b in digest.iter() {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    s
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Io(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_values_matches_misp() {
        assert_eq!(hex_md5(""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
