//! The hub's subscriber directory upload: arbitrary bytes as CSV, every
//! row through the checks. Refuse or parse, never panic; a row the checks
//! take has a plausible id and, when given, a normalised e-mail address.
#![no_main]

use khien_hub::directory::{check, parse_csv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = parse_csv(data) {
        for (line, mut row) in rows {
            assert!(line >= 2);
            if check(&mut row).is_ok() {
                assert!(!row.id.is_empty() && row.id.len() <= 256);
                if let Some(e) = &row.email {
                    assert!(e.contains('@'));
                }
            }
        }
    }
});
