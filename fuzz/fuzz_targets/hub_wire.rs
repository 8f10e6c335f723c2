//! The hub's `POST /api/v1/hits` body parsers: arbitrary bytes as NDJSON,
//! as JSON, and through the bounded gunzip. Refuse or parse, never panic,
//! never inflate past the bound.
#![no_main]

use khien_hub::wire::{gunzip_bounded, parse_json, parse_ndjson};
use libfuzzer_sys::fuzz_target;

const BOUND: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = parse_ndjson(data);
    let _ = parse_json(data);
    if let Ok(inflated) = gunzip_bounded(data, BOUND) {
        assert!(inflated.len() <= BOUND);
        let _ = parse_ndjson(&inflated);
    }
});
