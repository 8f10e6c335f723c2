//! Log lines: every format from its fixture, non-query lines, limits.

use khien_telemetry::{LineDecoder, LineFormat, MAX_LINE_BYTES, Record};

use crate::support::{NOW_MS, fixture, golden, render};

fn decode_fixture(format: &str, log: &str, expected: &str) {
    let format: LineFormat = format.parse().expect("known format");
    let mut d = LineDecoder::new(format).with_reference_time(NOW_MS);
    let text = std::fs::read(fixture(log)).expect("fixture exists");
    let text = text.strip_suffix(b"\n").unwrap_or(&text);
    let mut out = String::new();
    for line in text.split(|&b| b == b'\n') {
        out.push_str(&render(&d.decode(line)));
        out.push('\n');
    }
    golden(expected, &out);
}

#[test]
fn unbound_fixture_decodes_client_name_time_qtype() {
    decode_fixture("unbound", "unbound.log", "unbound.expected");
}

#[test]
fn bind_fixture_decodes_client_name_time_qtype() {
    decode_fixture("bind", "bind.log", "bind.expected");
}

#[test]
fn dnsmasq_fixture_decodes_client_name_time_qtype() {
    decode_fixture("dnsmasq", "dnsmasq.log", "dnsmasq.expected");
}

#[test]
fn non_query_lines_are_none() {
    let cases = [
        (
            "unbound",
            "[1795575609] unbound[1234:0] info: start of service (unbound 1.17.1).",
        ),
        (
            "unbound",
            "[1795575609] unbound[1234:0] info: resolving evil.example. A IN",
        ),
        ("unbound", "random words"),
        ("bind", "25-Nov-2026 10:00:05.000 general: notice: running"),
        (
            "bind",
            "25-Nov-2026 10:00:04.000 security: info: client @0x1 192.0.2.10#1111 (x): query (cache) 'x/A/IN' denied",
        ),
        (
            "dnsmasq",
            "Nov 25 10:00:01 dnsmasq[123]: reply evil.example is 203.0.113.5",
        ),
        (
            "dnsmasq",
            "Nov 25 10:00:04 dnsmasq[123]: dnssec-query[DS] example to 8.8.8.8",
        ),
        ("unbound", ""),
        ("bind", "   \r\n"),
    ];
    for (format, line) in cases {
        let mut d = LineDecoder::new(format.parse().unwrap()).with_reference_time(NOW_MS);
        assert_eq!(d.decode(line.as_bytes()), Ok(None), "{format}: {line}");
    }
}

#[test]
fn malformed_query_lines_are_errors() {
    let cases = [
        (
            "unbound",
            "[1795575600] unbound[1:0] info: 192.0.2.7 evil.example.",
            "bad_line",
        ),
        (
            "unbound",
            "[17955x5600] unbound[1:0] info: 192.0.2.7 evil.example. A IN",
            "bad_time",
        ),
        (
            "bind",
            "client @0x1 192.0.2.999#53 (x): query: x IN A +",
            "bad_address",
        ),
        (
            "bind",
            "client @0x1 192.0.2.7 (x): query: x IN A +",
            "bad_line",
        ),
        // Found by fuzzing: the handle token ran past the "query:" marker.
        ("bind", "client @0x1: query: x IN A +", "bad_line"),
        (
            "dnsmasq",
            "Nov 25 10:00:01 dnsmasq[1]: query[A] evil.example from nowhere",
            "bad_address",
        ),
        (
            "dnsmasq",
            "Nov 25 10:00:01 dnsmasq[1]: query[A evil.example",
            "bad_line",
        ),
        (
            "dnsmasq",
            "Nov 32 10:00:01 dnsmasq[1]: query[A] evil.example from 192.0.2.7",
            "bad_time",
        ),
    ];
    for (format, line, kind) in cases {
        let mut d = LineDecoder::new(format.parse().unwrap()).with_reference_time(NOW_MS);
        let e = d.decode(line.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), kind, "{format}: {line}: {e}");
    }
}

#[test]
fn lines_of_one_megabyte_are_line_too_long() {
    let mut line = b"[1795575600] unbound[1:0] info: 192.0.2.7 ".to_vec();
    line.resize(1 << 20, b'a');
    for format in [
        "unbound",
        "bind",
        "dnsmasq",
        "zeek",
        "zeek-json",
        "eve",
        "csv:client=0,name=1",
        "json:client=a,name=b",
    ] {
        let mut d = LineDecoder::new(format.parse().unwrap());
        assert_eq!(
            d.decode(&line).unwrap_err().kind(),
            "line_too_long",
            "{format}"
        );
    }
    let mut d = LineDecoder::new(LineFormat::Unbound);
    let exactly = vec![b'x'; MAX_LINE_BYTES];
    assert_eq!(d.decode(&exactly), Ok(None));
}

#[test]
fn invalid_utf8_in_a_text_log_name_is_kept_as_bytes() {
    let mut d = LineDecoder::new(LineFormat::Unbound).with_reference_time(NOW_MS);
    let line = b"[1795575600] unbound[1:0] info: 192.0.2.7 ev\xffil.example. A IN";
    let Ok(Some(Record::Dns(q))) = d.decode(line) else {
        panic!("a query")
    };
    assert_eq!(q.qname, b"ev\xffil.example.");
}

#[test]
fn syslog_december_line_read_in_january_is_last_year() {
    // 2027-01-01T00:10:00+07:00
    let jan = 1_798_736_400_000 + 600_000;
    let mut d = LineDecoder::new(LineFormat::Dnsmasq).with_reference_time(jan);
    let Ok(Some(Record::Dns(q))) =
        d.decode(b"Dec 31 23:59:59 dnsmasq[1]: query[A] x.example from 192.0.2.7")
    else {
        panic!("a query")
    };
    // 2026-12-31T23:59:59+07:00
    assert_eq!(q.time_ms, 1_798_736_399_000);
}

#[test]
fn utc_offset_is_configurable() {
    let mut d = LineDecoder::new(LineFormat::Bind).with_utc_offset_seconds(0);
    let line = b"25-Nov-2026 03:00:00.000 client 192.0.2.8#4001 (x): query: x IN A + (192.0.2.1)";
    let Ok(Some(Record::Dns(q))) = d.decode(line) else {
        panic!("a query")
    };
    assert_eq!(q.time_ms, NOW_MS);
}

#[test]
fn zeek_dns_tsv_fixture_decodes_by_header_columns() {
    decode_fixture("zeek", "zeek-dns.log", "zeek-dns.expected");
}

#[test]
fn zeek_conn_tsv_fixture_decodes_flows() {
    decode_fixture("zeek", "zeek-conn.log", "zeek-conn.expected");
}

#[test]
fn zeek_json_fixture_decodes_dns_tls_http_conn() {
    decode_fixture("zeek-json", "zeek.json", "zeek-json.expected");
}

#[test]
fn eve_fixture_decodes_dns_v1_v2_v3_flow_http_tls() {
    decode_fixture("eve", "eve.json", "eve.expected");
}

#[test]
fn csv_fixture_decodes_by_field_map() {
    decode_fixture(
        "csv:time=0,client=2,port=3,name=5,qtype=6",
        "custom.csv",
        "custom-csv.expected",
    );
}

#[test]
fn json_lines_fixture_decodes_by_field_map() {
    decode_fixture(
        "json:time=ts,client=src_ip,name=query,ip=dest_ip,dport=dest_port,proto=proto",
        "custom.jsonl",
        "custom-json.expected",
    );
}

#[test]
fn zeek_without_a_header_assumes_dns_log_columns() {
    let mut d = LineDecoder::new(LineFormat::ZeekTsv);
    let line = b"1795575600.123456\tC1\t192.0.2.7\t53211\t192.0.2.1\t53\tudp\t1\t-\tevil.example\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t-\t-\tF";
    let Ok(Some(Record::Dns(q))) = d.decode(line) else {
        panic!("a query")
    };
    assert_eq!(
        (q.qname, q.qtype, q.time_ms),
        (&b"evil.example"[..], Some(1), NOW_MS + 123)
    );
}

#[test]
fn invalid_utf8_in_json_lines_is_invalid_utf8() {
    for format in ["eve", "zeek-json", "json:client=a,name=b"] {
        let mut d = LineDecoder::new(format.parse().unwrap());
        let line = b"{\"event_type\":\"dns\",\"a\":\"192.0.2.7\",\"b\":\"ev\xffil\"}";
        assert_eq!(
            d.decode(line).unwrap_err().kind(),
            "invalid_utf8",
            "{format}"
        );
    }
}

#[test]
fn broken_json_is_a_json_error() {
    for format in ["eve", "zeek-json", "json:client=a,name=b"] {
        let mut d = LineDecoder::new(format.parse().unwrap());
        assert_eq!(
            d.decode(b"{\"event_type\":\"dns\",").unwrap_err().kind(),
            "json",
            "{format}"
        );
        assert_eq!(d.decode(b"[1,2,3]").unwrap_err().kind(), "json", "{format}");
    }
}

#[test]
fn eve_events_of_other_types_are_none_without_parsing() {
    let mut d = LineDecoder::new(LineFormat::Eve);
    // Broken JSON after the event type: never parsed, so no error.
    assert_eq!(
        d.decode(b"{\"timestamp\":\"x\",\"event_type\":\"fileinfo\",\"fileinfo\":{{{"),
        Ok(None)
    );
}

/// `query_name` (the sensor's shortcut) finds the same name as `decode`
/// on every query line of the fixtures, and nothing on the others.
#[test]
fn query_name_agrees_with_decode_on_every_fixture_line() {
    for (format, log) in [
        ("unbound", "unbound.log"),
        ("bind", "bind.log"),
        ("dnsmasq", "dnsmasq.log"),
    ] {
        let text = std::fs::read(format!(
            "{}/tests/fixtures/{log}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut decoder = LineDecoder::new(format.parse().unwrap());
        let mut queries = 0;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let quick = decoder.query_name(line).map(<[u8]>::to_vec);
            match decoder.decode(line) {
                Ok(Some(Record::Dns(q))) if !q.is_response => {
                    queries += 1;
                    assert_eq!(
                        quick.as_deref(),
                        Some(q.qname),
                        "{format}: {}",
                        String::from_utf8_lossy(line)
                    );
                }
                _ => assert_eq!(quick, None, "{format}: {}", String::from_utf8_lossy(line)),
            }
        }
        assert!(queries > 0, "{format}");
    }
    // Informational Unbound messages have a word where the client goes.
    let d = LineDecoder::new(LineFormat::Unbound);
    assert_eq!(
        d.query_name(b"[1] unbound[1:0] info: resolving evil.example. A IN"),
        None
    );
    assert_eq!(
        d.query_name(b"[1] unbound[1:0] info: 2001:db8::7 evil.example. AAAA IN"),
        Some(&b"evil.example."[..])
    );
}
