//! End-to-end tests of the `khien` binary: what an operator types and sees.
//! Each test runs on SQLite and, when `KHIEN_TEST_POSTGRES` is set (the test
//! command sets it), on PostgreSQL too.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Db {
    url: String,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(mut c) = postgres::Client::connect(admin, postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn sqlite() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    Db {
        url: dir.path().join("khien.db").display().to_string(),
        _dir: dir,
        pg: None,
    }
}

fn postgres() -> Option<Db> {
    let Ok(admin) = std::env::var("KHIEN_TEST_POSTGRES") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "KHIEN_TEST_POSTGRES must be set under CI (scripts/test starts PostgreSQL)"
        );
        eprintln!("SKIP postgres: KHIEN_TEST_POSTGRES not set");
        return None;
    };
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "khien_cli_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut c =
        postgres::Client::connect(&admin, postgres::NoTls).expect("connect to test PostgreSQL");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("KHIEN_TEST_POSTGRES needs a database path"),
    };
    Some(Db {
        url,
        _dir: tempfile::tempdir().expect("tempdir"),
        pg: Some((admin, name)),
    })
}

#[path = "cli/cases.rs"]
mod cases;
#[path = "cli/hub.rs"]
mod hub;
#[path = "cli/sensor.rs"]
mod sensor;

fn both(test: impl Fn(&Db)) {
    test(&sqlite());
    if let Some(db) = postgres() {
        test(&db);
    }
}

impl Db {
    /// The hub's data directory (its keys) for this database.
    fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("hub-data")
    }
}

fn khien(db: &Db, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_khien"))
        .env("KHIEN_DATA_DIR", db.data_dir())
        .args(args)
        .args(["--database", &db.url, "--lang", "en"])
        .output()
        .expect("run khien")
}

fn json(db: &Db, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = khien(db, &all);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "khien {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "khien {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `intel export --format FORMAT` into a temporary file, asserts that
/// it succeeded and returns what it wrote.
fn export(db: &Db, format: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("export").display().to_string();
    let mut args = vec!["intel", "export", "--format", format, "--out", &out];
    args.extend_from_slice(extra);
    let o = khien(db, &args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(&out).expect("export written")
}

/// The exported plain list, sorted.
fn export_list(db: &Db, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = export(db, "list", extra)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn shared_data(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if !p.exists() {
        // The sample feeds shipped with the repository are the fallback.
        return Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/feeds")
            .join(rel);
    }
    p
}

#[test]
fn import_reports_new_allowlisted_skipped_and_rejected_with_lines() {
    both(|db| {
        let v = json(
            db,
            &[
                "intel",
                "import",
                &fixture("mixed.txt"),
                "--source",
                "test",
                "--type",
                "c2",
            ],
        );
        let t = &v["total"];
        assert_eq!(t["read"], 8, "{v}");
        assert_eq!(t["rejected"], 2, "{v}");
        assert_eq!(t["new"], 4, "allow-listed records are counted apart: {v}");
        assert_eq!(t["allowlisted"], 2, "google.com and 8.8.8.8: {v}");
        assert_eq!(
            t["skipped"]["comment"], 1,
            "blank lines are not counted: {v}"
        );
        let rejections = v["files"][0]["rejections"].as_array().expect("rejections");
        let text = serde_json::to_string(rejections).expect("json");
        assert!(text.contains("line 6") && text.contains("line 9"), "{text}");
        assert!(text.contains("hyphen"), "reason names the rule: {text}");

        // Importing again changes nothing.
        let again = json(
            db,
            &[
                "intel",
                "import",
                &fixture("mixed.txt"),
                "--source",
                "test",
                "--type",
                "c2",
            ],
        );
        assert_eq!(again["total"]["new"], 0);
        assert_eq!(
            again["total"]["unchanged"].as_u64().unwrap_or(0)
                + again["total"]["updated"].as_u64().unwrap_or(0),
            4
        );
        assert_eq!(again["total"]["allowlisted"], 2);
    });
}

#[test]
fn strict_import_aborts_and_writes_nothing() {
    both(|db| {
        let out = khien(
            db,
            &[
                "intel",
                "import",
                "--strict",
                &fixture("mixed.txt"),
                "--source",
                "s",
            ],
        );
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line 6"), "names the line: {err}");
        let stats = json(db, &["intel", "stats"]);
        assert_eq!(stats["indicators"], 0, "nothing written: {stats}");
    });
}

#[test]
fn search_finds_parent_domain_and_exit_code_says_so() {
    both(|db| {
        json(
            db,
            &[
                "intel",
                "import",
                &fixture("mixed.txt"),
                "--source",
                "test",
                "--family",
                "emotet",
            ],
        );
        let out = khien(db, &["intel", "search", "a.b.EVIL-C2.com"]);
        assert_eq!(out.status.code(), Some(1), "a finding exits 1");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("evil-c2.com") && text.contains("emotet"),
            "{text}"
        );
        let out = khien(db, &["intel", "search", "185.234.72.7"]);
        assert_eq!(out.status.code(), Some(1), "inside a listed network");
        let out = khien(db, &["intel", "search", "not-listed.example"]);
        assert_eq!(out.status.code(), Some(0));
        // Allow-listed values are shown as such and are not findings.
        let out = khien(db, &["intel", "search", "google.com"]);
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stdout).contains("allow-listed"));
    });
}

#[test]
fn rpz_export_leaves_out_allowlisted_and_non_dns_kinds() {
    both(|db| {
        json(
            db,
            &["intel", "import", &fixture("mixed.txt"), "--source", "test"],
        );
        let raw = export(db, "rpz", &[]);
        let text: String = raw
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
            .collect();
        assert!(text.contains("evil-c2.com CNAME ."), "{text}");
        assert!(text.contains("*.evil-c2.com CNAME ."), "{text}");
        assert!(text.contains("4.3.2.1.rpz-ip"), "{text}");
        assert!(text.contains("24.0.72.234.185.rpz-ip"), "{text}");
        assert!(
            !text.contains("google"),
            "allow-listed never exported: {text}"
        );
        assert!(!text.contains("8.8.8.8.rpz-ip"), "{text}");
        assert!(!text.contains("phish"), "URLs are not DNS triggers: {text}");
    });
}

#[test]
fn export_filters_by_confidence_tlp_and_kind() {
    both(|db| {
        let list = fixture("mixed.txt");
        json(
            db,
            &[
                "intel",
                "import",
                &list,
                "--source",
                "low",
                "--confidence",
                "20",
                "--tlp",
                "red",
            ],
        );
        let run = |extra: &[&str]| export_list(db, extra);
        assert_eq!(run(&[]).len(), 4);
        assert!(run(&["--min-confidence", "50"]).is_empty());
        assert!(run(&["--tlp-ceiling", "amber"]).is_empty());
        assert_eq!(run(&["--kind", "domain"]), vec!["evil-c2.com".to_string()]);
        // A second, more open source lifts the merged TLP and confidence.
        json(
            db,
            &[
                "intel",
                "import",
                &list,
                "--source",
                "high",
                "--confidence",
                "80",
                "--tlp",
                "green",
            ],
        );
        assert_eq!(
            run(&["--min-confidence", "80", "--tlp-ceiling", "green"]).len(),
            4
        );
    });
}

#[test]
fn imports_real_stix_misp_and_trail_feeds() {
    both(|db| {
        let stix = shared_data("stix/tweetfeed/today.json");
        let stix = if stix.exists() {
            stix
        } else {
            shared_data("stix/tweetfeed-today.json")
        };
        let v = json(
            db,
            &[
                "intel",
                "import",
                &stix.display().to_string(),
                "--source",
                "tweetfeed",
            ],
        );
        assert!(v["total"]["new"].as_u64().unwrap_or(0) >= 50, "{v}");
        let trail = shared_data("maltrail/apt_oceanlotus.txt");
        let v = json(
            db,
            &[
                "intel",
                "import",
                &trail.display().to_string(),
                "--family-from-file-name",
                "--source",
                "maltrail",
            ],
        );
        assert!(v["total"]["new"].as_u64().unwrap_or(0) > 500, "{v}");
        let stats = json(db, &["intel", "stats"]);
        let fams = serde_json::to_string(&stats["top_families"]).expect("json");
        assert!(fams.contains("apt-oceanlotus"), "{fams}");
    });
}

#[test]
fn bad_arguments_exit_2_with_the_flag_named() {
    let db = sqlite();
    let out = khien(
        &db,
        &["intel", "import", &fixture("mixed.txt"), "--tlp", "purple"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tlp"));
    let out = khien(&db, &["intel", "import", "/nonexistent/feed.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/feed.txt"));
}

#[test]
fn messages_default_to_vietnamese() {
    let db = sqlite();
    let out = Command::new(env!("CARGO_BIN_EXE_khien"))
        .args(["intel", "search", "evil.example", "--database", &db.url])
        .env_remove("KHIEN_LANG")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Không tìm thấy"));
}

#[test]
fn stix_and_misp_exports_import_back_to_the_same_indicators() {
    both(|db| {
        json(
            db,
            &[
                "intel",
                "import",
                &fixture("mixed.txt"),
                "--source",
                "s",
                "--family",
                "emotet",
                "--type",
                "c2",
                "--tlp",
                "green",
            ],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let list = |db: &Db| export_list(db, &[]);
        let original = list(db);
        assert_eq!(original.len(), 4);
        for (format, path) in [
            ("stix", dir.path().join("out.json")),
            ("misp", dir.path().join("feed")),
        ] {
            let p = path.display().to_string();
            let o = khien(db, &["intel", "export", "--format", format, "--out", &p]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{format}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let fresh = sqlite();
            let v = json(&fresh, &["intel", "import", &p]);
            assert_eq!(v["total"]["rejected"], 0, "{format}: {v}");
            assert_eq!(list(&fresh), original, "{format} round trip");
            let found = json(&fresh, &["intel", "search", "evil-c2.com"]);
            let text = found.to_string();
            assert!(
                text.contains("emotet") && text.contains("green") && text.contains("c2"),
                "{format}: {text}"
            );
        }
    });
}

#[test]
fn search_by_family_source_and_kind_without_a_value() {
    both(|db| {
        json(
            db,
            &[
                "intel",
                "import",
                &fixture("mixed.txt"),
                "--source",
                "feed-a",
                "--family",
                "emotet",
            ],
        );
        let v = json(
            db,
            &["intel", "search", "--family", "emotet", "--kind", "domain"],
        );
        let values: Vec<&str> = v
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|i| i["observable"]["value"].as_str())
            .collect();
        assert_eq!(values, vec!["evil-c2.com"]);
        let v = json(db, &["intel", "search", "--source", "feed-b"]);
        assert_eq!(v.as_array().map(Vec::len), Some(0));
        let v = json(
            db,
            &[
                "intel",
                "search",
                "--source",
                "feed-a",
                "--include-allowlisted",
            ],
        );
        assert_eq!(v.as_array().map(Vec::len), Some(6));
    });
}

#[test]
fn misp_events_marked_not_for_detection_import_only_on_request() {
    let event = shared_data("misp/eset/oceanlotus.misp.event.json");
    let event = if event.exists() {
        event
    } else {
        shared_data("misp/oceanlotus.misp.event.json")
    };
    let event = event.display().to_string();
    let db = sqlite();
    let v = json(&db, &["intel", "import", &event, "--source", "eset"]);
    assert_eq!(v["total"]["new"], 0, "{v}");
    assert!(
        v["total"]["skipped"]["not-for-detection"]
            .as_u64()
            .unwrap_or(0)
            > 80,
        "{v}"
    );
    let v = json(
        &db,
        &[
            "intel",
            "import",
            &event,
            "--source",
            "eset",
            "--include-not-for-detection",
        ],
    );
    assert!(v["total"]["new"].as_u64().unwrap_or(0) >= 80, "{v}");
    let found = json(
        &db,
        &[
            "intel",
            "search",
            "--source",
            "eset",
            "--kind",
            "domain",
            "--limit",
            "1",
            "--include-expired",
        ],
    );
    // Published in 2018: past the default lifetime, so expired but kept.
    assert!(
        found.to_string().contains("apt32"),
        "galaxy family kept: {found}"
    );
}
