//! Decode throughput of every decoder on generated input, one core, as one
//! JSON object per line: `{"decoder":…,"records":…,"seconds":…,"per_second":…}`.
//!
//! ```text
//! cargo run --release -p khien-telemetry --example decode_bench -- 1000000
//! ```
//!
//! Inputs are built in memory first (unique clients and names, realistic
//! line shapes), so only decoding is timed. Each figure is the best of
//! three passes.
#![allow(clippy::print_stdout)] // the JSON on stdout is this program's output

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use khien_telemetry::dnstap::{self, CONTENT_TYPE, DnstapDecoder};
use khien_telemetry::flow::{FlowDecoder, FlowDecoderConfig};
use khien_telemetry::fstrm::{self, ControlType, Frame, FrameReader};
use khien_telemetry::{LineDecoder, LineFormat, Record};

const NOW: i64 = 1_795_575_600_000;

fn client(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn name(i: usize) -> String {
    format!("host{}.{}.example.com", i % 9973, i % 613)
}

fn lines(n: usize, f: impl Fn(usize) -> String) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 120);
    for i in 0..n {
        out.extend_from_slice(f(i).as_bytes());
        out.push(b'\n');
    }
    out
}

/// Best of three passes of `pass`, which returns how many records it saw.
fn best_of_three(mut pass: impl FnMut() -> usize) -> (usize, f64) {
    let mut best = f64::MAX;
    let mut records = 0;
    for _ in 0..3 {
        let t = Instant::now();
        records = pass();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (records, best)
}

fn report(decoder: &str, records: usize, seconds: f64) {
    println!(
        "{{\"decoder\":\"{decoder}\",\"records\":{records},\"seconds\":{seconds:.4},\"per_second\":{:.0}}}",
        records as f64 / seconds
    );
}

fn bench_lines(label: &str, format: &str, input: &[u8]) {
    let format: LineFormat = format.parse().expect("known format");
    let (records, seconds) = best_of_three(|| {
        let mut d = LineDecoder::new(format.clone()).with_reference_time(NOW);
        let mut n = 0;
        let mut sum = 0usize;
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', input) {
            let line = &input[start..end];
            start = end + 1;
            match d.decode(line) {
                Ok(Some(Record::Dns(q))) => {
                    n += 1;
                    sum += q.qname.len();
                }
                Ok(Some(_)) => n += 1,
                Ok(None) => {}
                Err(e) => panic!("{label}: {e} on {:?}", String::from_utf8_lossy(line)),
            }
        }
        black_box(sum);
        n
    });
    report(label, records, seconds);
}

fn dnstap_stream(n: usize) -> Vec<u8> {
    let mut wire = fstrm::encode_control(ControlType::Start, Some(CONTENT_TYPE));
    for i in 0..n {
        let c: IpAddr = client(i).parse().expect("address");
        let p =
            dnstap::encode_client_query(c, 1024 + (i % 60000) as u16, &name(i), 1, NOW + i as i64);
        fstrm::encode_data(&p, &mut wire);
    }
    wire.extend(fstrm::encode_control(ControlType::Stop, None));
    wire
}

fn bench_dnstap(label: &str, wire: &[u8], prost: bool) {
    let (records, seconds) = best_of_three(|| {
        let mut reader = FrameReader::new(64 * 1024);
        let mut d = DnstapDecoder::new();
        let mut n = 0;
        let mut sum = 0usize;
        // The sensor reads the socket 64 KiB at a time.
        for chunk in wire.chunks(64 * 1024) {
            reader.push(chunk);
            while let Some(frame) = reader.next_frame().expect("valid stream") {
                if let Frame::Data(p) = frame {
                    let q = if prost {
                        d.decode_with_prost(p)
                    } else {
                        d.decode(p)
                    };
                    if let Ok(Some(q)) = q {
                        n += 1;
                        sum += q.qname.len();
                    }
                }
            }
        }
        black_box(sum);
        n
    });
    report(label, records, seconds);
}

/// IPFIX datagrams as softflowd sends them: 30 IPv4 records of 40 bytes.
fn ipfix_datagrams(n_flows: usize) -> Vec<Vec<u8>> {
    let fields: [(u16, u16); 14] = [
        (8, 4),
        (12, 4),
        (22, 4),
        (21, 4),
        (1, 4),
        (2, 4),
        (10, 4),
        (14, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (6, 1),
        (60, 1),
        (5, 1),
    ];
    let mut template = vec![0, 2, 0, 0, 4, 0, 0, fields.len() as u8];
    for (ie, len) in fields {
        template.extend_from_slice(&ie.to_be_bytes());
        template.extend_from_slice(&len.to_be_bytes());
    }
    let tlen = template.len() as u16;
    template[2..4].copy_from_slice(&tlen.to_be_bytes());
    let mut out = Vec::new();
    let mut seq = 0u32;
    for start in (0..n_flows).step_by(30) {
        let count = 30.min(n_flows - start);
        let mut m = vec![0, 10, 0, 0];
        m.extend_from_slice(&((NOW / 1000) as u32).to_be_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(&0u32.to_be_bytes());
        m.extend_from_slice(&template);
        let set_len = 4 + 40 * count;
        m.extend_from_slice(&1024u16.to_be_bytes());
        m.extend_from_slice(&(set_len as u16).to_be_bytes());
        for i in start..start + count {
            m.extend_from_slice(&[10, (i >> 16) as u8, (i >> 8) as u8, i as u8, 203, 0, 113, 9]);
            m.extend_from_slice(&1000u32.to_be_bytes());
            m.extend_from_slice(&2000u32.to_be_bytes());
            m.extend_from_slice(&1500u32.to_be_bytes());
            m.extend_from_slice(&3u32.to_be_bytes());
            m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
            m.extend_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
            m.extend_from_slice(&443u16.to_be_bytes());
            m.extend_from_slice(&[6, 0x18, 4, 0]);
        }
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        seq = seq.wrapping_add(count as u32);
        out.push(m);
    }
    out
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);

    let unbound = lines(n, |i| {
        format!(
            "[{}] unbound[812:0] info: {} {}. A IN",
            NOW / 1000 + (i / 1000) as i64,
            client(i),
            name(i)
        )
    });
    bench_lines("unbound", "unbound", &unbound);
    let bind = lines(n, |i| {
        format!(
            "25-Nov-2026 10:00:{:02}.123 queries: info: client @0x7f8b2c0a1b10 {}#{} ({}): query: {} IN A +E(0)K (192.0.2.1)",
            i % 60,
            client(i),
            1024 + i % 60000,
            name(i),
            name(i)
        )
    });
    bench_lines("bind", "bind", &bind);
    let dnsmasq = lines(n, |i| {
        format!(
            "Nov 25 10:00:{:02} dnsmasq[123]: query[A] {} from {}",
            i % 60,
            name(i),
            client(i)
        )
    });
    bench_lines("dnsmasq", "dnsmasq", &dnsmasq);
    let zeek = lines(n, |i| {
        format!(
            "{}.{:06}\tC{i}\t{}\t{}\t192.0.2.1\t53\tudp\t{}\t0.001000\t{}\t1\tC_INTERNET\t1\tA\t0\tNOERROR\tF\tF\tT\tT\t0\t203.0.113.5\t60.000000\tF",
            NOW / 1000,
            i % 1_000_000,
            client(i),
            1024 + i % 60000,
            i % 65536,
            name(i)
        )
    });
    bench_lines("zeek", "zeek", &zeek);
    let eve = lines(n, |i| {
        format!(
            r#"{{"timestamp":"2026-11-25T10:00:00.{:06}+0700","flow_id":{i},"in_iface":"eth0","event_type":"dns","src_ip":"{}","src_port":{},"dest_ip":"192.0.2.1","dest_port":53,"proto":"UDP","dns":{{"type":"query","id":{},"rrname":"{}","rrtype":"A","tx_id":0,"opcode":0}}}}"#,
            i % 1_000_000,
            client(i),
            1024 + i % 60000,
            i % 65536,
            name(i)
        )
    });
    bench_lines("eve", "eve", &eve);
    let csv = lines(n, |i| {
        format!(
            "{},{},{},{},A",
            NOW / 1000,
            client(i),
            1024 + i % 60000,
            name(i)
        )
    });
    bench_lines("csv", "csv:time=0,client=1,port=2,name=3,qtype=4", &csv);

    // Baselines, same input: finding the lines alone, and a JSON parse that
    // builds nothing (serde_json into IgnoredAny).
    let (records, seconds) = best_of_three(|| {
        let mut sum = 0usize;
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &unbound) {
            sum += black_box(&unbound[start..end]).len();
            start = end + 1;
        }
        black_box(sum);
        n
    });
    report("baseline_split_lines", records, seconds);
    let (records, seconds) = best_of_three(|| {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &eve) {
            let v: serde::de::IgnoredAny =
                serde_json::from_slice(&eve[start..end]).expect("valid JSON");
            black_box(v);
            start = end + 1;
        }
        n
    });
    report("baseline_eve_serde_ignored_any", records, seconds);

    let wire = dnstap_stream(n);
    bench_dnstap("dnstap_fstrm", &wire, false);
    bench_dnstap("dnstap_fstrm_prost", &wire, true);

    let datagrams = ipfix_datagrams(n);
    let exporter = "192.0.2.250:4739".parse().expect("address");
    let (records, seconds) = best_of_three(|| {
        let mut d = FlowDecoder::new(FlowDecoderConfig::default());
        let mut out = Vec::with_capacity(64);
        let mut total = 0;
        for m in &datagrams {
            out.clear();
            d.decode(exporter, m, NOW, &mut out)
                .expect("valid datagram");
            total += out.len();
        }
        assert_eq!(d.counters().sequence_gaps, 0);
        total
    });
    report("ipfix", records, seconds);
}
