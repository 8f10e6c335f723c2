//! Loading a snapshot file and looking values up in it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::hash::{
    HIGH_BITS, SEED_DOMAIN, cidr4_hash, cidr6_hash, digest_hash, dot_bits, fast_range, filter_has,
    fingerprint, ipv4_hash, ipv6_hash, label_step, load, short_label_step, tail, url_hash,
};
use crate::layout::*;
use crate::{Error, FORMAT_VERSION, Hit, MAGIC, SnapshotInfo};

const LEVEL_SUFFIX: u8 = 1;
const LEVEL_WHOLE: u8 = 2;

/// A loaded snapshot: the file's bytes, checked, and a few header fields.
/// Immutable; share it between threads with an `Arc`.
pub struct Snapshot {
    bytes: Vec<u8>,
    info: SnapshotInfo,
    sections: [Range<usize>; 6],
    slot_count: u64,
    /// Per label count: whether a suffix of that many labels can hit
    /// (`LEVEL_SUFFIX`: some domain with subdomains has them) and whether a
    /// whole name can (`LEVEL_WHOLE`: exact-host domains too).
    levels: [u8; 129],
    /// Highest label count listed (0: no domains): labels further left are
    /// never hashed.
    max_level: u32,
    /// Prefix lengths listed, longest first.
    v4_lengths: Vec<u8>,
    v6_lengths: Vec<u8>,
}

/// The header only: the bytes can be hundreds of megabytes.
impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Checks and loads a snapshot file's bytes: magic, version, section
    /// table and checksum. Costs one pass of xxh3 over the bytes; nothing
    /// is allocated per indicator.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Snapshot, Error> {
        let available = bytes.len() as u64;
        if bytes.get(..8) != Some(&MAGIC[..]) {
            return Err(Error::BadMagic);
        }
        let truncated_header = Error::Truncated {
            section: "header",
            needed: DATA_START as u64,
            available,
        };
        let Some(version) = u32_at(&bytes, OFF_VERSION) else {
            return Err(truncated_header);
        };
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { found: version });
        }
        if bytes.len() < DATA_START {
            return Err(truncated_header);
        }
        let header = |at| u64_at(&bytes, at).unwrap_or(0);
        let corrupt = |reason: String| Error::Corrupt { reason };

        let mut sections: [Range<usize>; 6] = Default::default();
        let mut end = DATA_START as u64;
        for (i, s) in sections.iter_mut().enumerate() {
            let (off, len) = (
                header(OFF_SECTIONS + i * 16),
                header(OFF_SECTIONS + i * 16 + 8),
            );
            let name = SECTION_NAMES[i];
            if off != end {
                return Err(corrupt(format!(
                    "section {name} starts at {off}, expected {end}"
                )));
            }
            end = off
                .checked_add(len)
                .ok_or_else(|| corrupt(format!("section {name} length {len} overflows")))?;
            if end > available {
                return Err(Error::Truncated {
                    section: name,
                    needed: end,
                    available,
                });
            }
            *s = off as usize..end as usize;
        }
        if end != available {
            return Err(corrupt(format!(
                "{} bytes after the last section",
                available - end
            )));
        }
        let stored = header(OFF_CHECKSUM);
        if checksum_of(&bytes) != stored {
            return Err(Error::ChecksumMismatch);
        }

        if u32_at(&bytes, OFF_FLAGS) != Some(0) || header(OFF_RESERVED) != 0 {
            return Err(corrupt("unknown flags set".into()));
        }
        let total = header(OFF_TOTAL);
        let len = |i: usize| sections[i].len() as u64;
        if len(ENTRIES) != total.saturating_mul(ENTRY_LEN as u64) {
            return Err(corrupt(format!(
                "{} bytes of entries for {total} indicators",
                len(ENTRIES)
            )));
        }
        let slot_count = len(SLOTS) / SLOT_LEN as u64;
        if len(SLOTS) % SLOT_LEN as u64 != 0 || slot_count <= total {
            return Err(corrupt("hash table too small for its entries".into()));
        }
        if total > u64::from(u32::MAX) {
            return Err(corrupt(format!(
                "{total} indicators, more than entry indices hold"
            )));
        }
        for i in [FAMILIES, DOMAIN_FILTER, ADDRESS_FILTER] {
            if len(i) % 8 != 0 || len(i) / 8 > u64::from(u32::MAX) {
                return Err(corrupt(format!(
                    "section {} has a bad length",
                    SECTION_NAMES[i]
                )));
            }
        }
        let counts: Vec<u64> = (0..6).map(|i| header(OFF_COUNTS + i * 8)).collect();
        if counts.iter().try_fold(0u64, |a, c| a.checked_add(*c)) != Some(total) {
            return Err(corrupt("counts per kind do not add up to the total".into()));
        }

        let levels_any = u128_at(&bytes, OFF_LEVELS_ANY).unwrap_or(0);
        let levels_whole = levels_any | u128_at(&bytes, OFF_LEVELS_EXACT).unwrap_or(0);
        let mut levels = [0u8; 129];
        for (n, l) in levels.iter_mut().enumerate().take(128) {
            if levels_any >> n & 1 == 1 {
                *l |= LEVEL_SUFFIX;
            }
            if levels_whole >> n & 1 == 1 {
                *l |= LEVEL_WHOLE;
            }
        }
        let v4 = header(OFF_V4_LENGTHS);
        let v6 = [
            header(OFF_V6_LENGTHS),
            header(OFF_V6_LENGTHS + 8),
            header(OFF_V6_LENGTHS + 16),
        ];
        let info = SnapshotInfo {
            format_version: version,
            built_at: DateTime::<Utc>::from_timestamp(header(OFF_BUILT_AT) as i64, 0)
                .unwrap_or_default(),
            domains: counts[COUNT_DOMAINS],
            ipv4: counts[COUNT_IPV4],
            ipv6: counts[COUNT_IPV6],
            cidrs: counts[COUNT_CIDRS],
            urls: counts[COUNT_URLS],
            hashes: counts[COUNT_HASHES],
            total,
            checksum: stored,
            byte_len: available,
        };
        Ok(Snapshot {
            bytes,
            info,
            sections,
            slot_count,
            levels,
            // Bit n is n labels; no domains, no level.
            max_level: 127u32.saturating_sub(levels_whole.leading_zeros()),
            v4_lengths: (0..=32u8).rev().filter(|l| v4 >> l & 1 == 1).collect(),
            v6_lengths: (0..=128u8)
                .rev()
                .filter(|l| v6[usize::from(*l / 64)] >> (l % 64) & 1 == 1)
                .collect(),
        })
    }

    /// What the header says: version, build time, counts, checksum.
    pub fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    /// The file's bytes, e.g. to cache or serve them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file's bytes back, without a copy.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Indicators in the snapshot.
    pub fn len(&self) -> usize {
        self.info.total as usize
    }

    pub fn is_empty(&self) -> bool {
        self.info.total == 0
    }

    #[inline(always)]
    fn section(&self, i: usize) -> &[u8] {
        self.sections
            .get(i)
            .and_then(|r| self.bytes.get(r.clone()))
            .unwrap_or(&[])
    }

    fn string(&self, off: u32, len: u16) -> Option<&[u8]> {
        let off = off as usize;
        self.section(STRINGS).get(off..off + usize::from(len))
    }

    /// The entry record at `index`.
    #[inline(always)]
    fn entry(&self, index: u64) -> Option<&[u8]> {
        let at = usize::try_from(index).ok()?.checked_mul(ENTRY_LEN)?;
        self.section(ENTRIES).get(at..at.checked_add(ENTRY_LEN)?)
    }

    fn entry_value<'s>(&'s self, e: &[u8]) -> Option<&'s [u8]> {
        self.string(u32_at(e, 8)?, u16_at(e, 12)?)
    }

    fn hit(&self, e: &[u8]) -> Option<Hit<'_>> {
        let family = match u16_at(e, 14)? {
            NO_FAMILY => None,
            i => {
                let f = self.section(FAMILIES);
                let at = usize::from(i) * FAMILY_LEN;
                let name = self.string(u32_at(f, at)?, u16_at(f, at + 4)?)?;
                Some(std::str::from_utf8(name).ok()?)
            }
        };
        Some(Hit {
            id: i64::from_le_bytes(e.get(0..8)?.try_into().ok()?),
            kind: kind_from_code(*e.get(16)?)?,
            value: std::str::from_utf8(self.entry_value(e)?).ok()?,
            family,
            threat_type: threat_from_code(*e.get(17)?),
        })
    }

    /// Walks the probe sequence of `h` and returns the first entry with
    /// its fingerprint that `accept` takes.
    fn probe(&self, h: u64, accept: impl Fn(&[u8]) -> bool) -> Option<Hit<'_>> {
        self.hit(self.entry(self.probe_index(h, accept)?)?)
    }

    /// As [`probe`](Self::probe), the entry's index. Out of line: rarely
    /// called (the filters answer most lookups), and inlined it would make
    /// every lookup set up the table's sections.
    #[inline(never)]
    fn probe_index(&self, h: u64, accept: impl Fn(&[u8]) -> bool) -> Option<u64> {
        let slots = self.section(SLOTS);
        let want = fingerprint(h);
        let mut s = fast_range(h, self.slot_count);
        for _ in 0..self.slot_count {
            let slot = u64_at(slots, s as usize * SLOT_LEN)?;
            let fp = slot as u32;
            if fp == 0 {
                return None;
            }
            if fp == want
                && let Some(e) = self.entry(slot >> 32)
                && accept(e)
            {
                return Some(slot >> 32);
            }
            s += 1;
            if s == self.slot_count {
                s = 0;
            }
        }
        None
    }

    /// A domain entry equal to `suffix` (any case; values are stored
    /// lowercase); exact-host entries only if the suffix is the whole name.
    fn probe_domain(&self, h: u64, suffix: &[u8], whole: bool) -> Option<u64> {
        self.probe_index(h, |e| {
            e.get(16) == Some(&KIND_DOMAIN)
                && (whole || e.get(18).is_some_and(|f| f & FLAG_EXACT_HOST == 0))
                && self
                    .entry_value(e)
                    .is_some_and(|v| v.eq_ignore_ascii_case(suffix))
        })
    }

    /// The most specific listed domain that `name` is or is under. `name`
    /// is as seen on the wire or in a log: any ASCII case, optional
    /// trailing dot. Names that are not ASCII, are longer than 253 bytes
    /// or have an empty label never match.
    pub fn match_domain(&self, name: &[u8]) -> Option<Hit<'_>> {
        let name = name.strip_suffix(b".").unwrap_or(name);
        let len = name.len();
        if self.max_level == 0 || len == 0 || len > MAX_NAME {
            return None;
        }
        let filter = self.section(DOMAIN_FILTER);
        let mut state = SEED_DOMAIN;
        let mut end = len;
        let mut level = 0u32;
        let mut best = None;
        // Every byte read, to check the name is ASCII at the end.
        let mut bytes_or = 0u64;
        // Label by label from the right, eight bytes at a time: find the
        // dot, extend the suffix hash by the label. The least specific
        // suffix comes first, so a later hit replaces an earlier one.
        // Branches that depend on the name cost more than arithmetic here,
        // so there are few.
        loop {
            // The eight bytes before `end` hold a label of up to seven
            // bytes and its dot, or its last eight bytes.
            let mut window_end = end;
            let mut last_word = 0;
            let dot = loop {
                let (w, from) = if window_end >= 8 {
                    (load(name, window_end - 8), window_end - 8)
                } else if window_end == 0 {
                    break None;
                } else {
                    (tail(name, 0, window_end), 0)
                };
                if window_end == end {
                    last_word = w;
                }
                bytes_or |= w;
                let dots = dot_bits(w);
                if dots != 0 {
                    break Some(from + 7 - dots.leading_zeros() as usize / 8);
                }
                if from == 0 {
                    break None;
                }
                window_end = from;
            };
            let start = dot.map_or(0, |d| d + 1);
            let label_len = end - start;
            if label_len == 0 {
                return None;
            }
            level += 1;
            if level <= self.max_level {
                state = if label_len <= 8 && end >= 8 {
                    short_label_step(state, last_word >> ((8 - label_len) * 8))
                } else {
                    label_step(state, name, start, end)
                };
                let whole = dot.is_none();
                let want = if whole { LEVEL_WHOLE } else { LEVEL_SUFFIX };
                if self
                    .levels
                    .get(level as usize)
                    .is_some_and(|l| l & want != 0)
                {
                    let h = state;
                    if filter_has(filter, h)
                        && let Some(index) = self.probe_domain(h, name.get(start..)?, whole)
                    {
                        best = Some(index);
                    }
                }
            }
            match dot {
                Some(d) => end = d,
                None if bytes_or & HIGH_BITS == 0 => return self.hit(self.entry(best?)?),
                None => return None,
            }
        }
    }

    /// The listed address, or else the longest listed network holding it.
    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are looked up as IPv4.
    pub fn match_ip(&self, addr: IpAddr) -> Option<Hit<'_>> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        let filter = self.section(ADDRESS_FILTER);
        match addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a);
                if self.info.ipv4 > 0 {
                    let h = ipv4_hash(bits);
                    if filter_has(filter, h)
                        && let Some(hit) = self.probe(h, |e| {
                            e.get(16) == Some(&KIND_IPV4) && self.parsed::<Ipv4Addr>(e) == Some(a)
                        })
                    {
                        return Some(hit);
                    }
                }
                for &len in &self.v4_lengths {
                    let network = bits & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    let h = cidr4_hash(network, len);
                    if filter_has(filter, h)
                        && let Some(hit) = self.probe(h, |e| {
                            e.get(16) == Some(&KIND_CIDR)
                                && self.parsed::<IpNet>(e).is_some_and(|n| {
                                    n.prefix_len() == len
                                        && n.network() == IpAddr::V4(Ipv4Addr::from(network))
                                })
                        })
                    {
                        return Some(hit);
                    }
                }
                None
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                if self.info.ipv6 > 0 {
                    let h = ipv6_hash(bits);
                    if filter_has(filter, h)
                        && let Some(hit) = self.probe(h, |e| {
                            e.get(16) == Some(&KIND_IPV6) && self.parsed::<Ipv6Addr>(e) == Some(a)
                        })
                    {
                        return Some(hit);
                    }
                }
                for &len in &self.v6_lengths {
                    let network = bits & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    let h = cidr6_hash(network, len);
                    if filter_has(filter, h)
                        && let Some(hit) = self.probe(h, |e| {
                            e.get(16) == Some(&KIND_CIDR)
                                && self.parsed::<IpNet>(e).is_some_and(|n| {
                                    n.prefix_len() == len
                                        && n.network() == IpAddr::V6(Ipv6Addr::from(network))
                                })
                        })
                    {
                        return Some(hit);
                    }
                }
                None
            }
        }
    }

    /// An entry's value parsed; only for the rare fingerprint matches.
    fn parsed<T: std::str::FromStr>(&self, e: &[u8]) -> Option<T> {
        std::str::from_utf8(self.entry_value(e)?).ok()?.parse().ok()
    }

    /// Exact match of a canonical URL (the caller canonicalises).
    pub fn match_url(&self, canonical_url: &str) -> Option<Hit<'_>> {
        if self.info.urls == 0 {
            return None;
        }
        let url = canonical_url.as_bytes();
        let h = url_hash(url);
        if !filter_has(self.section(ADDRESS_FILTER), h) {
            return None;
        }
        self.probe(h, |e| {
            e.get(16) == Some(&KIND_URL) && self.entry_value(e) == Some(url)
        })
    }

    /// A file hash: MD5, SHA-1 or SHA-256 by length, hex in any case.
    pub fn match_hash(&self, hex: &str) -> Option<Hit<'_>> {
        if self.info.hashes == 0 || !matches!(hex.len(), 32 | 40 | 64) {
            return None;
        }
        let mut buf = [0u8; 64];
        let lower = buf.get_mut(..hex.len())?;
        for (d, b) in lower.iter_mut().zip(hex.bytes()) {
            *d = b.to_ascii_lowercase();
        }
        let lower = &*lower;
        let h = digest_hash(lower);
        if !filter_has(self.section(ADDRESS_FILTER), h) {
            return None;
        }
        self.probe(h, |e| {
            e.get(16)
                .and_then(|k| kind_from_code(*k))
                .is_some_and(|k| k.is_hash())
                && self.entry_value(e) == Some(lower)
        })
    }
}

#[cfg(test)]
mod tests {
    use khien_model::{ObservableKind, ThreatType};

    use super::*;
    use crate::{Entry, SnapshotBuilder};

    fn sample_bytes() -> Vec<u8> {
        let mut b = SnapshotBuilder::new();
        let entries = [
            (ObservableKind::Domain, "evil.com", false),
            (ObservableKind::Domain, "b.evil.com", false),
            (ObservableKind::Domain, "host.example", true),
            (ObservableKind::Ipv4, "192.0.2.1", false),
            (ObservableKind::Ipv6, "2001:db8::1", false),
            (ObservableKind::Cidr, "10.0.0.0/8", false),
            (ObservableKind::Cidr, "2001:db8:1::/48", false),
            (ObservableKind::Url, "http://evil.com/x", false),
            (
                ObservableKind::Md5,
                "d41d8cd98f00b204e9800998ecf8427e",
                false,
            ),
        ];
        for (i, (kind, value, exact_host)) in entries.into_iter().enumerate() {
            b.add(&Entry {
                id: i as i64,
                kind,
                value,
                exact_host,
                family: Some("fam"),
                threat_type: ThreatType::Phishing,
            })
            .unwrap();
        }
        b.build(DateTime::from_timestamp(0, 0).unwrap())
    }

    fn look_everything_up(s: &Snapshot) {
        for name in [
            "evil.com",
            "a.b.evil.com",
            "host.example",
            "x.host.example",
            "c.d",
        ] {
            let _ = s.match_domain(name.as_bytes());
        }
        for ip in [
            "192.0.2.1",
            "10.1.1.1",
            "2001:db8::1",
            "2001:db8:1::5",
            "::ffff:10.0.0.1",
        ] {
            let _ = s.match_ip(ip.parse().unwrap());
        }
        let _ = s.match_url("http://evil.com/x");
        let _ = s.match_hash("d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn debug_shows_the_header_not_the_bytes() {
        let s = Snapshot::from_bytes(sample_bytes()).unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains("total: 9") && shown.len() < 600, "{shown}");
    }

    #[test]
    fn a_snapshot_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Snapshot>();
        let s = std::sync::Arc::new(Snapshot::from_bytes(sample_bytes()).unwrap());
        let t = {
            let s = s.clone();
            std::thread::spawn(move || s.match_domain(b"x.evil.com").map(|h| h.id))
        };
        assert_eq!(t.join().unwrap(), Some(0));
    }

    /// A file can pass the checksum and still lie (a buggy or hostile
    /// writer): every byte changed, checksum fixed up, must load or be
    /// refused, and lookups must not panic.
    #[test]
    fn a_lying_file_with_a_good_checksum_never_panics() {
        let good = sample_bytes();
        for i in OFF_CHECKSUM + 8..good.len() {
            for x in [0x01u8, 0x10, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] ^= x;
                let sum = checksum_of(&b);
                b[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
                if let Ok(s) = Snapshot::from_bytes(b) {
                    look_everything_up(&s);
                }
            }
        }
    }

    #[test]
    fn a_table_without_an_empty_slot_ends_the_probe() {
        // Every slot taken by a fingerprint no key has: lookups walk the
        // whole table once, then give up.
        let mut b = sample_bytes();
        let slots = Snapshot::from_bytes(b.clone()).unwrap().sections[SLOTS].clone();
        for at in slots.step_by(SLOT_LEN) {
            b[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
        }
        let sum = checksum_of(&b);
        b[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
        let s = Snapshot::from_bytes(b).unwrap();
        look_everything_up(&s);
        assert!(s.match_domain(b"evil.com").is_none());
    }
}
