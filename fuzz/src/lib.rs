//! Shared pieces of the fuzz targets.

use khien_formats::read::{ImportDefaults, ReadEvent};
use khien_model::{Confidence, ThreatType, Tlp};

/// Fixed defaults so runs are reproducible.
pub fn defaults() -> ImportDefaults {
    ImportDefaults {
        source: "fuzz".into(),
        tlp: Tlp::Amber,
        confidence: Confidence::DEFAULT,
        family: None,
        threat_type: ThreatType::Unknown,
        now: chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
        force: false,
        include_not_for_detection: false,
    }
}

/// A sink that checks what readers promise: every record they emit holds a
/// normalised observable.
pub fn checking_sink(event: ReadEvent) -> Result<(), String> {
    if let ReadEvent::Record(r) = event {
        let o = &r.observable;
        let again = khien_model::Observable::parse(o.kind(), o.value()).expect("emitted observable is normalised");
        assert_eq!(&again, o);
    }
    Ok(())
}
