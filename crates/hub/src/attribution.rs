//! The interval index: who held an address (and port) at a time.
//!
//! Built per organisation from the store's assignment rows
//! ([`khien_store::AssignmentRow`]) and queried once per ingested hit, so
//! it lives in memory: a hash map from address (IPv4) or prefix (IPv6, per
//! prefix length present) to the intervals on it, sorted by start; CGNAT
//! port blocks sit in an ordered map by first port under their public
//! address.
//!
//! Rules of a lookup at time `t`:
//!
//! - an interval covers `[start, end)`; an open one (no end yet) covers
//!   everything from its start;
//! - of the intervals covering `t`, the one that started **last** wins: a
//!   session whose Stop was lost is superseded by the next session on the
//!   same address, as when the address is reused by another subscriber;
//! - a hit with a port goes to the port block that holds it; one without
//!   a port on a CGNAT address is attributed only if every block covering
//!   `t` belongs to the same subscriber (otherwise it is ambiguous and
//!   stays unattributed);
//! - a CGNAT block that names an inside address instead of a subscriber
//!   is resolved once more, through the inside address at the same time;
//! - IPv6 prefixes (delegated /56, /64 …) are tried longest first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use khien_store::AssignmentRow;

/// What an interval points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Subscriber(i64),
    Inside(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Interval {
    start: i64,
    /// Exclusive; `i64::MAX` while open.
    end: i64,
    target: Target,
}

#[derive(Debug, Default)]
struct Address {
    plain: Vec<Interval>,
    /// By first port: (last port, intervals).
    blocks: BTreeMap<u16, Vec<(u16, Interval)>>,
}

/// The interval index of one organisation.
#[derive(Debug, Default)]
pub struct AttributionIndex {
    v4: HashMap<u32, Address>,
    v6: HashMap<(u8, u128), Address>,
    /// IPv6 prefix lengths present, longest first.
    v6_lengths: Vec<u8>,
    intervals: usize,
    skipped: usize,
}

/// Why a row was left out of the index.
fn target(row: &AssignmentRow) -> Option<Target> {
    match (row.subscriber_id, &row.inside) {
        (Some(s), _) => Some(Target::Subscriber(s)),
        (None, Some(inside)) => inside.parse().ok().map(Target::Inside),
        (None, None) => None,
    }
}

fn latest_covering<'a>(
    intervals: impl Iterator<Item = &'a Interval>,
    t: i64,
) -> Option<&'a Interval> {
    intervals
        .filter(|i| i.start <= t && t < i.end)
        .max_by_key(|i| i.start)
}

impl AttributionIndex {
    /// Adds a stored row; rows whose network does not parse or that point
    /// nowhere are counted as skipped.
    pub fn insert(&mut self, row: &AssignmentRow) {
        let (Ok(net), Some(target)) = (row.network.parse::<IpNet>(), target(row)) else {
            self.skipped += 1;
            return;
        };
        let interval = Interval {
            start: row.start_at,
            end: row.end_at.unwrap_or(i64::MAX),
            target,
        };
        let address = match net {
            IpNet::V4(n) => self.v4.entry(u32::from(n.network())).or_default(),
            IpNet::V6(n) => {
                let len = n.prefix_len();
                if !self.v6_lengths.contains(&len) {
                    self.v6_lengths.push(len);
                    self.v6_lengths.sort_unstable_by(|a, b| b.cmp(a));
                }
                self.v6.entry((len, u128::from(n.network()))).or_default()
            }
        };
        match row.ports {
            Some((first, last)) => address
                .blocks
                .entry(first)
                .or_default()
                .push((last, interval)),
            None => address.plain.push(interval),
        }
        self.intervals += 1;
    }

    /// Builds an index from rows.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a AssignmentRow>) -> Self {
        let mut index = Self::default();
        for r in rows {
            index.insert(r);
        }
        index
    }

    /// Intervals held.
    pub fn len(&self) -> usize {
        self.intervals
    }

    pub fn is_empty(&self) -> bool {
        self.intervals == 0
    }

    /// Rows left out (unparsable network, no target).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The addresses (IPv4) and prefixes (IPv6) that one of `subscribers`
    /// holds on its own at `t`, from sessions and leases, sorted. Public
    /// addresses with CGNAT port blocks are left out: they are shared, and
    /// the operator's resolvers see the inside address anyway.
    pub fn held_by(&self, subscribers: &HashSet<i64>, t: i64) -> Vec<IpNet> {
        let holder = |a: &Address| {
            if !a.blocks.is_empty() {
                return None;
            }
            match latest_covering(a.plain.iter(), t)?.target {
                Target::Subscriber(s) if subscribers.contains(&s) => Some(()),
                _ => None,
            }
        };
        let mut out: Vec<IpNet> = self
            .v4
            .iter()
            .filter(|(_, a)| holder(a).is_some())
            .map(|(&bits, _)| IpNet::V4(Ipv4Net::from(Ipv4Addr::from(bits))))
            .chain(
                self.v6
                    .iter()
                    .filter(|(_, a)| holder(a).is_some())
                    .filter_map(|(&(len, bits), _)| {
                        Ipv6Net::new(Ipv6Addr::from(bits), len).ok().map(IpNet::V6)
                    }),
            )
            .collect();
        out.sort_unstable();
        out
    }

    fn address(&self, addr: IpAddr) -> Option<&Address> {
        match addr {
            IpAddr::V4(a) => self.v4.get(&u32::from(a)),
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                self.v6_lengths.iter().find_map(|&len| {
                    let mask = if len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - u32::from(len))
                    };
                    self.v6.get(&(len, bits & mask))
                })
            }
        }
    }

    /// The subscriber who held `addr` (and `port`, behind CGNAT) at unix
    /// time `t`, if the index knows one.
    pub fn lookup(&self, addr: IpAddr, port: Option<u16>, t: i64) -> Option<i64> {
        self.resolve(addr, port, t, true)
    }

    fn resolve(&self, addr: IpAddr, port: Option<u16>, t: i64, follow: bool) -> Option<i64> {
        let a = self.address(addr)?;
        let found = if a.blocks.is_empty() {
            latest_covering(a.plain.iter(), t).map(|i| i.target)
        } else {
            self.in_blocks(a, port, t)
                .or_else(|| latest_covering(a.plain.iter(), t).map(|i| i.target))
        };
        match found? {
            Target::Subscriber(s) => Some(s),
            Target::Inside(inside) if follow => self.resolve(inside, None, t, false),
            Target::Inside(_) => None,
        }
    }

    fn in_blocks(&self, a: &Address, port: Option<u16>, t: i64) -> Option<Target> {
        match port {
            Some(p) => a.blocks.range(..=p).rev().find_map(|(_, list)| {
                latest_covering(
                    list.iter().filter(|(last, _)| *last >= p).map(|(_, i)| i),
                    t,
                )
                .map(|i| i.target)
            }),
            None => {
                // Without a port, only an unambiguous answer will do.
                let mut seen: Option<i64> = None;
                for list in a.blocks.values() {
                    let Some(i) = latest_covering(list.iter().map(|(_, i)| i), t) else {
                        continue;
                    };
                    let s = match i.target {
                        Target::Subscriber(s) => s,
                        Target::Inside(inside) => self.resolve(inside, None, t, false)?,
                    };
                    if seen.is_some_and(|x| x != s) {
                        return None;
                    }
                    seen = Some(s);
                }
                seen.map(Target::Subscriber)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(net: &str, sub: Option<i64>, start: i64, end: Option<i64>) -> AssignmentRow {
        AssignmentRow {
            id: 0,
            network: net.into(),
            ports: None,
            subscriber_id: sub,
            inside: None,
            start_at: start,
            end_at: end,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn held_by_lists_current_sessions_of_the_given_subscribers_only() {
        let mut cgnat = row("203.0.113.7/32", Some(1), 100, None);
        cgnat.ports = Some((1024, 2047));
        let idx = AttributionIndex::from_rows(&[
            row("113.161.1.2/32", Some(1), 100, Some(200)),
            row("113.161.1.2/32", Some(2), 3700, None),
            row("113.161.1.9/32", Some(1), 3000, None),
            row("2405:4800:1::/56", Some(1), 100, None),
            row("113.161.1.4/32", Some(3), 100, None),
            cgnat,
        ]);
        let wanted: HashSet<i64> = [1].into_iter().collect();
        let text = |t| {
            idx.held_by(&wanted, t)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            text(150),
            ["113.161.1.2/32", "2405:4800:1::/56"],
            "the shared CGNAT address is not listed"
        );
        // Later the first address went to subscriber 2, and 1 has another.
        assert_eq!(text(4000), ["113.161.1.9/32", "2405:4800:1::/56"]);
        assert!(idx.held_by(&HashSet::new(), 4000).is_empty());
    }

    #[test]
    fn intervals_are_half_open_and_the_latest_start_wins() {
        let idx = AttributionIndex::from_rows(&[
            row("113.161.1.2/32", Some(1), 100, Some(200)),
            // Reuse by another subscriber an hour later.
            row("113.161.1.2/32", Some(2), 3700, None),
            // A session whose Stop was lost, overlapped by a newer one.
            row("113.161.1.3/32", Some(3), 100, None),
            row("113.161.1.3/32", Some(4), 150, Some(300)),
        ]);
        let a = ip("113.161.1.2");
        assert_eq!(idx.lookup(a, None, 99), None);
        assert_eq!(idx.lookup(a, None, 100), Some(1), "start is inside");
        assert_eq!(idx.lookup(a, None, 199), Some(1));
        assert_eq!(idx.lookup(a, None, 200), None, "end is outside");
        assert_eq!(idx.lookup(a, None, 3700), Some(2));
        assert_eq!(idx.lookup(a, None, i64::MAX - 1), Some(2), "open interval");
        let b = ip("113.161.1.3");
        assert_eq!(idx.lookup(b, None, 120), Some(3));
        assert_eq!(idx.lookup(b, None, 200), Some(4));
        assert_eq!(idx.lookup(b, None, 300), Some(3), "back to the open one");
        assert_eq!(idx.lookup(ip("10.0.0.1"), None, 150), None);
    }

    #[test]
    fn ipv6_prefixes_match_longest_first() {
        let idx = AttributionIndex::from_rows(&[
            row("2001:db8:100::/56", Some(1), 0, None),
            row("2001:db8:100:5::/64", Some(2), 0, None),
        ]);
        assert_eq!(idx.lookup(ip("2001:db8:100:5::9"), None, 10), Some(2));
        assert_eq!(idx.lookup(ip("2001:db8:100:7::9"), None, 10), Some(1));
        assert_eq!(idx.lookup(ip("2001:db8:200::1"), None, 10), None);
    }

    #[test]
    fn cgnat_blocks_go_by_port_and_through_inside_addresses() {
        let block =
            |first, last, sub: Option<i64>, inside: Option<&str>, start, end| AssignmentRow {
                id: 0,
                network: "203.0.113.5/32".into(),
                ports: Some((first, last)),
                subscriber_id: sub,
                inside: inside.map(str::to_string),
                start_at: start,
                end_at: end,
            };
        let idx = AttributionIndex::from_rows(&[
            block(1024, 1535, Some(7), None, 0, None),
            block(1536, 2047, None, Some("100.64.0.9"), 0, Some(1000)),
            row("100.64.0.9/32", Some(8), 0, None),
            block(1536, 2047, Some(9), None, 1000, None),
        ]);
        let public = ip("203.0.113.5");
        assert_eq!(idx.lookup(public, Some(1024), 10), Some(7));
        assert_eq!(idx.lookup(public, Some(1535), 10), Some(7));
        assert_eq!(idx.lookup(public, Some(1600), 10), Some(8), "via inside");
        assert_eq!(
            idx.lookup(public, Some(1600), 1000),
            Some(9),
            "block reused"
        );
        assert_eq!(idx.lookup(public, Some(80), 10), None, "no block holds it");
        assert_eq!(
            idx.lookup(public, None, 10),
            None,
            "ambiguous without a port"
        );
        let single = AttributionIndex::from_rows(&[block(1024, 1535, Some(7), None, 0, None)]);
        assert_eq!(
            single.lookup(public, None, 10),
            Some(7),
            "one block, one answer"
        );
    }

    #[test]
    fn rows_that_point_nowhere_are_skipped() {
        let idx = AttributionIndex::from_rows(&[
            row("not a network", Some(1), 0, None),
            row("10.0.0.1/32", None, 0, None),
        ]);
        assert_eq!((idx.len(), idx.skipped()), (0, 2));
    }
}
