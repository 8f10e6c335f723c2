//! Properties: no decoder panics on arbitrary input; encoders and decoders
//! round-trip.

use std::net::IpAddr;

use khien_telemetry::dns_wire;
use khien_telemetry::dnstap::{self, CONTENT_TYPE, DnstapDecoder};
use khien_telemetry::flow::{FlowDecoder, FlowDecoderConfig};
use khien_telemetry::fstrm::{self, ControlType, Frame, FrameReader, Handshake};
use khien_telemetry::{LineDecoder, LineFormat, Record};
use proptest::prelude::*;

const FORMATS: &[&str] = &[
    "unbound",
    "bind",
    "dnsmasq",
    "zeek",
    "zeek-json",
    "eve",
    "csv:time=0,client=1,name=2,qtype=3,port=4",
    "csv:client=0,ip=1,dport=2,proto=3,packets=4,bytes=5,sep=tab",
    "json:time=ts,client=src_ip,name=dns.rrname,qtype=dns.rrtype",
    "json:client=a.b.0,ip=c,proto=d,packets=e,bytes=f",
];

/// Lines that look like the formats, so mutations reach deep into parsers.
const SEEDS: &[&str] = &[
    "[1795575600] unbound[1234:0] info: 192.0.2.7 evil.example. A IN",
    "25-Nov-2026 10:00:00.123 queries: info: client @0x7f8b2c0a1b10 192.0.2.7#53211 (evil.example): query: evil.example IN A +E(0)K (192.0.2.1)",
    "Nov 25 10:00:02 gw dnsmasq[123]: 17 192.0.2.8/53211 query[AAAA] www.example.com from 192.0.2.8",
    "1795575600.123456\tC1\t192.0.2.7\t53211\t192.0.2.1\t53\tudp\t1\t-\tevil.example\t1\tC_INTERNET\t1\tA",
    r#"{"timestamp":"2026-11-25T10:00:00.123456+0700","event_type":"dns","src_ip":"192.0.2.7","src_port":53211,"dest_ip":"192.0.2.1","dns":{"version":3,"type":"request","queries":[{"rrname":"a.example","rrtype":"A"}]}}"#,
    r#"{"ts":1795575603.0,"id.orig_h":"192.0.2.7","id.orig_p":49152,"id.resp_h":"203.0.113.9","id.resp_p":443,"proto":"tcp","duration":2.5,"orig_pkts":9,"resp_pkts":8}"#,
    "1795575600,192.0.2.7,\"evil.example\",A,53",
];

fn mutated_seed() -> impl Strategy<Value = Vec<u8>> {
    (
        0..SEEDS.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    )
        .prop_map(|(i, edits)| {
            let mut line = SEEDS[i].as_bytes().to_vec();
            for (at, b) in edits {
                let at = at.index(line.len());
                line[at] = b;
            }
            line
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_into_every_line_format_never_panic(
        line in prop_oneof![prop::collection::vec(any::<u8>(), 0..300), mutated_seed()],
    ) {
        for f in FORMATS {
            let format: LineFormat = f.parse().expect("valid format");
            let mut d = LineDecoder::new(format).with_reference_time(1_795_575_600_000);
            let _ = d.decode(&line);
            // A record must borrow sensible data: names are never empty.
            if let Ok(Some(Record::Dns(q))) = d.decode(&line) {
                prop_assert!(!q.qname.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks_through_fstrm_and_dnstap_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        chunks in prop::collection::vec(1usize..64, 1..20),
        bidirectional in any::<bool>(),
    ) {
        let mut r = FrameReader::new(256);
        let mut h = Handshake::new(bidirectional, CONTENT_TYPE);
        let mut d = DnstapDecoder::new();
        let mut at = 0;
        'outer: for c in chunks.iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let end = (at + c).min(bytes.len());
            r.push(&bytes[at..end]);
            at = end;
            loop {
                match r.next_frame() {
                    Ok(Some(Frame::Control(c))) => {
                        let _ = h.on_control(&c);
                    }
                    Ok(Some(Frame::Data(p))) => {
                        let _ = h.check_data_allowed();
                        let _ = d.decode(p);
                    }
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
            prop_assert!(r.buffered() <= bytes.len());
        }
    }

    #[test]
    fn arbitrary_payloads_into_dnstap_and_dns_wire_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = DnstapDecoder::new().decode(&bytes);
        let _ = DnstapDecoder::new().with_auth_messages(true).decode(&bytes);
        let mut out = Vec::new();
        if let Ok(Some(_)) = dns_wire::question_name(&bytes, &mut out) {
            prop_assert!(!out.is_empty() && out.len() <= 4 * 255);
        }
        for offset in [0, 12, bytes.len() / 2] {
            let _ = dns_wire::read_name(&bytes, offset, &mut out);
        }
    }

    #[test]
    fn arbitrary_datagrams_through_one_flow_decoder_never_panic(
        datagrams in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                // Valid-looking headers with random sets behind them.
                (prop_oneof![Just(5u16), Just(9u16), Just(10u16)], prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(v, rest)| {
                    let mut d = v.to_be_bytes().to_vec();
                    let len = (rest.len() + 2) as u16;
                    d.extend_from_slice(&len.to_be_bytes());
                    d.extend_from_slice(&rest);
                    d
                }),
            ],
            1..8,
        ),
    ) {
        let mut f = FlowDecoder::new(FlowDecoderConfig { pending_limit: 4, ..FlowDecoderConfig::default() });
        let mut out = Vec::new();
        let exporter = "192.0.2.1:2055".parse().expect("address");
        for (i, d) in datagrams.iter().enumerate() {
            let _ = f.decode(exporter, d, 1_795_575_600_000 + i as i64 * 4000, &mut out);
        }
        prop_assert!(f.counters().pending_sets <= 4);
    }

    #[test]
    fn dns_names_encode_then_parse_back_equal(
        labels in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..20), 0..8),
        qtype in any::<u16>(),
    ) {
        let mut wire = vec![0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in &labels {
            wire.push(l.len() as u8);
            wire.extend_from_slice(l);
        }
        wire.push(0);
        wire.extend_from_slice(&qtype.to_be_bytes());
        let mut name = Vec::new();
        prop_assert_eq!(dns_wire::question_name(&wire, &mut name), Ok(Some(qtype)));
        // The presentation form encodes back to the same wire name.
        let again = dns_wire::encode_query(1, &name, qtype).expect("encodes");
        prop_assert_eq!(&again[12..again.len() - 2], &wire[12..]);
    }

    #[test]
    fn dnstap_encode_decode_round_trips(
        v6 in any::<bool>(),
        addr in any::<[u8; 16]>(),
        port in any::<u16>(),
        labels in prop::collection::vec("[a-zA-Z0-9-]{1,20}", 1..6),
        qtype in any::<u16>(),
        time_ms in 0i64..4_102_444_800_000,
    ) {
        let client = if v6 { IpAddr::from(addr) } else { IpAddr::from([addr[0], addr[1], addr[2], addr[3]]) };
        let name = labels.join(".");
        let p = dnstap::encode_client_query(client, port, &name, qtype, time_ms);
        let mut d = DnstapDecoder::new();
        let q = d.decode(&p).expect("decodes").expect("a query");
        prop_assert_eq!(q.client, client);
        prop_assert_eq!(q.client_port, Some(port));
        prop_assert_eq!(q.qtype, Some(qtype));
        prop_assert_eq!(q.time_ms, time_ms);
        let expected = format!("{name}.");
        prop_assert_eq!(q.qname, expected.as_bytes());
        let via_prost = format!("{:?}", DnstapDecoder::new().decode_with_prost(&p));
        prop_assert_eq!(format!("{:?}", Ok::<_, ()>(Some(q))).replace("Ok(", ""), via_prost.replace("Ok(", ""));
    }

    #[test]
    fn fstrm_encode_then_read_round_trips(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..10),
        chunk in 1usize..100,
    ) {
        let mut wire = fstrm::encode_control(ControlType::Start, Some(CONTENT_TYPE));
        for p in &payloads {
            fstrm::encode_data(p, &mut wire);
        }
        wire.extend(fstrm::encode_control(ControlType::Stop, None));
        let mut r = FrameReader::new(300);
        let mut h = Handshake::new(false, CONTENT_TYPE);
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            r.push(piece);
            while let Some(f) = r.next_frame().expect("valid stream") {
                match f {
                    Frame::Control(c) => prop_assert_eq!(h.on_control(&c), Ok(None)),
                    Frame::Data(d) => {
                        prop_assert!(h.check_data_allowed().is_ok());
                        got.push(d.to_vec());
                    }
                }
            }
        }
        prop_assert!(h.is_finished());
        prop_assert_eq!(got, payloads);
        prop_assert_eq!(r.finish(), Ok(()));
    }
}
