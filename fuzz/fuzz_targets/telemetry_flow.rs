//! A sequence of datagrams (each prefixed by a 2-byte length) through one
//! flow decoder, two seconds apart: never panics, and the pending buffer
//! stays within its limit.
#![no_main]

use khien_telemetry::flow::{FlowDecoder, FlowDecoderConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = FlowDecoderConfig { pending_limit: 8, pending_bytes_limit: 4096, ..FlowDecoderConfig::default() };
    let mut decoder = FlowDecoder::new(config);
    let exporter = std::net::SocketAddr::from(([192, 0, 2, 1], 2055));
    let mut out = Vec::new();
    let mut rest = data;
    let mut now = 1_795_575_600_000i64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (datagram, tail) = rest[2..].split_at(len);
        let _ = decoder.decode(exporter, datagram, now, &mut out);
        rest = tail;
        now += 2000;
        let c = decoder.counters();
        assert!(c.pending_sets <= 8);
    }
});
