//! Hostile and broken input: counted by kind, never a panic, never a
//! stalled pipeline — the good input around it still gives its hits.

use std::io::Write;
use std::time::Duration;

use khien_sensor::Metrics;
use khien_telemetry::dnstap::CONTENT_TYPE;
use khien_telemetry::fstrm::{ControlType, encode_control};

use crate::dnstap::{Writer, dnstap_socket};
use crate::support::*;

fn good_line(client: &str) -> String {
    format!("[1764079200] unbound[1811:0] info: {client} c2.evil.example. A IN\n")
}

#[test]
fn megabyte_lines_and_invalid_utf8_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let log = dir.path().join("bad.log");
    let mut f = std::fs::File::create(&log).unwrap();
    f.write_all(good_line("192.0.2.1").as_bytes()).unwrap();
    f.write_all(&vec![b'A'; 1 << 20]).unwrap();
    f.write_all(b"\n").unwrap();
    f.write_all(good_line("192.0.2.2").as_bytes()).unwrap();
    f.write_all(b"[1764079200] unbound[1811:0] info: 192.0.2.9 \xff\xfe\xc3(.evil. A IN\n")
        .unwrap();
    f.write_all(b"[1764079200] unbound[1811:0] info: not-an-address c2.evil.example. A IN\n")
        .unwrap();
    f.write_all(good_line("192.0.2.3").as_bytes()).unwrap();
    // No newline at the end: the last line still counts at end of input.
    f.write_all(good_line("192.0.2.4").trim_end().as_bytes())
        .unwrap();
    drop(f);
    let out = dir.path().join("hits.ndjson");
    let mut c = config(
        dir.path(),
        &snap,
        &[format!("file:{}:unbound", log.display())],
        &out,
    );
    c.once = true;
    let sensor = khien_sensor::Sensor::build(c).unwrap();
    let metrics = sensor.metrics();
    let s = sensor
        .run(Default::default(), Duration::from_secs(1))
        .unwrap();
    assert_eq!(s.hits, 4);
    let errors = metrics.decode_errors();
    assert_eq!(errors.get("line_too_long"), Some(&1), "{errors:?}");
    // The invalid UTF-8 name is passed on as bytes and matches nothing; a
    // line whose client is not an address is not a query line.
    assert_eq!(s.decode_errors, 1, "{s:?}");
    assert_eq!(s.units_read, 6, "{s:?}");
    let t = totals(&read_hits(&out));
    assert_eq!(t.len(), 4);
}

fn dnstap_sensor(dir: &std::path::Path) -> (Running, std::path::PathBuf) {
    let snap = default_snapshot(dir);
    let out = dir.join("hits.ndjson");
    let sock = dir.join("dnstap.sock");
    let running = Running::start(config(
        dir,
        &snap,
        &[format!("dnstap:unix:{}", sock.display())],
        &out,
    ));
    (running, out)
}

fn query(name: &str) -> Vec<u8> {
    khien_telemetry::dnstap::encode_client_query(
        "192.0.2.7".parse().unwrap(),
        1,
        name,
        1,
        1_764_079_200_000,
    )
}

/// After each kind of garbage the listener still takes a good writer.
fn good_writer_still_works(running: &Running) {
    let before = Metrics::get(&running.metrics.hits);
    let mut w = Writer::connect(&dnstap_socket(running));
    w.handshake();
    w.send(&query("c2.evil.example."));
    w.stop();
    let m = running.metrics.clone();
    wait_for("good frame after garbage", Duration::from_secs(10), || {
        Metrics::get(&m.hits) == before + 1
    });
}

fn error_count(running: &Running, kind: &str) -> u64 {
    running
        .metrics
        .decode_errors()
        .get(kind)
        .copied()
        .unwrap_or(0)
}

#[test]
fn garbage_on_the_dnstap_socket_closes_that_connection_only() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = dnstap_sensor(dir.path());
    let sock = dnstap_socket(&running);
    // HTTP instead of Frame Streams: a huge "data frame" length.
    let mut w = Writer::connect(&sock);
    w.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(w);
    wait_for("garbage counted", Duration::from_secs(10), || {
        running.metrics.decode_errors().values().sum::<u64>() >= 1
    });
    good_writer_still_works(&running);
    running.finish();
}

#[test]
fn control_frame_over_512_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = dnstap_sensor(dir.path());
    let mut w = Writer::connect(&dnstap_socket(&running));
    let long_type = vec![b'x'; 600];
    w.raw(&encode_control(ControlType::Ready, Some(&long_type)));
    drop(w);
    wait_for(
        "oversized control frame counted",
        Duration::from_secs(10),
        || error_count(&running, "control_frame_too_large") == 1,
    );
    good_writer_still_works(&running);
    running.finish();
}

#[test]
fn truncated_frame_and_data_before_start_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = dnstap_sensor(dir.path());
    let sock = dnstap_socket(&running);
    let mut w = Writer::connect(&sock);
    w.handshake();
    let mut frame = Vec::new();
    khien_telemetry::fstrm::encode_data(&query("c2.evil.example."), &mut frame);
    w.raw(&frame[..frame.len() / 2]);
    drop(w);
    wait_for("truncated frame counted", Duration::from_secs(10), || {
        error_count(&running, "truncated_frame") == 1
    });
    // Data with no handshake at all.
    let mut w = Writer::connect(&sock);
    w.raw(&frame);
    drop(w);
    wait_for("data before START counted", Duration::from_secs(10), || {
        running.metrics.decode_errors().values().sum::<u64>() >= 2
    });
    assert_eq!(Metrics::get(&running.metrics.hits), 0);
    good_writer_still_works(&running);
    running.finish();
}

/// A dnstap CLIENT_QUERY whose DNS message names itself in a loop.
fn pointer_loop_payload() -> Vec<u8> {
    // Header (12 bytes, QDCOUNT=1), then a name that is a pointer to itself.
    let mut dns = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    dns.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    fn field(tag: u32, wire: u8, out: &mut Vec<u8>) {
        out.push(((tag << 3) | u32::from(wire)) as u8);
    }
    fn bytes(tag: u32, b: &[u8], out: &mut Vec<u8>) {
        field(tag, 2, out);
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    let mut message = Vec::new();
    field(1, 0, &mut message);
    message.push(5); // CLIENT_QUERY
    field(2, 0, &mut message);
    message.push(1); // INET
    bytes(4, &[192, 0, 2, 7], &mut message);
    bytes(10, &dns, &mut message);
    let mut dnstap = Vec::new();
    field(15, 0, &mut dnstap);
    dnstap.push(1); // MESSAGE
    bytes(14, &message, &mut dnstap);
    dnstap
}

#[test]
fn dns_name_pointer_loop_is_counted_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (running, out) = dnstap_sensor(dir.path());
    let mut w = Writer::connect(&dnstap_socket(&running));
    w.handshake();
    w.send(&pointer_loop_payload());
    w.send(&query("c2.evil.example."));
    w.stop();
    let m = running.metrics.clone();
    wait_for("both frames", Duration::from_secs(10), || {
        Metrics::get(&m.units_read) == 2
    });
    assert_eq!(error_count(&running, "dns_name_pointer_loop"), 1);
    let s = running.finish();
    assert_eq!(s.hits, 1);
    assert_eq!(read_hits(&out).len(), 1);
    let _ = CONTENT_TYPE;
}
