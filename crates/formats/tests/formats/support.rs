//! What the reader tests share: fixed defaults, the shared real data and
//! the committed fixtures.

use std::path::{Path, PathBuf};

use chrono::TimeZone;
use khien_formats::read::{ImportDefaults, ReadEvent};
use khien_model::{Confidence, IndicatorRecord, ThreatType, Tlp};

/// Defaults with a fixed "now", so expiry checks are reproducible.
pub fn defaults() -> ImportDefaults {
    ImportDefaults {
        source: "test".into(),
        tlp: Tlp::Amber,
        confidence: Confidence::DEFAULT,
        family: None,
        threat_type: ThreatType::Unknown,
        now: chrono::Utc
            .with_ymd_and_hms(2026, 8, 22, 12, 0, 0)
            .single()
            .expect("time"),
        force: false,
        include_not_for_detection: false,
    }
}

/// A file of the real public data kept beside the repository.
pub fn shared(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    assert!(p.exists(), "shared test data missing: {}", p.display());
    p
}

/// A committed reader fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/read")
            .join(name),
    )
    .expect("fixture")
}

/// The records among a reader's events.
pub fn records(events: &[ReadEvent]) -> Vec<&IndicatorRecord> {
    events
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Record(r) => Some(r),
            _ => None,
        })
        .collect()
}
