//! The hub over real HTTP: a server on 127.0.0.1:0 in this process, a
//! blocking HTTP client, and every test on SQLite and, when
//! `KHIEN_TEST_POSTGRES` is set (the test command sets it; CI must),
//! PostgreSQL. Modules by theme under `tests/hub/`.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use khien_hub::{HubConfig, HubHandle, Secrets};
use khien_model::{
    Confidence, Hit, IndicatorRecord, Observable, ObservableKind, OrgRole, SourceAttributes,
    ThreatType, Timestamp, Tlp, UserRole,
};
use khien_store::{ApiKeyRef, NewApiKey, NewUser, Store};
use serde_json::{Value, json};

/// The keys every test hub runs with.
const MASTER_KEY: [u8; 32] = [0x11; 32];
const ENCRYPTION_KEY: [u8; 32] = [0x22; 32];

fn secrets() -> Secrets {
    Secrets::from_keys(MASTER_KEY, ENCRYPTION_KEY, &[])
}

struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("khien.db").display());
        Self {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    fn postgres(test: &str) -> Option<Self> {
        let Ok(base) = std::env::var("KHIEN_TEST_POSTGRES") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "KHIEN_TEST_POSTGRES must be set in CI"
            );
            eprintln!("SKIP postgres: KHIEN_TEST_POSTGRES not set ({test})");
            return None;
        };
        let schema = format!(
            "khien_hub_{test}_{}_{}",
            std::process::id(),
            Utc::now().timestamp_subsec_nanos()
        );
        let mut admin = ::postgres::Client::connect(&base, ::postgres::NoTls).expect("connect");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Self {
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            _dir: None,
            pg: Some((base, schema)),
        })
    }

    fn open(&self) -> Store {
        let mut s = Store::open(&self.url).expect("open store");
        s.set_hash_key(secrets().hash_key());
        s
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.pg
            && let Ok(mut c) = ::postgres::Client::connect(base, ::postgres::NoTls)
        {
            let _ = c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
}

macro_rules! hub_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::TestDb::sqlite()); } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                if let Some(db) = super::TestDb::postgres(stringify!($name)) { super::$name(&db); }
            } )*
        }
    };
}

/// A hub serving one database, stopped on drop.
struct TestHub {
    rt: tokio::runtime::Runtime,
    handle: Option<HubHandle>,
    base: String,
    agent: ureq::Agent,
    /// The setup token of the first administrator, when this start made
    /// them.
    first_token: Option<String>,
    _data: tempfile::TempDir,
    /// The database, to wait for the case job.
    db_url: String,
    /// Where the walled-garden listeners bound, in configuration order.
    notice_addrs: Vec<std::net::SocketAddr>,
}

/// A logged-in user: the session cookie and the CSRF token.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

impl TestHub {
    fn start(db: &TestDb, tweak: impl FnOnce(&mut HubConfig)) -> Self {
        Self::start_with_clock(db, Arc::new(khien_hub::SystemClock), tweak)
    }

    /// A hub whose notification engine reads `clock`.
    fn start_with_clock(
        db: &TestDb,
        clock: Arc<dyn khien_hub::Clock>,
        tweak: impl FnOnce(&mut HubConfig),
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = HubConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            database: db.url.clone(),
            data_dir: data.path().to_path_buf(),
            ..HubConfig::default()
        };
        config.secrets.master_key = Some(hex::encode(MASTER_KEY));
        config.secrets.encryption_key = Some(hex::encode(ENCRYPTION_KEY));
        config.cases.apply_interval = Duration::from_millis(20);
        config.lookups.requests_per_minute = 100_000;
        config.lookups.burst = 10_000;
        tweak(&mut config);
        let (handle, first_token, notice_addrs) = rt.block_on(async {
            let hub = config.build_with_clock(clock).await.expect("hub builds");
            let token = hub.first_start().map(|f| f.setup_token.clone());
            let notices = hub.notice_addrs();
            (hub.spawn(), token, notices)
        });
        let base = format!("http://{}", handle.local_addr());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Self {
            rt,
            handle: Some(handle),
            base,
            agent,
            first_token,
            _data: data,
            db_url: db.url.clone(),
            notice_addrs,
        }
    }

    /// Waits until the case job has applied every stored batch.
    fn settle(&self) {
        let mut store = Store::open(&self.db_url).expect("open store");
        let deadline = Instant::now() + Duration::from_secs(20);
        while store.hits_pending().expect("pending") {
            assert!(Instant::now() < deadline, "the case job did not run");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, ureq::Error> {
        let uri = format!("{}{path}", self.base);
        let mut b = ureq::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let r = match body {
            Some(body) => self.agent.run(b.body(body.to_vec()).expect("request"))?,
            None => self.agent.run(b.body(()).expect("request"))?,
        };
        Ok(Reply::from(r))
    }

    /// A JSON request with an API key.
    fn call(&self, method: &str, path: &str, key: &str, body: Option<&Value>) -> Reply {
        let auth = format!("Bearer {key}");
        let bytes = body.map(|b| b.to_string().into_bytes());
        let mut h = vec![("Authorization", auth.as_str())];
        if bytes.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        self.request(method, path, &h, bytes.as_deref())
    }

    /// A JSON request in a session (with its CSRF token).
    fn as_user(&self, method: &str, path: &str, s: &Session, body: Option<&Value>) -> Reply {
        let cookie = format!("khien_session={}", s.cookie);
        let bytes = body.map(|b| b.to_string().into_bytes());
        let mut h = vec![
            ("Cookie", cookie.as_str()),
            ("X-CSRF-Token", s.csrf.as_str()),
        ];
        if bytes.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        self.request(method, path, &h, bytes.as_deref())
    }

    /// Logs in; panics unless it works.
    fn login(&self, email: &str, password: &str) -> Session {
        let r = self.request(
            "POST",
            "/api/v1/session",
            &[("Content-Type", "application/json")],
            Some(
                json!({"email": email, "password": password})
                    .to_string()
                    .as_bytes(),
            ),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let set = r.header("set-cookie").expect("Set-Cookie").to_string();
        let cookie = set
            .strip_prefix("khien_session=")
            .and_then(|v| v.split(';').next())
            .expect("session cookie")
            .to_string();
        Session {
            cookie,
            csrf: r.json()["csrf_token"].as_str().expect("csrf").to_string(),
        }
    }

    /// Sets a password with a setup token, then logs in.
    fn activate(&self, email: &str, token: &str, password: &str) -> Session {
        let r = self.request(
            "POST",
            "/api/v1/setup",
            &[("Content-Type", "application/json")],
            Some(
                json!({"token": token, "password": password})
                    .to_string()
                    .as_bytes(),
            ),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        self.login(email, password)
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut req = self.agent.post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::from(req.send(body).expect("request"))
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::from(req.call().expect("request"))
    }

    /// POSTs NDJSON hits with a batch id, and waits for the case job to
    /// apply them.
    fn send_ndjson(&self, key: &str, batch_id: &str, hits: &[Hit]) -> Reply {
        let auth = format!("Bearer {key}");
        let r = self.post(
            "/api/v1/hits",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/x-ndjson"),
                ("Idempotency-Key", batch_id),
            ],
            ndjson(hits).as_bytes(),
        );
        self.settle();
        r
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.rt.block_on(h.shutdown());
        }
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl From<ureq::http::Response<ureq::Body>> for Reply {
    fn from(r: ureq::http::Response<ureq::Body>) -> Self {
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r.into_body().read_to_vec().expect("body");
        Self {
            status,
            headers,
            body,
        }
    }
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a problem document of this status and returns it.
    fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let p = self.json();
        assert_eq!(p["status"], status);
        assert!(
            p["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:khien:problem:"))
        );
        assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
        p
    }
}

fn at(minute: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0)
        .single()
        .expect("date")
        + chrono::Duration::minutes(minute)
}

fn hit(sensor: &str, client: &str, count: u64) -> Hit {
    Hit {
        bucket: at(0),
        client: client.parse().expect("ip"),
        client_port: None,
        indicator: "evil.example".into(),
        kind: ObservableKind::Domain,
        indicator_id: None,
        family: Some("mirai".into()),
        threat_type: ThreatType::C2,
        count,
        first_seen: at(1),
        last_seen: at(2),
        sensor: sensor.into(),
        evidence: Some("a.evil.example".into()),
    }
}

fn ndjson(hits: &[Hit]) -> String {
    hits.iter()
        .map(|h| serde_json::to_string(h).expect("serialise") + "\n")
        .collect()
}

/// An API key of the hub's own organisation.
fn key(db: &TestDb, name: &str, scopes: &[&str]) -> String {
    key_in(db, 1, name, scopes)
}

fn key_in(db: &TestDb, org_id: i64, name: &str, scopes: &[&str]) -> String {
    db.open()
        .create_api_key(&NewApiKey {
            org_id,
            name,
            scopes,
            created_by: None,
        })
        .expect("key")
        .1
}

/// An operator organisation with an admin key.
fn operator(db: &TestDb, slug: &str) -> (i64, String) {
    let org = db
        .open()
        .create_org(slug, &format!("ISP {slug}"), OrgRole::Operator)
        .expect("org")
        .id;
    (org, key_in(db, org, &format!("{slug}-admin"), &["admin"]))
}

/// A user with a setup token, made through the store.
fn user_with_token(db: &TestDb, org_id: i64, email: &str, role: UserRole) -> String {
    let mut s = db.open();
    let u = s
        .create_user(&NewUser {
            org_id,
            email,
            display_name: email,
            role,
            language: "vi",
        })
        .expect("user");
    s.create_setup_token(u.id, 3600).expect("token")
}

fn totals(db: &TestDb) -> (u64, u64) {
    let t = db.open().hit_totals().expect("totals");
    (t.rows, t.count)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn import_domain(db: &TestDb, value: &str) {
    let seen = Utc::now();
    let record = IndicatorRecord {
        observable: Observable::detect(value).expect("observable"),
        attributes: SourceAttributes {
            source: "test".into(),
            tlp: Tlp::Green,
            confidence: Confidence::new(80).expect("confidence"),
            family: None,
            threat_type: ThreatType::C2,
            reference: None,
            first_seen: seen,
            last_seen: seen,
            expires_at: None,
        },
    };
    let mut store = db.open();
    let mut imp = store.import(false).expect("import");
    imp.add_batch(&[record], &[None]).expect("batch");
    imp.commit().expect("commit");
}

// After the macros and helpers they use.
#[path = "hub/auth.rs"]
mod auth;
#[path = "hub/cases.rs"]
mod cases;
#[path = "hub/ingest.rs"]
mod ingest;
#[path = "hub/lookup.rs"]
mod lookup;
#[path = "hub/notifications.rs"]
mod notifications;
#[path = "hub/openapi.rs"]
mod openapi;
#[path = "hub/robustness.rs"]
mod robustness;
#[path = "hub/tenants.rs"]
mod tenants;
