//! Round trip through the writers and readers: arbitrary text lines that
//! parse as observables are exported as a list and as a STIX bundle, read
//! back, and must come back as the same observables.
#![no_main]

use khien_formats::read::{Format, ReadEvent, read};
use khien_formats::write::{StixOptions, write_list, write_stix};
use khien_model::{Indicator, Observable, ObservableKind, SourceAttributes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let defaults = khien_fuzz::defaults();
    let mut indicators = Vec::new();
    for (i, line) in text.lines().take(64).enumerate() {
        let Ok(observable) = Observable::detect(line) else { continue };
        let sources: Vec<SourceAttributes> = vec![defaults.attributes()];
        if let Some(ind) = Indicator::aggregate(i as i64, observable, sources, None) {
            indicators.push(ind);
        }
    }
    let mut want: Vec<Observable> = indicators.iter().map(|i| i.observable.clone()).collect();
    want.sort();
    want.dedup();

    let mut list = Vec::new();
    write_list(&mut list, &indicators).expect("list export");
    assert_eq!(read_back(Format::List, &list), want, "list round trip");

    let mut bundle = Vec::new();
    write_stix(&mut bundle, &indicators, &StixOptions::default()).expect("stix export");
    let mut stix_want: Vec<Observable> = want.iter().filter(|o| o.kind() != ObservableKind::Phone).cloned().collect();
    stix_want.sort();
    assert_eq!(read_back(Format::Stix, &bundle), stix_want, "STIX round trip");
});

fn read_back(format: Format, bytes: &[u8]) -> Vec<Observable> {
    let mut got = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        if let ReadEvent::Record(r) = e {
            got.push(r.observable);
        }
        Ok(())
    };
    read(format, bytes, &khien_fuzz::defaults(), &mut sink).expect("own export reads back");
    got.sort();
    got.dedup();
    got
}
