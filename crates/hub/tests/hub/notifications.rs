//! Warning subscribers end to end: e-mail into a real SMTP server
//! (aiosmtpd, `crates/notify/tests/smtp_sink.py`), SMS into a loopback
//! HTTP gateway, the walled-garden notice seen from the infected address
//! and from others, acknowledgement and verification, reminders and
//! escalations on a test clock, rate limits under 10,000 new cases, an SMTP
//! outage, forged tokens, the walled garden's client list in a real Unbound
//! resolver, the notice read and acknowledged in a real headless Chromium
//! with JavaScript off, and the bad inputs of the issue.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use khien_hub::{ManualClock, NoticeListener};
use khien_notify::{GatewayConfig, SmtpConfig, SmtpSecurity};
use khien_testkit::browser::{self, Browser};
use khien_testkit::unbound::{self, Answer, Unbound};

use super::*;

hub_tests!(
    a_new_case_warns_by_email_sms_and_a_notice_only_its_address_sees,
    reminders_and_escalations_follow_the_clock_and_exports_are_marked_done,
    rate_limits_hold_under_ten_thousand_new_cases,
    an_smtp_outage_leaves_warnings_queued_and_each_is_sent_once,
    forged_or_expired_tokens_are_refused,
    unreachable_subscribers_and_failing_gateways_end_on_the_dead_letter_list,
    delivery_reports_are_signed_and_name_a_known_message,
    quiet_hours_and_per_subscriber_limits_defer_warnings,
    a_broken_template_override_stops_the_hub_naming_file_and_line,
    the_walled_garden_sends_only_subscribers_with_a_notice_to_the_listener,
    a_policy_update_keeps_the_hubs_defaults_and_a_delete_restores_them,
    the_web_notice_is_read_and_acknowledged_in_a_real_browser_without_javascript,
);

/// The secret the test gateway signs delivery reports with.
const WEBHOOK_SECRET: &str = "gateway shared secret";

// --- A real SMTP server -------------------------------------------------------------

/// Python with aiosmtpd (`KHIEN_PYTHON`, else the test command's venv).
fn python() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let py = std::env::var_os("KHIEN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("py/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "python with aiosmtpd not found at {} (KHIEN_PYTHON); CI must have it",
        py.display()
    );
    eprintln!("SKIP: python with aiosmtpd not found at {}", py.display());
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd on loopback, writing each message it accepts to a directory.
struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
}

/// A message the sink accepted.
struct Received {
    to: Vec<String>,
    subject: String,
    text: String,
    html: String,
    headers: String,
}

impl SmtpSink {
    fn start(python: &PathBuf, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../notify/tests/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP sink did not start");
        Self { child, dir }
    }

    fn messages(&self) -> Vec<Received> {
        let mut n = 1;
        let mut out = Vec::new();
        loop {
            let meta = self.dir.path().join(format!("{n}.json"));
            let Ok(meta) = std::fs::read(&meta) else {
                return out;
            };
            let meta: Value = serde_json::from_slice(&meta).unwrap();
            let raw = std::fs::read(self.dir.path().join(format!("{n}.eml"))).unwrap();
            let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
            let header_end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(raw.len());
            out.push(Received {
                to: meta["rcpt_tos"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect(),
                subject: msg.subject().unwrap_or("").to_string(),
                text: msg.body_text(0).map(|t| t.to_string()).unwrap_or_default(),
                html: unescape(&msg.body_html(0).map(|t| t.to_string()).unwrap_or_default()),
                headers: String::from_utf8_lossy(&raw[..header_end]).into_owned(),
            });
            n += 1;
        }
    }

    /// Waits until at least `n` messages arrived.
    fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{} messages of {n} arrived",
                m.len()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// Undoes the HTML escaping of text (minijinja escapes `/` too).
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- A loopback SMS gateway ---------------------------------------------------------

/// How the test gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GatewayMode {
    Accept,
    Status(u16),
    Stall,
}

#[derive(Clone)]
struct Gateway {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
    mode: Arc<Mutex<GatewayMode>>,
}

impl Gateway {
    fn start(hub_rt: &tokio::runtime::Runtime) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(GatewayMode::Accept));
        let (r, m) = (received.clone(), mode.clone());
        let listener = hub_rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/send",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (r, m) = (r.clone(), m.clone());
                async move {
                    let mode = *m.lock().unwrap();
                    match mode {
                        GatewayMode::Stall => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            (axum::http::StatusCode::OK, String::new())
                        }
                        GatewayMode::Status(s) => (
                            axum::http::StatusCode::from_u16(s).unwrap(),
                            "{\"error\": \"gateway says no\"}".into(),
                        ),
                        GatewayMode::Accept => {
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            let mut r = r.lock().unwrap();
                            r.push(v);
                            (
                                axum::http::StatusCode::OK,
                                json!({"id": format!("gw-{}", r.len())}).to_string(),
                            )
                        }
                    }
                }
            }),
        );
        hub_rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            received,
            mode,
        }
    }

    fn set(&self, mode: GatewayMode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    fn config(&self) -> GatewayConfig {
        GatewayConfig {
            url: self.url.clone(),
            method: "POST".into(),
            headers: [("Authorization".to_string(), "Bearer gw-token".to_string())]
                .into_iter()
                .collect(),
            content_type: "application/json".into(),
            body_template: r#"{"to": {{ to | json }}, "from": {{ sender | json }}, "text": {{ text | json }}, "reference": {{ ticket | json }}}"#.into(),
            sender: "ISP".into(),
            id_pointer: Some("/id".into()),
            timeout: Duration::from_secs(2),
            ascii_fallback: true,
            max_segments: 4,
            webhook_secret: Some(WEBHOOK_SECRET.into()),
        }
    }
}

// --- The operator under test -----------------------------------------------------------

fn smtp(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        username: None,
        password: None,
        from: "An toàn thông tin ISP <canhbao@isp.test>".into(),
        reply_to: None,
        root_ca_pem: None,
        timeout: Duration::from_secs(5),
        list_unsubscribe: None,
        dkim: None,
        pool_size: 2,
    }
}

/// Notifications on, fast, every hour awake (quiet hours off unless a
/// test sets them).
fn notifying(c: &mut HubConfig, smtp_port: Option<u16>, gateway: Option<&Gateway>) {
    let n = &mut c.notifications;
    n.interval = Duration::from_millis(40);
    n.public_url = "https://canhbao.isp.test".into();
    n.scanner_url = "https://khonggianmang.test/quet".into();
    n.smtp = smtp_port.map(smtp);
    n.sms = gateway.map(Gateway::config);
    n.notice = vec![NoticeListener {
        org: "isp".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
    }];
    n.policy.quiet_hours = String::new();
    n.policy.escalations = Vec::new();
}

/// A running clock for the engine, starting at the real now.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

/// The start of the hour six hours ago.
fn recent() -> Timestamp {
    let t = Utc::now() - chrono::Duration::hours(6);
    t - chrono::Duration::seconds(t.timestamp() % 3600)
}

struct Operator {
    org: i64,
    admin: String,
    sensor: String,
}

fn isp(db: &TestDb) -> Operator {
    let (org, admin) = operator(db, "isp");
    let sensor = key_in(db, org, "s1", &["hits:write"]);
    Operator { org, admin, sensor }
}

/// Uploads a directory (CSV with `id,name,email,phone,language,identities`)
/// and a RADIUS CSV giving `identities[i]` the address `addresses[i]`.
fn subscribers(hub: &TestHub, op: &Operator, csv: &str, sessions: &[(&str, &str)]) {
    let auth = format!("Bearer {}", op.admin);
    let r = hub.request(
        "POST",
        "/api/v1/subscribers",
        &[("Authorization", &auth), ("Content-Type", "text/csv")],
        Some(csv.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let t = recent() - chrono::Duration::hours(1);
    let mut radius = String::from("time,status,user,address,session\n");
    for (i, (user, addr)) in sessions.iter().enumerate() {
        radius.push_str(&format!("{},Start,{user},{addr},s{i}\n", t.to_rfc3339()));
    }
    let r = hub.request(
        "POST",
        "/api/v1/attribution?format=radius-csv",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(radius.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

fn infect(hub: &TestHub, op: &Operator, batch: &str, clients: &[&str], family: &str) {
    let t = recent() + chrono::Duration::minutes(10);
    let hits: Vec<Hit> = clients
        .iter()
        .map(|c| Hit {
            bucket: khien_model::bucket_start(t, 3600),
            client: c.parse().unwrap(),
            client_port: None,
            indicator: "c2.example".into(),
            kind: ObservableKind::Domain,
            indicator_id: None,
            family: Some(family.into()),
            threat_type: ThreatType::C2,
            count: 4,
            first_seen: t,
            last_seen: t,
            sensor: "s1".into(),
            evidence: None,
        })
        .collect();
    let r = hub.send_ndjson(&op.sensor, batch, &hits);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Waits until `check` holds (the engine runs every 40 ms).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Notifications of the operator, optionally of one status or channel.
fn notifications(hub: &TestHub, op: &Operator, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = hub.call(
            "GET",
            &format!("/api/v1/notifications?limit=500{query}{cursor}"),
            &op.admin,
            None,
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let page = r.json();
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}

/// How many notifications the organisation has (of one status), read
/// from the store page by page.
fn count(db: &TestDb, org: i64, status: Option<khien_model::NotificationStatus>) -> usize {
    let mut s = db.open();
    let filter = khien_store::NotificationFilter {
        status,
        ..khien_store::NotificationFilter::default()
    };
    let (mut n, mut after) = (0, None);
    loop {
        let page = s
            .notifications(org, &filter, khien_store::Page { after, limit: 1000 })
            .unwrap();
        n += page.len();
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.notification.id),
            _ => return n,
        }
    }
}

/// An HTTP/1.1 request from a chosen loopback address (127.0.0.x), for
/// the notice listener, which answers by the client's address.
fn http_from(
    hub: &TestHub,
    from: &str,
    to: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let from: std::net::IpAddr = from.parse().unwrap();
    hub.rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let mut stream = socket.connect(to).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: neverssl.example\r\nAccept-Language: vi\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    })
}

/// The acknowledgement link's path in a text.
fn ack_path(text: &str) -> String {
    let start = text.find("/ack/").expect("an acknowledgement link");
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == ')')
        .next()
        .unwrap()
        .to_string()
}

/// Opens the notice from `from` and presses its button, as the
/// subscriber would: (status, page).
fn acknowledge_on_notice(hub: &TestHub, from: &str, notice: SocketAddr) -> (u16, String) {
    let (_, page) = http_from(hub, from, notice, "GET", "/", "");
    let token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .or_else(|| page.split("token=").nth(1))
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("the acknowledgement form: {page}"));
    http_from(
        hub,
        from,
        notice,
        "POST",
        "/khien-notice/acknowledge",
        &format!("token={token}"),
    )
}

fn case_of(hub: &TestHub, op: &Operator, id: i64) -> Value {
    hub.call("GET", &format!("/api/v1/cases/{id}"), &op.admin, None)
        .json()
}

// --- The tests ---------------------------------------------------------------------------

fn a_new_case_warns_by_email_sms_and_a_notice_only_its_address_sees(db: &TestDb) {
    let Some(py) = python() else { return };
    let op = isp(db);
    let port = free_port();
    let sink = SmtpSink::start(&py, port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let gateway = Gateway::start(&rt);
    let hub = TestHub::start_with_clock(db, clock(), |c| notifying(c, Some(port), Some(&gateway)));
    let notice = hub.notice_addrs[0];
    subscribers(
        &hub,
        &op,
        "id,name,email,phone,language,identities\n\
         HN-1,Nguyễn Văn An,an@example.vn,0912 345 678,vi,an@fiber\n\
         HN-2,Trần Thị Bình,binh@example.vn,0912 345 679,vi,binh@fiber\n",
        &[("an@fiber", "127.0.0.1"), ("binh@fiber", "127.0.0.2")],
    );
    // Before any case, nobody sees a notice.
    let (status, page) = http_from(&hub, "127.0.0.1", notice, "GET", "/", "");
    assert_eq!(status, 200);
    assert!(page.contains("Không có cảnh báo"), "{page}");

    infect(&hub, &op, "b1", &["127.0.0.1"], "mirai");
    let mails = sink.wait_for(1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["an@example.vn".to_string()]);
    let email = notifications(&hub, &op, "&channel=email");
    assert_eq!(email.len(), 1);
    let ticket = email[0]["ticket"].as_str().unwrap().to_string();
    assert!(
        ticket.len() == 17 && ticket.as_bytes()[8] == b'-',
        "YYYYMMDD-NNNNNNNN: {ticket}"
    );
    assert!(mail.subject.contains(&ticket), "{}", mail.subject);
    for text in [&mail.text, &mail.html] {
        assert!(text.contains("mirai"), "family in the mail");
        assert!(text.contains(&ticket), "ticket in the mail");
        assert!(text.contains("Nguyễn Văn An"), "the subscriber's name");
        assert!(
            text.contains("https://khonggianmang.test/quet"),
            "the scanner"
        );
        assert!(
            text.contains("Khởi động lại modem"),
            "Vietnamese removal guidance for IoT bots"
        );
        assert!(text.contains("https://canhbao.isp.test/ack/"), "the link");
    }
    assert!(
        mail.headers.contains("Message-ID:") || mail.headers.contains("Message-Id:"),
        "{}",
        mail.headers
    );
    assert!(
        !mail.headers.contains("List-Unsubscribe"),
        "no unsubscribe from security warnings unless configured"
    );

    eventually("the SMS", || !gateway.received().is_empty());
    let sms = gateway.received();
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0]["to"], "+84912345678");
    let sms_text = sms[0]["text"].as_str().unwrap();
    let sms_ticket = notifications(&hub, &op, "&channel=sms")[0]["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sms_text.contains(&sms_ticket), "{sms_text}");
    assert_eq!(sms[0]["reference"], sms_ticket.as_str());
    let info = khien_notify::sms::measure(sms_text);
    assert!(info.segments <= 4, "{info:?}: {sms_text}");

    // The web notice: the infected address sees what, when, which family,
    // how to remove it and how to check it is genuine; its neighbour and
    // any other address see nothing about anybody.
    let (status, page) = http_from(&hub, "127.0.0.1", notice, "GET", "/any/path?x=1", "");
    assert_eq!(status, 200);
    assert!(page.contains("mirai") && page.contains("Khởi động lại modem"));
    assert!(!page.contains("<script"), "no JavaScript");
    let web = notifications(&hub, &op, "&channel=web");
    let web_ticket = web[0]["ticket"].as_str().unwrap();
    assert!(page.contains(web_ticket), "the ticket to verify");
    for other in ["127.0.0.2", "127.0.0.3"] {
        let (status, page) = http_from(&hub, other, notice, "GET", "/", "");
        assert_eq!(status, 200);
        assert!(page.contains("Không có cảnh báo"), "{page}");
        assert!(!page.contains("mirai") && !page.contains(web_ticket));
    }
    eventually("the notice counted as delivered", || {
        notifications(&hub, &op, "&channel=web")[0]["status"] == "delivered"
    });

    // Verification on the operator's public site, by API and page.
    let code = {
        let start = page.find(web_ticket).unwrap();
        let _ = start;
        // The code is printed beside the ticket; find it through the API
        // page instead of parsing the template: wrong codes must fail and
        // the printed one must pass.
        let r = hub.get(
            &format!("/api/v1/notices/verify?ticket={web_ticket}&code=WRONG123"),
            &[],
        );
        assert_eq!(r.json()["genuine"], false);
        let digits: String = page
            .split(|c: char| !c.is_ascii_alphanumeric())
            .find(|w| {
                w.len() == 8
                    && w.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                    && hub
                        .get(
                            &format!("/api/v1/notices/verify?ticket={web_ticket}&code={w}"),
                            &[],
                        )
                        .json()["genuine"]
                        == true
            })
            .expect("a verification code on the page that verifies")
            .to_string();
        digits
    };
    let v = hub
        .get(
            &format!("/api/v1/notices/verify?ticket={web_ticket}&code={code}&lang=en"),
            &[],
        )
        .json();
    assert_eq!(
        (v["genuine"].as_bool(), v["operator"].as_str()),
        (Some(true), Some("ISP isp"))
    );
    assert!(v["message"].as_str().unwrap().contains("genuine"));
    // Checking a warning is also where its guidance is read (a bill note
    // or a call has no room for the steps).
    assert_eq!(v["family"], "mirai");
    assert!(
        !v["guidance"]["steps"].as_array().unwrap().is_empty(),
        "{v}"
    );
    let forged_ticket = format!("{}9", &web_ticket[..16]);
    let v = hub
        .get(
            &format!("/api/v1/notices/verify?ticket={forged_ticket}&code={code}"),
            &[],
        )
        .json();
    assert_eq!(v["genuine"], false);
    assert!(v["guidance"].is_null() && v["family"].is_null(), "{v}");
    let page = hub.get(&format!("/verify?ticket={web_ticket}&code={code}"), &[]);
    let page = unescape(&String::from_utf8_lossy(&page.body));
    assert!(page.contains("ISP isp"));
    let vi = hub
        .get(
            &format!("/api/v1/notices/verify?ticket={web_ticket}&code={code}"),
            &[],
        )
        .json();
    let first_step = vi["guidance"]["steps"][0].as_str().unwrap();
    assert!(page.contains(first_step), "the steps on the page: {page}");

    // The case timeline shows each notification.
    let case_id = email[0]["case_id"].as_i64().unwrap();
    let case = case_of(&hub, &op, case_id);
    assert_eq!(case["state"], "notified");
    let events = case["timeline"].as_array().unwrap();
    for t in [&ticket, &sms_ticket] {
        assert!(
            events
                .iter()
                .any(|e| e["kind"] == "notification"
                    && e["text"].as_str().unwrap().contains(t.as_str())),
            "{t} on the timeline: {events:?}"
        );
    }

    // Acknowledging from the notice ends it and moves the case.
    let (status, done) = acknowledge_on_notice(&hub, "127.0.0.1", notice);
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Đã ghi nhận"), "{done}");
    assert_eq!(case_of(&hub, &op, case_id)["state"], "acknowledged");
    let (_, page) = http_from(&hub, "127.0.0.1", notice, "GET", "/", "");
    assert!(
        page.contains("Không có cảnh báo"),
        "the notice is gone: {page}"
    );
    let events = case_of(&hub, &op, case_id)["timeline"].clone();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["to_state"] == "acknowledged" && e["actor"] == "subscriber"),
        "{events}"
    );
}

fn reminders_and_escalations_follow_the_clock_and_exports_are_marked_done(db: &TestDb) {
    let Some(py) = python() else { return };
    let op = isp(db);
    let port = free_port();
    let sink = SmtpSink::start(&py, port);
    let clock = clock();
    let hub = TestHub::start_with_clock(db, clock.clone(), |c| {
        notifying(c, Some(port), None);
        let p = &mut c.notifications.policy;
        p.channels = vec![khien_model::Channel::Email];
        p.remind_every = Duration::from_secs(7 * 86_400);
        p.max_rounds = 2;
        p.escalations = vec![khien_hub::notify::policy::Escalation {
            after: Duration::from_secs(3 * 86_400),
            channel: khien_model::Channel::CallQueue,
        }];
    });
    subscribers(
        &hub,
        &op,
        "id,name,email,phone,language,identities\nHN-1,Lê Văn Cường,cuong@example.vn,0987654321,en,cuong@fiber\n",
        &[("cuong@fiber", "10.9.0.1")],
    );
    infect(&hub, &op, "b1", &["10.9.0.1"], "emotet");
    let first = sink.wait_for(1);
    assert!(first[0].text.contains("emotet"), "{}", first[0].text);
    assert!(
        first[0].text.contains("Scan"),
        "English guidance for a subscriber who chose English: {}",
        first[0].text
    );
    let day = chrono::Duration::days(1);
    // Six days on: no reminder yet (and no call either before day 3 …).
    clock.advance(day * 2);
    std::thread::sleep(Duration::from_millis(300));
    assert!(notifications(&hub, &op, "&channel=call-queue").is_empty());
    clock.advance(day * 2);
    eventually("the escalation to the call centre", || {
        notifications(&hub, &op, "&channel=call-queue").len() == 1
    });
    clock.advance(day * 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.messages().len(), 1, "no reminder before seven days");
    clock.advance(day * 2);
    let both = sink.wait_for(2);
    assert!(both[1].text.contains("emotet"));
    let rounds: Vec<u64> = notifications(&hub, &op, "&channel=email")
        .iter()
        .map(|n| n["round"].as_u64().unwrap())
        .collect();
    assert_eq!(rounds, vec![1, 2]);
    // At most two rounds.
    clock.advance(day * 8);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(sink.messages().len(), 2, "max_rounds holds");

    // The call-centre export: the fields a call script needs, as CSV and
    // JSON; marking a row done takes it off the open list.
    let auth = format!("Bearer {}", op.admin);
    let csv = hub.get(
        "/api/v1/notifications/export?channel=call-queue",
        &[("Authorization", &auth)],
    );
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = String::from_utf8_lossy(&csv.body).into_owned();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("id,ticket,subscriber_id,name,phone"),
        "{header}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains("HN-1") && row.contains("+84987654321") && row.contains("Lê Văn Cường"),
        "{row}"
    );
    assert!(row.contains("emotet"));
    let json = hub
        .get(
            "/api/v1/notifications/export?channel=call-queue&format=json",
            &[("Authorization", &auth)],
        )
        .json();
    let id = json[0]["id"].as_i64().unwrap();
    assert!(
        !json[0]["text"].as_str().unwrap().is_empty(),
        "the call script line"
    );
    let r = hub.call(
        "POST",
        &format!("/api/v1/notifications/{id}/done"),
        &op.admin,
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "delivered");
    hub.call(
        "POST",
        &format!("/api/v1/notifications/{id}/done"),
        &op.admin,
        None,
    )
    .problem(409);
    let after = hub
        .get(
            "/api/v1/notifications/export?channel=call-queue&format=json",
            &[("Authorization", &auth)],
        )
        .json();
    assert_eq!(after.as_array().unwrap().len(), 0);
    let month = Utc::now().format("%Y-%m").to_string();
    let cycle = hub
        .get(
            &format!("/api/v1/notifications/export?channel=call-queue&format=json&cycle={month}"),
            &[("Authorization", &auth)],
        )
        .json();
    assert_eq!(cycle[0]["done"], true, "the billing cycle keeps done rows");
    hub.get(
        "/api/v1/notifications/export?channel=email",
        &[("Authorization", &auth)],
    )
    .problem(400);
    hub.get(
        "/api/v1/notifications/export?channel=bill&cycle=2026-13",
        &[("Authorization", &auth)],
    )
    .problem(400);
    // The export is an audited read of personal data.
    let audit = hub
        .call(
            "GET",
            "/api/v1/audit?action=subscriber.export",
            &op.admin,
            None,
        )
        .json();
    assert!(!audit["items"].as_array().unwrap().is_empty(), "{audit}");

    // Preview renders without sending.
    let case_id = json[0]["case_id"].as_i64().unwrap();
    let p = hub
        .call(
            "GET",
            &format!("/api/v1/cases/{case_id}/preview?channel=sms&lang=vi"),
            &op.admin,
            None,
        )
        .json();
    assert!(p["text"].as_str().unwrap().contains("emotet"));
    assert!(p["sms_segments"].as_u64().unwrap() >= 1);
    let p = hub
        .call(
            "GET",
            &format!("/api/v1/cases/{case_id}/preview?channel=email"),
            &op.admin,
            None,
        )
        .json();
    assert!(p["subject"].as_str().is_some() && p["html"].as_str().unwrap().contains("emotet"));
    assert_eq!(sink.messages().len(), 2, "previews send nothing");
}

fn rate_limits_hold_under_ten_thousand_new_cases(db: &TestDb) {
    const N: usize = 10_000;
    const PER_HOUR: usize = 400;
    let Some(py) = python() else { return };
    let op = isp(db);
    let port = free_port();
    let sink = SmtpSink::start(&py, port);
    let clock = clock();
    let hub = TestHub::start_with_clock(db, clock.clone(), |c| {
        notifying(c, Some(port), None);
        c.notifications.batch = 2000;
        let p = &mut c.notifications.policy;
        p.channels = vec![khien_model::Channel::Email];
        p.per_hour = [(khien_model::Channel::Email, PER_HOUR as u32)]
            .into_iter()
            .collect();
    });
    let mut csv = String::from("id,email,identities\n");
    let mut sessions = Vec::with_capacity(N);
    let addrs: Vec<String> = (0..N)
        .map(|i| format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256))
        .collect();
    let users: Vec<String> = (0..N).map(|i| format!("u{i}@fiber")).collect();
    for i in 0..N {
        csv.push_str(&format!("S{i},s{i}@example.vn,u{i}@fiber\n"));
    }
    for i in 0..N {
        sessions.push((users[i].as_str(), addrs[i].as_str()));
    }
    subscribers(&hub, &op, &csv, &sessions);
    let clients: Vec<&str> = addrs.iter().map(String::as_str).collect();
    infect(&hub, &op, "b-all", &clients, "xmrig");
    eventually("10,000 notifications planned", || {
        count(db, op.org, None) == N
    });
    sink.wait_for(PER_HOUR);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), PER_HOUR, "the hourly limit holds");
    // The next hour, the next share; never two to one address.
    clock.advance(chrono::Duration::minutes(61));
    sink.wait_for(2 * PER_HOUR);
    std::thread::sleep(Duration::from_millis(500));
    let got = sink.messages();
    assert_eq!(got.len(), 2 * PER_HOUR);
    let distinct: BTreeSet<&str> = got.iter().map(|m| m.to[0].as_str()).collect();
    assert_eq!(distinct.len(), got.len(), "none twice");
    let queued = count(db, op.org, Some(khien_model::NotificationStatus::Queued));
    assert_eq!(queued, N - 2 * PER_HOUR, "the rest wait their turn");
    let metrics = String::from_utf8_lossy(&hub.get("/metrics", &[]).body).into_owned();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("hub_notifications_total{result=\"rate_limited\"}")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
}

fn an_smtp_outage_leaves_warnings_queued_and_each_is_sent_once(db: &TestDb) {
    let Some(py) = python() else { return };
    let op = isp(db);
    let port = free_port();
    let clock = clock();
    let hub = TestHub::start_with_clock(db, clock.clone(), |c| {
        notifying(c, Some(port), None);
        c.notifications.policy.channels = vec![khien_model::Channel::Email];
    });
    let mut csv = String::from("id,email,identities\n");
    let mut sessions = Vec::new();
    let addrs: Vec<String> = (1..=20).map(|i| format!("10.7.0.{i}")).collect();
    let users: Vec<String> = (1..=20).map(|i| format!("o{i}@fiber")).collect();
    for i in 0..20 {
        csv.push_str(&format!("O{i},o{i}@example.vn,{}\n", users[i]));
        sessions.push((users[i].as_str(), addrs[i].as_str()));
    }
    subscribers(&hub, &op, &csv, &sessions);
    let clients: Vec<&str> = addrs.iter().map(String::as_str).collect();
    infect(&hub, &op, "b1", &clients, "qakbot");
    // Nothing listens: every attempt fails, temporarily.
    eventually("failed attempts", || {
        let n = notifications(&hub, &op, "&channel=email");
        n.len() == 20 && n.iter().all(|n| n["attempts"].as_u64() >= Some(1))
    });
    let n = notifications(&hub, &op, "&channel=email");
    assert!(n.iter().all(|n| n["status"] == "queued"), "{n:?}");
    let err = n[0]["last_error"].as_str().unwrap();
    assert!(
        err.contains("onnect") || err.contains("refused"),
        "the attempt's error is kept: {err}"
    );
    let case = case_of(&hub, &op, n[0]["case_id"].as_i64().unwrap());
    assert_eq!(case["state"], "open", "not notified while nothing went out");

    // The server comes back; the retries go out after their backoff, once.
    let sink = SmtpSink::start(&py, port);
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.messages().is_empty(), "not before the backoff");
    for _ in 0..3 {
        clock.advance(chrono::Duration::minutes(6));
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = sink.wait_for(20);
    clock.advance(chrono::Duration::hours(3));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 20, "none twice");
    let distinct: BTreeSet<&str> = got.iter().map(|m| m.to[0].as_str()).collect();
    assert_eq!(distinct.len(), 20);
    eventually("all sent", || {
        notifications(&hub, &op, "&channel=email")
            .iter()
            .all(|n| n["status"] == "sent")
    });
    let id = n[0]["id"].as_i64().unwrap();
    let detail = hub
        .call(
            "GET",
            &format!("/api/v1/notifications/{id}"),
            &op.admin,
            None,
        )
        .json();
    let attempts = detail["attempts_made"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{detail}");
    assert_eq!(attempts.last().unwrap()["ok"], true);
    assert_eq!(attempts[0]["ok"], false);
}

fn forged_or_expired_tokens_are_refused(db: &TestDb) {
    let Some(py) = python() else { return };
    let op = isp(db);
    let port = free_port();
    let sink = SmtpSink::start(&py, port);
    let clock = clock();
    let hub = TestHub::start_with_clock(db, clock.clone(), |c| {
        notifying(c, Some(port), None);
        c.notifications.policy.channels =
            vec![khien_model::Channel::Email, khien_model::Channel::Web];
        c.notifications.policy.ack_link_valid = Duration::from_secs(10 * 86_400);
    });
    subscribers(
        &hub,
        &op,
        "id,email,identities\nF-1,f1@example.vn,f1@fiber\nF-2,f2@example.vn,f2@fiber\n",
        &[("f1@fiber", "127.0.0.1"), ("f2@fiber", "10.8.0.2")],
    );
    infect(&hub, &op, "b1", &["127.0.0.1", "10.8.0.2"], "mirai");
    let mails = sink.wait_for(2);
    let link = |to: &str| ack_path(&mails.iter().find(|m| m.to[0] == to).unwrap().text);
    let (good, other) = (link("f1@example.vn"), link("f2@example.vn"));
    let token = good.trim_start_matches("/ack/").to_string();
    // Every single-character change of the token is refused.
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for (method, path) in [
        ("GET", format!("/ack/{forged}")),
        ("POST", format!("/ack/{forged}")),
    ] {
        let r = hub.request(method, &path, &[], None);
        assert_eq!(r.status, 400, "{method} {path}");
        assert!(String::from_utf8_lossy(&r.body).contains("không hợp lệ"));
    }
    let r = hub.request("POST", "/ack/not-a-token", &[], None);
    assert_eq!(r.status, 400);
    let cases = hub.call("GET", "/api/v1/cases", &op.admin, None).json();
    assert!(
        cases["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] != "acknowledged"),
        "nothing acknowledged by forgeries"
    );
    // The notice listener takes only its own subscribers' tokens from the
    // form too.
    let notice = hub.notice_addrs[0];
    let (status, _) = http_from(
        &hub,
        "127.0.0.1",
        notice,
        "POST",
        "/khien-notice/acknowledge",
        &format!("token={forged}"),
    );
    assert_eq!(status, 400);
    // A genuine link opens a confirmation page (a mail scanner that follows
    // it acknowledges nothing); its form acknowledges.
    let r = hub.request("GET", &good, &[], None);
    assert_eq!(r.status, 200);
    let page = String::from_utf8_lossy(&r.body).into_owned();
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(
        page.contains("mirai") && page.contains("Khởi động lại modem"),
        "the link shows the notice itself: {page}"
    );
    let cases = hub
        .call("GET", "/api/v1/cases?state=acknowledged", &op.admin, None)
        .json();
    assert_eq!(cases["items"].as_array().unwrap().len(), 0);
    let r = hub.request("POST", &good, &[], None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let cases = hub
        .call("GET", "/api/v1/cases?state=acknowledged", &op.admin, None)
        .json();
    assert_eq!(cases["items"].as_array().unwrap().len(), 1);
    // Links expire.
    clock.advance(chrono::Duration::days(11));
    let r = hub.request("POST", &other, &[], None);
    assert_eq!(r.status, 400, "an expired link");
    let cases = hub
        .call("GET", "/api/v1/cases?state=acknowledged", &op.admin, None)
        .json();
    assert_eq!(cases["items"].as_array().unwrap().len(), 1);
}

fn unreachable_subscribers_and_failing_gateways_end_on_the_dead_letter_list(db: &TestDb) {
    let op = isp(db);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let gateway = Gateway::start(&rt);
    let clock = clock();
    let hub = TestHub::start_with_clock(db, clock.clone(), |c| {
        // An SMTP relay that is never reached: nobody here has e-mail.
        notifying(c, Some(free_port()), Some(&gateway));
        c.notifications.policy.channels =
            vec![khien_model::Channel::Email, khien_model::Channel::Sms];
        c.notifications.policy.max_attempts = 3;
    });
    // N-1 has no contact at all; N-2 a phone only.
    subscribers(
        &hub,
        &op,
        "id,phone,identities\nN-1,,n1@fiber\nN-2,0912000002,n2@fiber\n",
        &[("n1@fiber", "10.6.0.1"), ("n2@fiber", "10.6.0.2")],
    );
    // N-3 came from an older directory with an address that is not one.
    {
        let secrets = secrets();
        let mut s = db.open();
        let blob = secrets
            .encrypt(op.org, "N-3", "email", "not an address")
            .unwrap();
        s.upsert_subscribers(
            op.org,
            &[khien_store::SubscriberUpsert {
                external_id: "N-3".into(),
                pseudonym: secrets.pseudonym(op.org, "N-3"),
                language: "vi".into(),
                contacts: Some((
                    khien_store::EncryptedContacts {
                        email: Some(blob),
                        ..khien_store::EncryptedContacts::default()
                    },
                    secrets.key_id(),
                )),
                identities: vec!["n3@fiber".into()],
            }],
        )
        .unwrap();
    }
    subscribers(&hub, &op, "id\n", &[("n3@fiber", "10.6.0.3")]);
    gateway.set(GatewayMode::Status(500));
    infect(
        &hub,
        &op,
        "b1",
        &["10.6.0.1", "10.6.0.2", "10.6.0.3"],
        "mirai",
    );
    // N-1 by e-mail and SMS, N-2 by e-mail, N-3 by SMS (no phone) and by
    // e-mail (an address that is not one).
    eventually("the unreachable ones failed", || {
        notifications(&hub, &op, "&status=failed").len() >= 5
    });
    let failed = notifications(&hub, &op, "&status=failed");
    let errors: Vec<&str> = failed
        .iter()
        .map(|n| n["last_error"].as_str().unwrap())
        .collect();
    assert!(
        errors.iter().filter(|e| e.contains("no e-mail")).count() >= 2,
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("no phone")), "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("not valid") || e.contains("invalid")),
        "an invalid address fails for good: {errors:?}"
    );
    // The gateway's 500 is temporary: retried with backoff, then dead.
    // N-2's SMS: the one that reached the gateway.
    let sms = || {
        notifications(&hub, &op, "&channel=sms")
            .into_iter()
            .find(|n| {
                n["last_error"]
                    .as_str()
                    .is_some_and(|e| !e.contains("no phone"))
                    || n["status"] == "sent"
            })
    };
    eventually("a first 500", || sms().is_some());
    let first = sms().unwrap();
    assert_eq!(first["status"], "queued", "{first}");
    // A stalled gateway times out, also temporary.
    gateway.set(GatewayMode::Stall);
    clock.advance(chrono::Duration::minutes(2));
    eventually("a timeout", || {
        sms().is_some_and(|n| n["attempts"].as_u64() == Some(2))
    });
    let timed_out = sms().unwrap();
    assert_eq!(
        timed_out["status"], "queued",
        "a timeout is retried: {timed_out}"
    );
    assert!(
        timed_out["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("time")),
        "{timed_out}"
    );
    gateway.set(GatewayMode::Status(500));
    clock.advance(chrono::Duration::minutes(10));
    let id = first["id"].as_i64().unwrap();
    eventually("the dead-letter list", || {
        hub.call(
            "GET",
            &format!("/api/v1/notifications/{id}"),
            &op.admin,
            None,
        )
        .json()["status"]
            == "failed"
    });
    let detail = hub
        .call(
            "GET",
            &format!("/api/v1/notifications/{id}"),
            &op.admin,
            None,
        )
        .json();
    assert_eq!(detail["attempts"], 3, "{detail}");
    // Retried from the dead-letter list once the gateway works again.
    gateway.set(GatewayMode::Accept);
    let r = hub.call(
        "POST",
        &format!("/api/v1/notifications/{id}/retry"),
        &op.admin,
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "queued");
    eventually("sent after the retry", || {
        hub.call(
            "GET",
            &format!("/api/v1/notifications/{id}"),
            &op.admin,
            None,
        )
        .json()["status"]
            == "sent"
    });
    assert_eq!(gateway.received().len(), 1);
    hub.call(
        "POST",
        &format!("/api/v1/notifications/{id}/retry"),
        &op.admin,
        None,
    )
    .problem(409);
    hub.call(
        "POST",
        "/api/v1/notifications/999999/retry",
        &op.admin,
        None,
    )
    .problem(404);
}

fn delivery_reports_are_signed_and_name_a_known_message(db: &TestDb) {
    let op = isp(db);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let gateway = Gateway::start(&rt);
    let hub = TestHub::start_with_clock(db, clock(), |c| {
        notifying(c, None, Some(&gateway));
        c.notifications.policy.channels = vec![khien_model::Channel::Sms];
    });
    subscribers(
        &hub,
        &op,
        "id,phone,identities\nD-1,0912000001,d1@fiber\n",
        &[("d1@fiber", "10.5.0.1")],
    );
    infect(&hub, &op, "b1", &["10.5.0.1"], "anubis");
    eventually("the SMS", || gateway.received().len() == 1);
    eventually("sent", || {
        notifications(&hub, &op, "")[0]["status"] == "sent"
    });
    let report = |body: &str, signature: Option<String>| {
        let mut h = vec![("Content-Type", "application/json")];
        let sig;
        if let Some(s) = signature {
            sig = s;
            h.push(("X-Khien-Signature", sig.as_str()));
        }
        hub.request(
            "POST",
            "/api/v1/sms/delivery-reports",
            &h,
            Some(body.as_bytes()),
        )
    };
    let sign = |b: &str| khien_notify::sign(WEBHOOK_SECRET.as_bytes(), b.as_bytes());
    let body = r#"{"id": "gw-1", "status": "delivered"}"#;
    report(body, None).problem(401);
    report(body, Some("sha256=00".into())).problem(401);
    report(body, Some(sign(r#"{"id": "gw-1", "status": "failed"}"#))).problem(401);
    let unknown = r#"{"id": "gw-999", "status": "delivered"}"#;
    report(unknown, Some(sign(unknown))).problem(404);
    let garbage = r#"{"identifier": 5}"#;
    let p = report(garbage, Some(sign(garbage))).problem(422);
    assert!(p["detail"].as_str().unwrap().contains("id"), "{p}");
    assert_eq!(
        notifications(&hub, &op, "")[0]["status"],
        "sent",
        "no change yet"
    );
    // A provider's status on the way is taken (so the gateway stops
    // retrying it) and changes nothing; one we do not know is refused.
    let on_the_way = r#"{"id": "gw-1", "status": "ENROUTE"}"#;
    let r = report(on_the_way, Some(sign(on_the_way)));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "sent");
    let odd = r#"{"id": "gw-1", "status": "read"}"#;
    let p = report(odd, Some(sign(odd))).problem(422);
    assert!(p["detail"].as_str().unwrap().contains("status"), "{p}");
    let r = report(body, Some(sign(body)));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "delivered");
    assert_eq!(notifications(&hub, &op, "")[0]["status"], "delivered");
}

fn quiet_hours_and_per_subscriber_limits_defer_warnings(db: &TestDb) {
    let Some(py) = python() else { return };
    let op = isp(db);
    let port = free_port();
    let sink = SmtpSink::start(&py, port);
    // 23:00 in Hà Nội (16:00Z) tomorrow: quiet until 07:00 (00:00Z).
    let night = (Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(16, 0, 0)
        .unwrap()
        .and_utc();
    let clock = Arc::new(ManualClock::new(night));
    let hub = TestHub::start_with_clock(db, clock.clone(), |c| {
        notifying(c, Some(port), None);
        c.notifications.policy.channels = vec![khien_model::Channel::Email];
        c.notifications.policy.quiet_hours = "21:00-07:00".into();
    });
    subscribers(
        &hub,
        &op,
        "id,email,identities\nQ-1,q1@example.vn,q1@fiber\n",
        &[("q1@fiber", "10.4.0.1")],
    );
    // Two families at once: two cases, but one e-mail a day.
    infect(&hub, &op, "b1", &["10.4.0.1"], "mirai");
    infect(&hub, &op, "b2", &["10.4.0.1"], "xmrig");
    eventually("two notifications queued", || {
        notifications(&hub, &op, "&status=queued").len() == 2
    });
    std::thread::sleep(Duration::from_millis(400));
    assert!(sink.messages().is_empty(), "nothing during quiet hours");
    clock.set(night + chrono::Duration::hours(8) + chrono::Duration::minutes(1));
    sink.wait_for(1);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        sink.messages().len(),
        1,
        "one e-mail per subscriber and day"
    );
    clock.advance(chrono::Duration::hours(25));
    let got = sink.wait_for(2);
    let families: BTreeSet<bool> = got.iter().map(|m| m.text.contains("mirai")).collect();
    assert_eq!(families.len(), 2, "both families warned, a day apart");
}

fn a_broken_template_override_stops_the_hub_naming_file_and_line(db: &TestDb) {
    let templates = tempfile::tempdir().unwrap();
    std::fs::create_dir(templates.path().join("email")).unwrap();
    let build = |dir: &std::path::Path| {
        let data = tempfile::tempdir().unwrap();
        let mut config = HubConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: db.url.clone(),
            data_dir: data.path().to_path_buf(),
            ..HubConfig::default()
        };
        config.secrets.master_key = Some(hex::encode(MASTER_KEY));
        config.secrets.encryption_key = Some(hex::encode(ENCRYPTION_KEY));
        config.notifications.templates_dir = Some(dir.to_path_buf());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(config.build()).map(|_| ())
    };
    let file = templates.path().join("email/iot-bot.vi.txt");
    std::fs::write(
        &file,
        "Kính gửi {{ subscriber_name }},\n{{ family | }}\nDòng ba\n",
    )
    .unwrap();
    let e = build(templates.path())
        .expect_err("a syntax error")
        .to_string();
    assert!(e.contains("email/iot-bot.vi.txt:2:"), "file and line: {e}");
    std::fs::write(
        &file,
        "Kính gửi {{ subscriber_name }},\n{% if round > 1 %}\nNhắc lại\n",
    )
    .unwrap();
    let e = build(templates.path())
        .expect_err("an unclosed block")
        .to_string();
    assert!(
        e.contains("email/iot-bot.vi.txt:3:") && e.contains("end of block"),
        "{e}"
    );
    std::fs::write(&file, "Kính gửi {{ subscriber_name | no_such_filter }}\n").unwrap();
    let e = build(templates.path())
        .expect_err("an unknown filter")
        .to_string();
    assert!(
        e.contains("iot-bot.vi.txt") && e.contains("no_such_filter"),
        "{e}"
    );
    std::fs::remove_file(&file).unwrap();
    std::fs::write(templates.path().join("email/iot-bot.fr.txt"), "Bonjour\n").unwrap();
    let e = build(templates.path())
        .expect_err("a name outside the layout")
        .to_string();
    assert!(e.contains("iot-bot.fr.txt"), "{e}");
    std::fs::remove_file(templates.path().join("email/iot-bot.fr.txt")).unwrap();
    std::fs::write(
        &file,
        "{{ operator }}: {{ family }} {{ ticket }} {{ ack_url }}\n",
    )
    .unwrap();
    build(templates.path()).expect("a good override loads");
}

/// The walled garden's client list, in the `format` asked for.
fn garden(hub: &TestHub, key: &str, query: &str) -> Reply {
    hub.call("GET", &format!("/api/v1/notices/clients{query}"), key, None)
}

/// An Unbound resolver that sends the clients of `include` (the hub's
/// `format=unbound` list) asking for `neverssl.com` to the notice
/// listener (127.0.0.1), through a tagged RPZ zone; everybody else gets
/// the real answer from `auth`.
fn garden_resolver(dir: &Path, name: &str, include: &str, auth_port: u16) -> Unbound {
    let clients = dir.join(format!("{name}-clients.conf"));
    std::fs::write(&clients, include).unwrap();
    let zone = dir.join("garden.rpz");
    std::fs::write(
        &zone,
        "$TTL 60\n@ SOA localhost. hostmaster.localhost. 1 3600 600 86400 60\n\
         @ NS localhost.\nneverssl.com A 127.0.0.1\n",
    )
    .unwrap();
    Unbound::start(
        dir,
        name,
        &format!(
            "  module-config: \"respip iterator\"\n  define-tag: \"khien-garden\"\n  \
             include: \"{}\"\nrpz:\n  name: \"garden.khien.\"\n  zonefile: \"{}\"\n  \
             tags: \"khien-garden\"\nstub-zone:\n  name: \"neverssl.com.\"\n  \
             stub-addr: 127.0.0.1@{auth_port}\n",
            clients.display(),
            zone.display()
        ),
    )
}

fn the_walled_garden_sends_only_subscribers_with_a_notice_to_the_listener(db: &TestDb) {
    let op = isp(db);
    let (_, other_admin) = operator(db, "other");
    let clock = clock();
    // No SMTP or SMS: the web notice is the channel.
    let hub = TestHub::start_with_clock(db, clock.clone(), |c| notifying(c, None, None));
    let notice = hub.notice_addrs[0];
    subscribers(
        &hub,
        &op,
        "id,email,identities\nG-1,g1@example.vn,g1@fiber\nG-2,g2@example.vn,g2@fiber\n",
        &[("g1@fiber", "127.0.0.3"), ("g2@fiber", "127.0.0.4")],
    );
    let clients = |key: &str| -> Vec<String> {
        let r = garden(&hub, key, "");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        serde_json::from_value(r.json()["clients"].clone()).unwrap()
    };
    assert!(clients(&op.admin).is_empty(), "no notice, nobody listed");

    infect(&hub, &op, "g1", &["127.0.0.3"], "mirai");
    eventually("the notice is up and listed", || {
        clients(&op.admin) == ["127.0.0.3/32"]
    });
    assert!(clients(&other_admin).is_empty(), "another tenant's");
    let text = garden(&hub, &op.admin, "?format=text");
    assert_eq!(String::from_utf8_lossy(&text.body), "127.0.0.3/32\n");
    let bind = garden(&hub, &op.admin, "?format=bind&tag=garden_1");
    let bind = String::from_utf8_lossy(&bind.body).into_owned();
    assert!(
        bind.contains("acl \"garden_1\" {\n    none;\n    127.0.0.3/32;\n};"),
        "{bind}"
    );
    for (query, field) in [
        ("?format=xml", "format"),
        ("?max_age=soon", "max_age"),
        ("?tag=a%20b", "tag"),
        ("?color=red", "color"),
    ] {
        let p = garden(&hub, &op.admin, query).problem(400);
        assert!(p.to_string().contains(field), "{query}: {p}");
    }
    // A notice older than max_age no longer sends anybody to the garden.
    assert_eq!(
        garden(&hub, &op.admin, "?max_age=1h").json()["clients"],
        serde_json::json!(["127.0.0.3/32"])
    );
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(
        garden(&hub, &op.admin, "?max_age=1h").json()["clients"],
        serde_json::json!([])
    );

    // A real resolver with the list: the infected address is sent to the
    // notice listener, its neighbour resolves normally.
    let unbound_list = garden(&hub, &op.admin, "?format=unbound");
    let unbound_list = String::from_utf8_lossy(&unbound_list.body).into_owned();
    let resolvers = unbound::present().then(|| {
        let dir = tempfile::tempdir().unwrap();
        let auth = Unbound::start(
            dir.path(),
            "auth",
            "  local-zone: \"neverssl.com.\" static\n  \
             local-data: \"neverssl.com. A 198.51.100.7\"\n",
        );
        let res = garden_resolver(dir.path(), "garden", &unbound_list, auth.port);
        assert_eq!(
            res.query_from("127.0.0.3", "neverssl.com", "A"),
            Answer::new("NOERROR", &["127.0.0.1"]),
            "the infected subscriber is sent to the notice"
        );
        assert_eq!(
            res.query_from("127.0.0.4", "neverssl.com", "A"),
            Answer::new("NOERROR", &["198.51.100.7"]),
            "the neighbour is not"
        );
        (dir, auth)
    });

    // The subscriber acknowledges on the notice page: off the list.
    let (status, _) = acknowledge_on_notice(&hub, "127.0.0.3", notice);
    assert_eq!(status, 200);
    assert!(clients(&op.admin).is_empty());
    let unbound_list = garden(&hub, &op.admin, "?format=unbound");
    let unbound_list = String::from_utf8_lossy(&unbound_list.body).into_owned();
    assert!(
        !unbound_list.contains("access-control-tag"),
        "{unbound_list}"
    );
    if let Some((dir, auth)) = resolvers {
        let res = garden_resolver(dir.path(), "after", &unbound_list, auth.port);
        assert_eq!(
            res.query_from("127.0.0.3", "neverssl.com", "A"),
            Answer::new("NOERROR", &["198.51.100.7"]),
            "let through after the acknowledgement"
        );
    }
    // Every list is an audited read.
    let audit = hub
        .call(
            "GET",
            "/api/v1/audit?action=notice.clients",
            &op.admin,
            None,
        )
        .json();
    assert!(
        audit["items"].as_array().is_some_and(|a| !a.is_empty()),
        "{audit}"
    );
}

fn a_policy_update_keeps_the_hubs_defaults_and_a_delete_restores_them(db: &TestDb) {
    let op = isp(db);
    let (_, other_admin) = operator(db, "other");
    // The hub's default: no quiet hours, no escalations (unlike the
    // built-in one).
    let hub = TestHub::start_with_clock(db, clock(), |c| notifying(c, None, None));
    let policy = |key: &str| {
        hub.call("GET", "/api/v1/notification-policy", key, None)
            .json()
    };
    assert_eq!(policy(&op.admin)["quiet_hours"], "");
    let r = hub.call(
        "PUT",
        "/api/v1/notification-policy",
        &op.admin,
        Some(&serde_json::json!({"channels": ["sms"], "remind_every": "2d"})),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let mine = policy(&op.admin);
    assert_eq!(mine["channels"], serde_json::json!(["sms"]));
    assert_eq!(mine["remind_every"], "2days");
    assert_eq!(
        mine["quiet_hours"], "",
        "left out: the hub's, not 21:00-07:00"
    );
    assert_eq!(mine["escalations"], serde_json::json!([]));
    assert_eq!(
        policy(&other_admin)["channels"],
        serde_json::json!(["email", "sms", "web"]),
        "another organisation keeps the hub's"
    );
    // Bad fields are named, and change nothing.
    for (body, field) in [
        (serde_json::json!({"chanels": ["sms"]}), "chanels"),
        (serde_json::json!({"max_rounds": "many"}), "max_rounds"),
        (serde_json::json!({"per_hour": {"bill": 5}}), "per_hour"),
        (serde_json::json!(["sms"]), "body"),
    ] {
        let p = hub
            .call("PUT", "/api/v1/notification-policy", &op.admin, Some(&body))
            .problem(422);
        assert!(p.to_string().contains(field), "{body}: {p}");
    }
    assert_eq!(policy(&op.admin)["channels"], serde_json::json!(["sms"]));
    // Back to the hub's default.
    let r = hub.call("DELETE", "/api/v1/notification-policy", &op.admin, None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["channels"],
        serde_json::json!(["email", "sms", "web"])
    );
    assert_eq!(
        policy(&op.admin)["channels"],
        serde_json::json!(["email", "sms", "web"])
    );
    let sensor = hub.call("DELETE", "/api/v1/notification-policy", &op.sensor, None);
    assert_eq!(sensor.status, 403, "a sensor key cannot");
}

fn the_web_notice_is_read_and_acknowledged_in_a_real_browser_without_javascript(db: &TestDb) {
    if !browser::present() {
        return;
    }
    let op = isp(db);
    let hub = TestHub::start_with_clock(db, clock(), |c| notifying(c, None, None));
    let notice = hub.notice_addrs[0];
    subscribers(
        &hub,
        &op,
        "id,email,identities\nB-1,b1@example.vn,b1@fiber\n",
        &[("b1@fiber", "127.0.0.1")],
    );
    infect(&hub, &op, "b1", &["127.0.0.1"], "mirai");
    eventually("the notice is up", || {
        !notifications(&hub, &op, "&channel=web&status=sent").is_empty()
    });
    let ticket = notifications(&hub, &op, "&channel=web")[0]["ticket"]
        .as_str()
        .unwrap()
        .to_string();

    // A browser set to English: the notice and its acknowledgement follow
    // the subscriber's language (Vietnamese), not the browser's.
    let b = Browser::start(false, "en");
    assert!(!b.scripts_run(), "JavaScript is off in this browser");
    // Whatever page the subscriber meant to open.
    b.open(&format!("http://{notice}/news/today.html"));
    let text = b.text();
    assert!(text.contains("mirai") && text.contains(&ticket), "{text}");
    assert!(text.contains("127.0.0.1"), "the address seen: {text}");
    assert!(!b.source().to_lowercase().contains("<script"), "no scripts");
    b.click("form button");
    eventually("the acknowledgement page", || {
        b.text().contains("Đã ghi nhận")
    });
    let case_id = notifications(&hub, &op, "&channel=web")[0]["case_id"]
        .as_i64()
        .unwrap();
    assert_eq!(case_of(&hub, &op, case_id)["state"], "acknowledged");
    b.open(&format!("http://{notice}/"));
    assert!(b.text().contains("No warning"), "{}", b.text());
}
