//! dnstap: a real Unbound streaming to the sensor's unix socket, and a
//! scripted Frame Streams writer for the handshake and its failures.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use khien_sensor::BoundInput;
use khien_sensor::Metrics;
use khien_telemetry::dnstap::{CONTENT_TYPE, encode_client_query};
use khien_telemetry::fstrm::{ControlType, Frame, FrameReader, encode_control, encode_data};
use khien_testkit::unbound::{self, Unbound};

use crate::support::*;

/// A Frame Streams writer speaking the bidirectional handshake.
pub struct Writer {
    stream: UnixStream,
    reader: FrameReader,
}

impl Writer {
    pub fn connect(path: &Path) -> Writer {
        let stream = UnixStream::connect(path).expect("connect to dnstap socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Writer {
            stream,
            reader: FrameReader::new(1 << 16),
        }
    }

    fn expect_control(&mut self, kind: ControlType) {
        let mut buf = [0u8; 1024];
        loop {
            if let Some(frame) = self.reader.next_frame().expect("valid reply") {
                match frame {
                    Frame::Control(c) => {
                        assert_eq!(c.kind, kind);
                        return;
                    }
                    Frame::Data(_) => panic!("data frame from the sensor"),
                }
            }
            let n = self.stream.read(&mut buf).expect("read reply");
            assert!(n > 0, "sensor closed the connection before {kind:?}");
            self.reader.push(&buf[..n]);
        }
    }

    pub fn handshake(&mut self) {
        self.stream
            .write_all(&encode_control(ControlType::Ready, Some(CONTENT_TYPE)))
            .unwrap();
        self.expect_control(ControlType::Accept);
        self.stream
            .write_all(&encode_control(ControlType::Start, Some(CONTENT_TYPE)))
            .unwrap();
    }

    pub fn send(&mut self, payload: &[u8]) {
        let mut out = Vec::new();
        encode_data(payload, &mut out);
        self.stream.write_all(&out).unwrap();
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    pub fn stop(mut self) {
        self.stream
            .write_all(&encode_control(ControlType::Stop, None))
            .unwrap();
        self.expect_control(ControlType::Finish);
    }
}

pub fn dnstap_socket(running: &Running) -> PathBuf {
    running
        .bound
        .iter()
        .find_map(|(_, b)| match b {
            BoundInput::Unix(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a dnstap socket")
}

fn query(client: &str, name: &str) -> Vec<u8> {
    let ip: IpAddr = client.parse().unwrap();
    encode_client_query(ip, 40000, name, 1, 1_764_079_200_000)
}

#[test]
fn scripted_writer_handshake_frames_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let out = dir.path().join("hits.ndjson");
    let sock = dir.path().join("dnstap.sock");
    let running = Running::start(config(
        dir.path(),
        &snap,
        &[format!("dnstap:unix:{}", sock.display())],
        &out,
    ));
    let mut w = Writer::connect(&dnstap_socket(&running));
    w.handshake();
    for _ in 0..1000 {
        w.send(&query("192.0.2.7", "www.example.com."));
    }
    for _ in 0..3 {
        w.send(&query("192.0.2.7", "c2.evil.example."));
    }
    w.send(&query("2001:db8::7", "stealer.example."));
    w.stop();
    let m = running.metrics.clone();
    wait_for("frames", Duration::from_secs(10), || {
        Metrics::get(&m.events) == 1004
    });
    let s = running.finish();
    assert_eq!(s.hits, 4);
    assert_eq!(s.decode_errors, 0);
    let t = totals(&read_hits(&out));
    assert_eq!(
        t.get(&("192.0.2.7".into(), "c2.evil.example".into())),
        Some(&3)
    );
    assert_eq!(
        t.get(&("2001:db8::7".into(), "stealer.example".into())),
        Some(&1)
    );
}

/// A resolver's dnstap names the client's source port; the hit keeps the
/// port of its earliest query, even when that query's frame came later.
#[test]
fn dnstap_hit_carries_the_port_of_the_earliest_query() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let out = dir.path().join("hits.ndjson");
    let sock = dir.path().join("dnstap.sock");
    let running = Running::start(config(
        dir.path(),
        &snap,
        &[format!("dnstap:unix:{}", sock.display())],
        &out,
    ));
    let bucket = 1_764_079_200_000; // 2025-11-25T14:00:00Z
    let seven: IpAddr = "192.0.2.7".parse().unwrap();
    let eight: IpAddr = "2001:db8::8".parse().unwrap();
    let mut w = Writer::connect(&dnstap_socket(&running));
    w.handshake();
    w.send(&encode_client_query(
        seven,
        40001,
        "c2.evil.example.",
        1,
        bucket + 600_000,
    ));
    w.send(&encode_client_query(
        seven,
        51234,
        "c2.evil.example.",
        1,
        bucket + 60_000,
    ));
    w.send(&encode_client_query(
        seven,
        40002,
        "c2.evil.example.",
        1,
        bucket + 900_000,
    ));
    w.send(&encode_client_query(
        eight,
        5353,
        "stealer.example.",
        1,
        bucket + 1_000,
    ));
    w.stop();
    let m = running.metrics.clone();
    wait_for("frames", Duration::from_secs(10), || {
        Metrics::get(&m.events) == 4
    });
    let s = running.finish();
    assert_eq!(s.decode_errors, 0);
    let hits = read_hits(&out);
    // Parts of one key may be flushed apart; add them up the hub's way.
    let mut by_client = std::collections::BTreeMap::new();
    for h in hits {
        by_client
            .entry(h.client)
            .and_modify(|sum: &mut khien_model::Hit| sum.merge(&h))
            .or_insert(h);
    }
    assert_eq!(by_client.len(), 2, "{by_client:#?}");
    let seven = &by_client[&seven];
    assert_eq!(seven.count, 3);
    assert_eq!(seven.client_port, Some(51234));
    assert_eq!(seven.first_seen.timestamp_millis(), bucket + 60_000);
    assert_eq!(by_client[&eight].client_port, Some(5353));
}

fn dig(port: u16, source: &str, name: &str) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "-b", source])
        .args(["+time=2", "+tries=1", "+short", name, "A"])
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn unbound_dnstap_gives_one_hit_with_the_right_client_and_count() {
    if !unbound::present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let out = dir.path().join("hits.ndjson");
    let sock = dir.path().join("dnstap.sock");
    let mut c = config(
        dir.path(),
        &snap,
        &[format!("dnstap:unix:{}", sock.display())],
        &out,
    );
    c.flush_seconds = 1;
    let running = Running::start(c);

    let unbound = Unbound::start(
        dir.path(),
        "unbound",
        &format!(
            "  local-zone: \"example.\" static\n  \
             local-data: \"c2.evil.example. A 203.0.113.5\"\n  \
             local-data: \"www.clean.example. A 192.0.2.80\"\n\
             dnstap:\n  dnstap-enable: yes\n  dnstap-bidirectional: yes\n  \
             dnstap-socket-path: \"{}\"\n  \
             dnstap-log-client-query-messages: yes\n  \
             dnstap-log-client-response-messages: yes\n",
            sock.display(),
        ),
    );
    // Ready when its dnstap writer has connected too.
    let m = running.metrics.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dig(unbound.port, "127.0.0.1", "www.clean.example") != "192.0.2.80"
        || Metrics::get(&m.dnstap_connections) == 0
    {
        assert!(
            Instant::now() < deadline,
            "unbound not ready: {}",
            unbound.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = Metrics::get(&m.events);
    for _ in 0..3 {
        assert_eq!(
            dig(unbound.port, "127.0.0.2", "c2.evil.example"),
            "203.0.113.5"
        );
    }
    for name in ["www.clean.example", "evil.example", "c3.evil.example"] {
        dig(unbound.port, "127.0.0.3", name);
    }
    wait_for("queries streamed", Duration::from_secs(20), || {
        Metrics::get(&m.events) >= before + 6
    });
    wait_for("hit flushed", Duration::from_secs(10), || {
        !read_hits(&out).is_empty()
    });
    drop(unbound);
    let s = running.finish();
    assert_eq!(s.decode_errors, 0);
    let hits = read_hits(&out);
    let t = totals(&hits);
    // Queries only: the responses Unbound also streams are not counted twice.
    assert_eq!(
        t.get(&("127.0.0.2".into(), "c2.evil.example".into())),
        Some(&3),
        "{hits:#?}"
    );
    assert!(
        t.keys().all(|(client, _)| client == "127.0.0.2"),
        "unlisted names gave hits: {t:?}"
    );
    assert_eq!(hits[0].family.as_deref(), Some("mirai"));
    // dig's source port is random; Unbound's dnstap names it.
    assert!(
        hits.iter().all(|h| h.client_port.is_some_and(|p| p != 0)),
        "{hits:#?}"
    );
}
