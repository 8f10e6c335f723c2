//! Free-text labels and tags (STIX `labels`, MISP tags) read as threat
//! types, TLP or malware families.
//!
//! Feeds put everything in one list: `phishing`, `C2`, `Remcos`,
//! `ransomware`, `tlp:clear`. A label that names one of our threat types is
//! a threat type; a generic category (`ransomware`, `stealer`, `APT`) says
//! what kind of malware without naming it and is dropped; anything else that
//! looks like a name is taken as the family.

use std::str::FromStr;

use khien_model::{Family, ThreatType, Tlp};

/// What one label says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Label {
    Threat(ThreatType),
    Tlp(Tlp),
    Family(Family),
    Nothing,
}

/// Categories that describe malware without naming a family; as families
/// they would merge unrelated indicators.
const GENERIC: &[&str] = &[
    "android",
    "apt",
    "backdoor",
    "banker",
    "bot",
    "botnet",
    "clickfix",
    "cryptoscam",
    "dropper",
    "exploit",
    "infostealer",
    "loader",
    "malvertising",
    "malware-family",
    "opendir",
    "osint",
    "rat",
    "ransomware",
    "spam",
    "stealer",
    "trojan",
    "worm",
];

pub(crate) fn classify(label: &str) -> Label {
    let l = label.trim();
    if l.is_empty() || l.len() > 64 {
        return Label::Nothing;
    }
    if l.to_ascii_lowercase().starts_with("tlp:") {
        return Tlp::from_str(l).map_or(Label::Nothing, Label::Tlp);
    }
    match ThreatType::from_str(l) {
        Ok(ThreatType::Unknown) => return Label::Nothing,
        Ok(t) => return Label::Threat(t),
        Err(_) => {}
    }
    let lower = l.to_ascii_lowercase();
    if lower == "cryptoscam" {
        return Label::Threat(ThreatType::Scam);
    }
    if GENERIC.contains(&lower.as_str()) {
        return Label::Nothing;
    }
    // Machine tags (`type:OSINT`, `misp-galaxy:…`) and sentences are not
    // family names; galaxy tags are read by the MISP reader itself.
    if l.contains([':', '=', '"', '/']) || l.split_whitespace().count() > 3 {
        return Label::Nothing;
    }
    Family::new(l).map_or(Label::Nothing, Label::Family)
}

/// The family named by a MISP galaxy tag, `misp-galaxy:<galaxy>="<name>"`:
/// malware galaxies first (rank 0), then actor galaxies (rank 1), so an
/// event tagged with both gets the malware.
pub(crate) fn galaxy_family(tag: &str) -> Option<(u8, Family)> {
    let rest = tag.trim().strip_prefix("misp-galaxy:")?;
    let (galaxy, name) = rest.split_once('=')?;
    let name = name.trim().trim_matches('"').trim();
    let rank = match galaxy.trim() {
        "malpedia" | "mitre-malware" | "malware" | "android" | "banker" | "botnet" | "rat"
        | "stealer" | "ransomware" | "backdoor" | "mitre-tool" | "tool" => 0,
        "threat-actor" | "mitre-intrusion-set" | "microsoft-activity-group" => 1,
        _ => return None,
    };
    // Malpedia and MITRE names carry suffixes after " - " (`Emotet - S0367`).
    let name = name.split(" - ").next().unwrap_or(name).trim();
    Family::new(name).ok().map(|f| (rank, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_feed_labels() {
        assert_eq!(classify("phishing"), Label::Threat(ThreatType::Phishing));
        assert_eq!(classify("C2"), Label::Threat(ThreatType::C2));
        assert_eq!(classify("ransomware"), Label::Nothing);
        assert_eq!(classify("tlp:amber"), Label::Tlp(Tlp::Amber));
        assert_eq!(classify("type:OSINT"), Label::Nothing);
        assert!(matches!(classify("RemcosRAT"), Label::Family(f) if f.as_str() == "remcosrat"));
    }

    #[test]
    fn galaxy_tags_name_families() {
        let (rank, f) = galaxy_family("misp-galaxy:malpedia=\"Emotet\"").expect("family");
        assert_eq!((rank, f.as_str()), (0, "emotet"));
        let (rank, f) = galaxy_family("misp-galaxy:threat-actor=\"APT32\"").expect("actor");
        assert_eq!((rank, f.as_str()), (1, "apt32"));
        assert!(galaxy_family("misp-galaxy:mitre-attack-pattern=\"Phishing\"").is_none());
    }
}
