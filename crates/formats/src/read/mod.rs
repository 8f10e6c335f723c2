//! Readers: untrusted bytes in, indicator records out.

use khien_model::{Confidence, Family, IndicatorRecord, ThreatType, Timestamp, Tlp};

use crate::Location;

/// Attributes applied to records whose input does not say otherwise
/// (`khien intel import --source … --tlp … --family …`).
#[derive(Debug, Clone)]
pub struct ImportDefaults {
    pub source: String,
    pub tlp: Tlp,
    pub confidence: Confidence,
    pub family: Option<Family>,
    pub threat_type: ThreatType,
    /// "Now" for records without their own times; passed in so that
    /// readers stay pure and tests reproducible.
    pub now: Timestamp,
    /// When set, the user's `--family`/`--type`/`--tlp`/`--confidence`
    /// override what the input says instead of filling gaps.
    pub force: bool,
    /// Import MISP attributes whose `to_ids` is false. Some publishers
    /// (ESET's IOC repository among them) mark every attribute so; the
    /// operator who trusts the event can take them anyway.
    pub include_not_for_detection: bool,
}

/// Why a well-formed record was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// Blank line or comment.
    Comment,
    /// A STIX object that is not an indicator (relationship, identity, …).
    NotIndicator,
    /// A STIX pattern outside the IOC subset (e.g. `process:name`, AND).
    UnsupportedPattern,
    /// A MISP attribute of a type we do not import (e.g. `filename`).
    UnsupportedType,
    /// A MISP attribute with `to_ids` false.
    NotForDetection,
    /// A STIX indicator revoked, or whose `valid_until` has passed.
    Revoked,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Comment => "comment",
            Self::NotIndicator => "not-indicator",
            Self::UnsupportedPattern => "unsupported-pattern",
            Self::UnsupportedType => "unsupported-type",
            Self::NotForDetection => "not-for-detection",
            Self::Revoked => "revoked",
        }
    }
}

/// What a reader reports for each thing it reads.
#[derive(Debug, Clone)]
pub enum ReadEvent {
    Record(IndicatorRecord),
    Skipped {
        location: Location,
        reason: SkipReason,
    },
    Rejected {
        location: Location,
        reason: String,
    },
}

/// Receives a reader's events. Returning `Err(reason)` stops the reader,
/// which then returns [`crate::Error::Stopped`].
pub trait ReadSink {
    fn event(&mut self, event: ReadEvent) -> Result<(), String>;
}

impl<F: FnMut(ReadEvent) -> Result<(), String>> ReadSink for F {
    fn event(&mut self, event: ReadEvent) -> Result<(), String> {
        self(event)
    }
}

mod csv;
mod format;
mod labels;
mod list;
mod misp;
mod pattern;
mod stix;

pub(crate) use self::csv::split_fields;
pub use self::csv::{Column, CsvMapping, MappingError, read_csv};
pub use format::Format;
pub use list::{MAX_LINE, read_list};
pub use misp::{read_misp, read_misp_feed_dir};
pub use stix::read_stix;

/// Reads `input` as `format`, streaming records into `sink`.
pub fn read(
    format: Format,
    input: impl std::io::BufRead,
    defaults: &ImportDefaults,
    sink: &mut dyn ReadSink,
) -> Result<ReadSummary, crate::Error> {
    match format {
        Format::List => read_list(input, defaults, sink),
        Format::Csv(mapping) => read_csv(input, &mapping, defaults, sink),
        Format::Stix => read_stix(input, defaults, sink),
        Format::Misp => read_misp(input, defaults, sink),
    }
}

impl ImportDefaults {
    /// The source attributes of a record that says nothing about itself.
    pub fn attributes(&self) -> khien_model::SourceAttributes {
        khien_model::SourceAttributes {
            source: self.source.clone(),
            tlp: self.tlp,
            confidence: self.confidence,
            family: self.family.clone(),
            threat_type: self.threat_type,
            reference: None,
            first_seen: self.now,
            last_seen: self.now,
            expires_at: None,
        }
    }
}

/// Counts of what a reader reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadSummary {
    pub records: u64,
    pub skipped: u64,
    pub rejected: u64,
}

impl ReadSummary {
    pub(crate) fn count(&mut self, event: &ReadEvent) {
        match event {
            ReadEvent::Record(_) => self.records += 1,
            ReadEvent::Skipped { .. } => self.skipped += 1,
            ReadEvent::Rejected { .. } => self.rejected += 1,
        }
    }
}
