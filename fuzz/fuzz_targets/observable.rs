//! Every kind's parser on arbitrary text: never panics, and whatever it
//! accepts parses again to the same value (normalisation is idempotent).
#![no_main]

use khien_model::{Observable, ObservableKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for kind in ObservableKind::ALL {
        if let Ok(o) = Observable::parse(kind, text) {
            let again = Observable::parse(o.kind(), o.value()).expect("normalised value parses again");
            assert_eq!(again, o);
        }
    }
    if let Ok(o) = Observable::detect(text) {
        let again = Observable::parse(o.kind(), o.value()).expect("detected value parses again");
        assert_eq!(again, o);
    }
});
