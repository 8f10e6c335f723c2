//! E-mail through a real SMTP server: aiosmtpd (`tests/smtp_sink.py`)
//! with STARTTLS, implicit TLS, AUTH, and scripted 451/550 replies; the
//! certificate is made here with rcgen and trusted through `root_ca_pem`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use khien_model::Channel;
use khien_notify::{
    DkimConfig, EmailSender, Lang, Rendered, SendError, SmtpConfig, SmtpSecurity, Templates,
};
use sha2::{Digest, Sha256};

use super::{context, in_ci, venv};

/// Python with aiosmtpd, or `None` to skip (never under CI).
fn python() -> Option<PathBuf> {
    let py = std::env::var_os("KHIEN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| venv().join("bin/python"));
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    let hint = format!(
        "python with aiosmtpd not found at {} (set KHIEN_PYTHON, or: python3 -m venv target/py && target/py/bin/pip install aiosmtpd)",
        py.display()
    );
    if in_ci() {
        panic!("{hint}");
    }
    eprintln!("\n*** SKIP: {hint} ***\n");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test CA and a server certificate for 127.0.0.1 and localhost.
struct Cert {
    dir: tempfile::TempDir,
}

impl Cert {
    fn new() -> Cert {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Khiên test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Cert { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    StartTls,
    Tls,
}

/// A running `smtp_sink.py`; killed on drop.
struct Sink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sink {
    fn start(mode: Mode, auth: Option<(&str, &str)>, cert: Option<&Cert>) -> Option<Sink> {
        Self::start_with(mode, auth, cert, &[])
    }

    fn start_with(
        mode: Mode,
        auth: Option<(&str, &str)>,
        cert: Option<&Cert>,
        extra: &[&str],
    ) -> Option<Sink> {
        let py = python()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let dir = tempfile::tempdir().unwrap();
        // A port another test grabs between our probe and the bind makes
        // the sink exit before READY; try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(&py);
            cmd.arg(&script)
                .arg(port.to_string())
                .arg(dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if let Some((user, password)) = auth {
                cmd.args(["--user", user, "--password", password]);
            }
            match mode {
                Mode::Plain => {}
                Mode::StartTls => {
                    cmd.arg("--starttls");
                }
                Mode::Tls => {
                    cmd.arg("--tls");
                }
            }
            cmd.args(extra);
            if let Some(cert) = cert {
                cmd.arg("--cert")
                    .arg(cert.path("cert.pem"))
                    .arg("--key")
                    .arg(cert.path("key.pem"));
            }
            let mut child = cmd.spawn().unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            if line.trim() == "READY" {
                return Some(Sink { child, dir, port });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("smtp_sink.py did not start");
    }

    /// The `n`th message received (1-based): raw bytes and envelope.
    fn message(&self, n: usize) -> (Vec<u8>, serde_json::Value) {
        let meta = self.dir.path().join(format!("{n}.json"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !meta.exists() {
            assert!(Instant::now() < deadline, "message {n} never arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
        let raw = std::fs::read(self.dir.path().join(format!("{n}.eml"))).unwrap();
        let meta = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
        (raw, meta)
    }

    fn received(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(port: u16, security: SmtpSecurity, cert: Option<&Cert>) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security,
        username: None,
        password: None,
        from: "Viettel Cảnh báo <canhbao@viettel.example>".into(),
        reply_to: Some("hotro@viettel.example".into()),
        root_ca_pem: cert.map(|c| c.path("ca.pem")),
        timeout: Duration::from_secs(10),
        list_unsubscribe: None,
        dkim: None,
        pool_size: 2,
    }
}

fn notice() -> Rendered {
    Templates::load(None)
        .unwrap()
        .render(Channel::Email, "iot-bot", Lang::Vi, &context())
        .unwrap()
}

fn crlf_to_lf(s: &str) -> String {
    s.replace("\r\n", "\n")
}

#[tokio::test]
async fn starttls_with_auth_delivers_a_vietnamese_notice() {
    let cert = Cert::new();
    let Some(sink) = Sink::start(Mode::StartTls, Some(("khien", "mật-khẩu")), Some(&cert))
    else {
        return;
    };
    let mut cfg = config(sink.port, SmtpSecurity::StartTls, Some(&cert));
    cfg.username = Some("khien".into());
    cfg.password = Some("mật-khẩu".into());
    cfg.list_unsubscribe = Some("mailto:huy-dang-ky@viettel.example".into());
    let sender = EmailSender::new(&cfg).unwrap();
    let rendered = notice();
    sender
        .send(
            "Nguyễn Thị Hồng Nhung <nhung@example.net>",
            &rendered,
            "n42.20261201@hub.viettel.example",
            "20261201-00000042",
        )
        .await
        .unwrap();

    let (raw, meta) = sink.message(1);
    assert_eq!(meta["authenticated"], true);
    assert_eq!(meta["tls"], true);
    assert_eq!(meta["mail_from"], "canhbao@viettel.example");
    assert_eq!(meta["rcpt_tos"], serde_json::json!(["nhung@example.net"]));
    assert!(raw.is_ascii(), "8-bit data on the wire");

    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let ctx = context();
    assert_eq!(msg.subject(), rendered.subject.as_deref());
    assert_eq!(
        msg.subject(),
        Some(
            "Viettel: router hoặc camera trong mạng của Quý khách có dấu hiệu nhiễm mã độc mirai [20261201-00000042]"
        )
    );
    assert_eq!(msg.message_id(), Some("n42.20261201@hub.viettel.example"));
    assert_eq!(
        msg.header("X-Khien-Ticket").and_then(|h| h.as_text()),
        Some("20261201-00000042")
    );
    assert_eq!(
        msg.header_raw("List-Unsubscribe").map(str::trim),
        Some("<mailto:huy-dang-ky@viettel.example>")
    );
    assert_eq!(
        msg.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert!(msg.date().is_some());
    let content_type = msg.header_raw("Content-Type").unwrap();
    assert!(
        content_type.contains("multipart/alternative"),
        "{content_type}"
    );
    assert_eq!(msg.text_body_count(), 1);
    assert_eq!(msg.html_body_count(), 1);

    let text = crlf_to_lf(&msg.body_text(0).unwrap());
    assert_eq!(text.trim_end(), rendered.text);
    assert!(text.contains("Kính gửi Nguyễn Thị Hồng Nhung,"));
    assert!(text.contains("Mã độc: mirai"));
    assert!(text.contains("camera giám sát"));
    for (i, step) in ctx.guidance_steps.iter().enumerate() {
        assert!(text.contains(&format!("{}. {step}", i + 1)), "{step}");
    }
    assert!(text.contains(&ctx.ack_url));
    assert!(text.contains("Mã thông báo: 20261201-00000042"));
    assert!(text.contains("Mã xác thực: K7PX3QMD"));
    assert!(text.contains("không bao giờ yêu cầu Quý khách cung cấp mật khẩu"));

    let html = crlf_to_lf(&msg.body_html(0).unwrap());
    assert_eq!(
        html.trim_end(),
        rendered.html.as_deref().unwrap().trim_end()
    );
    assert!(html.contains("<li>Khởi động lại bộ định tuyến (router) và camera.</li>"));
    assert!(html.contains("ack&#x2f;AQAAAAAAAAAqAAAAAHEnxUCl5n4zyDLvqq5gAz6UAyHL"));
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let cert = Cert::new();
    let Some(sink) = Sink::start(Mode::Tls, None, Some(&cert)) else {
        return;
    };
    let sender = EmailSender::new(&config(sink.port, SmtpSecurity::Tls, Some(&cert))).unwrap();
    sender
        .send(
            "khach@example.net",
            &notice(),
            "a1@hub.example",
            "20261201-00000001",
        )
        .await
        .unwrap();
    let (raw, meta) = sink.message(1);
    assert_eq!(meta["tls"], true);
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.message_id(), Some("a1@hub.example"));
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let cert = Cert::new();
    let other = Cert::new();
    let Some(sink) = Sink::start(Mode::StartTls, None, Some(&cert)) else {
        return;
    };
    let sender =
        EmailSender::new(&config(sink.port, SmtpSecurity::StartTls, Some(&other))).unwrap();
    let e = sender
        .send("khach@example.net", &notice(), "a@hub.example", "T")
        .await
        .unwrap_err();
    assert!(!e.permanent, "{e}");
    assert_eq!(sink.received(), 0);
}

#[tokio::test]
async fn wrong_password_is_permanent() {
    let cert = Cert::new();
    let Some(sink) = Sink::start(Mode::StartTls, Some(("khien", "right")), Some(&cert)) else {
        return;
    };
    let mut cfg = config(sink.port, SmtpSecurity::StartTls, Some(&cert));
    cfg.username = Some("khien".into());
    cfg.password = Some("wrong".into());
    let sender = EmailSender::new(&cfg).unwrap();
    let e = sender
        .send("khach@example.net", &notice(), "a@hub.example", "T")
        .await
        .unwrap_err();
    assert!(e.permanent, "{e}");
    assert!(e.message.contains("535"), "{e}");
    assert_eq!(sink.received(), 0);
}

#[tokio::test]
async fn recipient_451_is_temporary_and_550_permanent() {
    let Some(sink) = Sink::start(Mode::Plain, None, None) else {
        return;
    };
    let sender = EmailSender::new(&config(sink.port, SmtpSecurity::None, None)).unwrap();
    let rendered = notice();
    let e: SendError = sender
        .send("tempfail@example.net", &rendered, "a@hub.example", "T")
        .await
        .unwrap_err();
    assert!(!e.permanent, "{e}");
    assert!(e.message.contains("451"), "{e}");
    let e = sender
        .send("reject@example.net", &rendered, "b@hub.example", "T")
        .await
        .unwrap_err();
    assert!(e.permanent, "{e}");
    assert!(e.message.contains("550"), "{e}");
    // The pooled connection is still good for the next notice.
    sender
        .send("khach@example.net", &rendered, "c@hub.example", "T")
        .await
        .unwrap();
    let (_, meta) = sink.message(1);
    assert_eq!(meta["rcpt_tos"], serde_json::json!(["khach@example.net"]));
    assert_eq!(meta["tls"], false);
}

#[tokio::test]
async fn nothing_listening_is_temporary() {
    let port = free_port();
    let sender = EmailSender::new(&config(port, SmtpSecurity::None, None)).unwrap();
    let e = sender
        .send("khach@example.net", &notice(), "a@hub.example", "T")
        .await
        .unwrap_err();
    assert!(!e.permanent, "{e}");
}

#[tokio::test]
async fn silent_server_times_out_temporary() {
    // Accepts the connection and never sends a greeting.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let mut cfg = config(port, SmtpSecurity::None, None);
    cfg.timeout = Duration::from_millis(500);
    let sender = EmailSender::new(&cfg).unwrap();
    let started = Instant::now();
    let e = sender
        .send("khach@example.net", &notice(), "a@hub.example", "T")
        .await
        .unwrap_err();
    assert!(!e.permanent, "{e}");
    assert!(e.message.contains("timed out"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    holder.join().unwrap();
}

#[tokio::test]
async fn invalid_address_is_permanent_without_connecting() {
    let port = free_port();
    let sender = EmailSender::new(&config(port, SmtpSecurity::None, None)).unwrap();
    let e = sender
        .send("khach at example.net", &notice(), "a@hub.example", "T")
        .await
        .unwrap_err();
    assert!(e.permanent, "{e}");
}

/// The header fields of a raw message, unfolded lines kept as received.
fn header_fields(raw: &str) -> Vec<String> {
    let head = raw.split("\r\n\r\n").next().unwrap();
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().unwrap();
            last.push_str("\r\n");
            last.push_str(line);
        } else {
            fields.push(line.to_string());
        }
    }
    fields
}

/// RFC 6376 §3.4.2 relaxed header canonicalization of one field.
fn relaxed_header(field: &str) -> String {
    let (name, value) = field.split_once(':').unwrap();
    let value = value.replace("\r\n", "");
    let value = value
        .split([' ', '\t'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>();
    format!("{}:{}\r\n", name.trim().to_lowercase(), value.join(" "))
}

/// RFC 6376 §3.4.4 relaxed body canonicalization.
fn relaxed_body(body: &str) -> String {
    let mut lines: Vec<String> = body
        .split("\r\n")
        .map(|l| {
            // Runs of WSP become one SP, WSP at the end goes.
            let mut out = String::new();
            let mut in_wsp = false;
            for c in l.chars() {
                if c == ' ' || c == '\t' {
                    in_wsp = true;
                } else {
                    if in_wsp {
                        out.push(' ');
                    }
                    in_wsp = false;
                    out.push(c);
                }
            }
            out
        })
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = lines.join("\r\n");
    if !out.is_empty() {
        out.push_str("\r\n");
    }
    out
}

fn tags(field: &str) -> Vec<(String, String)> {
    let value = field.split_once(':').unwrap().1;
    value
        .split(';')
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            Some((k.trim().to_string(), v))
        })
        .collect()
}

/// Checks the DKIM-Signature of `raw`: the body hash always, and the
/// signature itself when an Ed25519 public key is given.
fn check_dkim(raw: &str, algorithm: &str, ed25519_public: Option<&[u8]>) {
    let fields = header_fields(raw);
    let dkim = fields
        .iter()
        .find(|f| f.to_ascii_lowercase().starts_with("dkim-signature:"))
        .unwrap_or_else(|| panic!("no DKIM-Signature in\n{raw}"));
    let tags = tags(dkim);
    let tag = |k: &str| {
        tags.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k}= in {dkim}"))
    };
    assert_eq!(tag("v"), "1");
    assert_eq!(tag("a"), algorithm);
    assert_eq!(tag("d"), "viettel.example");
    assert_eq!(tag("s"), "khien2026");
    assert_eq!(tag("c"), "relaxed/relaxed");
    let signed = tag("h").to_lowercase();
    for h in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "x-khien-ticket",
    ] {
        assert!(
            signed.split(':').any(|s| s == h),
            "{h} not signed: {signed}"
        );
    }

    let body = raw.split_once("\r\n\r\n").unwrap().1;
    let bh = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(relaxed_body(body)));
    assert_eq!(tag("bh"), bh, "body hash");

    let Some(public) = ed25519_public else {
        return;
    };
    let mut data = String::new();
    for name in signed.split(':') {
        let field = fields
            .iter()
            .rev()
            .find(|f| {
                f.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            })
            .unwrap_or_else(|| panic!("signed header {name} missing"));
        data.push_str(&relaxed_header(field));
    }
    // The signature header itself, with an empty b= and no final CRLF.
    let (name, value) = dkim.split_once(':').unwrap();
    let emptied: Vec<String> = value
        .split(';')
        .map(|t| match t.split_once('=') {
            Some((k, _)) if k.trim() == "b" => format!("{k}="),
            _ => t.to_string(),
        })
        .collect();
    let unsigned = format!("{name}:{}", emptied.join(";"));
    let canonical = relaxed_header(&unsigned);
    data.push_str(canonical.trim_end_matches("\r\n"));

    let signature = base64::engine::general_purpose::STANDARD
        .decode(tag("b"))
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(public.try_into().unwrap()).unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
    key.verify_strict(&Sha256::digest(data.as_bytes()), &signature)
        .expect("DKIM Ed25519 signature verifies");
}

fn dkim_config(path: PathBuf) -> DkimConfig {
    DkimConfig {
        selector: "khien2026".into(),
        domain: "viettel.example".into(),
        private_key_pem: path,
    }
}

#[tokio::test]
async fn dkim_ed25519_signature_verifies_after_delivery() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dkim.pem");
    std::fs::write(&path, key.serialize_pem()).unwrap();

    let Some(sink) = Sink::start(Mode::Plain, None, None) else {
        return;
    };
    let mut cfg = config(sink.port, SmtpSecurity::None, None);
    cfg.dkim = Some(dkim_config(path));
    cfg.list_unsubscribe = Some("<mailto:huy@viettel.example>".into());
    let sender = EmailSender::new(&cfg).unwrap();
    sender
        .send(
            "khach@example.net",
            &notice(),
            "d1@hub.example",
            "20261201-00000042",
        )
        .await
        .unwrap();
    let (raw, _) = sink.message(1);
    let raw = String::from_utf8(raw).unwrap();
    check_dkim(&raw, "ed25519-sha256", Some(key.public_key_raw()));
}

#[test]
fn dkim_rsa_keys_in_pkcs8_and_pkcs1() {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkcs8 = dir.path().join("pkcs8.pem");
    let pkcs1 = dir.path().join("pkcs1.pem");
    std::fs::write(
        &pkcs8,
        key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap(),
    )
    .unwrap();
    std::fs::write(
        &pkcs1,
        key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap(),
    )
    .unwrap();
    for path in [pkcs8, pkcs1] {
        let mut cfg = config(25, SmtpSecurity::None, None);
        cfg.dkim = Some(dkim_config(path.clone()));
        let sender = EmailSender::new(&cfg).unwrap();
        let msg = sender
            .message("khach@example.net", &notice(), "r@hub.example", "T-1")
            .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        check_dkim(&raw, "rsa-sha256", None);
    }
}

#[test]
fn dkim_key_that_is_not_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    std::fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut cfg = config(25, SmtpSecurity::None, None);
    cfg.dkim = Some(dkim_config(path));
    let e = EmailSender::new(&cfg).unwrap_err();
    assert!(e.to_string().contains("dkim"), "{e}");
}

#[tokio::test]
async fn sessions_are_reused_and_one_the_server_closed_is_replaced() {
    let Some(sink) = Sink::start_with(Mode::Plain, None, None, &["--idle-timeout", "1"]) else {
        return;
    };
    let mut cfg = config(sink.port, SmtpSecurity::None, None);
    cfg.pool_size = 1;
    let sender = EmailSender::new(&cfg).unwrap();
    for i in 1..=5 {
        sender
            .send(
                "a@example.net",
                &notice(),
                &format!("n{i}@hub.example"),
                "20261201-00000001",
            )
            .await
            .unwrap();
    }
    let connections: Vec<u64> = (1..=5)
        .map(|i| sink.message(i).1["connection"].as_u64().unwrap())
        .collect();
    assert_eq!(connections, vec![1; 5], "one session for all five");
    // The server drops the quiet session; the next message still goes,
    // on a new one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sender
        .send(
            "a@example.net",
            &notice(),
            "n6@hub.example",
            "20261201-00000001",
        )
        .await
        .unwrap();
    assert_eq!(sink.message(6).1["connection"], 2);
    assert_eq!(sink.received(), 6);
}
