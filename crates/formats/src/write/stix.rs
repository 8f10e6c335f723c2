//! STIX 2.1 export: one bundle, written as it goes.
//!
//! The bundle holds an `identity` for the producer, one `indicator` per
//! merged indicator, and at the end the TLP 2.0 `marking-definition`s the
//! indicators used plus the TLP 2.0 `extension-definition` they refer to.
//! Markings go last because only then do we know which were used, and
//! bundle order carries no meaning in STIX.
//!
//! Decisions:
//! - Ids are deterministic: `indicator--uuidv5(namespace, "kind:value")`
//!   and `identity--uuidv5(namespace, "identity:" + producer)`, so a
//!   re-export updates the same objects in a consumer (new `modified`)
//!   instead of piling up duplicates. The bundle id is random (bundles are
//!   transient) unless [`StixOptions::bundle_id`] fixes it.
//! - `created`/`valid_from` are the first sighting, `modified` the last;
//!   `valid_until` is the expiry, omitted unless after `valid_from` (the
//!   spec requires it to be later).
//! - TLP markings are the official TLP 2.0 objects with their fixed ids,
//!   copied verbatim from oasis-open/cti-stix-common-objects
//!   (`data/stix/tlp2/`, BSD-3-Clause).
//! - `indicator_types` maps our threat types onto the STIX open vocabulary
//!   (everything we block is `malicious-activity`; `suspicious` is
//!   `anomalous-activity`); the family goes into `labels`.
//! - Phone numbers have no STIX cyber-observable to write a pattern
//!   against; they are skipped and counted.

use std::borrow::Borrow;
use std::io::Write;

use chrono::TimeZone;
use khien_model::{Indicator, ObservableKind, ThreatType, Timestamp, Tlp};
use serde::Serialize;
use uuid::Uuid;

use super::rfc3339_millis;
use crate::Error;

/// The namespace of Khiên's deterministic (v5) ids unless the operator
/// sets their own.
pub const KHIEN_NAMESPACE: Uuid = Uuid::from_u128(0x6b68_6965_6e00_4a1e_9c3b_2f0d_5a7e_c401);

/// The TLP 2.0 extension definition the markings refer to.
const TLP_EXTENSION: &str = include_str!(
    "../../data/stix/tlp2/extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d.json"
);

/// Official TLP 2.0 marking definitions: (level, id, file).
const TLP_MARKINGS: [(Tlp, &str, &str); 5] = [
    (
        Tlp::Clear,
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        include_str!("../../data/stix/tlp2/tlp-clear.json"),
    ),
    (
        Tlp::Green,
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        include_str!(
            "../../data/stix/tlp2/marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb.json"
        ),
    ),
    (
        Tlp::Amber,
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        include_str!("../../data/stix/tlp2/tlp-amber.json"),
    ),
    (
        Tlp::AmberStrict,
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        include_str!(
            "../../data/stix/tlp2/marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003.json"
        ),
    ),
    (
        Tlp::Red,
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        include_str!(
            "../../data/stix/tlp2/marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1.json"
        ),
    ),
];

/// The official id of the TLP 2.0 marking definition for `tlp`.
pub fn tlp_marking_id(tlp: Tlp) -> &'static str {
    TLP_MARKINGS
        .iter()
        .find(|(t, _, _)| *t == tlp)
        .map_or(TLP_MARKINGS[2].1, |(_, id, _)| id)
}

/// How the bundle is labelled.
#[derive(Debug, Clone)]
pub struct StixOptions {
    /// Name of the producing organisation, in the `identity` object.
    pub producer: String,
    /// Namespace of the deterministic ids; keep it fixed per deployment.
    pub namespace: Uuid,
    /// A fixed bundle id (tests, reproducible exports); random when `None`.
    pub bundle_id: Option<Uuid>,
    /// `created` of the identity object; fixed so that the identity, whose
    /// id never changes, does not change either.
    pub identity_created: Timestamp,
    /// Add an external reference per source that gave a reference (URL or
    /// id). Turn off when source names must not leave the building.
    pub external_references: bool,
}

impl Default for StixOptions {
    fn default() -> Self {
        Self {
            producer: "Khiên".to_string(),
            namespace: KHIEN_NAMESPACE,
            bundle_id: None,
            identity_created: chrono::Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            external_references: true,
        }
    }
}

/// What [`write_stix`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StixSummary {
    pub indicators: u64,
    /// Phone numbers, which STIX patterns cannot express.
    pub skipped: u64,
}

#[derive(Serialize)]
struct Identity<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    spec_version: &'static str,
    id: &'a str,
    created: &'a str,
    modified: &'a str,
    name: &'a str,
    identity_class: &'static str,
}

#[derive(Serialize)]
struct StixIndicator<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    spec_version: &'static str,
    id: String,
    created_by_ref: &'a str,
    created: String,
    modified: String,
    name: &'a str,
    description: String,
    indicator_types: [&'static str; 1],
    pattern: String,
    pattern_type: &'static str,
    pattern_version: &'static str,
    valid_from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<[&'a str; 1]>,
    confidence: u8,
    object_marking_refs: [&'static str; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_references: Vec<ExternalReference<'a>>,
}

#[derive(Serialize)]
struct ExternalReference<'a> {
    source_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
}

/// The deterministic STIX id of the indicator for `kind:value`.
pub fn indicator_id(namespace: &Uuid, kind: ObservableKind, value: &str) -> String {
    let name = format!("{}:{value}", kind.as_str());
    format!("indicator--{}", Uuid::new_v5(namespace, name.as_bytes()))
}

/// Writes a STIX 2.1 bundle of `indicators` to `out`.
pub fn write_stix<W, I>(
    mut out: W,
    indicators: I,
    options: &StixOptions,
) -> Result<StixSummary, Error>
where
    W: Write,
    I: IntoIterator,
    I::Item: Borrow<Indicator>,
{
    let bundle = options.bundle_id.unwrap_or_else(Uuid::new_v4);
    let identity_id = format!(
        "identity--{}",
        Uuid::new_v5(
            &options.namespace,
            format!("identity:{}", options.producer).as_bytes()
        )
    );
    let identity_created = rfc3339_millis(&options.identity_created);
    writeln!(
        out,
        "{{\"type\":\"bundle\",\"id\":\"bundle--{bundle}\",\"objects\":["
    )?;
    serde_json::to_writer(
        &mut out,
        &Identity {
            kind: "identity",
            spec_version: "2.1",
            id: &identity_id,
            created: &identity_created,
            modified: &identity_created,
            name: &options.producer,
            identity_class: "organization",
        },
    )
    .map_err(json_error)?;

    let mut summary = StixSummary::default();
    let mut used = [false; 5];
    for ind in indicators {
        let ind = ind.borrow();
        let Some(pattern) = pattern(ind.observable.kind(), ind.observable.value()) else {
            summary.skipped += 1;
            continue;
        };
        let marking = TLP_MARKINGS
            .iter()
            .position(|(t, _, _)| *t == ind.tlp)
            .unwrap_or(2);
        used[marking] = true;
        let valid_from = rfc3339_millis(&ind.first_seen);
        let external_references = if options.external_references {
            ind.sources
                .iter()
                .filter_map(|s| {
                    let r = s.reference.as_deref()?;
                    let is_url = r.starts_with("https://") || r.starts_with("http://");
                    Some(ExternalReference {
                        source_name: &s.source,
                        url: is_url.then_some(r),
                        external_id: (!is_url).then_some(r),
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let object = StixIndicator {
            kind: "indicator",
            spec_version: "2.1",
            id: indicator_id(
                &options.namespace,
                ind.observable.kind(),
                ind.observable.value(),
            ),
            created_by_ref: &identity_id,
            created: valid_from.clone(),
            modified: rfc3339_millis(&ind.last_seen.max(ind.first_seen)),
            name: ind.observable.value(),
            description: describe(ind),
            indicator_types: [indicator_type(ind.threat_type)],
            pattern,
            pattern_type: "stix",
            pattern_version: "2.1",
            valid_until: ind
                .expires_at
                .filter(|e| *e > ind.first_seen)
                .map(|e| rfc3339_millis(&e)),
            valid_from,
            labels: ind.family.as_ref().map(|f| [f.as_str()]),
            confidence: ind.confidence.get(),
            object_marking_refs: [TLP_MARKINGS[marking].1],
            external_references,
        };
        out.write_all(b",\n")?;
        serde_json::to_writer(&mut out, &object).map_err(json_error)?;
        summary.indicators += 1;
    }

    let mut any_marking = false;
    for (i, (_, _, file)) in TLP_MARKINGS.iter().enumerate() {
        if used[i] {
            out.write_all(b",\n")?;
            write_first_object(&mut out, file)?;
            any_marking = true;
        }
    }
    if any_marking {
        out.write_all(b",\n")?;
        write_first_object(&mut out, TLP_EXTENSION)?;
    }
    out.write_all(b"\n]}\n")?;
    out.flush()?;
    Ok(summary)
}

/// Writes `objects[0]` of an embedded official bundle.
fn write_first_object<W: Write>(out: &mut W, bundle: &str) -> Result<(), Error> {
    let value: serde_json::Value = serde_json::from_str(bundle).map_err(json_error)?;
    let object = value
        .get("objects")
        .and_then(|o| o.get(0))
        .ok_or_else(|| Error::Config("embedded TLP 2.0 definition has no object".into()))?;
    serde_json::to_writer(out, object).map_err(json_error)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Io(e.into())
}

/// A one-line summary; source names stay out of it (they are in the
/// external references, when those are wanted).
fn describe(ind: &Indicator) -> String {
    let family = ind
        .family
        .as_ref()
        .map(|f| format!(" of {f}"))
        .unwrap_or_default();
    let n = ind.sources.len();
    let plural = if n == 1 { "" } else { "s" };
    format!(
        "{} {}{family}, reported by {n} source{plural}",
        ind.threat_type,
        ind.observable.kind()
    )
}

/// The STIX `indicator_types` value for a threat type.
pub fn indicator_type(t: ThreatType) -> &'static str {
    match t {
        ThreatType::C2
        | ThreatType::MalwareDownload
        | ThreatType::Phishing
        | ThreatType::Scam
        | ThreatType::Miner
        | ThreatType::Malicious
        | ThreatType::Malware => "malicious-activity",
        ThreatType::Suspicious => "anomalous-activity",
        _ => "unknown",
    }
}

/// The STIX pattern matching one observable, `None` for kinds STIX cannot
/// express.
pub fn pattern(kind: ObservableKind, value: &str) -> Option<String> {
    let path = match kind {
        ObservableKind::Domain => "domain-name:value",
        ObservableKind::Ipv4 => "ipv4-addr:value",
        ObservableKind::Ipv6 => "ipv6-addr:value",
        ObservableKind::Cidr if value.contains(':') => "ipv6-addr:value",
        ObservableKind::Cidr => "ipv4-addr:value",
        ObservableKind::Url => "url:value",
        ObservableKind::Email => "email-addr:value",
        ObservableKind::Sha256 => "file:hashes.'SHA-256'",
        ObservableKind::Sha1 => "file:hashes.'SHA-1'",
        ObservableKind::Md5 => "file:hashes.MD5",
        ObservableKind::Phone => return None,
    };
    let mut p = String::with_capacity(path.len() + value.len() + 8);
    p.push('[');
    p.push_str(path);
    p.push_str(" = '");
    for c in value.chars() {
        // The only escapes of a STIX pattern string literal.
        if c == '\'' || c == '\\' {
            p.push('\\');
        }
        p.push(c);
    }
    p.push_str("']");
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_literals() {
        assert_eq!(
            pattern(ObservableKind::Url, "http://x.com/a'b\\c").as_deref(),
            Some("[url:value = 'http://x.com/a\\'b\\\\c']")
        );
        assert_eq!(
            pattern(ObservableKind::Cidr, "2001:db8::/32").as_deref(),
            Some("[ipv6-addr:value = '2001:db8::/32']")
        );
        assert_eq!(pattern(ObservableKind::Phone, "+84912345678"), None);
    }

    #[test]
    fn marking_ids_are_official() {
        for (tlp, id, file) in TLP_MARKINGS {
            assert!(file.contains(id), "{tlp}");
            assert!(
                file.contains(&format!("\"tlp_2_0\" : \"{}\"", tlp.as_str())),
                "{tlp}"
            );
        }
    }
}
