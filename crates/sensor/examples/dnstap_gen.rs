//! A dnstap writer for benchmarks: connects to a sensor's unix socket,
//! does the bidirectional Frame Streams handshake, sends N CLIENT_QUERY
//! frames as fast as the sensor takes them (one in a thousand names is
//! `c2.evil.example`'s subdomain), then STOP and waits for FINISH.
//!
//! `cargo run --release -p khien-sensor --example dnstap_gen -- SOCKET N`
//! prints one JSON line: frames, seconds, frames per second.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use khien_telemetry::dnstap::{CONTENT_TYPE, encode_client_query};
use khien_telemetry::fstrm::{ControlType, Frame, FrameReader, encode_control, encode_data};

fn expect(stream: &mut UnixStream, reader: &mut FrameReader, kind: ControlType) {
    let mut buf = [0u8; 512];
    loop {
        if let Some(Frame::Control(c)) = reader.next_frame().unwrap() {
            assert_eq!(c.kind, kind);
            return;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before {kind:?}");
        reader.push(&buf[..n]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let socket = args.get(1).expect("SOCKET");
    let frames: u64 = args.get(2).map_or(1_000_000, |n| n.parse().unwrap());

    // A pool of distinct frames, sent round-robin.
    let mut pool = Vec::new();
    let mut ends = Vec::new();
    for i in 0..4096u32 {
        let client = IpAddr::V4(Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 1));
        let name = if i % 1000 == 7 {
            format!("h{i}.c2.evil.example.")
        } else {
            format!("www.site{i}.example.com.vn.")
        };
        let payload =
            encode_client_query(client, 40000, &name, 1, 1_764_079_200_000 + i64::from(i));
        encode_data(&payload, &mut pool);
        ends.push(pool.len());
    }

    let mut stream = UnixStream::connect(socket).unwrap();
    let mut reader = FrameReader::new(1 << 16);
    stream
        .write_all(&encode_control(ControlType::Ready, Some(CONTENT_TYPE)))
        .unwrap();
    expect(&mut stream, &mut reader, ControlType::Accept);
    stream
        .write_all(&encode_control(ControlType::Start, Some(CONTENT_TYPE)))
        .unwrap();

    let started = Instant::now();
    let full_rounds = frames / ends.len() as u64;
    let rest = (frames % ends.len() as u64) as usize;
    for _ in 0..full_rounds {
        stream.write_all(&pool).unwrap();
    }
    if rest > 0 {
        stream.write_all(&pool[..ends[rest - 1]]).unwrap();
    }
    stream
        .write_all(&encode_control(ControlType::Stop, None))
        .unwrap();
    expect(&mut stream, &mut reader, ControlType::Finish);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"frames\":{frames},\"seconds\":{seconds:.3},\"frames_per_second\":{:.0},\"hit_frames\":{}}}",
        frames as f64 / seconds,
        full_rounds * (0..ends.len()).filter(|i| i % 1000 == 7).count() as u64
            + (0..rest).filter(|i| i % 1000 == 7).count() as u64
    );
}
