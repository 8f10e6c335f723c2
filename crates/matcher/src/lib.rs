//! The match snapshot: a compiled, immutable matcher over active,
//! non-allow-listed indicators, and its versioned binary file format.
//!
//! The hub builds a snapshot from its store ([`SnapshotBuilder`]); sensors
//! download it, load it ([`Snapshot::from_bytes`]) and run every DNS query
//! and flow through it at line rate ([`Snapshot::match_domain`],
//! [`Snapshot::match_ip`], [`Snapshot::match_url`], [`Snapshot::match_hash`]).
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
//! - **The file is the memory layout.** Loading is checking the header and
//!   section table and one xxh3 pass over the bytes (GB/s): no work and no
//!   allocation per indicator, so ten million indicators load in a fraction
//!   of a second. `unsafe` is forbidden, so fields are read from byte
//!   slices with bounds-checked `get`s: a file that passes the checksum but
//!   lies about its offsets gives misses, never a panic. Lengths in the
//!   file are checked against the file's size before anything is trusted,
//!   and nothing is allocated from them.
//! - **One open-addressing hash table** over every indicator: 8-byte slots
//!   of (32-bit fingerprint, entry index), linear probing, 1.5 slots per
//!   indicator. Keys are 64-bit hashes of the normalised value, seeded per
//!   key class so a domain and a URL with the same bytes never meet: a
//!   folded 128-bit multiply for names and addresses (a few instructions,
//!   and suffix hashes extend label by label), xxh3 for URLs and file
//!   hashes. A fingerprint match is confirmed against the stored value, so
//!   there are no false positives, ever.
//! - **Bloom filters in front.** The table is far bigger than the CPU's
//!   caches, so every probe would be a DRAM miss (with TLB misses, 150 to
//!   300 ns on a virtual machine). A blocked Bloom filter per class —
//!   domains, and everything else — answers most misses from cache: one
//!   64-bit word per key, 4 bits set, 16 bits per key, 0.55 % false
//!   positives; 2 MB for a million domains. 12 bits per key would save
//!   half a byte per indicator and double the false positives, each of
//!   which costs a DRAM probe.
//! - **Domains match by suffix, in one pass from the right.** Eight bytes
//!   at a time, the walk finds the previous dot in the word it loads,
//!   hashes the label from that same word (lowercased as a word, one
//!   multiply per eight bytes) into the hash of the suffix so far, and
//!   collects the bytes to check they are ASCII: all suffix hashes cost
//!   O(length), with few branches that depend on the name (mispredictions
//!   cost more than the arithmetic). Only label counts some listed domain
//!   has are looked up (a table from the header), and labels beyond the
//!   longest listed count are never hashed. The least specific suffix is
//!   met first, so a later hit replaces an earlier one: the most specific
//!   listed suffix wins. An exact-host entry (shared hosting) matches the
//!   whole name only. The rare probe of the table is out of line, so that
//!   the common path stays small.
//! - **IP prefixes** are looked up per prefix length present (a bitmap per
//!   family in the header), longest first, after the exact address; each
//!   length costs one filter probe on a miss.
//! - **Deterministic.** Entries are written sorted by key, families by
//!   name: the same set of indicators gives the same bytes whatever the
//!   order they were added in, bar the build time. The checksum covers
//!   everything after its own field, so not the build time: it is the
//!   hub's ETag, and sensors re-download only when the content changed.
//!   Magic, version and flags before it are checked for exact values.
//! - **Memory** per indicator: a 20-byte entry record, the value's bytes
//!   once, 12 bytes of table and 2 bytes of filter — 53 bytes for domains
//!   of 19 characters on average. The file is the resident form; loading
//!   allocates nothing more than a few hundred bytes.
//! - **Hits cost more than misses** (several hundred nanoseconds: slot,
//!   entry and value are three dependent DRAM reads). At the hit rates of a
//!   resolver (about 0.1 %) that is below a nanosecond per lookup.

//! # File layout (version 1, little-endian)
//!
//! ```text
//! 0    magic "KHIENSNP"                      8    format version u32, flags u32 (0)
//! 16   built_at, Unix seconds i64            24   checksum u64: xxh3 of bytes[32..]
//! 32   total u64                             40   counts u64 × 6: domains, ipv4, ipv6, cidrs, urls, hashes
//! 88   domain label counts listed u128       104  … of exact-host domains u128   (bit n = n labels)
//! 120  IPv4 prefix lengths u64 (bit n = /n)  128  IPv6 prefix lengths u64 × 3 (bits 0..=128)
//! 152  reserved u64 (0)
//! 160  section table: (offset u64, length u64) × 6, contiguous, the last ending at the file's end
//! 256  entries         total × 20 bytes: id i64, value offset u32, value length u16,
//!                      family u16 (0xFFFF = none), kind u8, threat type u8, flags u8 (1 = exact host), 0
//!      strings         values in entry order, then family names in name order
//!      families        8 bytes each: offset u32, length u16, 0 u16
//!      slots           8 bytes each: fingerprint u32 (0 = empty), entry index u32
//!      domain filter   u64 words
//!      address filter  u64 words (IPs, networks, URLs, hashes)
//! ```
//!
//! Hash functions, kind and threat type codes are in the `hash` and
//! `layout` modules; changing any of them is a new format version.

mod builder;
mod hash;
mod layout;
mod snapshot;

use chrono::{DateTime, Utc};
use khien_model::{ObservableKind, ThreatType};

pub use builder::SnapshotBuilder;
pub use snapshot::Snapshot;

pub const MAGIC: [u8; 8] = *b"KHIENSNP";
pub const FORMAT_VERSION: u32 = 1;

/// Why a snapshot could not be built from an entry, or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not a Khiên snapshot file (bad magic bytes)")]
    BadMagic,
    #[error(
        "snapshot format version {found} is not supported (this build reads version {FORMAT_VERSION}); upgrade the sensor or the hub"
    )]
    UnsupportedVersion { found: u32 },
    #[error(
        "snapshot truncated: the {section} section needs {needed} bytes, the file has {available}"
    )]
    Truncated {
        section: &'static str,
        needed: u64,
        available: u64,
    },
    #[error("snapshot checksum mismatch: the file is damaged")]
    ChecksumMismatch,
    #[error("snapshot corrupt: {reason}")]
    Corrupt { reason: String },
    #[error("{kind} indicators cannot be matched by a sensor")]
    UnsupportedKind { kind: ObservableKind },
    #[error("{kind} indicator `{value}`: {reason}")]
    InvalidValue {
        kind: ObservableKind,
        /// The value as given, cut at 200 characters.
        value: String,
        reason: String,
    },
    #[error("too many {what} for one snapshot (at most {max})")]
    TooLarge { what: &'static str, max: u64 },
}

/// One indicator to compile.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The store's indicator id, given back in every [`Hit`].
    pub id: i64,
    /// Ipv4, Ipv6, Cidr, Domain, Url, Sha256, Sha1 or Md5.
    pub kind: ObservableKind,
    /// Normalised as khien-model and the store hold it: lowercase domain
    /// without a trailing dot, canonical URL, lowercase hex digest,
    /// `10.0.0.0/8` network.
    pub value: &'a str,
    /// Domains only: match the name itself, never its subdomains (shared
    /// hosting).
    pub exact_host: bool,
    /// Malware family, at most 255 bytes.
    pub family: Option<&'a str>,
    pub threat_type: ThreatType,
}

/// The indicator a lookup found, borrowed from the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The store's indicator id.
    pub id: i64,
    pub kind: ObservableKind,
    /// The listed value, e.g. `evil.com` for a lookup of `www.evil.com`.
    pub value: &'a str,
    pub family: Option<&'a str>,
    pub threat_type: ThreatType,
}

/// What a snapshot's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub format_version: u32,
    /// When the hub built it, to the second.
    pub built_at: DateTime<Utc>,
    pub domains: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub cidrs: u64,
    pub urls: u64,
    /// MD5, SHA-1 and SHA-256 together.
    pub hashes: u64,
    /// All indicators, the sum of the counts above.
    pub total: u64,
    /// xxh3 of the file after this field: of the content, not of the
    /// build time. The hub's ETag.
    pub checksum: u64,
    /// Size of the file.
    pub byte_len: u64,
}
