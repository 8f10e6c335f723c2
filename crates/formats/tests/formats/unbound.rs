//! The RPZ export against a real resolver: Debian's Unbound.
//!
//! Two Unbound processes: an "authoritative" one serving a few names from
//! `local-data`, and a resolver with the exported zone as `rpz:`, reaching
//! the first through `stub-zone`s. `dig` asks the resolver. Both processes
//! die with the test (a guard kills them on drop). Without `unbound` or
//! `dig` the test is skipped, loudly — and fails when `CI=true`.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use khien_formats::warninglist::WarninglistSet;
use khien_formats::write::{self, RpzAction, RpzOptions, WalledGarden};
use khien_model::{Confidence, Family, Indicator, Observable, SourceAttributes, ThreatType, Tlp};
use khien_testkit::unbound::{self, Answer, Unbound};

/// Names the authoritative side serves, and what.
const ZONES: [(&str, &[&str]); 6] = [
    (
        "evil-c2.com",
        &[
            "evil-c2.com. A 203.0.113.5",
            "www.evil-c2.com. A 203.0.113.5",
        ],
    ),
    ("google.com", &["google.com. A 142.250.1.1"]),
    ("cnc-ip.net", &["cnc-ip.net. A 185.100.87.1"]),
    ("cidr-host.net", &["cidr-host.net. A 45.9.148.7"]),
    ("v6host.net", &["v6host.net. AAAA 2a0b:4140::5"]),
    ("clean.example.org", &["clean.example.org. A 203.0.113.9"]),
];

fn indicator(value: &str, t: ThreatType) -> Indicator {
    let when = Utc
        .with_ymd_and_hms(2026, 8, 20, 0, 0, 0)
        .single()
        .expect("time");
    let o = Observable::detect(value).expect("observable");
    let src = SourceAttributes {
        source: "test".into(),
        tlp: Tlp::Clear,
        confidence: Confidence::new(90).expect("confidence"),
        family: Some(Family::new("emotet").expect("family")),
        threat_type: t,
        reference: None,
        first_seen: when,
        last_seen: when,
        expires_at: None,
    };
    Indicator::aggregate(0, o, vec![src], None).expect("source")
}

fn export_input() -> Vec<Indicator> {
    vec![
        indicator("evil-c2.com", ThreatType::C2),
        indicator("google.com", ThreatType::Phishing),
        indicator("185.100.87.1", ThreatType::C2),
        indicator("45.9.148.0/24", ThreatType::C2),
        indicator("2a0b:4140::/32", ThreatType::C2),
        indicator("8.8.8.8", ThreatType::C2),
        indicator(
            "http://clean.example.org/evil.exe",
            ThreatType::MalwareDownload,
        ),
    ]
}

/// What an export does before writing: drop allow-listed indicators.
fn blockable(set: &WarninglistSet, input: Vec<Indicator>) -> Vec<Indicator> {
    input
        .into_iter()
        .filter(|i| set.check(&i.observable).is_none())
        .collect()
}

fn authoritative(dir: &Path) -> Unbound {
    let mut body = String::from("  module-config: \"iterator\"\n");
    for (zone, records) in ZONES {
        body.push_str(&format!("  local-zone: \"{zone}.\" static\n"));
        for r in records {
            body.push_str(&format!("  local-data: \"{r}\"\n"));
        }
    }
    Unbound::start(dir, "auth", &body)
}

fn resolver(dir: &Path, name: &str, zonefile: &Path, auth_port: u16) -> Unbound {
    let mut body = String::from("  module-config: \"respip iterator\"\n");
    body.push_str(&format!(
        "rpz:\n  name: \"rpz.khien.\"\n  zonefile: \"{}\"\n  rpz-log: yes\n  rpz-log-name: \"khien\"\n",
        zonefile.display()
    ));
    for (zone, _) in ZONES {
        body.push_str(&format!(
            "stub-zone:\n  name: \"{zone}.\"\n  stub-addr: 127.0.0.1@{auth_port}\n"
        ));
    }
    Unbound::start(dir, name, &body)
}

fn write_zone(path: &Path, items: &[Indicator], action: RpzAction) -> write::RpzSummary {
    let mut options = RpzOptions::new(2026082001);
    options.action = action;
    let file = std::fs::File::create(path).expect("create zone");
    write::write_rpz(file, items, &options).expect("write zone")
}

#[test]
fn unbound_applies_the_exported_policy() {
    if !unbound::present() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let set = WarninglistSet::embedded_default().expect("warninglists");
    let items = blockable(set, export_input());
    let names: Vec<&str> = items.iter().map(|i| i.observable.value()).collect();
    assert!(
        !names.contains(&"google.com") && !names.contains(&"8.8.8.8"),
        "{names:?}"
    );

    let zone = dir.path().join("rpz.zone");
    let s = write_zone(&zone, &items, RpzAction::Nxdomain);
    assert_eq!((s.domains, s.ipv4, s.cidrs, s.skipped), (1, 1, 2, 1));
    let text = std::fs::read_to_string(&zone).expect("zone");
    assert!(!text.contains("google.com"));

    let auth = authoritative(dir.path());
    assert_eq!(
        auth.query("evil-c2.com", "A"),
        Answer::new("NOERROR", &["203.0.113.5"])
    );
    let res = resolver(dir.path(), "resolver", &zone, auth.port);

    assert_eq!(res.query("evil-c2.com", "A").status, "NXDOMAIN");
    assert_eq!(
        res.query("www.evil-c2.com", "A").status,
        "NXDOMAIN",
        "wildcard"
    );
    assert_eq!(
        res.query("google.com", "A"),
        Answer::new("NOERROR", &["142.250.1.1"])
    );
    assert_eq!(
        res.query("clean.example.org", "A"),
        Answer::new("NOERROR", &["203.0.113.9"])
    );
    // rpz-ip: the names are not listed, their answers are.
    assert_eq!(
        res.query("cnc-ip.net", "A").status,
        "NXDOMAIN",
        "rpz-ip on 185.100.87.1"
    );
    assert_eq!(
        res.query("cidr-host.net", "A").status,
        "NXDOMAIN",
        "rpz-ip on 45.9.148.0/24"
    );
    assert_eq!(
        res.query("v6host.net", "AAAA").status,
        "NXDOMAIN",
        "rpz-ip on 2a0b:4140::/32"
    );
    let log = res.log_text();
    assert!(
        log.contains("khien") && log.contains("evil-c2.com"),
        "rpz-log:\n{log}"
    );

    // Walled garden: the listed name answers with the warning page.
    let garden = dir.path().join("garden.zone");
    write_zone(
        &garden,
        &items,
        RpzAction::WalledGarden(WalledGarden::Address {
            ipv4: Some("192.0.2.1".parse().expect("ip")),
            ipv6: None,
        }),
    );
    let res = resolver(dir.path(), "garden", &garden, auth.port);
    assert_eq!(
        res.query("evil-c2.com", "A"),
        Answer::new("NOERROR", &["192.0.2.1"])
    );
    assert_eq!(
        res.query("www.evil-c2.com", "A"),
        Answer::new("NOERROR", &["192.0.2.1"])
    );
    assert_eq!(
        res.query("google.com", "A"),
        Answer::new("NOERROR", &["142.250.1.1"])
    );
}

#[test]
fn unbound_loads_a_large_zone() {
    if !unbound::present() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let base = indicator("x.example.com", ThreatType::C2);
    let items: Vec<Indicator> = (0..100_000u32)
        .map(|i| {
            let o = if i % 4 == 3 {
                Observable::ip(std::net::Ipv4Addr::from(0x2d00_0000 + i * 7).into())
            } else {
                Observable::detect(&format!("h{i}.bad{}.com", i % 20_000)).expect("domain")
            };
            Indicator {
                observable: o,
                ..base.clone()
            }
        })
        .chain([indicator("evil-c2.com", ThreatType::C2)])
        .collect();
    let zone = dir.path().join("big.zone");
    let s = write_zone(&zone, &items, RpzAction::Nxdomain);
    assert_eq!(s.domains + s.ipv4, 100_001);
    let auth = authoritative(dir.path());
    let start = Instant::now();
    let res = resolver(dir.path(), "big", &zone, auth.port);
    eprintln!(
        "unbound loaded a {}-indicator zone in {:?}",
        items.len(),
        start.elapsed()
    );
    assert_eq!(res.query("evil-c2.com", "A").status, "NXDOMAIN");
    assert_eq!(res.query("google.com", "A").status, "NOERROR");
    let log = res.log_text();
    assert!(!log.to_lowercase().contains("error"), "{log}");
}
