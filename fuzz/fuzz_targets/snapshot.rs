//! The match snapshot, both ways. Arbitrary bytes as a snapshot file: load
//! or refuse, never panic, and lookups on what loads never panic either.
//! Arbitrary lines as indicators (first byte picks the kind): every value
//! the model accepts, the builder accepts, and after build and load each
//! one matches itself.
#![no_main]

use std::net::IpAddr;

use khien_matcher::{Entry, Snapshot, SnapshotBuilder};
use khien_model::{Observable, ObservableKind, ThreatType};
use libfuzzer_sys::fuzz_target;

const KINDS: [ObservableKind; 8] = [
    ObservableKind::Domain,
    ObservableKind::Ipv4,
    ObservableKind::Ipv6,
    ObservableKind::Cidr,
    ObservableKind::Url,
    ObservableKind::Sha256,
    ObservableKind::Sha1,
    ObservableKind::Md5,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Snapshot::from_bytes(data.to_vec()) {
        look_up(&s, data);
    }
    round_trip(data);
});

fn look_up(s: &Snapshot, data: &[u8]) {
    for chunk in data.chunks(23).take(16) {
        let _ = s.match_domain(chunk);
        let text = String::from_utf8_lossy(chunk);
        let _ = s.match_url(&text);
        let _ = s.match_hash(&text);
        if let Ok(b) = <[u8; 16]>::try_from(&chunk[..16.min(chunk.len())]) {
            let _ = s.match_ip(IpAddr::from(b));
            let _ = s.match_ip(IpAddr::from([b[0], b[1], b[2], b[3]]));
        }
    }
    let _ = s.match_domain(b"www.example.com");
}

fn round_trip(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut builder = SnapshotBuilder::new();
    let mut added = Vec::new();
    for (i, line) in text.lines().take(64).enumerate() {
        let Some(first) = line.bytes().next() else { continue };
        let kind = KINDS[usize::from(first) % KINDS.len()];
        let Ok(observable) = Observable::parse(kind, line.get(1..).unwrap_or_default()) else { continue };
        // The model may change the kind: a /32 network is an address.
        let kind = observable.kind();
        let entry = Entry {
            id: i as i64,
            kind,
            value: observable.value(),
            exact_host: first & 0x80 == 0 && first % 3 == 0,
            family: (first % 2 == 0).then(|| line.get(..9).unwrap_or("family")),
            threat_type: ThreatType::ALL[usize::from(first) % ThreatType::ALL.len()],
        };
        builder
            .add(&entry)
            .unwrap_or_else(|e| panic!("the model accepts {kind} `{}`, the builder not: {e}", observable.value()));
        added.push(observable);
    }
    let bytes = builder.build(chrono::DateTime::from_timestamp(0, 0).unwrap_or_default());
    let s = Snapshot::from_bytes(bytes).expect("a built snapshot loads");
    for o in &added {
        let value = o.value();
        let found = match o.kind() {
            ObservableKind::Domain => {
                let hit = s.match_domain(value.as_bytes());
                assert_eq!(hit.map(|h| h.value), Some(value), "domain {value}");
                assert_eq!(s.match_domain(value.to_ascii_uppercase().as_bytes()), hit);
                hit
            }
            ObservableKind::Ipv4 | ObservableKind::Ipv6 => {
                let ip: IpAddr = value.parse().expect("normalised address parses");
                let hit = s.match_ip(ip).expect("a listed address hits");
                let got: IpAddr = hit.value.parse().expect("hit value is an address");
                assert_eq!(got.to_canonical(), ip.to_canonical(), "address {value}");
                Some(hit)
            }
            ObservableKind::Cidr => {
                let net = o.as_net().expect("network");
                let hit = s.match_ip(net.network()).expect("a listed network holds its address");
                Some(hit)
            }
            ObservableKind::Url => {
                let hit = s.match_url(value);
                assert_eq!(hit.map(|h| h.value), Some(value), "url {value}");
                hit
            }
            _ => {
                let hit = s.match_hash(&value.to_ascii_uppercase());
                assert_eq!(hit.map(|h| h.value), Some(value), "hash {value}");
                hit
            }
        };
        assert!(found.is_some());
    }
}
