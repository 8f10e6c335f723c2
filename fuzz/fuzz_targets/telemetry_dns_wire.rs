//! DNS wire names: the question of arbitrary bytes never panics; and a name
//! built from the input's bytes as labels, encoded then parsed, comes back
//! equal and encodes back to the same wire form.
#![no_main]

use khien_telemetry::dns_wire::{encode_query, question_name, read_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = question_name(data, &mut out);
    let _ = read_name(data, data.len() / 2, &mut out);

    // Round trip: the input cut into labels of up to 63 bytes, at most 250
    // wire bytes in all.
    let mut wire = vec![0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    let mut used = 1;
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len % 63) + 1;
        if len > tail.len() || used + len + 1 > 250 {
            break;
        }
        wire.push(len as u8);
        wire.extend_from_slice(&tail[..len]);
        used += len + 1;
        rest = &tail[len..];
    }
    wire.extend_from_slice(&[0, 0, 28]);
    let mut name = Vec::new();
    assert_eq!(question_name(&wire, &mut name), Ok(Some(28)));
    let again = encode_query(1, &name, 28).expect("a parsed name encodes");
    assert_eq!(&again[12..again.len() - 2], &wire[12..]);
});
