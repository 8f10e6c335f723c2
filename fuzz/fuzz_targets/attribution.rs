//! Every attribution reader on arbitrary bytes: never panics, reports only
//! lines that exist, and emits no event a real record cannot be (times in
//! 1990–2100, port blocks the right way up).
#![no_main]

use chrono::Datelike;
use khien_formats::attribution::{
    AttributionEvent, AttributionFormat, AttributionOptions, read_attribution,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    let lines = newlines + u64::from(data.last().is_some_and(|&b| b != b'\n'));
    let options = AttributionOptions::new(2026);
    for format in AttributionFormat::ALL {
        let mut sink = |e: AttributionEvent| -> Result<(), String> {
            assert!(
                (1..=lines).contains(&e.line()),
                "{format}: {e:?} of {lines} lines"
            );
            if let AttributionEvent::Address(a) = &e {
                for t in [Some(a.at), a.start, a.end].into_iter().flatten() {
                    assert!((1990..2100).contains(&t.year()), "{format}: {a:?}");
                }
                if let Some((first, last)) = a.ports {
                    assert!(first <= last, "{format}: {a:?}");
                }
            }
            Ok(())
        };
        let _ = read_attribution(format, data, &options, &mut sink);
    }
    let _ = AttributionFormat::detect(data);
});
