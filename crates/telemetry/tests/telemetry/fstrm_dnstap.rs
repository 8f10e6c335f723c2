//! Frame Streams framing and handshake, dnstap decoding.

use std::net::IpAddr;

use khien_telemetry::dnstap::{self, CONTENT_TYPE, DnstapDecoder};
use khien_telemetry::fstrm::{
    self, Control, ControlType, Frame, FrameReader, Handshake, MAX_CONTROL_FRAME,
};

/// Everything a reader produced from `wire`, pushed in `chunk`-byte pieces.
fn read_all(wire: &[u8], chunk: usize) -> Vec<Result<OwnedFrame, String>> {
    let mut r = FrameReader::new(4096);
    let mut out = Vec::new();
    for piece in wire.chunks(chunk.max(1)) {
        r.push(piece);
        loop {
            match r.next_frame() {
                Ok(Some(f)) => out.push(Ok(OwnedFrame::from(f))),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.kind().to_string()));
                    return out;
                }
            }
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum OwnedFrame {
    Data(Vec<u8>),
    Control(Control),
}

impl From<Frame<'_>> for OwnedFrame {
    fn from(f: Frame<'_>) -> Self {
        match f {
            Frame::Data(d) => Self::Data(d.to_vec()),
            Frame::Control(c) => Self::Control(c),
        }
    }
}

fn sample_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let payloads: Vec<Vec<u8>> = (0..5u8)
        .map(|i| {
            dnstap::encode_client_query(
                IpAddr::from([192, 0, 2, i]),
                1000 + u16::from(i),
                "evil.example",
                1,
                5,
            )
        })
        .collect();
    let mut wire = fstrm::encode_control(ControlType::Start, Some(CONTENT_TYPE));
    for p in &payloads {
        fstrm::encode_data(p, &mut wire);
    }
    wire.extend(fstrm::encode_control(ControlType::Stop, None));
    (wire, payloads)
}

#[test]
fn fstrm_encode_then_read_round_trips_in_any_chunking() {
    let (wire, payloads) = sample_stream();
    for chunk in [1, 2, 3, 7, 64, wire.len()] {
        let frames = read_all(&wire, chunk);
        assert_eq!(frames.len(), payloads.len() + 2, "chunk {chunk}");
        assert_eq!(
            frames[0],
            Ok(OwnedFrame::Control(Control {
                kind: ControlType::Start,
                content_types: vec![CONTENT_TYPE.to_vec()]
            }))
        );
        for (f, p) in frames[1..=payloads.len()].iter().zip(&payloads) {
            assert_eq!(f, &Ok(OwnedFrame::Data(p.clone())));
        }
        assert_eq!(
            frames.last().unwrap(),
            &Ok(OwnedFrame::Control(Control {
                kind: ControlType::Stop,
                content_types: vec![]
            }))
        );
    }
}

#[test]
fn every_prefix_of_a_stream_gives_none_until_complete_never_a_wrong_frame() {
    let (wire, _) = sample_stream();
    let complete = read_all(&wire, wire.len());
    for cut in 0..=wire.len() {
        let mut r = FrameReader::new(4096);
        r.push(&wire[..cut]);
        let mut got = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            got.push(Ok(OwnedFrame::from(f)));
        }
        // Only whole frames, and exactly the ones that fit in the prefix.
        assert_eq!(got[..], complete[..got.len()], "cut {cut}");
        let consumed = wire.len() - r.buffered() - (wire.len() - cut);
        assert!(consumed <= cut);
        if cut < wire.len() {
            assert!(got.len() < complete.len());
            assert_eq!(r.finish().is_err(), r.buffered() > 0);
        } else {
            assert_eq!(got.len(), complete.len());
            assert_eq!(r.finish(), Ok(()));
        }
    }
}

#[test]
fn bidirectional_handshake_answers_accept_and_finish() {
    let mut h = Handshake::new(true, CONTENT_TYPE);
    let ready = Control {
        kind: ControlType::Ready,
        content_types: vec![b"other".to_vec(), CONTENT_TYPE.to_vec()],
    };
    let accept = h.on_control(&ready).unwrap().unwrap();
    assert_eq!(
        accept,
        fstrm::encode_control(ControlType::Accept, Some(CONTENT_TYPE))
    );
    assert_eq!(
        h.check_data_allowed().unwrap_err().kind(),
        "unexpected_data"
    );
    let start = Control {
        kind: ControlType::Start,
        content_types: vec![CONTENT_TYPE.to_vec()],
    };
    assert_eq!(h.on_control(&start), Ok(None));
    assert!(h.is_started());
    assert_eq!(h.check_data_allowed(), Ok(()));
    let stop = Control {
        kind: ControlType::Stop,
        content_types: vec![],
    };
    assert_eq!(
        h.on_control(&stop),
        Ok(Some(fstrm::encode_control(ControlType::Finish, None)))
    );
    assert!(h.is_finished());
    assert_eq!(
        h.on_control(&stop).unwrap_err().kind(),
        "unexpected_control"
    );
    // The ACCEPT we write parses back as an ACCEPT with our content type.
    let mut r = FrameReader::new(16);
    r.push(&accept);
    let Some(Frame::Control(c)) = r.next_frame().unwrap() else {
        panic!("a control frame")
    };
    assert_eq!(
        c,
        Control {
            kind: ControlType::Accept,
            content_types: vec![CONTENT_TYPE.to_vec()]
        }
    );
}

#[test]
fn unidirectional_file_form_needs_no_replies() {
    let (wire, payloads) = sample_stream();
    let mut r = FrameReader::new(4096);
    let mut h = Handshake::new(false, CONTENT_TYPE);
    let mut d = DnstapDecoder::new();
    let mut clients = Vec::new();
    r.push(&wire);
    while let Some(f) = r.next_frame().unwrap() {
        match f {
            Frame::Control(c) => assert_eq!(h.on_control(&c), Ok(None)),
            Frame::Data(p) => {
                h.check_data_allowed().unwrap();
                clients.push(d.decode(p).unwrap().unwrap().client);
            }
        }
    }
    assert!(h.is_finished());
    assert_eq!(clients.len(), payloads.len());
    assert_eq!(clients[4], IpAddr::from([192, 0, 2, 4]));
}

#[test]
fn handshake_rejects_wrong_order_and_content_type() {
    let ready = Control {
        kind: ControlType::Ready,
        content_types: vec![b"protobuf:other".to_vec()],
    };
    let start = Control {
        kind: ControlType::Start,
        content_types: vec![CONTENT_TYPE.to_vec()],
    };
    let mut h = Handshake::new(true, CONTENT_TYPE);
    assert_eq!(h.on_control(&ready).unwrap_err().kind(), "bad_content_type");
    let mut h = Handshake::new(true, CONTENT_TYPE);
    assert_eq!(
        h.on_control(&start).unwrap_err().kind(),
        "unexpected_control"
    );
    let mut h = Handshake::new(false, CONTENT_TYPE);
    let wrong = Control {
        kind: ControlType::Start,
        content_types: vec![b"text".to_vec()],
    };
    assert_eq!(h.on_control(&wrong).unwrap_err().kind(), "bad_content_type");
    // START without a content type is accepted (fstrm makes it optional).
    let bare = Control {
        kind: ControlType::Start,
        content_types: vec![],
    };
    assert_eq!(h.on_control(&bare), Ok(None));
}

#[test]
fn garbage_on_the_socket_is_an_error_not_a_frame() {
    // An HTTP request sent to the dnstap port: "GET " is a 1.2 GB length.
    let frames = read_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5);
    assert_eq!(frames, vec![Err("frame_too_large".to_string())]);
    // The reader stays failed.
    let mut r = FrameReader::new(4096);
    r.push(b"\x7f\xff\xff\xffxxxx");
    assert_eq!(r.next_frame().unwrap_err().kind(), "frame_too_large");
    r.push(&fstrm::encode_control(ControlType::Stop, None));
    assert_eq!(r.next_frame().unwrap_err().kind(), "frame_too_large");
    // Unknown control type, and a control frame too short for its type.
    assert_eq!(
        read_all(b"\0\0\0\0\0\0\0\x04\0\0\0\x09", 64),
        vec![Err("bad_control_frame".to_string())]
    );
    assert_eq!(
        read_all(b"\0\0\0\0\0\0\0\x02\0\0", 64),
        vec![Err("bad_control_frame".to_string())]
    );
    // A field longer than its frame.
    assert_eq!(
        read_all(b"\0\0\0\0\0\0\0\x0c\0\0\0\x02\0\0\0\x01\0\0\0\xff", 64),
        vec![Err("bad_control_frame".to_string())]
    );
}

#[test]
fn control_frame_over_512_bytes_is_control_frame_too_large() {
    let long = vec![b'x'; MAX_CONTROL_FRAME];
    let wire = fstrm::encode_control(ControlType::Ready, Some(&long));
    assert_eq!(
        read_all(&wire, 100),
        vec![Err("control_frame_too_large".to_string())]
    );
    // Exactly 512 bytes is allowed (content type 500 bytes is over fstrm's
    // 256-byte content type limit though).
    let ok = fstrm::encode_control(ControlType::Ready, Some(&long[..MAX_CONTROL_FRAME - 12]));
    assert_eq!(
        read_all(&ok, 100),
        vec![Err("bad_control_frame".to_string())]
    );
    let ok = fstrm::encode_control(ControlType::Ready, Some(&long[..256]));
    assert!(read_all(&ok, 100)[0].is_ok());
}

#[test]
fn reader_memory_stays_bounded_by_compaction() {
    let (wire, _) = sample_stream();
    let mut r = FrameReader::new(4096);
    for _ in 0..10_000 {
        r.push(&wire);
        while r.next_frame().unwrap().is_some() {}
        assert_eq!(r.buffered(), 0);
    }
    r.push(&wire[..10]);
    assert_eq!(r.buffered(), 10);
}

#[test]
fn dnstap_encode_decode_round_trip() {
    let cases: [(IpAddr, u16, &str, u16, i64); 4] = [
        (
            "192.0.2.7".parse().unwrap(),
            53211,
            "evil.example",
            1,
            1_795_575_600_123,
        ),
        ("2001:db8::1".parse().unwrap(), 1, "WWW.Example.COM.", 28, 0),
        ("10.0.0.1".parse().unwrap(), 65535, ".", 2, 999),
        ("10.0.0.1".parse().unwrap(), 0, "a\\.b.example", 65, 1),
    ];
    let mut d = DnstapDecoder::new();
    for (client, port, name, qtype, t) in cases {
        let p = dnstap::encode_client_query(client, port, name, qtype, t);
        let q = d.decode(&p).unwrap().unwrap();
        assert_eq!(
            (q.client, q.client_port, q.qtype, q.time_ms),
            (client, Some(port), Some(qtype), t)
        );
        let expected = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        assert_eq!(q.qname, expected.as_bytes());
        assert!(!q.is_response);
    }
}

#[test]
fn dnstap_with_a_pointer_loop_in_the_query_is_an_error() {
    use prost::Message as _;
    let mut wire = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    wire.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
    let m = dnstap::proto::Message {
        r#type: 5,
        query_address: Some(vec![192, 0, 2, 1]),
        query_message: Some(wire),
        ..Default::default()
    };
    let p = dnstap::proto::Dnstap {
        r#type: 1,
        message: Some(m),
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(
        DnstapDecoder::new().decode(&p).unwrap_err().kind(),
        "dns_name_pointer_loop"
    );
}
