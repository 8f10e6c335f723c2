//! The snapshot as the hub builds it and a sensor uses it, one module per
//! theme: domain suffixes, addresses and networks, exact kinds, what a hit
//! carries, damaged files, and properties against a naive reference.
#![allow(clippy::unwrap_used)]

mod support {
    use chrono::{DateTime, Utc};
    use khien_matcher::{Entry, Snapshot, SnapshotBuilder};
    use khien_model::{ObservableKind, ThreatType};

    pub fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    /// Entry `i` gets id 100 + i, family "mirai" or "emotet", threat C2.
    pub fn builder(entries: &[(ObservableKind, &str, bool)]) -> SnapshotBuilder {
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
        b
    }

    pub fn build(entries: &[(ObservableKind, &str, bool)]) -> Snapshot {
        Snapshot::from_bytes(builder(entries).build(at())).unwrap()
    }

    pub fn domains(names: &[&str]) -> Snapshot {
        let entries: Vec<_> = names
            .iter()
            .map(|n| (ObservableKind::Domain, *n, false))
            .collect();
        build(&entries)
    }

    /// What a domain lookup found, as its listed value.
    pub fn domain_hit(s: &Snapshot, name: &str) -> Option<String> {
        s.match_domain(name.as_bytes()).map(|h| h.value.to_owned())
    }

    pub fn ip_hit(s: &Snapshot, addr: &str) -> Option<String> {
        s.match_ip(addr.parse().unwrap())
            .map(|h| h.value.to_owned())
    }

    /// One of each kind, nested domains and networks.
    pub fn sample() -> Snapshot {
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
}

mod domains {
    use khien_model::ObservableKind;

    use crate::support::*;

    #[test]
    fn a_listed_name_and_its_subdomains_hit_in_any_case_with_a_trailing_dot() {
        let s = domains(&["evil.com"]);
        for name in [
            "evil.com",
            "EVIL.com",
            "evil.com.",
            "a.x.Evil.COM.",
            "www.evil.com",
        ] {
            assert_eq!(domain_hit(&s, name).as_deref(), Some("evil.com"), "{name}");
        }
    }

    #[test]
    fn the_most_specific_listed_suffix_wins() {
        let s = domains(&["evil.com", "b.evil.com", "c.b.evil.com"]);
        assert_eq!(domain_hit(&s, "a.b.evil.com").unwrap(), "b.evil.com");
        assert_eq!(domain_hit(&s, "x.c.b.evil.com").unwrap(), "c.b.evil.com");
        assert_eq!(domain_hit(&s, "c.evil.com").unwrap(), "evil.com");
        assert_eq!(domain_hit(&s, "b.evil.com.").unwrap(), "b.evil.com");
    }

    #[test]
    fn siblings_parents_and_lookalikes_do_not_hit() {
        let s = domains(&["evil.com", "bad.com.vn"]);
        for name in [
            "notevil.com",
            "com",
            "evil.co",
            "vil.com",
            "evilcom",
            "evil.com.vn",
            "evil.comx",
            "com.vn",
            "xbad.com.vn",
            "bad.com",
            "evil",
        ] {
            assert_eq!(domain_hit(&s, name), None, "{name}");
        }
        assert_eq!(domain_hit(&s, "www.bad.com.vn").unwrap(), "bad.com.vn");
    }

    #[test]
    fn exact_host_matches_the_name_only() {
        let s = build(&[
            (ObservableKind::Domain, "shared-host.net", true),
            (ObservableKind::Domain, "evil.com", false),
            (ObservableKind::Domain, "site.evil.com", true),
        ]);
        assert_eq!(
            domain_hit(&s, "Shared-Host.net.").unwrap(),
            "shared-host.net"
        );
        assert_eq!(domain_hit(&s, "customer.shared-host.net"), None);
        assert_eq!(domain_hit(&s, "site.evil.com").unwrap(), "site.evil.com");
        // Under an exact host, the listed parent still covers the name.
        assert_eq!(domain_hit(&s, "a.site.evil.com").unwrap(), "evil.com");
    }

    #[test]
    fn malformed_names_never_hit() {
        let s = domains(&["evil.com"]);
        for name in [
            &b""[..],
            b".",
            b"..",
            b"evil.com..",
            b".evil.com",
            b"a..evil.com",
            b"\xc3\xa9vil.com",
            b"a.evil.com\x80",
            "é.evil.com".as_bytes(),
        ] {
            assert!(s.match_domain(name).is_none(), "{name:?}");
        }
        // Longer than a DNS name can be.
        let long = format!("{}.evil.com", "a".repeat(250));
        assert_eq!(domain_hit(&s, &long), None);
    }

    #[test]
    fn long_and_deep_names_hit() {
        let deep = (0..20)
            .map(|i| format!("l{i}"))
            .collect::<Vec<_>>()
            .join(".");
        let listed = format!("{deep}.example.org");
        let s = domains(&["evil.com", &listed]);
        // Dots beyond the first 64 and 128 bytes of the name.
        for len in [60, 70, 130, 200, 240] {
            let name = format!("{}.{}.evil.com", "x".repeat(len - 12), "y");
            assert!(name.len() <= 253);
            assert_eq!(domain_hit(&s, &name).as_deref(), Some("evil.com"), "{len}");
            let mut labels = vec!["abcdefghijk"; len / 12];
            labels.push("evil.com");
            let name = labels.join(".");
            assert_eq!(domain_hit(&s, &name).as_deref(), Some("evil.com"), "{len}");
        }
        assert_eq!(domain_hit(&s, &format!("A.{listed}")).unwrap(), listed);
        assert_eq!(domain_hit(&s, &format!("{deep}.example.org.x")), None);
        // 124 labels in 252 bytes, about the most a name can have.
        let many = format!("{}.evil.com", vec!["a"; 122].join("."));
        assert_eq!(many.len(), 252);
        assert_eq!(domain_hit(&s, &many).as_deref(), Some("evil.com"));
    }

    #[test]
    fn labels_longer_than_a_word_hit() {
        let s = domains(&["a-rather-long-label-of-many-bytes.example-of-length.vn"]);
        assert!(
            domain_hit(
                &s,
                "www.A-RATHER-long-label-of-many-bytes.example-of-length.vn"
            )
            .is_some()
        );
        assert!(domain_hit(&s, "a-rather-long-label-of-many-byte.example-of-length.vn").is_none());
        assert!(
            domain_hit(
                &s,
                "a-rather-long-label-of-many-bytesx.example-of-length.vn"
            )
            .is_none()
        );
    }
}

mod addresses {
    use khien_model::ObservableKind;

    use crate::support::*;

    #[test]
    fn exact_address_then_longest_prefix() {
        let s = sample();
        assert_eq!(ip_hit(&s, "198.51.100.7").unwrap(), "198.51.100.7");
        assert_eq!(ip_hit(&s, "198.51.100.8"), None);
        assert_eq!(ip_hit(&s, "10.1.2.3").unwrap(), "10.1.2.0/24");
        assert_eq!(ip_hit(&s, "10.1.3.3").unwrap(), "10.0.0.0/8");
        assert_eq!(ip_hit(&s, "10.255.255.255").unwrap(), "10.0.0.0/8");
        assert_eq!(ip_hit(&s, "11.0.0.1"), None);
        assert_eq!(ip_hit(&s, "9.255.255.255"), None);
    }

    #[test]
    fn an_exact_address_beats_a_network_holding_it() {
        let s = build(&[
            (ObservableKind::Cidr, "192.0.2.0/24", false),
            (ObservableKind::Cidr, "192.0.2.9/32", false),
            (ObservableKind::Ipv4, "192.0.2.9", false),
        ]);
        let hit = s.match_ip("192.0.2.9".parse().unwrap()).unwrap();
        assert_eq!((hit.kind, hit.value), (ObservableKind::Ipv4, "192.0.2.9"));
        assert_eq!(ip_hit(&s, "192.0.2.10").unwrap(), "192.0.2.0/24");
    }

    #[test]
    fn ipv6_exact_and_prefix() {
        let s = sample();
        let hit = s.match_ip("2001:db8::7".parse().unwrap()).unwrap();
        assert_eq!((hit.kind, hit.value), (ObservableKind::Ipv6, "2001:db8::7"));
        assert_eq!(ip_hit(&s, "2001:db8:ff:1::1").unwrap(), "2001:db8:ff::/48");
        assert_eq!(ip_hit(&s, "2001:db8:fe::1"), None);
        assert_eq!(ip_hit(&s, "2001:db8::8"), None);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_ipv4_address() {
        let s = build(&[
            (ObservableKind::Cidr, "10.1.2.0/24", false),
            (ObservableKind::Ipv4, "192.0.2.1", false),
            // Listed in mapped form, kept and found as IPv4.
            (ObservableKind::Ipv6, "::ffff:198.51.100.9", false),
            (ObservableKind::Cidr, "::ffff:203.0.113.0/120", false),
        ]);
        assert_eq!(ip_hit(&s, "::ffff:10.1.2.3").unwrap(), "10.1.2.0/24");
        assert_eq!(ip_hit(&s, "::ffff:192.0.2.1").unwrap(), "192.0.2.1");
        assert_eq!(ip_hit(&s, "198.51.100.9").unwrap(), "198.51.100.9");
        assert_eq!(ip_hit(&s, "203.0.113.77").unwrap(), "203.0.113.0/24");
        assert_eq!(s.info().ipv4, 2);
        assert_eq!(s.info().ipv6, 0);
    }

    #[test]
    fn networks_are_kept_in_network_form() {
        let s = build(&[
            (ObservableKind::Cidr, "10.1.2.3/16", false),
            (ObservableKind::Cidr, "192.0.2.1", false),
        ]);
        assert_eq!(ip_hit(&s, "10.1.200.1").unwrap(), "10.1.0.0/16");
        assert_eq!(ip_hit(&s, "192.0.2.1").unwrap(), "192.0.2.1/32");
    }

    #[test]
    fn default_routes_cover_everything_of_their_family() {
        let s = build(&[
            (ObservableKind::Cidr, "0.0.0.0/0", false),
            (ObservableKind::Cidr, "10.0.0.0/8", false),
        ]);
        assert_eq!(ip_hit(&s, "8.8.8.8").unwrap(), "0.0.0.0/0");
        assert_eq!(ip_hit(&s, "10.0.0.1").unwrap(), "10.0.0.0/8");
        assert_eq!(ip_hit(&s, "2001:db8::1"), None);
        let s = build(&[(ObservableKind::Cidr, "::/0", false)]);
        assert_eq!(ip_hit(&s, "2001:db8::1").unwrap(), "::/0");
    }
}

mod exact {
    use crate::support::*;

    #[test]
    fn urls_match_their_canonical_form_exactly() {
        let s = sample();
        assert_eq!(
            s.match_url("http://evil.org/payload.exe").unwrap().value,
            "http://evil.org/payload.exe"
        );
        for other in [
            "http://evil.org/payload.ex",
            "http://evil.org/Payload.exe",
            "https://evil.org/payload.exe",
            "",
        ] {
            assert!(s.match_url(other).is_none(), "{other}");
        }
        // A URL is not a domain and the other way round.
        assert!(s.match_domain(b"http://evil.org/payload.exe").is_none());
        assert!(s.match_url("evil.com").is_none());
    }

    #[test]
    fn hashes_match_by_length_in_any_case() {
        let sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
        let s = build(&[
            (khien_model::ObservableKind::Sha256, sha256, false),
            (khien_model::ObservableKind::Md5, md5, false),
            (khien_model::ObservableKind::Sha1, sha1, false),
        ]);
        for (hex, kind) in [
            (sha256, khien_model::ObservableKind::Sha256),
            (md5, khien_model::ObservableKind::Md5),
            (sha1, khien_model::ObservableKind::Sha1),
        ] {
            assert_eq!(s.match_hash(hex).unwrap().kind, kind);
            assert_eq!(s.match_hash(&hex.to_uppercase()).unwrap().value, hex);
        }
        assert!(s.match_hash(&sha256[..32]).is_none());
        assert!(s.match_hash(&sha256[..63]).is_none());
        assert!(s.match_hash("").is_none());
        assert!(s.match_hash("é").is_none());
    }
}

mod records {
    use chrono::Utc;
    use khien_matcher::{Entry, Error, FORMAT_VERSION, Snapshot, SnapshotBuilder};
    use khien_model::{ObservableKind, ThreatType};

    use crate::support::*;

    #[test]
    fn a_hit_carries_id_family_and_threat_type() {
        let mut b = SnapshotBuilder::new();
        for (i, t) in ThreatType::ALL.iter().enumerate() {
            let value = format!("t{i}.example");
            b.add(&Entry {
                id: -5 + i as i64 * 1_000_000_000_000,
                kind: ObservableKind::Domain,
                value: &value,
                exact_host: false,
                family: (i % 3 != 0).then_some(["qakbot", "lumma"][i % 2]),
                threat_type: *t,
            })
            .unwrap();
        }
        let s = Snapshot::from_bytes(b.build(at())).unwrap();
        for (i, t) in ThreatType::ALL.iter().enumerate() {
            let hit = s
                .match_domain(format!("x.t{i}.example").as_bytes())
                .unwrap();
            assert_eq!(hit.id, -5 + i as i64 * 1_000_000_000_000);
            assert_eq!(hit.kind, ObservableKind::Domain);
            assert_eq!(hit.threat_type, *t);
            assert_eq!(
                hit.family,
                (i % 3 != 0).then_some(["qakbot", "lumma"][i % 2])
            );
        }
    }

    #[test]
    fn a_repeated_value_keeps_the_first() {
        let mut b = SnapshotBuilder::new();
        for (id, family) in [(1, "first"), (2, "second")] {
            b.add(&Entry {
                id,
                kind: ObservableKind::Domain,
                value: "evil.example",
                exact_host: false,
                family: Some(family),
                threat_type: ThreatType::C2,
            })
            .unwrap();
        }
        assert_eq!(b.len(), 1);
        let s = Snapshot::from_bytes(b.build(at())).unwrap();
        let hit = s.match_domain(b"evil.example").unwrap();
        assert_eq!((hit.id, hit.family), (1, Some("first")));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn refused_entries_say_why_and_are_not_added() {
        let mut b = SnapshotBuilder::new();
        let entry = |kind, value| Entry {
            id: 1,
            kind,
            value,
            exact_host: false,
            family: None,
            threat_type: ThreatType::Unknown,
        };
        for kind in [ObservableKind::Email, ObservableKind::Phone] {
            let e = b.add(&entry(kind, "a@b.example")).unwrap_err();
            assert!(matches!(e, Error::UnsupportedKind { .. }), "{e}");
        }
        for (kind, value) in [
            (ObservableKind::Domain, "Evil.example"),
            (ObservableKind::Domain, "evil.example."),
            (ObservableKind::Domain, "evil..example"),
            (ObservableKind::Domain, ""),
            (ObservableKind::Domain, "évil.example"),
            (ObservableKind::Ipv4, "1.2.3"),
            (ObservableKind::Ipv6, "2001:db8::g"),
            (ObservableKind::Cidr, "10.0.0.0/33"),
            (ObservableKind::Url, ""),
            (ObservableKind::Sha256, "abc"),
            (ObservableKind::Md5, "D41D8CD98F00B204E9800998ECF8427E"),
        ] {
            let e = b.add(&entry(kind, value)).unwrap_err();
            assert!(matches!(e, Error::InvalidValue { .. }), "{e}");
            let message = e.to_string();
            assert!(
                message.contains(kind.as_str()) && message.contains(value),
                "{message}"
            );
        }
        let long_family = "f".repeat(256);
        let mut e = entry(ObservableKind::Domain, "ok.example");
        e.family = Some(&long_family);
        assert!(b.add(&e).is_err());
        assert!(b.is_empty());
        let s = Snapshot::from_bytes(b.build(at())).unwrap();
        assert!(s.is_empty() && s.match_domain(b"ok.example").is_none());
    }

    #[test]
    fn the_header_tells_counts_time_and_size() {
        let s = sample();
        let i = s.info();
        assert_eq!(
            (i.domains, i.ipv4, i.ipv6, i.cidrs, i.urls, i.hashes),
            (3, 1, 1, 3, 1, 1)
        );
        assert_eq!((i.total, s.len()), (10, 10));
        assert_eq!(i.format_version, FORMAT_VERSION);
        assert_eq!(i.built_at, at());
        assert_eq!(i.byte_len as usize, s.as_bytes().len());
        assert_eq!(&s.as_bytes()[..8], b"KHIENSNP");
        assert_eq!(i.checksum.to_le_bytes(), s.as_bytes()[24..32]);
    }

    #[test]
    fn the_same_indicators_give_the_same_content_and_checksum() {
        let entries = [
            (ObservableKind::Domain, "evil.com", false),
            (ObservableKind::Domain, "b.evil.com", true),
            (ObservableKind::Ipv4, "192.0.2.1", false),
            (ObservableKind::Cidr, "10.0.0.0/8", false),
            (ObservableKind::Url, "http://evil.org/x", false),
        ];
        let one = builder(&entries).build(at());
        assert_eq!(one, builder(&entries).build(at()));
        // Another order (families follow the entries) and another build time.
        let mut b = SnapshotBuilder::new();
        for (i, (kind, value, exact)) in entries.iter().enumerate().rev() {
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
        let two = b.build(Utc::now());
        assert_eq!(one[24..], two[24..]);
        let (a, b) = (
            Snapshot::from_bytes(one).unwrap(),
            Snapshot::from_bytes(two).unwrap(),
        );
        assert_eq!(a.info().checksum, b.info().checksum);
        assert_ne!(a.info().built_at, b.info().built_at);
        // Different content, different checksum.
        let three = build(&entries[..4]);
        assert_ne!(three.info().checksum, a.info().checksum);
    }

    #[test]
    fn an_empty_snapshot_loads_and_matches_nothing() {
        let s = Snapshot::from_bytes(SnapshotBuilder::new().build(at())).unwrap();
        assert!(s.is_empty());
        assert!(s.match_domain(b"a.example").is_none());
        assert!(s.match_ip("10.0.0.1".parse().unwrap()).is_none());
        assert!(s.match_url("http://a.example/").is_none());
        assert!(s.match_hash("d41d8cd98f00b204e9800998ecf8427e").is_none());
    }
}

mod damaged {
    use khien_matcher::{Error, Snapshot};

    use crate::support::*;

    const PROBES: [&str; 6] = [
        "evil.com",
        "a.b.evil.com",
        "shared-host.net",
        "x.shared-host.net",
        "notevil.com",
        "b.evil.com",
    ];

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample().as_bytes().to_vec();
        for cut in 0..bytes.len() {
            let e = Snapshot::from_bytes(bytes[..cut].to_vec()).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::BadMagic | Error::Truncated { .. } | Error::UnsupportedVersion { .. }
                ),
                "cut at {cut}: {e}"
            );
        }
    }

    #[test]
    fn every_flipped_byte_is_refused_or_changes_nothing() {
        let good = sample();
        let bytes = good.as_bytes().to_vec();
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                match Snapshot::from_bytes(b) {
                    Err(_) => {}
                    Ok(s) => {
                        // Only the build time is outside the checksum.
                        assert!((16..24).contains(&i), "flip {flip:#x} at {i} accepted");
                        for name in PROBES {
                            assert_eq!(domain_hit(&s, name), domain_hit(&good, name));
                        }
                        assert_eq!(s.info().checksum, good.info().checksum);
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_magic_version_or_tail_get_their_own_errors() {
        let bytes = sample().as_bytes().to_vec();
        assert!(matches!(
            Snapshot::from_bytes(b"GARBAGE!".to_vec()),
            Err(Error::BadMagic)
        ));
        assert!(matches!(
            Snapshot::from_bytes(b"PK\x03\x04 a zip file, not a snapshot".to_vec()),
            Err(Error::BadMagic)
        ));
        let mut v2 = bytes.clone();
        v2[8] = 2;
        let e = Snapshot::from_bytes(v2).unwrap_err();
        assert!(matches!(e, Error::UnsupportedVersion { found: 2 }));
        assert!(e.to_string().contains("version 2"), "{e}");
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"trailing");
        assert!(matches!(
            Snapshot::from_bytes(longer),
            Err(Error::Corrupt { .. })
        ));
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            Snapshot::from_bytes(bad),
            Err(Error::ChecksumMismatch)
        ));
    }

    #[test]
    fn a_huge_length_field_is_an_error_not_an_allocation() {
        let mut bytes = sample().as_bytes().to_vec();
        // The first section's length, at the start of the section table.
        bytes[168..176].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Snapshot::from_bytes(bytes.clone()).is_err());
        bytes[168..176].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let e = Snapshot::from_bytes(bytes).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "{e}");
    }
}

mod properties {
    use std::collections::BTreeSet;
    use std::net::{IpAddr, Ipv4Addr};

    use ipnet::Ipv4Net;
    use khien_model::ObservableKind;
    use proptest::prelude::*;

    use crate::support::*;

    fn label() -> impl Strategy<Value = String> {
        // Few letters, so that names share labels and suffixes often.
        "[a-c0-9-]{1,3}|[a-z]{9,20}"
    }

    fn name(max_labels: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(label(), 1..max_labels).prop_map(|l| l.join("."))
    }

    /// The naive reference: the longest listed suffix at a label boundary;
    /// exact hosts only for the whole name.
    fn reference(listed: &[(String, bool)], query: &str) -> Option<String> {
        let q = query
            .strip_suffix('.')
            .unwrap_or(query)
            .to_ascii_lowercase();
        let labels: Vec<&str> = q.split('.').collect();
        if labels.iter().any(|l| l.is_empty()) {
            return None;
        }
        (0..labels.len())
            .map(|i| (i, labels[i..].join(".")))
            .find(|(i, suffix)| {
                listed
                    .iter()
                    .any(|(d, exact)| d == suffix && (*i == 0 || !exact))
            })
            .map(|(_, s)| s)
    }

    fn ip_reference(addrs: &[Ipv4Addr], nets: &[Ipv4Net], q: Ipv4Addr) -> Option<String> {
        if addrs.contains(&q) {
            return Some(q.to_string());
        }
        nets.iter()
            .filter(|n| n.contains(&q))
            .max_by_key(|n| n.prefix_len())
            .map(|n| n.to_string())
    }

    /// A value of each kind the snapshot takes, normalised.
    fn any_entry() -> impl Strategy<Value = (ObservableKind, String)> {
        prop_oneof![
            name(6).prop_map(|d| (ObservableKind::Domain, d)),
            any::<u32>().prop_map(|a| (ObservableKind::Ipv4, Ipv4Addr::from(a).to_string())),
            any::<u128>().prop_map(|a| {
                let a = std::net::Ipv6Addr::from(a);
                // Mapped addresses are IPv4 indicators; not this case.
                let kind = if a.to_ipv4_mapped().is_some() {
                    ObservableKind::Ipv4
                } else {
                    ObservableKind::Ipv6
                };
                (
                    kind,
                    a.to_ipv4_mapped()
                        .map_or(a.to_string(), |v4| v4.to_string()),
                )
            }),
            (any::<u32>(), 0u8..32).prop_map(|(a, l)| {
                (
                    ObservableKind::Cidr,
                    Ipv4Net::new(Ipv4Addr::from(a), l)
                        .unwrap()
                        .trunc()
                        .to_string(),
                )
            }),
            (any::<u128>(), 0u8..96).prop_map(|(a, l)| {
                let net = ipnet::Ipv6Net::new(a.into(), l).unwrap().trunc();
                (ObservableKind::Cidr, net.to_string())
            }),
            "https?://[a-z]{1,8}\\.[a-z]{2,3}/[a-zA-Z0-9/._-]{0,20}"
                .prop_map(|u| (ObservableKind::Url, u)),
            "[0-9a-f]{64}".prop_map(|h| (ObservableKind::Sha256, h)),
            "[0-9a-f]{40}".prop_map(|h| (ObservableKind::Sha1, h)),
            "[0-9a-f]{32}".prop_map(|h| (ObservableKind::Md5, h)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_entry_of_every_kind_finds_itself(
            entries in proptest::collection::vec(any_entry(), 1..40),
        ) {
            let mut seen = BTreeSet::new();
            let entries: Vec<(ObservableKind, String)> =
                entries.into_iter().filter(|e| seen.insert(e.clone())).collect();
            let list: Vec<_> = entries.iter().map(|(k, v)| (*k, v.as_str(), false)).collect();
            let s = build(&list);
            prop_assert_eq!(s.len(), entries.len());
            for (i, (kind, value)) in entries.iter().enumerate() {
                let hit = match kind {
                    ObservableKind::Domain => s.match_domain(value.as_bytes()),
                    ObservableKind::Ipv4 | ObservableKind::Ipv6 => s.match_ip(value.parse().unwrap()),
                    ObservableKind::Url => s.match_url(value),
                    ObservableKind::Cidr => {
                        // The network's first address hits it or a longer
                        // listed network or address.
                        let net: ipnet::IpNet = value.parse().unwrap();
                        let hit = s.match_ip(net.network()).unwrap();
                        if hit.kind == ObservableKind::Cidr {
                            let got: ipnet::IpNet = hit.value.parse().unwrap();
                            prop_assert!(got.prefix_len() >= net.prefix_len() && got.contains(&net.network()));
                        }
                        continue;
                    }
                    _ => s.match_hash(&value.to_uppercase()),
                };
                let hit = hit.unwrap();
                prop_assert_eq!((hit.kind, hit.value, hit.id), (*kind, value.as_str(), i as i64 + 100));
            }
        }

        #[test]
        fn domains_agree_with_a_naive_suffix_matcher(
            listed in proptest::collection::vec((name(5), any::<bool>()), 1..30),
            queries in proptest::collection::vec((name(8), any::<bool>(), any::<bool>()), 1..40),
        ) {
            // First of a repeated name wins, as in the builder.
            let mut seen = BTreeSet::new();
            let listed: Vec<(String, bool)> =
                listed.into_iter().filter(|(d, _)| seen.insert(d.clone())).collect();
            let entries: Vec<_> = listed
                .iter()
                .map(|(d, exact)| (ObservableKind::Domain, d.as_str(), *exact))
                .collect();
            let s = build(&entries);
            for (d, _) in &listed {
                prop_assert_eq!(domain_hit(&s, d), Some(d.clone()));
            }
            let mut names: Vec<String> = Vec::new();
            for (q, upper, dot) in &queries {
                let mut n = if *upper { q.to_uppercase() } else { q.clone() };
                if *dot {
                    n.push('.');
                }
                names.push(n);
            }
            for (d, _) in &listed {
                names.push(format!("x.{d}"));
                names.push(format!("{}.{}", "y".repeat(70), d.to_uppercase()));
            }
            for n in names {
                prop_assert_eq!(domain_hit(&s, &n), reference(&listed, &n), "{}", n);
            }
        }

        #[test]
        fn addresses_agree_with_a_naive_prefix_matcher(
            addrs in proptest::collection::vec(any::<u32>(), 0..20),
            nets in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..20),
            queries in proptest::collection::vec(any::<u32>(), 1..50),
        ) {
            // Keep the numbers close, so that networks nest and hold the
            // addresses often.
            let near = |x: u32| Ipv4Addr::from(0x0A00_0000 | (x & 0x0000_FFFF));
            let addrs: Vec<Ipv4Addr> = addrs.into_iter().map(near).collect();
            let nets: Vec<Ipv4Net> = nets
                .into_iter()
                .map(|(x, len)| Ipv4Net::new(near(x), len.max(8)).unwrap().trunc())
                .collect();
            let values: Vec<String> = addrs.iter().map(|a| a.to_string())
                .chain(nets.iter().map(|n| n.to_string())).collect();
            let entries: Vec<_> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let kind = if i < addrs.len() { ObservableKind::Ipv4 } else { ObservableKind::Cidr };
                    (kind, v.as_str(), false)
                })
                .collect();
            let s = build(&entries);
            let queries = queries.into_iter().map(near)
                .chain(addrs.iter().copied())
                .chain(nets.iter().map(|n| n.network()));
            for q in queries {
                let got = s.match_ip(IpAddr::V4(q)).map(|h| h.value.to_owned());
                prop_assert_eq!(got.clone(), ip_reference(&addrs, &nets, q), "{}", q);
                let mapped = s.match_ip(IpAddr::V6(q.to_ipv6_mapped())).map(|h| h.value.to_owned());
                prop_assert_eq!(mapped, got);
            }
        }
    }
}
