//! The match snapshot: a compiled, immutable matcher over active,
//! non-allow-listed indicators, and its versioned binary file format.
//!
//! The hub builds a snapshot from its store ([`SnapshotBuilder`]); sensors
//! download it, load it ([`Snapshot::from_bytes`]) and run every DNS query
//! and flow through it at line rate.
//!
//! ```
//! use khien_matcher::{Entry, Snapshot, SnapshotBuilder};
//! use khien_model::{ObservableKind, ThreatType};
//!
//! let mut builder = SnapshotBuilder::new();
//! builder.add(&Entry {
//!     id: 7,
//!     kind: ObservableKind::Domain,
//!     value: "evil.example",
//!     exact_host: false,
//!     family: Some("mirai"),
//!     threat_type: ThreatType::C2,
//! })?;
//! let snapshot = Snapshot::from_bytes(builder.build(chrono::Utc::now()))?;
//! let hit = snapshot.match_domain(b"A.B.Evil.Example.").expect("suffix hit");
//! assert_eq!((hit.id, hit.value, hit.family), (7, "evil.example", Some("mirai")));
//! assert!(snapshot.match_domain(b"notevil.example").is_none());
//! # Ok::<(), khien_matcher::Error>(())
//! ```
//!
//! # Design
//!
//! - **The file is the memory layout.** Loading is reading the bytes,
//!   checking the header and an xxh3 checksum (GB/s), and reading a section
//!   table: no per-indicator work and no allocation per indicator, so ten
//!   million indicators load in well under a second. `unsafe` is forbidden,
//!   so fields are read from byte slices with bounds-checked `get`s: a file
//!   that lies about its offsets gives misses, never a panic.
//! - **One open-addressing hash table** over every indicator: 8-byte slots
//!   of (32-bit fingerprint, entry index), linear probing, about 1.5 slots
//!   per indicator. The key is xxh3 of the normalised value, seeded by kind
//!   class, so a domain and a URL with the same bytes never meet. A
//!   fingerprint match is confirmed against the stored value: no false
//!   positives, ever. A miss usually costs one slot read.
//! - **Domains match by suffix.** The name is lowercased once (trailing dot
//!   dropped) and each suffix at a label boundary is probed, longest first,
//!   so the most specific listed name wins; suffixes with fewer labels than
//!   the shortest listed domain (the TLD) are never probed. An exact-host
//!   indicator (shared hosting) matches only the whole name.
//! - **IP prefixes** are probed per prefix length present in the snapshot
//!   (a bitmap per family), longest first, after the exact address.
//! - **Memory**: 20 bytes per entry record, the value bytes once, 8 × 1.5
//!   bytes of table — about 50 bytes per indicator for typical domains.
//!
//! # File layout (little-endian)
//!
//! ```text
//! 0    magic "KHIENSNP"          8    format version u32, flags u32
//! 16   built_at (Unix s) i64     24   checksum u64 = xxh3 of bytes[8..24] ++ bytes[32..]
//! 32   total u64                 40   counts u64 × 6 (domain, ipv4, ipv6, cidr, url, hash)
//! 88   min labels u8, max labels u8, 6 reserved
//! 96   IPv4 prefix lengths present (bit n = /n) u64
//! 104  IPv6 prefix lengths present u64 × 3 (bits 0..=128)
//! 128  section table: (offset u64, length u64) × 4 — entries, strings, families, slots
//! 192  sections
//! entry  (20 bytes): id i64, value offset u32, value length u16,
//!                    family u16 (0xFFFF = none), kind u8, threat type u8, flags u8, 0
//! family (8 bytes):  offset u32, length u16, 0 u16   — into the strings section
//! slot   (8 bytes):  fingerprint u32 (0 = empty), entry index u32
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use khien_model::{ObservableKind, ThreatType};
use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed};

pub const MAGIC: [u8; 8] = *b"KHIENSNP";
pub const FORMAT_VERSION: u32 = 1;

const HEADER_LEN: usize = 128;
const SECTIONS: usize = 4;
const DATA_START: usize = HEADER_LEN + SECTIONS * 16;
const ENTRY_LEN: usize = 20;
const FAMILY_LEN: usize = 8;
const SLOT_LEN: usize = 8;
const NO_FAMILY: u16 = u16::MAX;
const FLAG_EXACT_HOST: u8 = 1;
/// Longest DNS name in presentation form.
const MAX_NAME: usize = 253;

/// Hash seeds per key class.
const SEED_DOMAIN: u64 = 1;
const SEED_IPV4: u64 = 2;
const SEED_IPV6: u64 = 3;
const SEED_CIDR: u64 = 4;
const SEED_URL: u64 = 5;
const SEED_HASH: u64 = 6;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not a Khiên snapshot (bad magic bytes)")]
    BadMagic,
    #[error("snapshot format version {found} is not supported (this build reads {FORMAT_VERSION})")]
    UnsupportedVersion { found: u32 },
    #[error("snapshot truncated: {section} needs {needed} bytes, the file has {available}")]
    Truncated {
        section: &'static str,
        needed: u64,
        available: u64,
    },
    #[error("snapshot checksum mismatch: the file is damaged or was cut short")]
    ChecksumMismatch,
    #[error("snapshot corrupt: {reason}")]
    Corrupt { reason: String },
    #[error("indicators of kind {kind} cannot be matched by a sensor")]
    UnsupportedKind { kind: ObservableKind },
    #[error("{kind} indicator `{value}`: {reason}")]
    InvalidValue {
        kind: ObservableKind,
        value: String,
        reason: String,
    },
    #[error("too many {what} for one snapshot (at most {max})")]
    TooLarge { what: &'static str, max: u64 },
}

/// One indicator to compile.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The store's indicator id.
    pub id: i64,
    pub kind: ObservableKind,
    /// Normalised as the store holds it.
    pub value: &'a str,
    /// Domains only: match the name itself, never its subdomains.
    pub exact_host: bool,
    pub family: Option<&'a str>,
    pub threat_type: ThreatType,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    pub id: i64,
    pub kind: ObservableKind,
    pub value: &'a str,
    pub family: Option<&'a str>,
    pub threat_type: ThreatType,
}

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub format_version: u32,
    pub built_at: DateTime<Utc>,
    pub domains: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub cidrs: u64,
    pub urls: u64,
    pub hashes: u64,
    pub total: u64,
    /// xxh3 of the file but its magic and this field; the hub's ETag.
    pub checksum: u64,
    pub byte_len: u64,
}

fn kind_code(kind: ObservableKind) -> u8 {
    match kind {
        ObservableKind::Ipv4 => 0,
        ObservableKind::Ipv6 => 1,
        ObservableKind::Cidr => 2,
        ObservableKind::Domain => 3,
        ObservableKind::Url => 4,
        ObservableKind::Sha256 => 5,
        ObservableKind::Sha1 => 6,
        ObservableKind::Md5 => 7,
        ObservableKind::Email => 8,
        ObservableKind::Phone => 9,
    }
}

fn kind_from_code(code: u8) -> Option<ObservableKind> {
    ObservableKind::ALL
        .into_iter()
        .find(|k| kind_code(*k) == code)
}

fn threat_code(t: ThreatType) -> u8 {
    ThreatType::ALL
        .iter()
        .position(|x| *x == t)
        .map_or(u8::MAX, |p| p as u8)
}

fn threat_from_code(code: u8) -> ThreatType {
    ThreatType::ALL
        .get(usize::from(code))
        .copied()
        .unwrap_or(ThreatType::Unknown)
}

/// Bytes of a CIDR key: prefix length, then the network address.
fn cidr_key(net: &IpNet) -> ([u8; 17], usize) {
    let mut key = [0u8; 17];
    key[0] = net.prefix_len();
    match net.network() {
        IpAddr::V4(a) => {
            key[1..5].copy_from_slice(&a.octets());
            (key, 5)
        }
        IpAddr::V6(a) => {
            key[1..17].copy_from_slice(&a.octets());
            (key, 17)
        }
    }
}

fn fingerprint(hash: u64) -> u32 {
    ((hash >> 32) as u32) | 1
}

/// Maps a hash onto `0..cap` without a division (Lemire's fast range).
fn slot_of(hash: u64, cap: u64) -> u64 {
    ((u128::from(hash) * u128::from(cap)) >> 64) as u64
}

struct Pending {
    hash: u64,
    id: i64,
    value_off: u32,
    value_len: u16,
    family: u16,
    kind: u8,
    threat: u8,
    flags: u8,
}

/// Collects entries and writes the snapshot file.
#[derive(Default)]
pub struct SnapshotBuilder {
    pending: Vec<Pending>,
    strings: Vec<u8>,
    families: Vec<(u32, u16)>,
    family_index: std::collections::HashMap<String, u16>,
    /// First entry index per (kind, key hash), to drop repeated values.
    seen: std::collections::HashMap<(u8, u64), u32>,
    counts: [u64; 6],
    min_labels: u8,
    max_labels: u8,
    v4_lengths: u64,
    v6_lengths: [u64; 3],
}

impl std::fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("entries", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl SnapshotBuilder {
    pub fn new() -> Self {
        SnapshotBuilder {
            min_labels: u8::MAX,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Adds an indicator. The same (kind, value) twice keeps the first.
    pub fn add(&mut self, entry: &Entry<'_>) -> Result<(), Error> {
        let invalid = |reason: &str| Error::InvalidValue {
            kind: entry.kind,
            value: entry.value.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        let value = entry.value;
        let (hash, count_slot) = match entry.kind {
            ObservableKind::Domain => {
                if value.is_empty()
                    || value.len() > MAX_NAME
                    || !value.is_ascii()
                    || value.ends_with('.')
                    || value.bytes().any(|b| b.is_ascii_uppercase())
                {
                    return Err(invalid("not a normalised domain name"));
                }
                let labels = value.split('.').count();
                let labels = u8::try_from(labels).map_err(|_| invalid("too many labels"))?;
                self.min_labels = self.min_labels.min(labels);
                self.max_labels = self.max_labels.max(labels);
                (xxh3_64_with_seed(value.as_bytes(), SEED_DOMAIN), 0)
            }
            ObservableKind::Ipv4 => {
                let ip: Ipv4Addr = value.parse().map_err(|_| invalid("not an IPv4 address"))?;
                (xxh3_64_with_seed(&ip.octets(), SEED_IPV4), 1)
            }
            ObservableKind::Ipv6 => {
                let ip: Ipv6Addr = value.parse().map_err(|_| invalid("not an IPv6 address"))?;
                (xxh3_64_with_seed(&ip.octets(), SEED_IPV6), 2)
            }
            ObservableKind::Cidr => {
                let net: IpNet = value.parse().map_err(|_| invalid("not a network"))?;
                let net = net.trunc();
                match net {
                    IpNet::V4(n) => self.v4_lengths |= 1 << n.prefix_len(),
                    IpNet::V6(n) => {
                        let l = usize::from(n.prefix_len());
                        self.v6_lengths[l / 64] |= 1 << (l % 64);
                    }
                }
                let (key, len) = cidr_key(&net);
                (xxh3_64_with_seed(&key[..len], SEED_CIDR), 3)
            }
            ObservableKind::Url => {
                if value.is_empty() || value.len() > usize::from(u16::MAX) {
                    return Err(invalid("URL empty or longer than 65535 bytes"));
                }
                (xxh3_64_with_seed(value.as_bytes(), SEED_URL), 4)
            }
            ObservableKind::Sha256 | ObservableKind::Sha1 | ObservableKind::Md5 => {
                let want = match entry.kind {
                    ObservableKind::Sha256 => 64,
                    ObservableKind::Sha1 => 40,
                    _ => 32,
                };
                if value.len() != want
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(invalid("not a lowercase hex digest of the right length"));
                }
                (xxh3_64_with_seed(value.as_bytes(), SEED_HASH), 5)
            }
            kind => return Err(Error::UnsupportedKind { kind }),
        };
        let kind = kind_code(entry.kind);
        // A repeated value is dropped; two values with the same 64-bit hash
        // (never seen, but possible) are both kept and told apart at lookup.
        if let Some(&first) = self.seen.get(&(kind, hash)) {
            let p = &self.pending[first as usize];
            let start = p.value_off as usize;
            if self.strings.get(start..start + usize::from(p.value_len)) == Some(value.as_bytes()) {
                return Ok(());
            }
        }
        if self.pending.len() >= u32::MAX as usize - 1 {
            return Err(Error::TooLarge {
                what: "indicators",
                max: u64::from(u32::MAX) - 1,
            });
        }
        let family = match entry.family {
            None => NO_FAMILY,
            Some(name) => match self.family_index.get(name) {
                Some(&i) => i,
                None => {
                    let i = u16::try_from(self.families.len())
                        .ok()
                        .filter(|i| *i != NO_FAMILY)
                        .ok_or(Error::TooLarge {
                            what: "families",
                            max: u64::from(NO_FAMILY),
                        })?;
                    let off = self.push_string(name.get(..name.len().min(255)).unwrap_or(name))?;
                    self.families.push((off, name.len().min(255) as u16));
                    self.family_index.insert(name.to_owned(), i);
                    i
                }
            },
        };
        let value_off = self.push_string(value)?;
        self.seen
            .entry((kind, hash))
            .or_insert(self.pending.len() as u32);
        self.pending.push(Pending {
            hash,
            id: entry.id,
            value_off,
            value_len: value.len() as u16,
            family,
            kind,
            threat: threat_code(entry.threat_type),
            flags: if entry.exact_host && entry.kind == ObservableKind::Domain {
                FLAG_EXACT_HOST
            } else {
                0
            },
        });
        self.counts[count_slot] += 1;
        Ok(())
    }

    fn push_string(&mut self, s: &str) -> Result<u32, Error> {
        let off = u32::try_from(self.strings.len()).map_err(|_| Error::TooLarge {
            what: "bytes of values",
            max: u64::from(u32::MAX),
        })?;
        self.strings.extend_from_slice(s.as_bytes());
        Ok(off)
    }

    /// Writes the snapshot file's bytes.
    pub fn build(self, built_at: DateTime<Utc>) -> Vec<u8> {
        let n = self.pending.len() as u64;
        // ~1.5 slots per entry; at least one empty slot always exists.
        let cap = (n + n / 2 + 1).max(8);
        let mut slots = vec![0u8; cap as usize * SLOT_LEN];
        for (index, p) in self.pending.iter().enumerate() {
            let mut s = slot_of(p.hash, cap);
            loop {
                let at = s as usize * SLOT_LEN;
                if slots[at..at + 4] == [0, 0, 0, 0] {
                    slots[at..at + 4].copy_from_slice(&fingerprint(p.hash).to_le_bytes());
                    slots[at + 4..at + 8].copy_from_slice(&(index as u32).to_le_bytes());
                    break;
                }
                s = if s + 1 == cap { 0 } else { s + 1 };
            }
        }
        let mut entries = Vec::with_capacity(self.pending.len() * ENTRY_LEN);
        for p in &self.pending {
            entries.extend_from_slice(&p.id.to_le_bytes());
            entries.extend_from_slice(&p.value_off.to_le_bytes());
            entries.extend_from_slice(&p.value_len.to_le_bytes());
            entries.extend_from_slice(&p.family.to_le_bytes());
            entries.extend_from_slice(&[p.kind, p.threat, p.flags, 0]);
        }
        let mut families = Vec::with_capacity(self.families.len() * FAMILY_LEN);
        for (off, len) in &self.families {
            families.extend_from_slice(&off.to_le_bytes());
            families.extend_from_slice(&len.to_le_bytes());
            families.extend_from_slice(&[0, 0]);
        }
        let sections: [&[u8]; SECTIONS] = [&entries, &self.strings, &families, &slots];
        let total_len = DATA_START + sections.iter().map(|s| s.len()).sum::<usize>();
        let mut out = Vec::with_capacity(total_len);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&built_at.timestamp().to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // checksum, filled below
        out.extend_from_slice(&n.to_le_bytes());
        for c in self.counts {
            out.extend_from_slice(&c.to_le_bytes());
        }
        let min_labels = if self.min_labels == u8::MAX {
            0
        } else {
            self.min_labels
        };
        out.extend_from_slice(&[min_labels, self.max_labels, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&self.v4_lengths.to_le_bytes());
        for w in self.v6_lengths {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let mut offset = DATA_START as u64;
        for s in sections {
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            offset += s.len() as u64;
        }
        for s in sections {
            out.extend_from_slice(s);
        }
        let checksum = checksum_of(&out);
        out[24..32].copy_from_slice(&checksum.to_le_bytes());
        out
    }
}

/// xxh3 over everything but the magic and the checksum field itself.
fn checksum_of(file: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(file.get(8..24).unwrap_or(&[]));
    h.update(file.get(32..).unwrap_or(&[]));
    h.digest()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A loaded snapshot. Immutable; share it between threads with an `Arc`.
#[derive(Debug)]
pub struct Snapshot {
    bytes: Vec<u8>,
    info: SnapshotInfo,
    entries: (usize, usize),
    strings: (usize, usize),
    families: (usize, usize),
    slots: (usize, usize),
    cap: u64,
    min_labels: u8,
    max_labels: u8,
    has_domains: bool,
    v4_lengths: Vec<u8>,
    v6_lengths: Vec<u8>,
}

impl Snapshot {
    /// Checks and loads a snapshot file's bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Snapshot, Error> {
        let available = bytes.len() as u64;
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        let truncated = |section, needed| Error::Truncated {
            section,
            needed,
            available,
        };
        if bytes.len() < DATA_START {
            return Err(truncated("header", DATA_START as u64));
        }
        let header = |at| u64_at(&bytes, at).unwrap_or(0);
        let version = u32_at(&bytes, 8).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { found: version });
        }
        let mut sections = [(0usize, 0usize); SECTIONS];
        let names = ["entries", "strings", "families", "slots"];
        let mut end = DATA_START as u64;
        for (i, s) in sections.iter_mut().enumerate() {
            let off = header(HEADER_LEN + i * 16);
            let len = header(HEADER_LEN + i * 16 + 8);
            if off != end {
                return Err(Error::Corrupt {
                    reason: format!("section {} does not follow the one before it", names[i]),
                });
            }
            end = off.checked_add(len).ok_or_else(|| Error::Corrupt {
                reason: format!("section {} length overflows", names[i]),
            })?;
            if end > available {
                return Err(truncated(names[i], end));
            }
            *s = (off as usize, end as usize);
        }
        if end != available {
            return Err(Error::Corrupt {
                reason: format!("{} bytes after the last section", available - end),
            });
        }
        let stored = header(24);
        if checksum_of(&bytes) != stored {
            return Err(Error::ChecksumMismatch);
        }
        let total = header(32);
        let entries_len = sections[0].1 - sections[0].0;
        if entries_len as u64 != total.saturating_mul(ENTRY_LEN as u64) {
            return Err(Error::Corrupt {
                reason: "entry count does not match the entries section".into(),
            });
        }
        let slots_len = sections[3].1 - sections[3].0;
        let cap = (slots_len / SLOT_LEN) as u64;
        if slots_len % SLOT_LEN != 0 || cap <= total {
            return Err(Error::Corrupt {
                reason: "hash table too small for its entries".into(),
            });
        }
        let built_at = DateTime::<Utc>::from_timestamp(header(16) as i64, 0).unwrap_or_default();
        let counts: Vec<u64> = (0..6).map(|i| header(40 + i * 8)).collect();
        let v4 = header(96);
        let v6 = [header(104), header(112), header(120)];
        let v4_lengths = (0..=32u8).rev().filter(|l| v4 >> l & 1 == 1).collect();
        let v6_lengths = (0..=128u8)
            .rev()
            .filter(|l| v6[usize::from(*l) / 64] >> (l % 64) & 1 == 1)
            .collect();
        let info = SnapshotInfo {
            format_version: version,
            built_at,
            domains: counts[0],
            ipv4: counts[1],
            ipv6: counts[2],
            cidrs: counts[3],
            urls: counts[4],
            hashes: counts[5],
            total,
            checksum: stored,
            byte_len: available,
        };
        Ok(Snapshot {
            min_labels: bytes[88],
            max_labels: bytes[89],
            has_domains: counts[0] > 0,
            bytes,
            info,
            entries: sections[0],
            strings: sections[1],
            families: sections[2],
            slots: sections[3],
            cap,
            v4_lengths,
            v6_lengths,
        })
    }

    pub fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    /// The file's bytes, e.g. to cache or serve them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.info.total as usize
    }

    pub fn is_empty(&self) -> bool {
        self.info.total == 0
    }

    fn section(&self, s: (usize, usize)) -> &[u8] {
        self.bytes.get(s.0..s.1).unwrap_or(&[])
    }

    fn string(&self, off: u32, len: u16) -> Option<&str> {
        let strings = self.section(self.strings);
        let b = strings.get(off as usize..off as usize + usize::from(len))?;
        std::str::from_utf8(b).ok()
    }

    fn hit(&self, index: u32) -> Option<(Hit<'_>, u8, u8)> {
        let at = index as usize * ENTRY_LEN;
        let e = self.section(self.entries).get(at..at + ENTRY_LEN)?;
        let id = i64::from_le_bytes(e.get(0..8)?.try_into().ok()?);
        let value = self.string(u32_at(e, 8)?, u16_at(e, 12)?)?;
        let family_index = u16_at(e, 14)?;
        let family = if family_index == NO_FAMILY {
            None
        } else {
            let f = self.section(self.families);
            let at = usize::from(family_index) * FAMILY_LEN;
            self.string(u32_at(f, at)?, u16_at(f, at + 4)?)
        };
        let kind = kind_from_code(*e.get(16)?)?;
        Some((
            Hit {
                id,
                kind,
                value,
                family,
                threat_type: threat_from_code(*e.get(17)?),
            },
            *e.get(16)?,
            *e.get(18)?,
        ))
    }

    /// Walks the probe sequence of `hash`, calling `accept` on each entry
    /// with a matching fingerprint until it says yes.
    fn probe(
        &self,
        hash: u64,
        mut accept: impl FnMut(&Hit<'_>, u8, u8) -> bool,
    ) -> Option<Hit<'_>> {
        let slots = self.section(self.slots);
        let want = fingerprint(hash);
        let mut s = slot_of(hash, self.cap);
        for _ in 0..self.cap {
            let at = s as usize * SLOT_LEN;
            let fp = u32_at(slots, at)?;
            if fp == 0 {
                return None;
            }
            if fp == want
                && let Some((hit, kind, flags)) = self.hit(u32_at(slots, at + 4)?)
                && accept(&hit, kind, flags)
            {
                return Some(hit);
            }
            s = if s + 1 == self.cap { 0 } else { s + 1 };
        }
        None
    }

    /// The most specific listed domain that `name` is or is under. `name`
    /// is as seen on the wire or in a log: any ASCII case, optional
    /// trailing dot. Names that are not ASCII DNS names never match.
    pub fn match_domain(&self, name: &[u8]) -> Option<Hit<'_>> {
        if !self.has_domains {
            return None;
        }
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() || name.len() > MAX_NAME {
            return None;
        }
        let mut buf = [0u8; MAX_NAME];
        let lower = &mut buf[..name.len()];
        let mut labels = 1u8;
        for (dst, &b) in lower.iter_mut().zip(name) {
            if b >= 0x80 {
                return None;
            }
            if b == b'.' {
                labels = labels.saturating_add(1);
            }
            *dst = b.to_ascii_lowercase();
        }
        let lower = &buf[..name.len()];
        let domain = kind_code(ObservableKind::Domain);
        let mut start = 0usize;
        let mut remaining = labels;
        loop {
            if remaining < self.min_labels {
                return None;
            }
            if remaining <= self.max_labels {
                let suffix = lower.get(start..)?;
                let whole = start == 0;
                let hash = xxh3_64_with_seed(suffix, SEED_DOMAIN);
                let found = self.probe(hash, |hit, kind, flags| {
                    kind == domain
                        && hit.value.as_bytes() == suffix
                        && (whole || flags & FLAG_EXACT_HOST == 0)
                });
                if found.is_some() {
                    return found;
                }
            }
            let dot = memchr_dot(&lower[start..])?;
            start += dot + 1;
            remaining -= 1;
        }
    }

    /// The listed address, or else the longest listed network holding it.
    /// IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn match_ip(&self, addr: IpAddr) -> Option<Hit<'_>> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match addr {
            IpAddr::V4(a) => {
                let code = kind_code(ObservableKind::Ipv4);
                if self.info.ipv4 > 0
                    && let Some(hit) = self
                        .probe(xxh3_64_with_seed(&a.octets(), SEED_IPV4), |h, k, _| {
                            k == code && h.value.parse::<Ipv4Addr>().is_ok_and(|v| v == a)
                        })
                {
                    return Some(hit);
                }
                for &len in &self.v4_lengths {
                    let net = IpNet::V4(ipnet::Ipv4Net::new(a, len).ok()?.trunc());
                    if let Some(hit) = self.probe_cidr(&net) {
                        return Some(hit);
                    }
                }
                None
            }
            IpAddr::V6(a) => {
                let code = kind_code(ObservableKind::Ipv6);
                if self.info.ipv6 > 0
                    && let Some(hit) = self
                        .probe(xxh3_64_with_seed(&a.octets(), SEED_IPV6), |h, k, _| {
                            k == code && h.value.parse::<Ipv6Addr>().is_ok_and(|v| v == a)
                        })
                {
                    return Some(hit);
                }
                for &len in &self.v6_lengths {
                    let net = IpNet::V6(ipnet::Ipv6Net::new(a, len).ok()?.trunc());
                    if let Some(hit) = self.probe_cidr(&net) {
                        return Some(hit);
                    }
                }
                None
            }
        }
    }

    fn probe_cidr(&self, net: &IpNet) -> Option<Hit<'_>> {
        let (key, len) = cidr_key(net);
        let code = kind_code(ObservableKind::Cidr);
        self.probe(xxh3_64_with_seed(&key[..len], SEED_CIDR), |h, k, _| {
            k == code && h.value.parse::<IpNet>().is_ok_and(|v| v.trunc() == *net)
        })
    }

    /// Exact match of a canonical URL (the caller canonicalises).
    pub fn match_url(&self, canonical_url: &str) -> Option<Hit<'_>> {
        if self.info.urls == 0 {
            return None;
        }
        let code = kind_code(ObservableKind::Url);
        self.probe(
            xxh3_64_with_seed(canonical_url.as_bytes(), SEED_URL),
            |h, k, _| k == code && h.value == canonical_url,
        )
    }

    /// A file hash (MD5, SHA-1 or SHA-256 by length), any case.
    pub fn match_hash(&self, hex: &str) -> Option<Hit<'_>> {
        if self.info.hashes == 0 || !matches!(hex.len(), 32 | 40 | 64) {
            return None;
        }
        let mut buf = [0u8; 64];
        let lower = &mut buf[..hex.len()];
        for (d, b) in lower.iter_mut().zip(hex.bytes()) {
            *d = b.to_ascii_lowercase();
        }
        let lower = &buf[..hex.len()];
        self.probe(xxh3_64_with_seed(lower, SEED_HASH), |h, _, _| {
            h.kind.is_hash() && h.value.as_bytes() == lower
        })
    }
}

fn memchr_dot(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: ObservableKind, value: &str) -> Entry<'_> {
        Entry {
            id: 1,
            kind,
            value,
            exact_host: false,
            family: Some("fam"),
            threat_type: ThreatType::C2,
        }
    }

    #[test]
    fn duplicate_values_keep_the_first() {
        let mut b = SnapshotBuilder::new();
        let mut e = entry(ObservableKind::Domain, "evil.example");
        b.add(&e).unwrap();
        e.id = 2;
        b.add(&e).unwrap();
        assert_eq!(b.len(), 1);
        let s = Snapshot::from_bytes(b.build(Utc::now())).unwrap();
        assert_eq!(s.match_domain(b"evil.example").unwrap().id, 1);
    }

    #[test]
    fn rejects_unnormalised_and_unsupported_values() {
        let mut b = SnapshotBuilder::new();
        assert!(
            b.add(&entry(ObservableKind::Domain, "Evil.example"))
                .is_err()
        );
        assert!(b.add(&entry(ObservableKind::Ipv4, "1.2.3")).is_err());
        assert!(b.add(&entry(ObservableKind::Sha256, "abc")).is_err());
        assert!(matches!(
            b.add(&entry(ObservableKind::Email, "a@b.c")),
            Err(Error::UnsupportedKind { .. })
        ));
        assert!(b.is_empty());
    }

    #[test]
    fn empty_snapshot_loads_and_matches_nothing() {
        let s = Snapshot::from_bytes(SnapshotBuilder::new().build(Utc::now())).unwrap();
        assert!(s.is_empty());
        assert!(s.match_domain(b"a.example").is_none());
        assert!(s.match_ip("10.0.0.1".parse().unwrap()).is_none());
    }
}
