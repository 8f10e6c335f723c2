//! End to end, every part a real process: indicators imported with
//! `khien intel import`, a hub (`khien serve`) with an operator made by
//! `khien admin`, subscribers and a RADIUS accounting file uploaded over
//! HTTP, and `khien sensor --once` replaying resolver logs to the hub.
//! Cases open for the right subscribers, statistics move, cases resolve
//! when the hits stop, and the one whose hits return is reinfected.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::sensor::{Proc, free_port, import};
use super::{Db, both, khien};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Api {
    base: String,
    key: String,
    agent: ureq::Agent,
}

impl Api {
    fn get(&self, path: &str) -> Value {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.key))
            .call()
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON")
    }

    fn post(&self, path: &str, content_type: &str, body: &str) -> Value {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {}", self.key))
            .header("Content-Type", content_type)
            .send(body.as_bytes())
            .expect("POST");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().expect("body");
        assert_eq!(status, 200, "POST {path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    /// Cases by subscriber pseudonym: (state, hit count).
    fn cases(&self) -> std::collections::BTreeMap<String, (String, u64)> {
        self.get("/api/v1/cases")["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| {
                (
                    c["subscriber"].as_str().expect("subscriber").to_string(),
                    (
                        c["state"].as_str().expect("state").to_string(),
                        c["hit_count"].as_u64().expect("count"),
                    ),
                )
            })
            .collect()
    }
}

/// Writes Unbound `log-queries` lines at `at` (unix seconds).
fn write_log(path: &Path, at: i64, lines: &[(&str, &str)]) {
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, (client, name))| {
            format!(
                "[{}] unbound[1811:0] info: {client} {name}. A IN\n",
                at + i as i64
            )
        })
        .collect();
    std::fs::write(path, text).expect("log");
}

fn replay(db: &Db, dir: &Path, port: u16, key: &str, log: &Path) {
    // A state directory per log: each replay reads its file from the start.
    let stem = log.file_stem().and_then(|s| s.to_str()).unwrap_or("log");
    let state = dir.join(format!("state-{stem}"));
    let out = Command::new(env!("CARGO_BIN_EXE_khien"))
        .args(["sensor", "--once", "--sensor", "resolver-1"])
        .arg("--state-dir")
        .arg(&state)
        .arg("--snapshot")
        .arg(dir.join("snapshot.bin"))
        .arg("--input")
        .arg(format!("file:{}:unbound", log.display()))
        .arg("--output")
        .arg(format!("hub:http://127.0.0.1:{port}"))
        .env("KHIEN_API_KEY", key)
        .env("KHIEN_DATA_DIR", db.data_dir())
        .output()
        .expect("run khien sensor");
    ok(&out);
}

#[test]
fn hits_open_cases_which_resolve_when_quiet_and_reinfect_when_back() {
    both(|db| {
        let dir = tempfile::tempdir().expect("tempdir");
        import(
            db,
            dir.path(),
            "c2.txt",
            "c2.evil.example\nbank-stealer.example\n",
        );
        let snap = khien(
            db,
            &[
                "intel",
                "snapshot",
                "--out",
                &dir.path().join("snapshot.bin").display().to_string(),
            ],
        );
        ok(&snap);
        ok(&khien(
            db,
            &[
                "admin", "org", "create", "--slug", "isp", "--name", "ISP", "--role", "operator",
            ],
        ));
        let admin = ok(&khien(
            db,
            &[
                "admin",
                "api-key",
                "create",
                "--org",
                "isp",
                "--name",
                "isp-admin",
                "--scope",
                "admin",
            ],
        ));
        let sensor = ok(&khien(
            db,
            &[
                "admin",
                "api-key",
                "create",
                "--org",
                "isp",
                "--name",
                "resolver-1",
                "--scope",
                "hits:write",
            ],
        ));
        let config = dir.path().join("hub.toml");
        std::fs::write(
            &config,
            "[cases]\nresolve_after = \"4s\"\njob_interval = \"250ms\"\napply_interval = \"100ms\"\n",
        )
        .expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("hub.log")).expect("log");
        let _hub = Proc(
            Command::new(env!("CARGO_BIN_EXE_khien"))
                .args(["--database", &db.url, "serve", "--listen"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("--config")
                .arg(&config)
                .env("KHIEN_DATA_DIR", db.data_dir())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start khien serve"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "hub did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let api = Api {
            base: format!("http://127.0.0.1:{port}"),
            key: admin,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        };
        api.post(
            "/api/v1/subscribers",
            "text/csv",
            "id,name,email\nHN-1,Nguyễn Văn A,a@isp.vn\nHN-2,Trần Thị B,b@isp.vn\nHN-3,Lê C,c@isp.vn\n",
        );
        let start = chrono::Utc::now() - chrono::Duration::hours(1);
        let radius = format!(
            "time,status,user,address,session\n{t},Start,HN-1,113.161.0.1,a\n{t},Start,HN-2,113.161.0.2,b\n{t},Start,HN-3,113.161.0.3,c\n",
            t = start.to_rfc3339()
        );
        let up = api.post(
            "/api/v1/attribution?format=radius-csv",
            "text/plain",
            &radius,
        );
        assert_eq!(up["assignments_created"], 3, "{up}");

        // HN-1 and HN-2 reach C&C names; HN-3 only popular sites.
        let now = chrono::Utc::now().timestamp();
        let first = dir.path().join("day1.log");
        write_log(
            &first,
            now - 2,
            &[
                ("113.161.0.1", "c2.evil.example"),
                ("113.161.0.1", "www.c2.evil.example"),
                ("113.161.0.2", "bank-stealer.example"),
                ("113.161.0.3", "www.google.com"),
                ("113.161.0.3", "zalo.me"),
            ],
        );
        replay(db, dir.path(), port, &sensor, &first);
        // The case job follows the stored hits within its interval.
        let new = |api: &Api| -> u64 {
            api.get("/api/v1/stats/cases")["totals"]
                .as_array()
                .expect("totals")
                .iter()
                .map(|t| t["new"].as_u64().unwrap_or(0))
                .sum()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while new(&api) < 2 {
            assert!(
                Instant::now() < deadline,
                "no cases opened: {:?}",
                api.cases()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(new(&api), 2);
        let cases = api.cases();
        let p1 = subscriber(&api, "HN-1");
        let p2 = subscriber(&api, "HN-2");
        assert_eq!(
            cases.keys().cloned().collect::<Vec<_>>().len(),
            2,
            "{cases:?}"
        );
        assert_eq!(cases[&p1].1, 2);
        assert_eq!(cases[&p2].1, 1);

        // What HN-1 would be told, rendered by the CLI from the database.
        let case_id = api.get(&format!("/api/v1/cases?subscriber={p1}"))["items"][0]["id"]
            .as_i64()
            .expect("case id")
            .to_string();
        let preview: Value = serde_json::from_str(&ok(&khien(
            db,
            &[
                "admin",
                "preview",
                "--org",
                "isp",
                "--case",
                &case_id,
                "--channel",
                "email",
                "--json",
            ],
        )))
        .expect("preview JSON");
        assert!(
            preview["subject"]
                .as_str()
                .is_some_and(|s| s.contains("ISP")),
            "{preview}"
        );
        let text = preview["text"].as_str().expect("text");
        assert!(
            text.contains("/verify") && text.contains("https://khonggianmang.vn/"),
            "how to check it and the scanner: {text}"
        );
        assert!(
            preview["html"]
                .as_str()
                .is_some_and(|h| !h.contains("<script")),
            "{preview}"
        );
        let missing = khien(
            db,
            &[
                "admin",
                "preview",
                "--org",
                "isp",
                "--case",
                "999999",
                "--channel",
                "sms",
            ],
        );
        assert_eq!(missing.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no case 999999"));

        // No more hits: both resolve by themselves.
        let deadline = Instant::now() + Duration::from_secs(30);
        while api.cases().values().any(|(s, _)| s != "resolved") {
            assert!(
                Instant::now() < deadline,
                "cases did not resolve: {:?}",
                api.cases()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let stats = api.get("/api/v1/stats/cases");
        let resolved: u64 = stats["totals"]
            .as_array()
            .expect("totals")
            .iter()
            .map(|t| t["resolved"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(resolved, 2, "{stats}");

        // HN-1's device talks to its C&C again.
        let second = dir.path().join("day2.log");
        write_log(
            &second,
            chrono::Utc::now().timestamp(),
            &[("113.161.0.1", "c2.evil.example")],
        );
        replay(db, dir.path(), port, &sensor, &second);
        let deadline = Instant::now() + Duration::from_secs(10);
        while api.cases()[&p1].0 != "reinfected" {
            assert!(
                Instant::now() < deadline,
                "not reinfected: {:?}",
                api.cases()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let cases = api.cases();
        assert_eq!(cases[&p1], ("reinfected".to_string(), 3));
        assert_eq!(cases[&p2].0, "resolved");
        let stats = api.get("/api/v1/stats/cases");
        let reinfected: u64 = stats["totals"]
            .as_array()
            .expect("totals")
            .iter()
            .map(|t| t["reinfected"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(reinfected, 1, "{stats}");
    });
}

/// The pseudonym the hub gave a subscriber (from its directory listing).
fn subscriber(api: &Api, external: &str) -> String {
    api.get("/api/v1/subscribers")["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["external_id"] == external)
        .and_then(|s| s["id"].as_str())
        .expect("subscriber listed")
        .to_string()
}
