//! NetFlow v5, v9 and IPFIX, with datagrams laid out as softflowd 1.1.0
//! sends them (ipfix.c: templates 1024/1025 for IPv4, 2048/2049 for IPv6,
//! options template 256 carrying systemInitTimeMilliseconds).

// Record builders take every field of the record positionally, like the
// wire layout they write.
#![allow(clippy::too_many_arguments)]

use std::net::{IpAddr, SocketAddr};

use khien_telemetry::Flow;
use khien_telemetry::flow::{FlowDecoder, FlowDecoderConfig};

const EXPORTER: &str = "192.0.2.250:40000";
const BOOT_MS: u64 = 1_795_575_000_000;
const NOW: i64 = 1_795_575_600_000;

fn exporter() -> SocketAddr {
    EXPORTER.parse().unwrap_or_else(|_| unreachable!())
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut s = id.to_be_bytes().to_vec();
    let len = 4 + body.len();
    let padded = len.div_ceil(4) * 4;
    s.extend_from_slice(&(padded as u16).to_be_bytes());
    s.extend_from_slice(body);
    s.resize(padded, 0);
    s
}

/// An IPFIX template record; `pen` marks an enterprise field.
fn ipfix_template(id: u16, fields: &[(u16, u16, Option<u32>)]) -> Vec<u8> {
    let mut t = id.to_be_bytes().to_vec();
    t.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for &(ie, len, pen) in fields {
        let ie = if pen.is_some() { ie | 0x8000 } else { ie };
        t.extend_from_slice(&ie.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
        if let Some(pen) = pen {
            t.extend_from_slice(&pen.to_be_bytes());
        }
    }
    t
}

fn ipfix(domain: u32, seq: u32, export_secs: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = sets.concat();
    let mut m = 10u16.to_be_bytes().to_vec();
    m.extend_from_slice(&((16 + body.len()) as u16).to_be_bytes());
    m.extend_from_slice(&export_secs.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&domain.to_be_bytes());
    m.extend_from_slice(&body);
    m
}

fn v9(source: u32, seq: u32, uptime: u32, secs: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut m = 9u16.to_be_bytes().to_vec();
    // softflowd leaves the count at 0; decoders must walk the sets instead.
    m.extend_from_slice(&0u16.to_be_bytes());
    m.extend_from_slice(&uptime.to_be_bytes());
    m.extend_from_slice(&secs.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&source.to_be_bytes());
    m.extend_from_slice(&sets.concat());
    m
}

/// softflowd's IPv4 template with the default (sysUpTime) time format.
const SOFTFLOWD_V4: &[(u16, u16, Option<u32>)] = &[
    (8, 4, None),
    (12, 4, None),
    (22, 4, None),
    (21, 4, None),
    (1, 4, None),
    (2, 4, None),
    (10, 4, None),
    (14, 4, None),
    (7, 2, None),
    (11, 2, None),
    (4, 1, None),
    (6, 1, None),
    (60, 1, None),
    (5, 1, None),
];

/// One softflowd IPv4 record: 40 bytes.
fn v4_record(
    src: [u8; 4],
    dst: [u8; 4],
    start: u32,
    end: u32,
    bytes: u32,
    packets: u32,
    sport: u16,
    dport: u16,
    proto: u8,
) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&src);
    r.extend_from_slice(&dst);
    r.extend_from_slice(&start.to_be_bytes());
    r.extend_from_slice(&end.to_be_bytes());
    r.extend_from_slice(&bytes.to_be_bytes());
    r.extend_from_slice(&packets.to_be_bytes());
    r.extend_from_slice(&3u32.to_be_bytes());
    r.extend_from_slice(&3u32.to_be_bytes());
    r.extend_from_slice(&sport.to_be_bytes());
    r.extend_from_slice(&dport.to_be_bytes());
    r.extend_from_slice(&[proto, 0x18, 4, 0]);
    r
}

/// softflowd's IPFIX options template 256 and its data record.
fn softflowd_options() -> (Vec<u8>, Vec<u8>) {
    let mut t = 256u16.to_be_bytes().to_vec();
    t.extend_from_slice(&5u16.to_be_bytes()); // field count
    t.extend_from_slice(&1u16.to_be_bytes()); // scope field count
    for (ie, len) in [(143u16, 4u16), (160, 8), (305, 4), (306, 4), (304, 2)] {
        t.extend_from_slice(&ie.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
    }
    let mut d = 1u32.to_be_bytes().to_vec();
    d.extend_from_slice(&BOOT_MS.to_be_bytes());
    d.extend_from_slice(&1u32.to_be_bytes());
    d.extend_from_slice(&0u32.to_be_bytes());
    d.extend_from_slice(&3u16.to_be_bytes());
    (set(3, &t), set(256, &d))
}

fn flow(
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    proto: u8,
    packets: u64,
    bytes: u64,
    time_ms: i64,
) -> Flow {
    Flow {
        time_ms,
        src: src.parse::<IpAddr>().unwrap_or_else(|_| unreachable!()),
        src_port: sport,
        dst: dst.parse::<IpAddr>().unwrap_or_else(|_| unreachable!()),
        dst_port: dport,
        protocol: proto,
        packets,
        bytes,
    }
}

fn first_softflowd_ipfix(seq: u32) -> Vec<u8> {
    let (opt_t, opt_d) = softflowd_options();
    let data = [
        v4_record(
            [192, 0, 2, 7],
            [203, 0, 113, 9],
            590_000,
            600_123,
            1500,
            3,
            53211,
            443,
            6,
        ),
        v4_record(
            [203, 0, 113, 9],
            [192, 0, 2, 7],
            590_000,
            600_200,
            9000,
            7,
            443,
            53211,
            6,
        ),
    ]
    .concat();
    ipfix(
        0,
        seq,
        1_795_575_601,
        &[
            set(2, &ipfix_template(1024, SOFTFLOWD_V4)),
            opt_t,
            opt_d,
            set(1024, &data),
        ],
    )
}

#[test]
fn softflowd_ipfix_with_sysuptime_and_options_record_decodes() {
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    d.decode(exporter(), &first_softflowd_ipfix(2), NOW, &mut out)
        .unwrap();
    assert_eq!(
        out,
        [
            flow(
                "192.0.2.7",
                53211,
                "203.0.113.9",
                443,
                6,
                3,
                1500,
                NOW + 123
            ),
            flow(
                "203.0.113.9",
                443,
                "192.0.2.7",
                53211,
                6,
                7,
                9000,
                NOW + 200
            ),
        ]
    );
    let c = d.counters();
    assert_eq!(
        (c.datagrams, c.flows, c.templates_active, c.options_records),
        (1, 2, 2, 1)
    );
}

#[test]
fn softflowd_ipfix_ipv6_icmp_and_millisecond_times_decode() {
    let v6_fields: Vec<(u16, u16, Option<u32>)> = [
        (27u16, 16u16),
        (28, 16),
        (152, 8),
        (153, 8),
        (1, 4),
        (2, 4),
        (10, 4),
        (14, 4),
        (139, 2),
        (60, 1),
        (5, 1),
    ]
    .iter()
    .map(|&(ie, len)| (ie, len, None))
    .collect();
    let mut r = Vec::new();
    r.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    r.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    r.extend_from_slice(&(NOW as u64 - 5000).to_be_bytes());
    r.extend_from_slice(&(NOW as u64 + 42).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 84, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 3]);
    r.extend_from_slice(&[128, 0, 6, 0]); // echo request, IPv6, tos 0
    let m = ipfix(
        7,
        0,
        1_795_575_601,
        &[set(2, &ipfix_template(2049, &v6_fields)), set(2049, &r)],
    );
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    d.decode(exporter(), &m, NOW, &mut out).unwrap();
    assert_eq!(
        out,
        [flow(
            "2001:db8::7",
            0,
            "2001:db8::1",
            128 * 256,
            58,
            1,
            84,
            NOW + 42
        )]
    );
}

#[test]
fn enterprise_and_variable_length_fields_are_skipped() {
    // softflowd -b: reverse counters with PEN 29305; plus a variable-length
    // field (length 65535) of 3 bytes and one of 300 bytes (long form).
    let mut fields = SOFTFLOWD_V4.to_vec();
    fields.push((1, 4, Some(29305)));
    fields.push((2, 4, Some(29305)));
    fields.push((82, 65535, None)); // interfaceName
    let base = v4_record(
        [192, 0, 2, 7],
        [198, 51, 100, 1],
        0,
        600_000,
        100,
        1,
        1000,
        53,
        17,
    );
    let mut r1 = base.clone();
    r1.extend_from_slice(&[0, 0, 0, 50, 0, 0, 0, 1]);
    r1.extend_from_slice(&[3, b'e', b't', b'h']);
    let mut r2 = base;
    r2.extend_from_slice(&[0, 0, 0, 50, 0, 0, 0, 1]);
    r2.extend_from_slice(&[255, 1, 44]);
    r2.extend_from_slice(&[b'x'; 300]);
    let (opt_t, opt_d) = softflowd_options();
    let m = ipfix(
        0,
        0,
        1_795_575_601,
        &[
            set(2, &ipfix_template(1024, &fields)),
            opt_t,
            opt_d,
            set(1024, &[r1, r2].concat()),
        ],
    );
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    d.decode(exporter(), &m, NOW, &mut out).unwrap();
    let f = flow("192.0.2.7", 1000, "198.51.100.1", 53, 17, 1, 100, NOW);
    assert_eq!(out, [f, f]);
}

#[test]
fn softflowd_v9_last_switched_is_relative_to_uptime() {
    let mut t = 1024u16.to_be_bytes().to_vec();
    t.extend_from_slice(&(SOFTFLOWD_V4.len() as u16).to_be_bytes());
    for &(ie, len, _) in SOFTFLOWD_V4 {
        t.extend_from_slice(&ie.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
    }
    // v9 options template: scope interface, sampling interval + algorithm.
    let mut ot = 256u16.to_be_bytes().to_vec();
    ot.extend_from_slice(&4u16.to_be_bytes());
    ot.extend_from_slice(&8u16.to_be_bytes());
    for (ie, len) in [(2u16, 4u16), (34, 4), (35, 1)] {
        ot.extend_from_slice(&ie.to_be_bytes());
        ot.extend_from_slice(&len.to_be_bytes());
    }
    let od = [0, 0, 0, 0, 0, 0, 0, 1, 1];
    let data = v4_record(
        [192, 0, 2, 7],
        [203, 0, 113, 9],
        590_000,
        600_123,
        1500,
        3,
        53211,
        443,
        6,
    );
    // Exported at uptime 600.5 s, Unix time NOW (whole seconds only in v9).
    let m = v9(
        0,
        1,
        600_500,
        (NOW / 1000) as u32,
        &[set(0, &t), set(1, &ot), set(256, &od), set(1024, &data)],
    );
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    d.decode(exporter(), &m, NOW, &mut out).unwrap();
    assert_eq!(
        out,
        [flow(
            "192.0.2.7",
            53211,
            "203.0.113.9",
            443,
            6,
            3,
            1500,
            NOW - 377
        )]
    );
}

#[test]
fn ipfix_data_without_template_is_buffered_then_decoded_when_the_template_arrives() {
    let data = v4_record([192, 0, 2, 7], [203, 0, 113, 9], 0, 0, 60, 1, 1, 2, 17);
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    d.decode(
        exporter(),
        &ipfix(0, 0, 1_795_575_600, &[set(1024, &data)]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
    assert_eq!(d.counters().pending_sets, 1);
    // A template from another observation domain does not release it.
    d.decode(
        exporter(),
        &ipfix(
            1,
            0,
            1_795_575_600,
            &[set(2, &ipfix_template(1024, SOFTFLOWD_V4))],
        ),
        NOW + 1,
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
    // The right one does; no init time is known, so the export time is used.
    d.decode(
        exporter(),
        &ipfix(
            0,
            1,
            1_795_575_602,
            &[set(2, &ipfix_template(1024, SOFTFLOWD_V4))],
        ),
        NOW + 2,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out,
        [flow("192.0.2.7", 1, "203.0.113.9", 2, 17, 1, 60, NOW)]
    );
    let c = d.counters();
    assert_eq!((c.pending_sets, c.no_template_dropped, c.flows), (0, 0, 1));
}

#[test]
fn pending_data_is_dropped_and_counted_after_the_pending_timeout() {
    let data = v4_record([192, 0, 2, 7], [203, 0, 113, 9], 0, 0, 60, 1, 1, 2, 17);
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    d.decode(
        exporter(),
        &ipfix(0, 0, 0, &[set(1024, &data)]),
        NOW,
        &mut out,
    )
    .unwrap();
    d.decode(
        exporter(),
        &ipfix(0, 0, 0, &[set(2, &ipfix_template(1024, SOFTFLOWD_V4))]),
        NOW + 10_001,
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty());
    let c = d.counters();
    assert_eq!((c.pending_sets, c.no_template_dropped), (0, 1));
}

#[test]
fn pending_limit_drops_the_oldest() {
    let config = FlowDecoderConfig {
        pending_limit: 2,
        ..FlowDecoderConfig::default()
    };
    let mut d = FlowDecoder::new(config);
    let mut out = Vec::new();
    for port in 1..=3u16 {
        let data = v4_record([192, 0, 2, 7], [203, 0, 113, 9], 0, 0, 60, 1, port, 2, 17);
        d.decode(
            exporter(),
            &ipfix(0, 0, 0, &[set(1024, &data)]),
            NOW,
            &mut out,
        )
        .unwrap();
    }
    assert_eq!(d.counters().no_template_dropped, 1);
    d.decode(
        exporter(),
        &ipfix(0, 0, 0, &[set(2, &ipfix_template(1024, SOFTFLOWD_V4))]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.iter().map(|f| f.src_port).collect::<Vec<_>>(), [2, 3]);
}

#[test]
fn templates_expire_after_the_template_timeout() {
    let config = FlowDecoderConfig {
        template_timeout_ms: 60_000,
        ..FlowDecoderConfig::default()
    };
    let mut d = FlowDecoder::new(config);
    let mut out = Vec::new();
    d.decode(exporter(), &first_softflowd_ipfix(2), NOW, &mut out)
        .unwrap();
    assert_eq!(d.counters().templates_active, 2);
    out.clear();
    let data = v4_record([192, 0, 2, 7], [203, 0, 113, 9], 0, 0, 60, 1, 1, 2, 17);
    d.decode(
        exporter(),
        &ipfix(0, 3, 0, &[set(1024, &data)]),
        NOW + 59_000,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 1);
    d.decode(
        exporter(),
        &ipfix(0, 4, 0, &[set(1024, &data)]),
        NOW + 61_000,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 1);
    let c = d.counters();
    assert_eq!(
        (c.templates_expired, c.templates_active, c.pending_sets),
        (2, 0, 1)
    );
}

#[test]
fn ipfix_template_withdrawal_forgets_the_template() {
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    d.decode(exporter(), &first_softflowd_ipfix(2), NOW, &mut out)
        .unwrap();
    d.decode(
        exporter(),
        &ipfix(0, 2, 0, &[set(2, &[0x04, 0x00, 0, 0])]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(d.counters().templates_active, 1);
}

#[test]
fn sequence_gaps_are_counted() {
    let rec = v4_record([192, 0, 2, 7], [203, 0, 113, 9], 0, 0, 60, 1, 1, 2, 17);
    let two = [rec.clone(), rec.clone()].concat();
    let t = set(2, &ipfix_template(1024, SOFTFLOWD_V4));
    // RFC 7011 numbering: records sent before this message.
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    d.decode(
        exporter(),
        &ipfix(0, 0, 0, &[t.clone(), set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    d.decode(
        exporter(),
        &ipfix(0, 2, 0, &[set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(d.counters().sequence_gaps, 0);
    d.decode(
        exporter(),
        &ipfix(0, 10, 0, &[set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(d.counters().sequence_gaps, 6);
    // softflowd numbering (records including this message) is no loss...
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    d.decode(exporter(), &first_softflowd_ipfix(2), NOW, &mut out)
        .unwrap();
    d.decode(
        exporter(),
        &ipfix(0, 5, 0, &[set(1024, &[two.clone(), rec.clone()].concat())]),
        NOW,
        &mut out,
    )
    .unwrap();
    d.decode(
        exporter(),
        &ipfix(0, 6, 0, &[set(1024, &rec)]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(d.counters().sequence_gaps, 0);
    // ...and a lost message of 4 records is 4.
    d.decode(
        exporter(),
        &ipfix(0, 12, 0, &[set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(d.counters().sequence_gaps, 4);
    // An exporter restart (sequence back to 0) is not loss.
    d.decode(
        exporter(),
        &ipfix(0, 0, 0, &[set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(d.counters().sequence_gaps, 4);
    // Streams are per exporter: another exporter's numbers do not mix in.
    let other: SocketAddr = "192.0.2.251:40000".parse().unwrap();
    d.decode(
        other,
        &ipfix(0, 1000, 0, &[t, set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(d.counters().sequence_gaps, 4);
}

fn v5(seq: u32, uptime: u32, secs: u32, records: &[[u8; 48]]) -> Vec<u8> {
    let mut m = 5u16.to_be_bytes().to_vec();
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    m.extend_from_slice(&uptime.to_be_bytes());
    m.extend_from_slice(&secs.to_be_bytes());
    m.extend_from_slice(&250_000_000u32.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    for r in records {
        m.extend_from_slice(r);
    }
    m
}

fn v5_record(
    src: [u8; 4],
    dst: [u8; 4],
    packets: u32,
    bytes: u32,
    last: u32,
    sport: u16,
    dport: u16,
    proto: u8,
) -> [u8; 48] {
    let mut r = [0u8; 48];
    r[0..4].copy_from_slice(&src);
    r[4..8].copy_from_slice(&dst);
    r[16..20].copy_from_slice(&packets.to_be_bytes());
    r[20..24].copy_from_slice(&bytes.to_be_bytes());
    r[28..32].copy_from_slice(&last.to_be_bytes());
    r[32..34].copy_from_slice(&sport.to_be_bytes());
    r[34..36].copy_from_slice(&dport.to_be_bytes());
    r[38] = proto;
    r
}

#[test]
fn netflow_v5_fixed_format_decodes_and_counts_gaps() {
    let r1 = v5_record(
        [192, 0, 2, 7],
        [203, 0, 113, 9],
        3,
        1500,
        999_000,
        53211,
        443,
        6,
    );
    let r2 = v5_record([10, 0, 0, 1], [10, 0, 0, 2], 1, 60, 1_000_000, 5353, 53, 17);
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    // Exported at uptime 1,000 s, Unix NOW/1000 + 0.25 s.
    d.decode(
        exporter(),
        &v5(100, 1_000_000, (NOW / 1000) as u32, &[r1, r2]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out,
        [
            flow(
                "192.0.2.7",
                53211,
                "203.0.113.9",
                443,
                6,
                3,
                1500,
                NOW + 250 - 1000
            ),
            flow("10.0.0.1", 5353, "10.0.0.2", 53, 17, 1, 60, NOW + 250),
        ]
    );
    d.decode(exporter(), &v5(102, 1_000_000, 0, &[r1]), NOW, &mut out)
        .unwrap();
    assert_eq!(d.counters().sequence_gaps, 0);
    d.decode(exporter(), &v5(110, 1_000_000, 0, &[r1]), NOW, &mut out)
        .unwrap();
    assert_eq!(d.counters().sequence_gaps, 7);
    // A count larger than the datagram holds is truncation.
    let mut short = v5(111, 0, 0, &[r1]);
    short[3] = 2;
    assert_eq!(
        d.decode(exporter(), &short, NOW, &mut out)
            .unwrap_err()
            .kind(),
        "netflow_truncated"
    );
}

#[test]
fn v9_sequence_counts_packets() {
    let mut t = 1024u16.to_be_bytes().to_vec();
    t.extend_from_slice(&(SOFTFLOWD_V4.len() as u16).to_be_bytes());
    for &(ie, len, _) in SOFTFLOWD_V4 {
        t.extend_from_slice(&ie.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
    }
    let rec = v4_record([192, 0, 2, 7], [203, 0, 113, 9], 0, 0, 60, 1, 1, 2, 17);
    let two = [rec.clone(), rec.clone(), rec].concat();
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    d.decode(
        exporter(),
        &v9(0, 1, 0, 0, &[set(0, &t), set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    d.decode(
        exporter(),
        &v9(0, 2, 0, 0, &[set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(d.counters().sequence_gaps, 0);
    d.decode(
        exporter(),
        &v9(0, 3, 0, 0, &[set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    d.decode(
        exporter(),
        &v9(0, 6, 0, 0, &[set(1024, &two)]),
        NOW,
        &mut out,
    )
    .unwrap();
    assert_eq!(d.counters().sequence_gaps, 2);
    assert_eq!(out.len(), 12);
}

#[test]
fn bad_datagrams_are_errors_with_kinds() {
    let mut d = FlowDecoder::new(FlowDecoderConfig::default());
    let mut out = Vec::new();
    let mut kind = |m: &[u8]| d.decode(exporter(), m, NOW, &mut out).map_err(|e| e.kind());
    assert_eq!(kind(&[0, 7, 0, 0]), Err("netflow_bad_version"));
    assert_eq!(kind(&[0]), Err("netflow_truncated"));
    assert_eq!(kind(&[0, 10, 0, 16, 0, 0]), Err("netflow_truncated"));
    // IPFIX length beyond the datagram.
    assert_eq!(kind(&ipfix(0, 0, 0, &[])[..15]), Err("netflow_truncated"));
    // A set running past the message.
    let mut m = ipfix(0, 0, 0, &[set(1024, &[0; 8])]);
    m[19] = 200;
    assert_eq!(kind(&m), Err("netflow_truncated"));
    // Templates: id under 256, zero-length field, no fields.
    assert_eq!(
        kind(&ipfix(
            0,
            0,
            0,
            &[set(2, &ipfix_template(255, &[(8, 4, None)]))]
        )),
        Err("bad_template")
    );
    assert_eq!(
        kind(&ipfix(
            0,
            0,
            0,
            &[set(2, &ipfix_template(300, &[(8, 0, None)]))]
        )),
        Err("bad_template")
    );
    // Reserved set id.
    assert_eq!(
        kind(&ipfix(0, 0, 0, &[set(100, &[0; 4])])),
        Err("netflow_bad_set_id")
    );
    // A bad set does not hide the good ones after it.
    let good = first_softflowd_ipfix(0);
    let mut sets = vec![set(100, &[0; 4])];
    sets.push(good[16..].to_vec());
    assert_eq!(kind(&ipfix(0, 0, 0, &sets)), Err("netflow_bad_set_id"));
    assert_eq!(out.len(), 2);
}

#[test]
fn template_limit_is_enforced() {
    let config = FlowDecoderConfig {
        max_templates: 1,
        ..FlowDecoderConfig::default()
    };
    let mut d = FlowDecoder::new(config);
    let mut out = Vec::new();
    let m = ipfix(
        0,
        0,
        0,
        &[set(
            2,
            &[
                ipfix_template(300, &[(8, 4, None)]),
                ipfix_template(301, &[(8, 4, None)]),
            ]
            .concat(),
        )],
    );
    assert_eq!(
        d.decode(exporter(), &m, NOW, &mut out).unwrap_err().kind(),
        "template_limit"
    );
    assert_eq!(d.counters().templates_active, 1);
}
