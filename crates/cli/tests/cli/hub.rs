//! The hub's commands: `intel snapshot`, `intel exact-host`,
//! `import --exact-host`, `admin api-key`, `serve`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use khien_matcher::Snapshot;

use super::{Db, both, fixture, json, khien};

/// Runs `intel snapshot` into a temporary file and loads it.
fn snapshot(db: &Db) -> (serde_json::Value, Snapshot) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/snapshot.bin");
    let summary = json(
        db,
        &["intel", "snapshot", "--out", &path.display().to_string()],
    );
    let bytes = std::fs::read(&path).expect("snapshot written");
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("dir")
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left");
    let snap = Snapshot::from_bytes(bytes).expect("the file loads");
    (summary, snap)
}

fn matches(snap: &Snapshot, name: &str) -> bool {
    snap.match_domain(name.as_bytes()).is_some()
}

#[test]
fn intel_snapshot_matches_subdomains_and_leaves_out_allowlisted() {
    both(|db| {
        json(
            db,
            &["intel", "import", &fixture("mixed.txt"), "--source", "t"],
        );
        let (summary, snap) = snapshot(db);
        // evil-c2.com, the URL, 1.2.3.4 and the network; google.com and
        // 8.8.8.8 are allow-listed.
        assert_eq!(summary["indicators"], 4, "{summary}");
        assert_eq!(summary["domains"], 1, "{summary}");
        assert_eq!(summary["rejected"], 0, "{summary}");
        assert_eq!(
            summary["checksum"].as_str(),
            Some(format!("{:016x}", snap.info().checksum).as_str())
        );
        assert!(matches(&snap, "evil-c2.com"));
        assert!(matches(&snap, "www.EVIL-C2.com."));
        assert!(!matches(&snap, "google.com"), "allow-listed");
        assert!(snap.match_ip("8.8.8.8".parse().expect("ip")).is_none());
        assert!(snap.match_ip("185.234.72.9".parse().expect("ip")).is_some());

        // Human output names counts and the checksum.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.bin").display().to_string();
        let out = khien(db, &["intel", "snapshot", "--out", &path]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("4 indicators") && text.contains("checksum"),
            "{text}"
        );
        // A file cannot be made below a file: exit 2, nothing left behind.
        let below_file = format!("{path}/s.bin");
        let out = khien(db, &["intel", "snapshot", "--out", &below_file]);
        assert_eq!(out.status.code(), Some(2));
    });
}

#[test]
fn exact_host_marks_stop_subdomain_matches() {
    both(|db| {
        json(
            db,
            &["intel", "import", &fixture("mixed.txt"), "--source", "t"],
        );
        let v = json(db, &["intel", "exact-host", "EVIL-C2.com"]);
        assert_eq!(v["domains"], serde_json::json!(["evil-c2.com"]), "{v}");
        let (_, snap) = snapshot(db);
        assert!(matches(&snap, "evil-c2.com"));
        assert!(!matches(&snap, "www.evil-c2.com"), "exact host only");

        json(db, &["intel", "exact-host", "--off", "evil-c2.com"]);
        let (_, snap) = snapshot(db);
        assert!(matches(&snap, "www.evil-c2.com"));

        let out = khien(
            db,
            &["intel", "exact-host", "evil-c2.com", "unknown.example"],
        );
        assert_eq!(out.status.code(), Some(2), "a missing domain is an error");
        assert!(String::from_utf8_lossy(&out.stderr).contains("unknown.example"));
        let out = khien(db, &["intel", "exact-host", "1.2.3.4"]);
        assert_eq!(out.status.code(), Some(2), "not a domain");
    });
}

#[test]
fn import_exact_host_marks_every_domain_of_the_import() {
    both(|db| {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = dir.path().join("shared.txt");
        std::fs::write(
            &shared,
            "site1.sharedhost.example\nsite2.sharedhost.example\n",
        )
        .expect("write");
        let plain = dir.path().join("plain.txt");
        std::fs::write(&plain, "bad.example\n").expect("write");
        let p = |p: &std::path::Path| p.display().to_string();
        json(db, &["intel", "import", &p(&shared), "--exact-host"]);
        json(db, &["intel", "import", &p(&plain)]);
        let (_, snap) = snapshot(db);
        assert!(matches(&snap, "site1.sharedhost.example"));
        assert!(!matches(&snap, "www.site1.sharedhost.example"));
        assert!(
            matches(&snap, "www.bad.example"),
            "the other import is untouched"
        );
    });
}

#[test]
fn admin_api_key_create_list_revoke() {
    both(|db| {
        let out = khien(
            db,
            &[
                "admin",
                "api-key",
                "create",
                "--name",
                "sensor-1",
                "--scope",
                "hits:write",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(secret.starts_with("khk_") && secret.len() == 47, "{secret}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("shown only once"), "{err}");

        let v = json(
            db,
            &[
                "admin",
                "api-key",
                "create",
                "--name",
                "analyst",
                "--scope",
                "read",
                "--scope",
                "hits:write",
            ],
        );
        assert!(v["secret"].as_str().is_some_and(|s| s.starts_with("khk_")));
        assert_eq!(
            v["key"]["scopes"],
            serde_json::json!(["read", "hits:write"])
        );

        let mut store = hub_store(db);
        let key = store
            .verify_api_key(&secret)
            .expect("verify")
            .expect("valid");
        assert_eq!(key.name, "sensor-1");
        drop(store);

        let listed = json(db, &["admin", "api-key", "list"]);
        let keys = listed.as_array().expect("array");
        assert_eq!(keys.len(), 2);
        assert!(
            !listed.to_string().contains(&secret),
            "secrets are never listed"
        );
        let text =
            String::from_utf8_lossy(&khien(db, &["admin", "api-key", "list"]).stdout).to_string();
        assert!(
            text.contains("sensor-1") && text.contains(&secret[..12]),
            "{text}"
        );

        let out = khien(db, &["admin", "api-key", "revoke", "sensor-1"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = json(db, &["admin", "api-key", "list"]);
        assert!(listed[0]["revoked_at"].is_string(), "{listed}");
        assert!(listed[1]["revoked_at"].is_null(), "{listed}");
        let mut store = hub_store(db);
        assert!(store.verify_api_key(&secret).expect("verify").is_none());
        drop(store);

        let out = khien(db, &["admin", "api-key", "revoke", "sensor-1"]);
        assert_eq!(out.status.code(), Some(2), "nothing left to revoke");
        let id = listed[1]["id"].to_string();
        let out = khien(db, &["admin", "api-key", "revoke", "--id", &id]);
        assert_eq!(out.status.code(), Some(0));
        let out = khien(
            db,
            &[
                "admin", "api-key", "create", "--name", "x", "--scope", "root",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "unknown scope");
    });
}

/// The database as the hub opens it (with its hash key).
fn hub_store(db: &Db) -> khien_store::Store {
    let config = khien_hub::HubConfig {
        database: db.url.clone(),
        data_dir: db.data_dir(),
        ..khien_hub::HubConfig::default()
    };
    khien_hub::open_admin_store(&config).expect("store").0
}

/// One HTTP/1.1 request over a plain socket: `head` is the request line
/// and any headers after `Host`; returns the status line and the body.
fn http(addr: &str, head: &str, body: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    let status = reply.lines().next().unwrap_or("").to_string();
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn http_get(addr: &str, path: &str) -> (String, String) {
    http(addr, &format!("GET {path} HTTP/1.1"), "")
}

#[test]
fn serve_prints_its_address_answers_and_stops_on_sigterm() {
    both(|db| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_khien"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                &db.url,
                "--lang",
                "en",
            ])
            .env("KHIEN_LOG", "warn")
            .env("KHIEN_DATA_DIR", db.data_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn khien serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .expect("address")
            .to_string();
        let (status, body) = http_get(&addr, "/healthz");
        assert!(status.contains("200"), "{status}");
        assert_eq!(body, "ok\n");
        let (status, body) = http_get(&addr, "/api/v1/snapshots/latest");
        assert!(status.contains("401"), "{status}");
        assert!(body.contains("urn:khien:problem:unauthorized"), "{body}");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

#[test]
fn serve_demo_shows_this_machine_its_warning_and_takes_its_acknowledgement() {
    both(|db| {
        // A known port: the demo's links name it (with port 0 they keep the
        // default address, as the hub learns its port only when bound).
        let port = super::sensor::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_khien"))
            .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database", &db.url, "--json"])
            .env("KHIEN_LOG", "warn")
            .env("KHIEN_DATA_DIR", db.data_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn khien serve --demo");
        let stdout = child.stdout.take().expect("stdout");
        let mut values =
            serde_json::Deserializer::from_reader(stdout).into_iter::<serde_json::Value>();
        let started = values.next().expect("the start").expect("JSON");
        let hub = started["listen"].as_str().expect("listen").to_string();
        let report = values.next().expect("the demo report").expect("JSON");
        assert!(report["cases"].as_u64() >= Some(1), "{report}");
        let notice = report["notice"].as_str().expect("a notice URL").to_string();
        let notice = notice
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        // The engine posts the notice on its next run (every 5 s).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let page = loop {
            let (status, page) = http_get(&notice, "/");
            assert!(status.contains("200"), "{status}");
            if page.contains("flubot") {
                break page;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no warning for 127.0.0.1: {page}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert!(page.contains("127.0.0.1"), "the address seen: {page}");
        assert!(
            page.contains(&format!(
                "http:&#x2f;&#x2f;{}&#x2f;verify",
                hub.replace('/', "&#x2f;")
            )),
            "links to this hub: {page}"
        );
        let token = page
            .split("token=")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .expect("the acknowledgement form");
        let (status, done) = http(
            &notice,
            "POST /khien-notice/acknowledge HTTP/1.1\r\n\
             Content-Type: application/x-www-form-urlencoded",
            &format!("token={token}"),
        );
        assert!(status.contains("200"), "{status}: {done}");
        let (_, page) = http_get(&notice, "/");
        assert!(
            page.contains("Không có cảnh báo"),
            "the notice is gone: {page}"
        );
        let key = report["api_key"].as_str().expect("key");
        let (_, reply) = http(
            &hub,
            &format!("GET /api/v1/cases HTTP/1.1\r\nAuthorization: Bearer {key}"),
            "",
        );
        assert_eq!(
            reply.matches("\"state\":\"acknowledged\"").count(),
            1,
            "the subscriber's case moved: {reply}"
        );
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    });
}

#[test]
fn rotate_encryption_key_reencrypts_contacts_under_the_new_key() {
    both(|db| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (master, old, new, lost) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);
        let hex = |k: [u8; 32]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let config = |enc: [u8; 32], previous: &[[u8; 32]]| {
            let path = dir.path().join(format!("hub-{}.toml", hex(enc)));
            let prev: Vec<String> = previous
                .iter()
                .map(|k| format!("\"{}\"", hex(*k)))
                .collect();
            std::fs::write(
                &path,
                format!(
                    "database = \"{}\"\ndata_dir = \"{}\"\n[secrets]\nmaster_key = \"{}\"\nencryption_key = \"{}\"\nprevious_encryption_keys = [{}]\n",
                    db.url,
                    dir.path().display(),
                    hex(master),
                    hex(enc),
                    prev.join(", ")
                ),
            )
            .expect("config");
            path
        };
        let before = khien_hub::Secrets::from_keys(master, old, &[]);
        let mut store = hub_store_with(db, &before);
        let org = store
            .create_org("isp", "ISP", khien_model::OrgRole::Operator)
            .expect("org")
            .id;
        let contacts = khien_store::EncryptedContacts {
            email: Some(
                before
                    .encrypt(org, "HN-1", "email", "an@isp.vn")
                    .expect("enc"),
            ),
            ..Default::default()
        };
        store
            .upsert_subscribers(
                org,
                &[khien_store::SubscriberUpsert {
                    external_id: "HN-1".into(),
                    pseudonym: before.pseudonym(org, "HN-1"),
                    language: "vi".into(),
                    contacts: Some((contacts, before.key_id())),
                    identities: vec![],
                }],
            )
            .expect("subscriber");
        drop(store);

        let rotated = config(new, &[old]);
        let out = khien(
            db,
            &[
                "admin",
                "rotate-encryption-key",
                "--config",
                &rotated.display().to_string(),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 subscribers re-encrypted"));
        let after = khien_hub::Secrets::from_keys(master, new, &[]);
        let mut store = hub_store_with(db, &after);
        let rec = store
            .subscriber_by_pseudonym(org, &after.pseudonym(org, "HN-1"))
            .expect("read")
            .expect("subscriber");
        assert_eq!(rec.key_id.as_deref(), Some(after.key_id().as_str()));
        let email = rec.contacts.email.expect("email");
        assert_eq!(
            after.decrypt(org, "HN-1", "email", &email).as_deref(),
            Ok("an@isp.vn"),
            "readable with the new key alone"
        );
        let audit = store
            .audit_events(
                &khien_store::AuditFilter {
                    action_prefix: Some("subscriber.rekey".into()),
                    ..Default::default()
                },
                khien_store::Page {
                    after: None,
                    limit: 10,
                },
            )
            .expect("audit");
        assert_eq!(audit.len(), 1);
        drop(store);

        // A key change without the old key cannot read the rows: they are
        // left as they are and the command fails.
        let out = khien(
            db,
            &[
                "admin",
                "rotate-encryption-key",
                "--config",
                &config(lost, &[]).display().to_string(),
            ],
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be decrypted"));
    });
}

fn hub_store_with(db: &Db, secrets: &khien_hub::Secrets) -> khien_store::Store {
    let mut s = khien_store::Store::open(&db.url).expect("store");
    s.set_hash_key(secrets.hash_key());
    s
}

#[test]
fn templates_check_names_the_broken_file_and_line_and_render_measures_sms() {
    let db = super::sqlite();
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().display().to_string();
    let out = khien(
        &db,
        &["admin", "templates", "check", "--templates-dir", &dir_arg],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 overridden"));
    std::fs::create_dir(dir.path().join("sms")).expect("mkdir");
    std::fs::write(
        dir.path().join("sms/miner.en.txt"),
        "{{ operator }}: a miner ({{ family }}) runs on your line.\n{% for s in guidance_steps %}\n",
    )
    .expect("write");
    let out = khien(
        &db,
        &["admin", "templates", "check", "--templates-dir", &dir_arg],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sms/miner.en.txt:"), "{err}");
    std::fs::write(
        dir.path().join("sms/miner.en.txt"),
        "{{ operator }}: a miner ({{ family }}) runs on your line. Ticket {{ ticket }}.",
    )
    .expect("write");
    let out = khien(
        &db,
        &["admin", "templates", "check", "--templates-dir", &dir_arg],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sms/miner.en.txt"));
    let out = khien(
        &db,
        &[
            "admin",
            "templates",
            "render",
            "--templates-dir",
            &dir_arg,
            "--channel",
            "sms",
            "--family",
            "xmrig",
            "--notice-lang",
            "en",
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("a miner (xmrig)")),
        "{v}"
    );
    assert_eq!(v["sms"]["encoding"], "gsm7");
    assert_eq!(v["sms"]["segments"], 1);
    // The built-in Vietnamese SMS needs UCS-2 with diacritics, GSM-7 without.
    let v: serde_json::Value = serde_json::from_slice(
        &khien(
            &db,
            &["admin", "templates", "render", "--channel", "sms", "--json"],
        )
        .stdout,
    )
    .expect("json");
    assert_eq!(v["sms"]["encoding"], "ucs2");
    assert_eq!(v["sms"]["without_diacritics"]["encoding"], "gsm7");
}
