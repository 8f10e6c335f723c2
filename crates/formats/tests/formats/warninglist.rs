//! Warninglists against the real MISP lists in the shared data folder.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Instant;

use khien_formats::warninglist::WarninglistSet;
use khien_model::Observable;

fn shared_lists() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/warninglists")
}

fn obs(s: &str) -> Observable {
    Observable::detect(s).expect("valid observable")
}

fn assert_caught(set: &WarninglistSet, value: &str, list_id: &str) {
    let hit = set
        .check_list(&obs(value))
        .unwrap_or_else(|| panic!("{value} should be allow-listed by {list_id}"));
    assert_eq!(hit.id(), list_id, "{value} caught by {:?}", hit.name());
    assert_eq!(set.check(&obs(value)), Some(hit.name()));
}

fn assert_not_caught(set: &WarninglistSet, value: &str) {
    if let Some(l) = set.check_list(&obs(value)) {
        panic!("{value} wrongly allow-listed by {} ({})", l.id(), l.name());
    }
}

#[test]
fn real_lists_from_directory() {
    let dir = shared_lists();
    if !dir.is_dir() {
        panic!("shared warninglists missing at {}", dir.display());
    }
    let start = Instant::now();
    let set = WarninglistSet::load_dir(&dir).expect("all shared lists load");
    eprintln!("loaded {} lists in {:?}", set.len(), start.elapsed());
    assert_eq!(set.len(), 19);
    // Sorted by folder: cisco_top10k precedes google and tranco10k.
    assert_caught(&set, "google.com", "cisco_top10k");
    assert_caught(&set, "8.8.8.8", "public-dns-v4");
    assert_caught(&set, "10.1.2.3", "rfc1918");
    // GCP's 8.34.208.0/20 sorts before the resolvers.
    assert_caught(&set, "8.0.0.0/8", "google-gcp");
    assert_caught(&set, "d41d8cd98f00b204e9800998ecf8427e", "empty-hashes");
    assert_not_caught(&set, "evil.com");
    assert_not_caught(&set, "x.blogspot.com");
    assert_not_caught(&set, "185.100.87.1");
}

#[test]
fn embedded_default_set() {
    let start = Instant::now();
    let set = WarninglistSet::embedded_default().expect("embedded lists are valid");
    eprintln!("built the embedded default set in {:?}", start.elapsed());
    assert_eq!(set.len(), 15);
    assert_caught(set, "google.com", "google");
    assert_caught(set, "www.google.com", "google");
    assert_caught(set, "8.8.8.8", "public-dns-v4");
    assert_caught(set, "10.1.2.3", "rfc1918");
    assert_caught(set, "8.0.0.0/8", "public-dns-v4");
    assert_caught(set, "2001:4860:4860::8888", "public-dns-v6");
    assert_caught(set, "d41d8cd98f00b204e9800998ecf8427e", "empty-hashes");
    assert_caught(set, "com.vn", "second-level-tlds");
    assert_caught(set, "fe80::1", "ipv6-linklocal");
    assert_not_caught(set, "evil.com");
    assert_not_caught(set, "x.blogspot.com");
    assert_not_caught(set, "185.100.87.1");
    assert_not_caught(set, "evil.com.vn");
    // URLs are never covered by hostname lists.
    assert_not_caught(set, "https://docs.google.com/forms/d/phish");
}

#[test]
fn check_is_fast_on_large_lists() {
    let set = WarninglistSet::embedded_default().expect("embedded lists are valid");
    let probes: Vec<Observable> = (0..20_000u32)
        .map(|i| obs(&format!("185.{}.{}.1", i % 250, i / 250)))
        .chain((0..20_000u32).map(|i| obs(&format!("host{i}.evil{i}.com"))))
        .collect();
    let start = Instant::now();
    let hits = probes.iter().filter(|o| set.check(o).is_some()).count();
    let took = start.elapsed();
    eprintln!("{} checks, {hits} hits, in {took:?}", probes.len());
    assert!(took.as_secs_f64() < 2.0, "checks too slow: {took:?}");
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let list = dir.path().join("broken");
    std::fs::create_dir(&list).expect("mkdir");
    std::fs::write(
        list.join("list.json"),
        r#"{"name": "x", "type": "cidr", "list": ["nope"]}"#,
    )
    .expect("write");
    let err = WarninglistSet::load_dir(dir.path()).expect_err("bad entry");
    let msg = err.to_string();
    assert!(
        msg.contains("broken/list.json") && msg.contains("nope"),
        "{msg}"
    );
}
