//! Property tests: normalising is idempotent and display/parse round-trips,
//! for every kind, on arbitrary and on adversarial input.

use khien_model::{Observable, ObservableKind};
use proptest::prelude::*;

fn assert_idempotent(o: &Observable) {
    let again = Observable::parse(o.kind(), o.value())
        .unwrap_or_else(|e| panic!("{:?} {:?} no longer parses: {e}", o.kind(), o.value()));
    assert_eq!(&again, o, "normalising twice changed the value");
    let detected = Observable::detect(&o.to_string());
    if let Ok(d) = detected {
        // Detection may pick a narrower kind (an email-like phone never), but
        // never a different value for the same kind.
        if d.kind() == o.kind() {
            assert_eq!(d.value(), o.value());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_string_never_panics(s in ".{0,200}") {
        for kind in ObservableKind::ALL {
            if let Ok(o) = Observable::parse(kind, &s) {
                assert_idempotent(&o);
            }
        }
        if let Ok(o) = Observable::detect(&s) {
            assert_idempotent(&o);
        }
    }

    #[test]
    fn domains_round_trip(labels in prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?", 1..5), tld in "[a-zA-Z]{2,6}") {
        // Hyphens in the third and fourth places mark an encoded label
        // (`xn--`, RFC 5891 §4.2.3.1): such a label must be valid punycode,
        // which this generator does not make (see
        // `encoded_labels_must_be_valid_punycode`).
        prop_assume!(labels.iter().all(|l| l.get(2..4) != Some("--")));
        let name = format!("{}.{tld}", labels.join("."));
        let o = Observable::parse(ObservableKind::Domain, &name).expect("generated names are valid");
        prop_assert_eq!(o.value(), name.to_ascii_lowercase());
        assert_idempotent(&o);
    }

    #[test]
    fn unicode_domains_round_trip(label in "[a-zà-ỹđ]{1,20}", tld in "(vn|com|net)") {
        if let Ok(o) = Observable::parse(ObservableKind::Domain, &format!("{label}.{tld}")) {
            prop_assert!(o.value().is_ascii());
            assert_idempotent(&o);
        }
    }

    #[test]
    fn addresses_round_trip(a: u32, b: u128, len in 0u8..=32, len6 in 0u8..=128) {
        let v4 = std::net::Ipv4Addr::from(a);
        let o = Observable::detect(&v4.to_string()).expect("ipv4");
        prop_assert_eq!(o.kind(), ObservableKind::Ipv4);
        assert_idempotent(&o);
        let v6 = std::net::Ipv6Addr::from(b);
        let o = Observable::parse(ObservableKind::Ipv6, &v6.to_string()).expect("ipv6");
        assert_idempotent(&o);
        let net = Observable::parse(ObservableKind::Cidr, &format!("{v4}/{len}")).expect("cidr");
        assert_idempotent(&net);
        let net6 = Observable::parse(ObservableKind::Cidr, &format!("{v6}/{len6}")).expect("cidr6");
        assert_idempotent(&net6);
    }

    #[test]
    fn urls_round_trip(host in "[a-z]{1,10}\\.(vn|com)", path in "(/[a-zA-Z0-9._~%-]{0,8}){0,4}", query in "(\\?[a-z0-9=&%]{0,12})?") {
        if let Ok(o) = Observable::parse(ObservableKind::Url, &format!("http://{host}{path}{query}")) {
            assert_idempotent(&o);
        }
    }

    #[test]
    fn phones_round_trip(rest in "[35789][0-9]{8}") {
        let o = Observable::parse(ObservableKind::Phone, &format!("0{rest}")).expect("mobile");
        prop_assert_eq!(o.value(), format!("+84{rest}"));
        assert_idempotent(&o);
    }

    #[test]
    fn hashes_round_trip(bytes in prop::collection::vec(any::<u8>(), 32)) {
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        let o = Observable::detect(&hex).expect("sha256");
        prop_assert_eq!(o.kind(), ObservableKind::Sha256);
        prop_assert_eq!(o.value(), hex.to_ascii_lowercase());
        assert_idempotent(&o);
    }
}

#[test]
fn rejects_pointer_like_garbage_without_panicking() {
    for s in [
        "\u{0}",
        "[.]",
        "hxxp://",
        "::::",
        "1.2.3.4/",
        "/",
        "@",
        "+",
        "xn--",
        "a.xn--zz",
        "http://[::1",
        "%%%%",
    ] {
        let _ = Observable::detect(s);
    }
}

#[test]
fn encoded_labels_must_be_valid_punycode() {
    // Found by `domains_round_trip`: a generated `xn--A` is not punycode.
    for bad in ["xn--A.aa", "xn--.vn", "www.xn--zz-.com"] {
        assert!(
            Observable::parse(ObservableKind::Domain, bad).is_err(),
            "{bad} was accepted"
        );
    }
    let ok = Observable::parse(ObservableKind::Domain, "xn--bcher-kva.example").expect("valid");
    assert_eq!(ok.value(), "xn--bcher-kva.example");
}
