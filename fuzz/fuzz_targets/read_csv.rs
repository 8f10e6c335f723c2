//! The csv reader on arbitrary bytes: never panics, never emits an
//! observable that is not normalised.
#![no_main]

use khien_formats::read::{CsvMapping, Format, read};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sink = khien_fuzz::checking_sink;
    let _ = read(Format::Csv(CsvMapping::default()), data, &khien_fuzz::defaults(), &mut sink);
});
