//! SMS through a loopback HTTP gateway that records each request and
//! answers as scripted.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use khien_notify::sms::SmsEncoding;
use khien_notify::{GatewayConfig, SmsGateway, SmsSent};

#[derive(Debug)]
struct Recorded {
    method: String,
    target: String,
    /// Lower-cased names.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Recorded {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

enum Reply {
    Status(u16, &'static str),
    /// Read the request, then say nothing for a while.
    Hang,
}

fn read_request(stream: &mut std::net::TcpStream) -> Recorded {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let method = first.next().unwrap().to_string();
    let target = first.next().unwrap().to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    Recorded {
        method,
        target,
        headers,
        body,
    }
}

/// A gateway for one request; its base URL and what it received.
fn gateway(reply: Reply) -> (String, mpsc::Receiver<Recorded>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = read_request(&mut stream);
        tx.send(request).unwrap();
        match reply {
            Reply::Status(code, body) => {
                let response = format!(
                    "HTTP/1.1 {code} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).unwrap();
            }
            Reply::Hang => std::thread::sleep(Duration::from_secs(4)),
        }
    });
    (url, rx)
}

fn config(url: &str) -> GatewayConfig {
    GatewayConfig {
        url: format!("{url}/v1/sms/send"),
        method: "POST".into(),
        headers: BTreeMap::from([
            ("Authorization".into(), "Bearer tok-123".into()),
            ("X-Tenant".into(), "viettel".into()),
        ]),
        content_type: "application/json; charset=utf-8".into(),
        body_template: r#"{"from": {{ sender|json }}, "to": {{ to|json }}, "message": {{ text|json }}, "client_ref": {{ ticket|json }}}"#
            .into(),
        sender: "Viettel".into(),
        id_pointer: Some("/data/message_id".into()),
        timeout: Duration::from_secs(5),
        ascii_fallback: false,
        max_segments: 5,
        webhook_secret: None,
    }
}

const VI: &str = "Viettel: Router của Quý khách có dấu hiệu nhiễm mã độc \"mirai\".\nXem hướng dẫn tại https://viettel.vn/khien, mã 20261201-00000042 K7PX3QMD.";

#[tokio::test]
async fn post_renders_the_template_and_reads_the_provider_id() {
    let (url, rx) = gateway(Reply::Status(
        200,
        r#"{"status": "queued", "data": {"message_id": "vt-98765"}}"#,
    ));
    let g = SmsGateway::new(config(&url)).unwrap();
    let sent = g
        .send("+84961234567", VI, "20261201-00000042")
        .await
        .unwrap();
    assert_eq!(
        sent,
        SmsSent {
            provider_id: Some("vt-98765".into()),
            segments: 3,
            encoding: SmsEncoding::Ucs2,
        }
    );
    let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/v1/sms/send");
    assert_eq!(r.headers["authorization"], "Bearer tok-123");
    assert_eq!(r.headers["x-tenant"], "viettel");
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
    let body = String::from_utf8(r.body.clone()).unwrap();
    // JSON-escaped, not mangled: quotes and the newline escaped, the
    // Vietnamese as UTF-8.
    assert!(body.contains(r#"\"mirai\""#), "{body}");
    assert!(body.contains(r#"\nXem hướng dẫn"#), "{body}");
    assert_eq!(
        r.json(),
        serde_json::json!({
            "from": "Viettel",
            "to": "+84961234567",
            "message": VI,
            "client_ref": "20261201-00000042",
        })
    );
}

#[tokio::test]
async fn ascii_fallback_sends_fewer_parts() {
    let (url, rx) = gateway(Reply::Status(201, r#"{"data": {"message_id": 17}}"#));
    let mut cfg = config(&url);
    cfg.ascii_fallback = true;
    let g = SmsGateway::new(cfg).unwrap();
    let sent = g.send("+84961234567", VI, "T").await.unwrap();
    assert_eq!(sent.encoding, SmsEncoding::Gsm7);
    assert_eq!(sent.segments, 1);
    assert_eq!(sent.provider_id.as_deref(), Some("17"));
    let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("Viettel: Router cua Quy khach co dau hieu nhiem ma doc \"mirai\"."),
        "{message}"
    );
}

#[tokio::test]
async fn missing_provider_id_is_still_sent() {
    let (url, _rx) = gateway(Reply::Status(200, "OK"));
    let g = SmsGateway::new(config(&url)).unwrap();
    let sent = g.send("+84961234567", "Thử", "T").await.unwrap();
    assert_eq!(sent.provider_id, None);
    assert_eq!(sent.segments, 1);
}

#[tokio::test]
async fn server_errors_are_temporary_and_client_errors_permanent() {
    for (status, permanent) in [
        (500, false),
        (503, false),
        (429, false),
        (400, true),
        (401, true),
        (404, true),
    ] {
        let (url, rx) = gateway(Reply::Status(status, r#"{"error": "scripted"}"#));
        let g = SmsGateway::new(config(&url)).unwrap();
        let e = g.send("+84961234567", VI, "T").await.unwrap_err();
        assert_eq!(e.permanent, permanent, "{status}: {e}");
        assert!(e.message.contains(&status.to_string()), "{e}");
        assert!(e.message.contains("scripted"), "{e}");
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}

#[tokio::test]
async fn gateway_that_never_answers_times_out_temporary() {
    let (url, rx) = gateway(Reply::Hang);
    let mut cfg = config(&url);
    cfg.timeout = Duration::from_millis(700);
    let g = SmsGateway::new(cfg).unwrap();
    let started = Instant::now();
    let e = g.send("+84961234567", VI, "T").await.unwrap_err();
    assert!(!e.permanent, "{e}");
    assert!(e.message.contains("timed out"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The request did reach it.
    rx.recv_timeout(Duration::from_secs(1)).unwrap();
}

#[tokio::test]
async fn nothing_listening_is_temporary() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let g = SmsGateway::new(config(&format!("http://127.0.0.1:{port}"))).unwrap();
    let e = g.send("+84961234567", VI, "T").await.unwrap_err();
    assert!(!e.permanent, "{e}");
}

#[tokio::test]
async fn too_long_is_permanent_before_sending() {
    let (url, rx) = gateway(Reply::Status(200, "{}"));
    let mut cfg = config(&url);
    cfg.max_segments = 2;
    let g = SmsGateway::new(cfg).unwrap();
    // 3 UCS-2 parts, and no fallback allowed.
    let e = g.send("+84961234567", VI, "T").await.unwrap_err();
    assert!(e.permanent, "{e}");
    assert!(e.message.contains("3 ucs2 parts"), "{e}");
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

#[tokio::test]
async fn bad_number_is_permanent_before_sending() {
    let (url, rx) = gateway(Reply::Status(200, "{}"));
    let g = SmsGateway::new(config(&url)).unwrap();
    let e = g.send("0961234567", VI, "T").await.unwrap_err();
    assert!(e.permanent, "{e}");
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

#[tokio::test]
async fn get_puts_the_template_in_the_query() {
    let (url, rx) = gateway(Reply::Status(200, r#"{"data": {"message_id": "g1"}}"#));
    let mut cfg = config(&url);
    cfg.url = format!("{url}/send?api=2");
    cfg.method = "GET".into();
    cfg.content_type = "text/plain".into();
    cfg.body_template =
        "to={{ to|urlencode }}&text={{ text|urlencode }}&from={{ sender|urlencode }}".into();
    let g = SmsGateway::new(cfg).unwrap();
    g.send("+84961234567", "Mã độc & cảnh báo", "T")
        .await
        .unwrap();
    let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(r.method, "GET");
    assert_eq!(
        r.target,
        "/send?api=2&to=%2B84961234567&text=M%C3%A3%20%C4%91%E1%BB%99c%20%26%20c%E1%BA%A3nh%20b%C3%A1o&from=Viettel"
    );
    assert!(r.body.is_empty());
}
