//! The snapshot as a sensor uses it: suffix semantics, prefixes, exact
//! hosts, and damaged files.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::Utc;
use khien_matcher::{Entry, Error, Snapshot, SnapshotBuilder};
use khien_model::{ObservableKind, ThreatType};
use proptest::prelude::*;

fn build(entries: &[(ObservableKind, &str, bool)]) -> Snapshot {
    let mut b = SnapshotBuilder::new();
    for (i, (kind, value, exact)) in entries.iter().enumerate() {
        b.add(&Entry {
            id: i as i64 + 100,
            kind: *kind,
            value,
            exact_host: *exact,
            family: Some(if i % 2 == 0 { "mirai" } else { "emotet" }),
            threat_type: ThreatType::C2,
        })
        .unwrap();
    }
    Snapshot::from_bytes(b.build(Utc::now())).unwrap()
}

fn sample() -> Snapshot {
    build(&[
        (ObservableKind::Domain, "evil.com", false),
        (ObservableKind::Domain, "b.evil.com", false),
        (ObservableKind::Domain, "shared-host.net", true),
        (ObservableKind::Ipv4, "198.51.100.7", false),
        (ObservableKind::Cidr, "10.0.0.0/8", false),
        (ObservableKind::Cidr, "10.1.2.0/24", false),
        (ObservableKind::Ipv6, "2001:db8::7", false),
        (ObservableKind::Cidr, "2001:db8:ff::/48", false),
        (ObservableKind::Url, "http://evil.org/payload.exe", false),
        (
            ObservableKind::Sha256,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            false,
        ),
    ])
}

#[test]
fn domain_suffixes_most_specific_first() {
    let s = sample();
    assert_eq!(s.match_domain(b"evil.com").unwrap().value, "evil.com");
    assert_eq!(s.match_domain(b"A.x.EVIL.com.").unwrap().value, "evil.com");
    assert_eq!(s.match_domain(b"a.b.evil.com").unwrap().value, "b.evil.com");
    assert_eq!(s.match_domain(b"b.evil.com.").unwrap().id, 101);
    assert!(s.match_domain(b"notevil.com").is_none());
    assert!(s.match_domain(b"com").is_none());
    assert!(s.match_domain(b"evil.com.vn").is_none());
    assert!(s.match_domain(b"").is_none());
    assert!(s.match_domain(b".").is_none());
    assert!(s.match_domain("évil.com".as_bytes()).is_none());
}

#[test]
fn exact_host_matches_only_the_name_itself() {
    let s = sample();
    assert_eq!(
        s.match_domain(b"shared-host.net").unwrap().value,
        "shared-host.net"
    );
    assert!(s.match_domain(b"customer.shared-host.net").is_none());
}

#[test]
fn ip_exact_then_longest_prefix() {
    let s = sample();
    let ip = |x: &str| x.parse().unwrap();
    assert_eq!(
        s.match_ip(ip("198.51.100.7")).unwrap().value,
        "198.51.100.7"
    );
    assert!(s.match_ip(ip("198.51.100.8")).is_none());
    assert_eq!(s.match_ip(ip("10.1.2.3")).unwrap().value, "10.1.2.0/24");
    assert_eq!(s.match_ip(ip("10.9.9.9")).unwrap().value, "10.0.0.0/8");
    assert_eq!(
        s.match_ip(ip("::ffff:10.1.2.3")).unwrap().value,
        "10.1.2.0/24"
    );
    assert_eq!(
        s.match_ip(ip("2001:db8::7")).unwrap().kind,
        ObservableKind::Ipv6
    );
    assert_eq!(
        s.match_ip(ip("2001:db8:ff:1::1")).unwrap().value,
        "2001:db8:ff::/48"
    );
    assert!(s.match_ip(ip("2001:db8:fe::1")).is_none());
    assert!(s.match_ip(ip("11.0.0.1")).is_none());
}

#[test]
fn urls_and_hashes_match_exactly() {
    let s = sample();
    let hit = s.match_url("http://evil.org/payload.exe").unwrap();
    assert_eq!(hit.kind, ObservableKind::Url);
    assert_eq!(hit.family, Some("mirai"));
    assert!(s.match_url("http://evil.org/other").is_none());
    assert!(
        s.match_hash("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08")
            .is_some()
    );
    assert!(s.match_hash("0000").is_none());
}

#[test]
fn header_carries_counts_and_checksum() {
    let s = sample();
    let i = s.info();
    assert_eq!(
        (i.domains, i.ipv4, i.ipv6, i.cidrs, i.urls, i.hashes),
        (3, 1, 1, 3, 1, 1)
    );
    assert_eq!(i.total, 10);
    assert_eq!(i.byte_len as usize, s.as_bytes().len());
}

#[test]
fn same_entries_give_the_same_bytes() {
    let a = SnapshotBuilder::new();
    let b = SnapshotBuilder::new();
    let t = Utc::now();
    assert_eq!(a.build(t), b.build(t));
    let one = sample();
    let two = sample();
    assert_eq!(one.as_bytes()[32..], two.as_bytes()[32..]);
}

#[test]
fn damaged_files_are_refused_never_a_panic() {
    let bytes = sample().as_bytes().to_vec();
    for cut in 0..bytes.len() {
        assert!(
            Snapshot::from_bytes(bytes[..cut].to_vec()).is_err(),
            "cut at {cut}"
        );
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        // A flipped byte is caught (magic, version, layout or checksum).
        assert!(Snapshot::from_bytes(b).is_err(), "flip at {i}");
    }
    assert!(matches!(
        Snapshot::from_bytes(b"GARBAGE!".to_vec()),
        Err(Error::BadMagic)
    ));
    let mut v2 = bytes.clone();
    v2[8] = 2;
    assert!(matches!(
        Snapshot::from_bytes(v2),
        Err(Error::UnsupportedVersion { found: 2 })
    ));
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Against a naive reference: a name hits iff it or a parent is listed.
    #[test]
    fn agrees_with_a_naive_suffix_matcher(
        listed in proptest::collection::vec(proptest::collection::vec(label(), 1..4), 1..40),
        queries in proptest::collection::vec(proptest::collection::vec(label(), 1..6), 1..60),
    ) {
        let listed: BTreeSet<String> = listed.iter().map(|l| l.join(".")).collect();
        let entries: Vec<_> = listed.iter().map(|d| (ObservableKind::Domain, d.as_str(), false)).collect();
        let s = build(&entries);
        for d in &listed {
            prop_assert_eq!(s.match_domain(d.as_bytes()).map(|h| h.value), Some(d.as_str()));
        }
        let mut names: Vec<String> = queries.iter().map(|l| l.join(".")).collect();
        names.extend(listed.iter().map(|d| format!("x.{d}")));
        for name in names {
            let labels: Vec<&str> = name.split('.').collect();
            let expected = (0..labels.len())
                .map(|i| labels[i..].join("."))
                .find(|suffix| listed.contains(suffix));
            prop_assert_eq!(s.match_domain(name.as_bytes()).map(|h| h.value.to_owned()), expected);
        }
    }
}
