//! Bytes pushed in arbitrary pieces through the Frame Streams reader, the
//! handshake and the dnstap decoder: never panics, never buffers more than
//! was pushed. The first byte chooses the piece sizes and whether a valid
//! START is sent first (so data frames reach the dnstap decoder).
#![no_main]

use khien_telemetry::dnstap::{CONTENT_TYPE, DnstapDecoder};
use khien_telemetry::fstrm::{ControlType, Frame, FrameReader, Handshake, encode_control};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, rest)) = data.split_first() else { return };
    let mut stream = Vec::new();
    if seed & 1 == 1 {
        stream.extend(encode_control(ControlType::Start, Some(CONTENT_TYPE)));
    }
    stream.extend_from_slice(rest);
    let mut reader = FrameReader::new(4096);
    let mut handshake = Handshake::new(seed & 2 == 2, CONTENT_TYPE);
    let mut dnstap = DnstapDecoder::new().with_auth_messages(seed & 4 == 4);
    let piece = usize::from(seed >> 3) + 1;
    let mut pushed = 0;
    for chunk in stream.chunks(piece) {
        reader.push(chunk);
        pushed += chunk.len();
        loop {
            match reader.next_frame() {
                Ok(Some(Frame::Control(c))) => {
                    let _ = handshake.on_control(&c);
                }
                Ok(Some(Frame::Data(payload))) => {
                    let _ = handshake.check_data_allowed();
                    if let Ok(Some(q)) = dnstap.decode(payload) {
                        assert!(!q.qname.is_empty());
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(reader.buffered() <= pushed);
    }
});
