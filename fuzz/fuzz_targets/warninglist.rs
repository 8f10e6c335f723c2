//! A warninglist file from arbitrary bytes: never panics; a list that loads
//! answers checks without panicking.
#![no_main]

use khien_formats::warninglist::WarninglistSet;
use khien_model::Observable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut set = WarninglistSet::new();
    if set.add_json("fuzz", text).is_ok() {
        for probe in ["8.8.8.8", "google.com", "10.0.0.0/8", "2001:db8::1", "http://a.vn/x"] {
            if let Ok(o) = Observable::detect(probe) {
                let _ = set.check(&o);
            }
        }
    }
});
