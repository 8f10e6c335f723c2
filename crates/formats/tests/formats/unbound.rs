//! The RPZ export against a real resolver: Debian's Unbound.
//!
//! Two Unbound processes: an "authoritative" one serving a few names from
//! `local-data`, and a resolver with the exported zone as `rpz:`, reaching
//! the first through `stub-zone`s. `dig` asks the resolver. Both processes
//! die with the test (a guard kills them on drop). Without `unbound` or
//! `dig` the test is skipped, loudly — and fails when `CI=true`.
#![allow(clippy::print_stderr)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use khien_formats::warninglist::WarninglistSet;
use khien_formats::write::{self, RpzAction, RpzOptions, WalledGarden};
use khien_model::{Confidence, Family, Indicator, Observable, SourceAttributes, ThreatType, Tlp};

const UNBOUND: &str = "/usr/sbin/unbound";
const CHECKCONF: &str = "/usr/sbin/unbound-checkconf";

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

fn tools_present() -> bool {
    let dig = Command::new("dig")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if Path::new(UNBOUND).exists() && Path::new(CHECKCONF).exists() && dig {
        return true;
    }
    let msg = "unbound and dig are needed (Debian packages `unbound` and `bind9-dnsutils`)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("\n*** SKIP: {msg}; not found ***\n");
    false
}

/// A free local port for both UDP and TCP (Unbound listens on both).
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running Unbound, killed when dropped.
struct Unbound {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unbound {
    fn start(dir: &Path, name: &str, body: &str) -> Unbound {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let conf = dir.join(format!("{name}.conf"));
        let text = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-daemonize: no\n  \
             use-syslog: no\n  logfile: \"{log}\"\n  username: \"\"\n  chroot: \"\"\n  \
             directory: \"{dir}\"\n  pidfile: \"{dir}/{name}.pid\"\n  num-threads: 1\n  \
             access-control: 127.0.0.0/8 allow\n  verbosity: 1\n  qname-minimisation: no\n  \
             do-not-query-localhost: no\n{body}\nremote-control:\n  control-enable: no\n",
            log = log.display(),
            dir = dir.display(),
        );
        std::fs::write(&conf, text).expect("write config");
        let check = Command::new(CHECKCONF)
            .arg(&conf)
            .output()
            .expect("run unbound-checkconf");
        assert!(
            check.status.success(),
            "unbound-checkconf {name}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(UNBOUND)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start unbound");
        let mut server = Unbound { child, port, log };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("unbound exited with {status}:\n{}", self.log_text());
            }
            let ok = Command::new("dig")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "+time=1",
                    "+tries=1",
                ])
                .args(["version.server", "CH", "TXT"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "unbound not ready on port {}:\n{}",
            self.port,
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// (status, answer data) of `name`/`qtype`.
    fn query(&self, name: &str, qtype: &str) -> (String, Vec<String>) {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+time=3",
                "+tries=2",
            ])
            .args(["+noall", "+comments", "+answer", name, qtype])
            .output()
            .expect("run dig");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or_else(|| panic!("no status in dig output:\n{text}"))
            .to_string();
        let answers = text
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().last().map(str::to_string))
            .collect();
        (status, answers)
    }
}

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
    if !tools_present() {
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
        ("NOERROR".into(), vec!["203.0.113.5".into()])
    );
    let res = resolver(dir.path(), "resolver", &zone, auth.port);

    assert_eq!(res.query("evil-c2.com", "A").0, "NXDOMAIN");
    assert_eq!(res.query("www.evil-c2.com", "A").0, "NXDOMAIN", "wildcard");
    assert_eq!(
        res.query("google.com", "A"),
        ("NOERROR".into(), vec!["142.250.1.1".into()])
    );
    assert_eq!(
        res.query("clean.example.org", "A"),
        ("NOERROR".into(), vec!["203.0.113.9".into()])
    );
    // rpz-ip: the names are not listed, their answers are.
    assert_eq!(
        res.query("cnc-ip.net", "A").0,
        "NXDOMAIN",
        "rpz-ip on 185.100.87.1"
    );
    assert_eq!(
        res.query("cidr-host.net", "A").0,
        "NXDOMAIN",
        "rpz-ip on 45.9.148.0/24"
    );
    assert_eq!(
        res.query("v6host.net", "AAAA").0,
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
        ("NOERROR".into(), vec!["192.0.2.1".into()])
    );
    assert_eq!(
        res.query("www.evil-c2.com", "A"),
        ("NOERROR".into(), vec!["192.0.2.1".into()])
    );
    assert_eq!(
        res.query("google.com", "A"),
        ("NOERROR".into(), vec!["142.250.1.1".into()])
    );
}

#[test]
fn unbound_loads_a_large_zone() {
    if !tools_present() {
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
    assert_eq!(res.query("evil-c2.com", "A").0, "NXDOMAIN");
    assert_eq!(res.query("google.com", "A").0, "NOERROR");
    let log = res.log_text();
    assert!(!log.to_lowercase().contains("error"), "{log}");
}
