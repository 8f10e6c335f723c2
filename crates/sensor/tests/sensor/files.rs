//! Log files: replay with `--once`, following across rotation and
//! truncation, resuming after a restart without loss or duplicates.

use std::io::Write;
use std::time::Duration;

use khien_model::ObservableKind;

use crate::support::*;

fn unbound_line(ts: i64, client: &str, name: &str) -> String {
    format!("[{ts}] unbound[1811:0] info: {client} {name}. A IN\n")
}

fn append(log: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A running sensor following `name` in `dir`, which starts with one line
/// for `first` (a domain); flushes and looks for snapshots every second.
fn follow(
    dir: &std::path::Path,
    name: &str,
    first: &str,
) -> (Running, std::path::PathBuf, std::path::PathBuf) {
    let snap = default_snapshot(dir);
    let log = dir.join(name);
    std::fs::write(&log, unbound_line(1_764_079_200, "192.0.2.1", first)).unwrap();
    let out = dir.join("hits.ndjson");
    let mut c = config(
        dir,
        &snap,
        &[format!("file:{}:unbound", log.display())],
        &out,
    );
    c.flush_seconds = 1;
    c.snapshot.refresh_seconds = 1;
    (Running::start(c), log, out)
}

#[test]
fn replay_counts_hits_per_client_bucket_and_indicator() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let log = dir.path().join("queries.log");
    let mut text = String::new();
    // 14:00–15:00 UTC bucket: 3 lookups by .7 (two names under one
    // indicator), 1 by .8; next bucket: 1 by .7. Unlisted names: none.
    let t = 1_764_079_200; // 2025-11-25T14:00:00Z
    text += &unbound_line(t + 5, "192.0.2.7", "c2.evil.example");
    text += &unbound_line(t + 6, "192.0.2.7", "a.b.C2.Evil.Example");
    text += &unbound_line(t + 7, "192.0.2.8", "www.google.com");
    text += &unbound_line(t + 8, "192.0.2.7", "c2.evil.example");
    text += &unbound_line(t + 9, "192.0.2.8", "stealer.example");
    text += &unbound_line(t + 10, "192.0.2.9", "evil.example"); // parent: no hit
    text += &unbound_line(t + 11, "192.0.2.9", "notc2.evil.example"); // sibling: no hit
    text += &unbound_line(t + 3600, "192.0.2.7", "c2.evil.example");
    std::fs::write(&log, text).unwrap();
    let out = dir.path().join("hits.ndjson");
    let summary = run_once(config(
        dir.path(),
        &snap,
        &[format!("file:{}:unbound", log.display())],
        &out,
    ));
    assert_eq!(summary.events, 8);
    assert_eq!(summary.hits, 5);
    let mut hits = read_hits(&out);
    hits.sort_by_key(|h| (h.bucket, h.client, h.indicator.clone()));
    assert_eq!(hits.len(), 3, "{hits:#?}");
    let first = &hits[0];
    assert_eq!(first.client.to_string(), "192.0.2.7");
    assert_eq!(first.indicator, "c2.evil.example");
    assert_eq!(first.kind, ObservableKind::Domain);
    assert_eq!(first.family.as_deref(), Some("mirai"));
    assert_eq!(first.count, 3);
    assert_eq!(first.bucket.to_rfc3339(), "2025-11-25T14:00:00+00:00");
    assert_eq!(first.first_seen.timestamp(), t + 5);
    assert_eq!(first.last_seen.timestamp(), t + 8);
    assert_eq!(first.sensor, "test-sensor");
    assert_eq!(first.evidence.as_deref(), Some("c2.evil.example."));
    // Unbound's query log has no source port.
    assert_eq!(first.client_port, None);
    assert_eq!(hits[1].client.to_string(), "192.0.2.8");
    assert_eq!(hits[1].indicator, "stealer.example");
    assert_eq!(hits[2].bucket.to_rfc3339(), "2025-11-25T15:00:00+00:00");
    assert_eq!(hits[2].count, 1);
}

#[test]
fn many_workers_give_the_same_totals_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let log = dir.path().join("big.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
    let mut expected = 0u64;
    for i in 0..200_000u64 {
        let client = format!("10.0.{}.{}", (i / 250) % 250, i % 250 + 1);
        let name = if i % 997 == 0 {
            expected += 1;
            format!("x{i}.c2.evil.example")
        } else {
            format!("host{i}.example.com")
        };
        f.write_all(unbound_line(1_764_079_200 + (i as i64 % 7200), &client, &name).as_bytes())
            .unwrap();
    }
    drop(f);
    let mut results = Vec::new();
    for workers in [1, 3] {
        let out = dir.path().join(format!("hits-{workers}.ndjson"));
        let mut c = config(
            dir.path(),
            &snap,
            &[format!("file:{}:unbound", log.display())],
            &out,
        );
        c.workers = Some(workers);
        c.state_dir = dir.path().join(format!("state-{workers}"));
        let s = run_once(c);
        assert_eq!(s.events, 200_000);
        assert_eq!(s.hits, expected);
        results.push(totals(&read_hits(&out)));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0].values().sum::<u64>(), expected);
}

#[test]
fn follows_rotation_and_truncation_like_tail_f() {
    let dir = tempfile::tempdir().unwrap();
    let (running, log, out) = follow(dir.path(), "follow.log", "c2.evil.example");
    let m = running.metrics.clone();
    wait_for("first line", Duration::from_secs(10), || {
        khien_sensor::Metrics::get(&m.hits) == 1
    });
    // Appended, then a line split over two writes.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(unbound_line(1_764_079_201, "192.0.2.2", "c2.evil.example").as_bytes())
        .unwrap();
    f.write_all(b"[1764079202] unbound[1811:0] info: 192.0.2.3 c2.ev")
        .unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    f.write_all(b"il.example. A IN\n").unwrap();
    drop(f);
    wait_for("appended lines", Duration::from_secs(10), || {
        khien_sensor::Metrics::get(&m.hits) == 3
    });
    // Rotation: rename and create anew (logrotate's default).
    std::fs::rename(&log, dir.path().join("follow.log.1")).unwrap();
    std::fs::write(
        &log,
        unbound_line(1_764_079_203, "192.0.2.4", "c2.evil.example"),
    )
    .unwrap();
    wait_for("rotated file", Duration::from_secs(10), || {
        khien_sensor::Metrics::get(&m.hits) == 4
    });
    assert_eq!(khien_sensor::Metrics::get(&m.files_rotated), 1);
    // Truncation in place (copytruncate), then a new shorter line.
    std::fs::write(&log, "").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    std::fs::write(
        &log,
        unbound_line(1_764_079_204, "192.0.2.5", "stealer.example"),
    )
    .unwrap();
    wait_for("line after truncation", Duration::from_secs(10), || {
        khien_sensor::Metrics::get(&m.hits) == 5
    });
    assert!(khien_sensor::Metrics::get(&m.files_truncated) >= 1);
    let summary = running.finish();
    assert_eq!(summary.hits, 5);
    let t = totals(&read_hits(&out));
    for client in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        assert_eq!(
            t.get(&(client.into(), "c2.evil.example".into())),
            Some(&1),
            "{t:?}"
        );
    }
    assert_eq!(
        t.get(&("192.0.2.5".into(), "stealer.example".into())),
        Some(&1)
    );
}

#[test]
fn restart_resumes_at_the_saved_position() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let log = dir.path().join("resume.log");
    std::fs::write(
        &log,
        unbound_line(1_764_079_200, "192.0.2.1", "c2.evil.example"),
    )
    .unwrap();
    let out = dir.path().join("hits.ndjson");
    let input = [format!("file:{}:unbound", log.display())];
    assert_eq!(run_once(config(dir.path(), &snap, &input, &out)).hits, 1);
    append(
        &log,
        &unbound_line(1_764_079_201, "192.0.2.2", "c2.evil.example"),
    );
    // Same state directory: only the new line is read.
    let second = run_once(config(dir.path(), &snap, &input, &out));
    assert_eq!(second.events, 1);
    assert_eq!(second.hits, 1);
    let t = totals(&read_hits(&out));
    assert_eq!(t.values().sum::<u64>(), 2);
    // A fresh state directory reads the file from the start.
    let mut c = config(dir.path(), &snap, &input, &out);
    c.state_dir = dir.path().join("other-state");
    assert_eq!(run_once(c).events, 2);
}

#[test]
fn snapshot_swaps_while_running_without_losing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (running, log, out) = follow(dir.path(), "swap.log", "new-c2.example");
    let snap = dir.path().join("snapshot.bin");
    let m = running.metrics.clone();
    wait_for("first line read", Duration::from_secs(10), || {
        khien_sensor::Metrics::get(&m.events) == 1
    });
    assert_eq!(khien_sensor::Metrics::get(&m.hits), 0);
    write_snapshot(
        &snap,
        &[(ObservableKind::Domain, "new-c2.example", "redline")],
    );
    wait_for("snapshot swap", Duration::from_secs(10), || {
        khien_sensor::Metrics::get(&m.snapshot_swaps) == 1
    });
    append(
        &log,
        &unbound_line(1_764_079_201, "192.0.2.1", "new-c2.example"),
    );
    wait_for("hit on the new snapshot", Duration::from_secs(10), || {
        khien_sensor::Metrics::get(&m.hits) == 1
    });
    let s = running.finish();
    assert_eq!(s.events, 2);
    let hits = read_hits(&out);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].family.as_deref(), Some("redline"));
}

#[test]
fn every_log_format_reaches_the_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    // (format, line, the client port the line logs)
    let cases: [(&str, &str, Option<u16>); 5] = [
        (
            "bind",
            "25-Nov-2025 21:00:05.123 queries: info: client @0x7f8b2c0a1b10 192.0.2.7#53211 (c2.evil.example): query: c2.evil.example IN A +E(0)K (192.0.2.1)\n",
            Some(53211),
        ),
        (
            "dnsmasq",
            "Nov 25 21:00:05 dnsmasq[123]: query[A] c2.evil.example from 192.0.2.7\n",
            None,
        ),
        (
            "eve",
            "{\"timestamp\":\"2025-11-25T14:00:05.000000+0000\",\"event_type\":\"dns\",\"src_ip\":\"192.0.2.7\",\"src_port\":5353,\"dest_ip\":\"192.0.2.1\",\"dest_port\":53,\"proto\":\"UDP\",\"dns\":{\"type\":\"query\",\"id\":1,\"rrname\":\"c2.evil.example\",\"rrtype\":\"A\"}}\n",
            Some(5353),
        ),
        (
            "zeek",
            "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\tquery\n1764079205.000000\tC1\t192.0.2.7\t5353\t192.0.2.1\t53\tudp\t1\tc2.evil.example\n",
            Some(5353),
        ),
        (
            "zeek-json",
            "{\"ts\":1764079205.0,\"uid\":\"C1\",\"id.orig_h\":\"192.0.2.7\",\"id.orig_p\":5353,\"id.resp_h\":\"192.0.2.1\",\"id.resp_p\":53,\"proto\":\"udp\",\"query\":\"c2.evil.example\"}\n",
            Some(5353),
        ),
    ];
    for (format, text, port) in cases {
        let log = dir.path().join(format!("{format}.log"));
        std::fs::write(&log, text).unwrap();
        let out = dir.path().join(format!("{format}.ndjson"));
        let mut c = config(
            dir.path(),
            &snap,
            &[format!("file:{}:{format}", log.display())],
            &out,
        );
        c.state_dir = dir.path().join(format!("state-{format}"));
        let s = run_once(c);
        assert_eq!(s.decode_errors, 0, "{format}");
        let hits = read_hits(&out);
        assert_eq!(hits.len(), 1, "{format}: {hits:?}");
        assert_eq!(hits[0].client.to_string(), "192.0.2.7", "{format}");
        assert_eq!(hits[0].indicator, "c2.evil.example", "{format}");
        assert_eq!(hits[0].client_port, port, "{format}: client port");
        // dnsmasq's syslog stamp has no year; the decoder takes this year.
        if format != "dnsmasq" {
            assert_eq!(
                hits[0].first_seen.timestamp(),
                1_764_079_205,
                "{format}: time"
            );
        }
    }
}

fn eve_dns(time: &str, client: &str, port: u16, name: &str) -> String {
    format!(
        "{{\"timestamp\":\"{time}\",\"event_type\":\"dns\",\"src_ip\":\"{client}\",\"src_port\":{port},\"dest_ip\":\"192.0.2.1\",\"dest_port\":53,\"proto\":\"UDP\",\"dns\":{{\"type\":\"query\",\"id\":1,\"rrname\":\"{name}\",\"rrtype\":\"A\"}}}}\n"
    )
}

fn eve_flow(time: &str, proto: &str, src: &str, sport: u16, dst: &str, dport: u16) -> String {
    format!(
        "{{\"timestamp\":\"{time}\",\"event_type\":\"flow\",\"src_ip\":\"{src}\",\"src_port\":{sport},\"dest_ip\":\"{dst}\",\"dest_port\":{dport},\"proto\":\"{proto}\",\"flow\":{{\"pkts_toserver\":3,\"pkts_toclient\":2,\"bytes_toserver\":300,\"bytes_toclient\":200,\"start\":\"{time}\",\"end\":\"{time}\"}}}}\n"
    )
}

/// The hub attributes a hit behind CGNAT by the port of its first event, so
/// an event read later but earlier in time must bring its port along, in
/// one unit of work and across inputs alike.
#[test]
fn eve_dns_earlier_event_read_later_gives_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let one = dir.path().join("one.json");
    std::fs::write(
        &one,
        eve_dns(
            "2025-11-25T14:10:00.000000+0000",
            "192.0.2.7",
            40001,
            "late.c2.evil.example",
        ) + &eve_dns(
            "2025-11-25T14:01:00.000000+0000",
            "192.0.2.7",
            51234,
            "early.c2.evil.example",
        ),
    )
    .unwrap();
    // A second input, whose hits reach the aggregator as another part.
    let two = dir.path().join("two.json");
    std::fs::write(
        &two,
        eve_dns(
            "2025-11-25T14:05:00.000000+0000",
            "192.0.2.8",
            40002,
            "c2.evil.example",
        ) + &eve_dns(
            "2025-11-25T14:00:30.000000+0000",
            "192.0.2.8",
            62000,
            "first.c2.evil.example",
        ),
    )
    .unwrap();
    let three = dir.path().join("three.json");
    std::fs::write(
        &three,
        eve_dns(
            "2025-11-25T14:00:10.000000+0000",
            "192.0.2.8",
            33333,
            "very-first.c2.evil.example",
        ),
    )
    .unwrap();
    let out = dir.path().join("hits.ndjson");
    let s = run_once(config(
        dir.path(),
        &snap,
        &[
            format!("file:{}:eve", one.display()),
            format!("file:{}:eve", two.display()),
            format!("file:{}:eve", three.display()),
        ],
        &out,
    ));
    assert_eq!(s.decode_errors, 0);
    let hits = read_hits(&out);
    assert_eq!(hits.len(), 2, "one hit per client: {hits:#?}");
    let by = |client: &str| {
        hits.iter()
            .find(|h| h.client.to_string() == client)
            .unwrap_or_else(|| panic!("no hit for {client}: {hits:#?}"))
    };
    let seven = by("192.0.2.7");
    assert_eq!(seven.count, 2);
    assert_eq!(seven.client_port, Some(51234));
    assert_eq!(seven.evidence.as_deref(), Some("early.c2.evil.example"));
    let eight = by("192.0.2.8");
    assert_eq!(eight.count, 3);
    assert_eq!(eight.client_port, Some(33333));
    assert_eq!(eight.first_seen.to_rfc3339(), "2025-11-25T14:00:10+00:00");
}

/// The client of a flow is the end away from the listed address, and so is
/// its port: the destination's for a flow from the C&C back to the client.
#[test]
fn eve_flow_client_port_is_the_client_end() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let log = dir.path().join("flows.json");
    let t = "2025-11-25T14:00:05.000000+0000";
    let text = [
        eve_flow(t, "TCP", "10.1.2.3", 40000, "198.51.100.7", 443),
        eve_flow(t, "TCP", "198.51.100.7", 443, "10.1.2.4", 51000),
        // ICMP: the "ports" are a type and code, not a port block's.
        eve_flow(t, "ICMP", "10.1.2.5", 8, "203.0.113.9", 0),
    ]
    .concat();
    std::fs::write(&log, text).unwrap();
    let out = dir.path().join("hits.ndjson");
    let s = run_once(config(
        dir.path(),
        &snap,
        &[format!("file:{}:eve", log.display())],
        &out,
    ));
    assert_eq!(s.decode_errors, 0);
    let hits = read_hits(&out);
    let port = |client: &str| {
        hits.iter()
            .find(|h| h.client.to_string() == client)
            .unwrap_or_else(|| panic!("no hit for {client}: {hits:#?}"))
            .client_port
    };
    assert_eq!(hits.len(), 3, "{hits:#?}");
    assert_eq!(port("10.1.2.3"), Some(40000));
    assert_eq!(port("10.1.2.4"), Some(51000));
    assert_eq!(port("10.1.2.5"), None);
}

#[test]
fn eve_tls_hit_carries_the_client_port() {
    let dir = tempfile::tempdir().unwrap();
    let snap = default_snapshot(dir.path());
    let log = dir.path().join("tls.json");
    std::fs::write(
        &log,
        "{\"timestamp\":\"2025-11-25T14:00:06.000000+0000\",\"event_type\":\"tls\",\"src_ip\":\"192.0.2.9\",\"src_port\":50000,\"dest_ip\":\"192.0.2.20\",\"dest_port\":443,\"proto\":\"TCP\",\"tls\":{\"sni\":\"c2.evil.example\",\"version\":\"TLS 1.3\"}}\n",
    )
    .unwrap();
    let out = dir.path().join("hits.ndjson");
    let s = run_once(config(
        dir.path(),
        &snap,
        &[format!("file:{}:eve", log.display())],
        &out,
    ));
    assert_eq!(s.decode_errors, 0);
    let hits = read_hits(&out);
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].client_port, Some(50000));
}
