use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A value outside a closed vocabulary (TLP level, threat type, confidence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VocabularyError {
    #[error("unknown TLP level {0:?} (expected clear, green, amber, amber+strict or red)")]
    Tlp(String),
    #[error("unknown threat type {0:?}")]
    ThreatType(String),
    #[error("confidence {0:?} is not a whole number from 0 to 100")]
    Confidence(String),
    #[error("family name {0:?} is empty or longer than 64 characters")]
    Family(String),
}

/// Traffic Light Protocol 2.0, ordered from least to most restrictive.
/// TLP 1.0's `white` is read as `clear`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum Tlp {
    Clear,
    Green,
    #[default]
    Amber,
    #[serde(rename = "amber+strict")]
    AmberStrict,
    Red,
}

impl Tlp {
    pub const ALL: [Tlp; 5] = [
        Self::Clear,
        Self::Green,
        Self::Amber,
        Self::AmberStrict,
        Self::Red,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clear => "clear",
            Self::Green => "green",
            Self::Amber => "amber",
            Self::AmberStrict => "amber+strict",
            Self::Red => "red",
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tlp {
    type Err = VocabularyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("tlp:").unwrap_or(&lower);
        Ok(match bare.trim() {
            "clear" | "white" => Self::Clear,
            "green" => Self::Green,
            "amber" => Self::Amber,
            "amber+strict" | "amber-strict" | "amber_strict" => Self::AmberStrict,
            "red" => Self::Red,
            _ => return Err(VocabularyError::Tlp(s.to_string())),
        })
    }
}

/// What an indicator is evidence of.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ThreatType {
    /// Command-and-control server of malware.
    C2,
    /// Where malware is downloaded from.
    MalwareDownload,
    Phishing,
    /// Fraud that is not credential phishing: fake shops, investment scams.
    Scam,
    /// Crypto-mining pools and scripts.
    Miner,
    /// Rogue DNS resolvers and other malicious infrastructure.
    Malicious,
    /// Listed for being suspicious, not proven malicious (dynamic DNS, …).
    Suspicious,
    /// A file hash of malware.
    Malware,
    #[default]
    Unknown,
}

impl ThreatType {
    pub const ALL: [ThreatType; 9] = [
        Self::C2,
        Self::MalwareDownload,
        Self::Phishing,
        Self::Scam,
        Self::Miner,
        Self::Malicious,
        Self::Suspicious,
        Self::Malware,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::C2 => "c2",
            Self::MalwareDownload => "malware-download",
            Self::Phishing => "phishing",
            Self::Scam => "scam",
            Self::Miner => "miner",
            Self::Malicious => "malicious",
            Self::Suspicious => "suspicious",
            Self::Malware => "malware",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ThreatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ThreatType {
    type Err = VocabularyError;
    /// Accepts our names and the usual synonyms of feeds (ThreatFox's
    /// `botnet_cc`, URLhaus's `malware_download`, STIX indicator types).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match lower.as_str() {
            "c2" | "c&c" | "cc" | "botnet-cc" | "command-and-control" | "c2-server" => Self::C2,
            "malware-download" | "payload-delivery" | "download" | "distribution" => {
                Self::MalwareDownload
            }
            "phishing" | "credential-phishing" => Self::Phishing,
            "scam" | "fraud" | "impersonation" => Self::Scam,
            "miner" | "mining" | "crypto-mining" | "cryptomining" => Self::Miner,
            "malicious" | "malicious-activity" | "attribution" => Self::Malicious,
            "suspicious" | "anomalous-activity" | "anonymization" => Self::Suspicious,
            "malware" | "payload" | "compromised" => Self::Malware,
            "unknown" | "" | "benign" => Self::Unknown,
            _ => return Err(VocabularyError::ThreatType(s.to_string())),
        })
    }
}

/// A malware family name, normalised to lower case with `_` and spaces as
/// `-` so that `AgentTesla`, `agent_tesla` and `Agent Tesla` differ only
/// where the feed really differs (`agenttesla` vs `agent-tesla`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Family(String);

impl Family {
    pub fn new(name: &str) -> Result<Self, VocabularyError> {
        let norm: String = name
            .trim()
            .chars()
            .map(|c| match c {
                '_' | ' ' => '-',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        if norm.is_empty() || norm.chars().count() > 64 || norm.chars().any(char::is_control) {
            return Err(VocabularyError::Family(name.to_string()));
        }
        Ok(Self(norm))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Family {
    type Error = VocabularyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<Family> for String {
    fn from(f: Family) -> Self {
        f.0
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How sure a source is, 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Confidence(u8);

impl Confidence {
    pub const MAX: Confidence = Confidence(100);
    /// What a source gets when it says nothing.
    pub const DEFAULT: Confidence = Confidence(50);

    pub fn new(v: u8) -> Result<Self, VocabularyError> {
        if v <= 100 {
            Ok(Self(v))
        } else {
            Err(VocabularyError::Confidence(v.to_string()))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// Combines independent sources: the chance that all of them are wrong
    /// is the product of each being wrong (noisy-OR). Two sources at 50
    /// give 75; one source at 100 gives 100; adding a source never lowers it.
    pub fn combine(values: impl IntoIterator<Item = Confidence>) -> Confidence {
        let mut all_wrong = 1.0f64;
        let mut any = false;
        for c in values {
            any = true;
            all_wrong *= 1.0 - f64::from(c.0) / 100.0;
        }
        if !any {
            return Confidence(0);
        }
        Confidence(((1.0 - all_wrong) * 100.0).round().clamp(0.0, 100.0) as u8)
    }
}

impl Default for Confidence {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u8> for Confidence {
    type Error = VocabularyError;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<Confidence> for u8 {
    fn from(c: Confidence) -> Self {
        c.0
    }
}

impl FromStr for Confidence {
    type Err = VocabularyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<u8>()
            .ok()
            .and_then(|v| Self::new(v).ok())
            .ok_or_else(|| VocabularyError::Confidence(s.to_string()))
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlp_order_and_synonyms() {
        assert!(
            Tlp::Clear < Tlp::Green && Tlp::Amber < Tlp::AmberStrict && Tlp::AmberStrict < Tlp::Red
        );
        assert_eq!("TLP:WHITE".parse::<Tlp>().unwrap(), Tlp::Clear);
        assert_eq!("tlp:amber+strict".parse::<Tlp>().unwrap(), Tlp::AmberStrict);
        assert!("purple".parse::<Tlp>().is_err());
    }

    #[test]
    fn confidence_combines_as_noisy_or() {
        let c = |v| Confidence::new(v).unwrap();
        assert_eq!(Confidence::combine([c(50), c(50)]).get(), 75);
        assert_eq!(Confidence::combine([c(100), c(10)]).get(), 100);
        assert_eq!(Confidence::combine([c(30)]).get(), 30);
        assert!(Confidence::new(101).is_err());
    }

    #[test]
    fn family_normalised() {
        assert_eq!(
            Family::new(" Agent_Tesla ").unwrap().as_str(),
            "agent-tesla"
        );
        assert!(Family::new("  ").is_err());
    }

    #[test]
    fn threat_type_synonyms() {
        assert_eq!("botnet_cc".parse::<ThreatType>().unwrap(), ThreatType::C2);
        assert_eq!(
            "malware_download".parse::<ThreatType>().unwrap(),
            ThreatType::MalwareDownload
        );
    }
}
