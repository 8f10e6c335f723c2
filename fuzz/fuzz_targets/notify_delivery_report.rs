//! SMS gateway delivery-report webhooks: arbitrary bytes as the body.
//! Refuse or parse, never panic; a parsed report has a plausible id,
//! writes back to the same report, and its signature checks out while a
//! signature over other bytes does not.
#![no_main]

use khien_notify::gateway::{parse_delivery_report, sign, verify_signature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = parse_delivery_report(data) {
        assert!(!report.id.is_empty() && report.id.len() <= 256);
        assert!(!report.id.chars().any(char::is_control));
        let again = parse_delivery_report(&report.to_json()).expect("round trip parses");
        assert_eq!(again, report);
    }
    let header = sign(b"fuzz-secret", data);
    assert!(verify_signature(b"fuzz-secret", data, Some(&header)));
    assert!(!verify_signature(b"other-secret", data, Some(&header)));
    // The body as a header value must never verify by accident or panic.
    assert!(!verify_signature(
        b"fuzz-secret",
        data,
        std::str::from_utf8(data).ok()
    ));
});
