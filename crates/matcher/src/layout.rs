//! Offsets, record sizes and codes of the file format (see the crate docs).

use khien_model::{ObservableKind, ThreatType};
use xxhash_rust::xxh3::xxh3_64;

pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_FLAGS: usize = 12;
pub(crate) const OFF_BUILT_AT: usize = 16;
pub(crate) const OFF_CHECKSUM: usize = 24;
pub(crate) const OFF_TOTAL: usize = 32;
pub(crate) const OFF_COUNTS: usize = 40;
pub(crate) const OFF_LEVELS_ANY: usize = 88;
pub(crate) const OFF_LEVELS_EXACT: usize = 104;
pub(crate) const OFF_V4_LENGTHS: usize = 120;
pub(crate) const OFF_V6_LENGTHS: usize = 128;
pub(crate) const OFF_RESERVED: usize = 152;
pub(crate) const OFF_SECTIONS: usize = 160;

/// Sections, in file order.
pub(crate) const SECTION_NAMES: [&str; 6] = [
    "entries",
    "strings",
    "families",
    "slots",
    "domain filter",
    "address filter",
];
pub(crate) const ENTRIES: usize = 0;
pub(crate) const STRINGS: usize = 1;
pub(crate) const FAMILIES: usize = 2;
pub(crate) const SLOTS: usize = 3;
pub(crate) const DOMAIN_FILTER: usize = 4;
pub(crate) const ADDRESS_FILTER: usize = 5;
pub(crate) const DATA_START: usize = OFF_SECTIONS + SECTION_NAMES.len() * 16;

/// Entry record: id i64, value offset u32, value length u16, family u16,
/// kind u8, threat type u8, flags u8, reserved u8.
pub(crate) const ENTRY_LEN: usize = 20;
/// Family record: offset u32, length u16, reserved u16.
pub(crate) const FAMILY_LEN: usize = 8;
/// Slot: fingerprint u32 (0 = empty), entry index u32, as one u64.
pub(crate) const SLOT_LEN: usize = 8;

pub(crate) const NO_FAMILY: u16 = u16::MAX;
pub(crate) const FLAG_EXACT_HOST: u8 = 1;
/// Longest DNS name in presentation form, without the trailing dot.
pub(crate) const MAX_NAME: usize = 253;

/// Index of each kind's count in the header.
pub(crate) const COUNT_DOMAINS: usize = 0;
pub(crate) const COUNT_IPV4: usize = 1;
pub(crate) const COUNT_IPV6: usize = 2;
pub(crate) const COUNT_CIDRS: usize = 3;
pub(crate) const COUNT_URLS: usize = 4;
pub(crate) const COUNT_HASHES: usize = 5;

/// Kind codes are part of the format: never renumber.
pub(crate) fn kind_code(kind: ObservableKind) -> Option<u8> {
    Some(match kind {
        ObservableKind::Ipv4 => 1,
        ObservableKind::Ipv6 => 2,
        ObservableKind::Cidr => 3,
        ObservableKind::Domain => 4,
        ObservableKind::Url => 5,
        ObservableKind::Sha256 => 6,
        ObservableKind::Sha1 => 7,
        ObservableKind::Md5 => 8,
        ObservableKind::Email | ObservableKind::Phone => return None,
    })
}

pub(crate) const KIND_IPV4: u8 = 1;
pub(crate) const KIND_IPV6: u8 = 2;
pub(crate) const KIND_CIDR: u8 = 3;
pub(crate) const KIND_DOMAIN: u8 = 4;
pub(crate) const KIND_URL: u8 = 5;

pub(crate) fn kind_from_code(code: u8) -> Option<ObservableKind> {
    Some(match code {
        1 => ObservableKind::Ipv4,
        2 => ObservableKind::Ipv6,
        3 => ObservableKind::Cidr,
        4 => ObservableKind::Domain,
        5 => ObservableKind::Url,
        6 => ObservableKind::Sha256,
        7 => ObservableKind::Sha1,
        8 => ObservableKind::Md5,
        _ => return None,
    })
}

/// Threat type codes are part of the format: never renumber. A variant
/// the model gains later is written as unknown until it gets a code here
/// (the round-trip test over `ThreatType::ALL` says so).
pub(crate) fn threat_code(t: ThreatType) -> u8 {
    match t {
        ThreatType::C2 => 1,
        ThreatType::MalwareDownload => 2,
        ThreatType::Phishing => 3,
        ThreatType::Scam => 4,
        ThreatType::Miner => 5,
        ThreatType::Malicious => 6,
        ThreatType::Suspicious => 7,
        ThreatType::Malware => 8,
        _ => 0,
    }
}

pub(crate) fn threat_from_code(code: u8) -> ThreatType {
    match code {
        1 => ThreatType::C2,
        2 => ThreatType::MalwareDownload,
        3 => ThreatType::Phishing,
        4 => ThreatType::Scam,
        5 => ThreatType::Miner,
        6 => ThreatType::Malicious,
        7 => ThreatType::Suspicious,
        8 => ThreatType::Malware,
        _ => ThreatType::Unknown,
    }
}

/// xxh3 of everything after the checksum field: the content, not the
/// build time, so that rebuilding the same indicators gives the same
/// checksum (the hub's ETag). Magic, version and flags are checked for
/// their exact values instead.
pub(crate) fn checksum_of(file: &[u8]) -> u64 {
    xxh3_64(file.get(OFF_CHECKSUM + 8..).unwrap_or(&[]))
}

#[inline(always)]
pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
#[inline(always)]
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
#[inline(always)]
pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
pub(crate) fn u128_at(b: &[u8], at: usize) -> Option<u128> {
    Some(u128::from_le_bytes(b.get(at..at + 16)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_threat_type_survives_the_file() {
        for t in ThreatType::ALL {
            assert_eq!(threat_from_code(threat_code(t)), t, "{t} needs a code");
        }
    }

    #[test]
    fn every_supported_kind_survives_the_file() {
        for k in ObservableKind::ALL {
            if let Some(code) = kind_code(k) {
                assert_eq!(kind_from_code(code), Some(k));
            }
        }
    }
}
