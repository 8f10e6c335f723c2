//! Compiling indicators into the file's bytes.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use khien_model::ObservableKind;

use crate::hash::{
    cidr4_hash, cidr6_hash, digest_hash, domain_hash, fast_range, filter_add, filter_words,
    fingerprint, ipv4_hash, ipv6_hash, url_hash,
};
use crate::layout::*;
use crate::{Entry, Error, FORMAT_VERSION, MAGIC};

/// Longest family name kept; longer ones are refused.
const MAX_FAMILY: usize = 255;
/// Room kept in the 32-bit string offsets for the family names.
const FAMILY_RESERVE: u64 = (u16::MAX as u64) * MAX_FAMILY as u64;

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

/// Collects indicators and writes the snapshot file.
///
/// The file does not depend on the order of [`add`](Self::add) calls, only
/// on the set of entries and the build time, and its checksum not on the
/// build time: it changes only when the content does.
#[derive(Default)]
pub struct SnapshotBuilder {
    pending: Vec<Pending>,
    /// Values in the order added.
    strings: Vec<u8>,
    families: Vec<String>,
    family_index: HashMap<String, u16>,
    dedupe: Dedupe,
    counts: [u64; 6],
    levels_any: u128,
    levels_exact: u128,
    v4_lengths: u64,
    v6_lengths: [u64; 3],
}

impl std::fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("entries", &self.pending.len())
            .field("families", &self.families.len())
            .field("value_bytes", &self.strings.len())
            .finish_non_exhaustive()
    }
}

impl SnapshotBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries added, repeated values counted once.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Adds an indicator. Its value must be normalised as the store holds
    /// it; the same (kind, value) twice keeps the first. IPv4-mapped IPv6
    /// addresses and networks are kept as IPv4, as lookups see them so.
    pub fn add(&mut self, entry: &Entry<'_>) -> Result<(), Error> {
        let invalid = |reason: &str| Error::InvalidValue {
            kind: entry.kind,
            value: entry.value.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        let Some(mut kind) = kind_code(entry.kind) else {
            return Err(Error::UnsupportedKind { kind: entry.kind });
        };
        let mut canonical = None::<String>;
        let mut flags = 0u8;
        let value = entry.value;
        let (hash, count) = match entry.kind {
            ObservableKind::Domain => {
                let labels = domain_labels(value).ok_or_else(|| {
                    invalid("not a normalised domain name (lowercase ASCII, no empty label, no trailing dot)")
                })?;
                if entry.exact_host {
                    flags = FLAG_EXACT_HOST;
                    self.levels_exact |= 1 << labels;
                } else {
                    self.levels_any |= 1 << labels;
                }
                (domain_hash(value.as_bytes()), COUNT_DOMAINS)
            }
            ObservableKind::Ipv4 | ObservableKind::Ipv6 => {
                let ip: IpAddr = value.parse().map_err(|_| invalid("not an IP address"))?;
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                    v4 => v4,
                };
                canonical = Some(ip.to_string());
                match ip {
                    IpAddr::V4(a) => {
                        kind = KIND_IPV4;
                        (ipv4_hash(u32::from(a)), COUNT_IPV4)
                    }
                    IpAddr::V6(a) => {
                        kind = KIND_IPV6;
                        (ipv6_hash(u128::from(a)), COUNT_IPV6)
                    }
                }
            }
            ObservableKind::Cidr => {
                // A bare address is its host network.
                let net: IpNet = value
                    .parse()
                    .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| invalid("not a network"))?;
                let net = unmap_net(net.trunc());
                canonical = Some(net.to_string());
                let len = net.prefix_len();
                let hash = match net {
                    IpNet::V4(n) => {
                        self.v4_lengths |= 1 << len;
                        cidr4_hash(u32::from(n.network()), len)
                    }
                    IpNet::V6(n) => {
                        self.v6_lengths[usize::from(len / 64)] |= 1 << (len % 64);
                        cidr6_hash(u128::from(n.network()), len)
                    }
                };
                (hash, COUNT_CIDRS)
            }
            ObservableKind::Url => {
                if value.is_empty() || value.len() > usize::from(u16::MAX) {
                    return Err(invalid("URL empty or longer than 65535 bytes"));
                }
                (url_hash(value.as_bytes()), COUNT_URLS)
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
                (digest_hash(value.as_bytes()), COUNT_HASHES)
            }
            ObservableKind::Email | ObservableKind::Phone => {
                return Err(Error::UnsupportedKind { kind: entry.kind });
            }
        };
        let value = canonical.as_deref().unwrap_or(value);
        if self.pending.len() >= u32::MAX as usize {
            return Err(Error::TooLarge {
                what: "indicators",
                max: u64::from(u32::MAX),
            });
        }
        if self.strings.len() as u64 + value.len() as u64 > u64::from(u32::MAX) - FAMILY_RESERVE {
            return Err(Error::TooLarge {
                what: "bytes of values",
                max: u64::from(u32::MAX) - FAMILY_RESERVE,
            });
        }
        let family = match entry.family {
            None => Some(NO_FAMILY),
            Some(name) => {
                if name.len() > MAX_FAMILY {
                    return Err(invalid("family name longer than 255 bytes"));
                }
                let known = self.family_index.get(name).copied();
                if known.is_none() && self.families.len() >= usize::from(NO_FAMILY) {
                    return Err(Error::TooLarge {
                        what: "families",
                        max: u64::from(NO_FAMILY),
                    });
                }
                known
            }
        };
        let index = self.pending.len() as u32;
        let value_off = self.strings.len() as u32;
        if !self.dedupe.insert(
            &self.pending,
            &self.strings,
            hash,
            kind,
            value.as_bytes(),
            index,
        ) {
            return Ok(());
        }
        // A family is recorded only with an entry that uses it.
        let family = family.unwrap_or_else(|| {
            let i = self.families.len() as u16;
            let name = entry.family.unwrap_or_default();
            self.families.push(name.to_owned());
            self.family_index.insert(name.to_owned(), i);
            i
        });
        self.strings.extend_from_slice(value.as_bytes());
        self.pending.push(Pending {
            hash,
            id: entry.id,
            value_off,
            value_len: value.len() as u16,
            family,
            kind,
            threat: threat_code(entry.threat_type),
            flags,
        });
        self.counts[count] += 1;
        Ok(())
    }

    /// Writes the snapshot file's bytes.
    pub fn build(self, built_at: DateTime<Utc>) -> Vec<u8> {
        let SnapshotBuilder {
            mut pending,
            strings,
            families,
            counts,
            levels_any,
            levels_exact,
            v4_lengths,
            v6_lengths,
            ..
        } = self;
        let value_of = |p: &Pending| {
            let at = p.value_off as usize;
            strings
                .get(at..at + usize::from(p.value_len))
                .unwrap_or(&[])
        };
        // Sorted by key, the file depends on the set of entries only, and
        // the table fills front to back (its slot is monotonic in the hash).
        pending.sort_unstable_by(|a, b| {
            (a.hash, a.kind)
                .cmp(&(b.hash, b.kind))
                .then_with(|| value_of(a).cmp(value_of(b)))
        });
        let mut family_order: Vec<usize> = (0..families.len()).collect();
        family_order.sort_unstable_by(|a, b| families[*a].cmp(&families[*b]));
        let mut family_new = vec![0u16; families.len()];
        for (new, old) in family_order.iter().enumerate() {
            family_new[*old] = new as u16;
        }

        let n = pending.len();
        let domains = counts[COUNT_DOMAINS];
        let cap = (n as u64 + n as u64 / 2 + 1).max(8);
        let lens = [
            n * ENTRY_LEN,
            strings.len() + families.iter().map(String::len).sum::<usize>(),
            families.len() * FAMILY_LEN,
            cap as usize * SLOT_LEN,
            filter_words(domains) as usize * 8,
            filter_words(n as u64 - domains) as usize * 8,
        ];
        let mut starts = [0usize; 6];
        let mut at = DATA_START;
        for (s, len) in starts.iter_mut().zip(lens) {
            *s = at;
            at += len;
        }
        let mut out = Vec::with_capacity(at);

        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&built_at.timestamp().to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // checksum, filled last
        out.extend_from_slice(&(n as u64).to_le_bytes());
        for c in counts {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out.extend_from_slice(&levels_any.to_le_bytes());
        out.extend_from_slice(&levels_exact.to_le_bytes());
        out.extend_from_slice(&v4_lengths.to_le_bytes());
        for w in v6_lengths {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&0u64.to_le_bytes());
        for (s, len) in starts.iter().zip(lens) {
            out.extend_from_slice(&(*s as u64).to_le_bytes());
            out.extend_from_slice(&(len as u64).to_le_bytes());
        }
        debug_assert_eq!(out.len(), DATA_START);

        // Entries, with their values' offsets in the sorted arena.
        let mut value_at = 0u32;
        for p in &pending {
            out.extend_from_slice(&p.id.to_le_bytes());
            out.extend_from_slice(&value_at.to_le_bytes());
            out.extend_from_slice(&p.value_len.to_le_bytes());
            let family = family_new.get(usize::from(p.family)).copied();
            out.extend_from_slice(&family.unwrap_or(NO_FAMILY).to_le_bytes());
            out.extend_from_slice(&[p.kind, p.threat, p.flags, 0]);
            value_at += u32::from(p.value_len);
        }
        for p in &pending {
            out.extend_from_slice(value_of(p));
        }
        let mut family_records = Vec::with_capacity(lens[FAMILIES]);
        for &old in &family_order {
            let name = families[old].as_bytes();
            family_records.extend_from_slice(&((out.len() - starts[STRINGS]) as u32).to_le_bytes());
            family_records.extend_from_slice(&(name.len() as u16).to_le_bytes());
            family_records.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name);
        }
        out.extend_from_slice(&family_records);
        drop(strings);

        // The table, linear probing; filled in hash order, so mostly front
        // to back.
        out.resize(starts[SLOTS] + lens[SLOTS], 0);
        {
            let slots = &mut out[starts[SLOTS]..];
            for (index, p) in pending.iter().enumerate() {
                let mut s = fast_range(p.hash, cap) as usize;
                loop {
                    let at = s * SLOT_LEN;
                    if slots[at..at + 4] == [0; 4] {
                        let slot = u64::from(fingerprint(p.hash)) | (index as u64) << 32;
                        slots[at..at + 8].copy_from_slice(&slot.to_le_bytes());
                        break;
                    }
                    s = if s + 1 == cap as usize { 0 } else { s + 1 };
                }
            }
        }

        let mut domain_filter = vec![0u64; lens[DOMAIN_FILTER] / 8];
        let mut address_filter = vec![0u64; lens[ADDRESS_FILTER] / 8];
        for p in &pending {
            if p.kind == KIND_DOMAIN {
                filter_add(&mut domain_filter, p.hash);
            } else {
                filter_add(&mut address_filter, p.hash);
            }
        }
        for w in domain_filter.iter().chain(&address_filter) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        debug_assert_eq!(out.len(), at);

        let checksum = checksum_of(&out);
        out[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&checksum.to_le_bytes());
        out
    }
}

/// Labels of a normalised domain name, or `None` if it is not one.
fn domain_labels(value: &str) -> Option<u32> {
    let b = value.as_bytes();
    if b.is_empty()
        || b.len() > MAX_NAME
        || b.iter().any(|c| !c.is_ascii() || c.is_ascii_uppercase())
    {
        return None;
    }
    let mut labels = 0;
    for label in b.split(|c| *c == b'.') {
        if label.is_empty() {
            return None;
        }
        labels += 1;
    }
    Some(labels)
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 one.
fn unmap_net(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net
        && n.prefix_len() >= 96
        && let Some(v4) = n.network().to_ipv4_mapped()
        && let Ok(v4net) = ipnet::Ipv4Net::new(v4, n.prefix_len() - 96)
    {
        return IpNet::V4(v4net);
    }
    net
}

/// Finds repeated (kind, value) keys while adding: a table of entry
/// indices keyed by the entries' own hashes.
#[derive(Default)]
struct Dedupe {
    /// Entry index + 1; 0 is empty. Length a power of two, at most half full.
    slots: Vec<u32>,
}

impl Dedupe {
    /// Records `index` unless an equal key is already there; true if new.
    fn insert(
        &mut self,
        pending: &[Pending],
        strings: &[u8],
        hash: u64,
        kind: u8,
        value: &[u8],
        index: u32,
    ) -> bool {
        if (pending.len() + 1) * 2 > self.slots.len() {
            self.grow(pending);
        }
        let mask = self.slots.len() - 1;
        let mut s = hash as usize & mask;
        loop {
            match self.slots[s] {
                0 => {
                    self.slots[s] = index + 1;
                    return true;
                }
                i => {
                    if let Some(p) = pending.get(i as usize - 1)
                        && p.hash == hash
                        && p.kind == kind
                    {
                        let at = p.value_off as usize;
                        if strings.get(at..at + usize::from(p.value_len)) == Some(value) {
                            return false;
                        }
                    }
                }
            }
            s = (s + 1) & mask;
        }
    }

    fn grow(&mut self, pending: &[Pending]) {
        let len = (self.slots.len() * 2).max(1024);
        self.slots = vec![0; len];
        let mask = len - 1;
        for (i, p) in pending.iter().enumerate() {
            let mut s = p.hash as usize & mask;
            while self.slots[s] != 0 {
                s = (s + 1) & mask;
            }
            self.slots[s] = i as u32 + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use khien_model::ThreatType;

    use super::*;

    fn domain<'a>(value: &'a str, family: Option<&'a str>) -> Entry<'a> {
        Entry {
            id: 1,
            kind: ObservableKind::Domain,
            value,
            exact_host: false,
            family,
            threat_type: ThreatType::C2,
        }
    }

    #[test]
    fn repeats_are_found_across_table_growth() {
        let names: Vec<String> = (0..5000).map(|i| format!("n{i}.example")).collect();
        let mut b = SnapshotBuilder::new();
        for round in 0..2 {
            for n in &names {
                b.add(&domain(n, None)).unwrap();
            }
            assert_eq!(b.len(), names.len(), "round {round}");
        }
        // The same bytes under another kind are another indicator.
        b.add(&Entry {
            kind: ObservableKind::Url,
            ..domain("n1.example", None)
        })
        .unwrap();
        assert_eq!(b.len(), names.len() + 1);
    }

    #[test]
    fn a_family_is_stored_once() {
        let names: Vec<String> = (0..100).map(|i| format!("n{i}.example")).collect();
        let mut b = SnapshotBuilder::new();
        for n in &names {
            b.add(&domain(n, Some("a-distinctive-family"))).unwrap();
        }
        // A family named only by a refused or repeated entry is not stored.
        b.add(&domain("n1.example", Some("unused-family"))).unwrap();
        assert!(b.add(&domain("BAD", Some("unused-family"))).is_err());
        let bytes = b.build(DateTime::from_timestamp(0, 0).unwrap_or_default());
        let count = |needle: &[u8]| bytes.windows(needle.len()).filter(|w| *w == needle).count();
        assert_eq!(count(b"a-distinctive-family"), 1);
        assert_eq!(count(b"unused-family"), 0);
    }
}
