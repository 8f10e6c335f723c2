//! CSV feeds with a column mapping, and presets for the CSV dumps users
//! meet most: URLhaus, ThreatFox and Shadowserver reports.
//!
//! Each line is one record. Fields are split by hand rather than with the
//! `csv` crate because ThreatFox writes `"a", "b"` — a space before the
//! opening quote — which RFC 4180 parsers read as an unquoted field and then
//! split at the commas inside it (`"Agentemis,BEACON"`). Quoted fields may
//! not span lines; real feeds never do, and it keeps line numbers exact and
//! memory bounded (lines are read with the list reader's bounded reader).
//!
//! Headers are found by name, also inside a leading comment line
//! (`# id,dateadded,url,…` in URLhaus dumps). Column numbers in a mapping
//! are 1-based, as `cut -f` counts.

use std::io::BufRead;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use khien_model::{
    Confidence, Family, IndicatorRecord, Observable, ObservableKind, ThreatType, Timestamp, Tlp,
};

use super::list::read_bounded_line;
use super::{ImportDefaults, ReadEvent, ReadSink, ReadSummary, SkipReason};
use crate::{Error, Location};

/// A column by header name or 1-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Name(String),
    Position(usize),
}

impl Column {
    fn parse(s: &str) -> Self {
        match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Self::Position(n),
            _ => Self::Name(s.trim().to_ascii_lowercase()),
        }
    }
}

/// Which column holds what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvMapping {
    pub value: Column,
    /// A column naming the kind (`ioc_type`); values are detected otherwise.
    pub kind: Option<Column>,
    pub family: Option<Column>,
    pub threat_type: Option<Column>,
    pub tlp: Option<Column>,
    pub confidence: Option<Column>,
    pub first_seen: Option<Column>,
    pub last_seen: Option<Column>,
    pub reference: Option<Column>,
    pub delimiter: u8,
    /// `None`: a header is recognised when the first line's value field is
    /// not an observable.
    pub has_header: Option<bool>,
    /// Family values that mean "no family" (`Unknown malware`).
    pub no_family: Vec<String>,
}

impl Default for CsvMapping {
    /// The value in the first column, a header if there is one.
    fn default() -> Self {
        Self {
            value: Column::Position(1),
            kind: None,
            family: None,
            threat_type: None,
            tlp: None,
            confidence: None,
            first_seen: None,
            last_seen: None,
            reference: None,
            delimiter: b',',
            has_header: None,
            no_family: Vec::new(),
        }
    }
}

/// A mapping that does not fit the input or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CSV mapping: {0}")]
pub struct MappingError(pub String);

impl CsvMapping {
    /// The presets: `urlhaus`, `threatfox`, `shadowserver`.
    pub fn preset(name: &str) -> Option<Self> {
        let n = |s: &str| Some(Column::Name(s.into()));
        Some(match name.to_ascii_lowercase().as_str() {
            "urlhaus" => Self {
                value: Column::Name("url".into()),
                threat_type: n("threat"),
                first_seen: n("dateadded"),
                last_seen: n("last_online"),
                reference: n("urlhaus_link"),
                has_header: Some(true),
                ..Self::default()
            },
            "threatfox" => Self {
                value: Column::Name("ioc_value".into()),
                kind: n("ioc_type"),
                family: n("malware_printable"),
                threat_type: n("threat_type"),
                confidence: n("confidence_level"),
                first_seen: n("first_seen_utc"),
                last_seen: n("last_seen_utc"),
                reference: n("ioc_id"),
                has_header: Some(true),
                no_family: vec!["unknown malware".into(), "unknown".into()],
                ..Self::default()
            },
            "shadowserver" => Self {
                value: Column::Name("ip".into()),
                family: n("infection"),
                first_seen: n("timestamp"),
                last_seen: n("timestamp"),
                has_header: Some(true),
                ..Self::default()
            },
            _ => return None,
        })
    }

    /// Reads `--csv-map`: a preset name, or `field=column` pairs separated
    /// by commas (`value=url,family=3,type=threat,delimiter=;,header=no`).
    pub fn parse(spec: &str) -> Result<Self, MappingError> {
        if let Some(p) = Self::preset(spec.trim()) {
            return Ok(p);
        }
        let mut m = Self::default();
        let mut saw_value = false;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, val) = part
                .split_once('=')
                .ok_or_else(|| MappingError(format!("{part:?} is not field=column")))?;
            let col = Some(Column::parse(val));
            match key.trim() {
                "value" => {
                    m.value = Column::parse(val);
                    saw_value = true;
                }
                "kind" => m.kind = col,
                "family" => m.family = col,
                "type" | "threat_type" => m.threat_type = col,
                "tlp" => m.tlp = col,
                "confidence" => m.confidence = col,
                "first_seen" => m.first_seen = col,
                "last_seen" => m.last_seen = col,
                "reference" => m.reference = col,
                "delimiter" => {
                    m.delimiter = match val {
                        "tab" | "\\t" => b'\t',
                        v if v.len() == 1 => v.as_bytes()[0],
                        _ => {
                            return Err(MappingError(format!(
                                "delimiter {val:?} must be one character or `tab`"
                            )));
                        }
                    }
                }
                "header" => {
                    m.has_header = Some(match val {
                        "yes" | "true" | "1" => true,
                        "no" | "false" | "0" => false,
                        _ => return Err(MappingError(format!("header={val:?}: use yes or no"))),
                    })
                }
                other => {
                    return Err(MappingError(format!(
                        "unknown field {other:?} (value, kind, family, type, tlp, confidence, first_seen, last_seen, reference, delimiter, header)"
                    )));
                }
            }
        }
        if !saw_value {
            return Err(MappingError("no value=COLUMN".into()));
        }
        Ok(m)
    }

    /// Guesses a preset from a header line's field names.
    pub fn from_header(fields: &[String]) -> Option<Self> {
        let has = |n: &str| fields.iter().any(|f| f == n);
        if has("ioc_value") && has("ioc_type") {
            Self::preset("threatfox")
        } else if has("url") && has("urlhaus_link") {
            Self::preset("urlhaus")
        } else if has("ip") && has("timestamp") && (has("infection") || has("asn")) {
            Self::preset("shadowserver")
        } else {
            None
        }
    }

    fn names_used(&self) -> bool {
        [
            Some(&self.value),
            self.kind.as_ref(),
            self.family.as_ref(),
            self.threat_type.as_ref(),
            self.tlp.as_ref(),
            self.confidence.as_ref(),
            self.first_seen.as_ref(),
            self.last_seen.as_ref(),
            self.reference.as_ref(),
        ]
        .into_iter()
        .flatten()
        .any(|c| matches!(c, Column::Name(_)))
    }
}

/// Column positions (0-based) once the header is known.
#[derive(Debug, Default)]
struct Resolved {
    value: usize,
    kind: Option<usize>,
    family: Option<usize>,
    threat_type: Option<usize>,
    tlp: Option<usize>,
    confidence: Option<usize>,
    first_seen: Option<usize>,
    last_seen: Option<usize>,
    reference: Option<usize>,
}

fn resolve(m: &CsvMapping, header: Option<&[String]>) -> Result<Resolved, String> {
    let find = |c: &Column| -> Result<usize, String> {
        match c {
            Column::Position(n) => n
                .checked_sub(1)
                .ok_or_else(|| "column numbers start at 1".to_string()),
            Column::Name(name) => header
                .and_then(|h| h.iter().position(|f| f == name))
                .ok_or_else(|| format!("column {name:?} is not in the header")),
        }
    };
    let opt = |c: &Option<Column>| c.as_ref().map(find).transpose();
    Ok(Resolved {
        value: find(&m.value)?,
        kind: opt(&m.kind)?,
        family: opt(&m.family)?,
        threat_type: opt(&m.threat_type)?,
        tlp: opt(&m.tlp)?,
        confidence: opt(&m.confidence)?,
        first_seen: opt(&m.first_seen)?,
        last_seen: opt(&m.last_seen)?,
        reference: opt(&m.reference)?,
    })
}

/// Reads CSV records with `mapping`.
pub fn read_csv(
    mut input: impl BufRead,
    mapping: &CsvMapping,
    defaults: &ImportDefaults,
    sink: &mut dyn ReadSink,
) -> Result<ReadSummary, Error> {
    let mut summary = ReadSummary::default();
    let mut raw = Vec::with_capacity(512);
    let mut fields: Vec<String> = Vec::new();
    let mut resolved: Option<Resolved> = if mapping.names_used() || mapping.has_header == Some(true)
    {
        None
    } else {
        Some(resolve(mapping, None).map_err(Error::Config)?)
    };
    let mut header_pending = mapping.has_header != Some(false);
    let mut number = 0u64;
    loop {
        raw.clear();
        let (any, too_long) = read_bounded_line(&mut input, &mut raw)?;
        if !any {
            break;
        }
        number += 1;
        if number == 1 && raw.starts_with(b"\xEF\xBB\xBF") {
            raw.drain(..3);
        }
        let location = Location::Line(number);
        let emit = |event: ReadEvent, summary: &mut ReadSummary, sink: &mut dyn ReadSink| {
            summary.count(&event);
            sink.event(event).map_err(|reason| Error::Stopped {
                location: Location::Line(number),
                reason,
            })
        };
        if too_long {
            emit(
                ReadEvent::Rejected {
                    location,
                    reason: format!("line longer than {} bytes", super::MAX_LINE),
                },
                &mut summary,
                sink,
            )?;
            continue;
        }
        let text = String::from_utf8_lossy(&raw);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        let comment = trimmed.starts_with('#');
        if comment {
            // A header hidden in a comment (`# id,dateadded,url,…`).
            if header_pending && resolved.is_none() {
                let body = trimmed.trim_start_matches('#').trim();
                if split_fields(body, mapping.delimiter, &mut fields).is_ok() {
                    lower(&mut fields);
                    if let Ok(r) = resolve(mapping, Some(&fields)) {
                        resolved = Some(r);
                        header_pending = false;
                    }
                }
            }
            emit(
                ReadEvent::Skipped {
                    location,
                    reason: SkipReason::Comment,
                },
                &mut summary,
                sink,
            )?;
            continue;
        }
        if let Err(reason) = split_fields(trimmed, mapping.delimiter, &mut fields) {
            emit(ReadEvent::Rejected { location, reason }, &mut summary, sink)?;
            continue;
        }
        if header_pending {
            header_pending = false;
            let looks_like_header = match mapping.has_header {
                Some(h) => h,
                None => {
                    let idx = match &mapping.value {
                        Column::Position(n) => n.saturating_sub(1),
                        Column::Name(_) => 0,
                    };
                    fields
                        .get(idx)
                        .is_none_or(|v| Observable::detect(v).is_err())
                }
            };
            if looks_like_header {
                // A header already found in a comment wins over this line.
                if resolved.is_none() {
                    lower(&mut fields);
                    let r = resolve(mapping, Some(&fields)).map_err(|reason| Error::Malformed {
                        format: "csv",
                        location: Location::Line(number),
                        reason,
                    })?;
                    resolved = Some(r);
                }
                emit(
                    ReadEvent::Skipped {
                        location,
                        reason: SkipReason::Comment,
                    },
                    &mut summary,
                    sink,
                )?;
                continue;
            }
        }
        let Some(cols) = resolved.as_ref() else {
            return Err(Error::Malformed {
                format: "csv",
                location,
                reason: "the mapping names columns but the input has no header".into(),
            });
        };
        let event = match record(&fields, cols, mapping, defaults) {
            Ok(r) => ReadEvent::Record(r),
            Err(reason) => ReadEvent::Rejected { location, reason },
        };
        emit(event, &mut summary, sink)?;
    }
    Ok(summary)
}

fn lower(fields: &mut [String]) {
    for f in fields {
        *f = f.trim().to_ascii_lowercase();
    }
}

fn record(
    fields: &[String],
    cols: &Resolved,
    mapping: &CsvMapping,
    defaults: &ImportDefaults,
) -> Result<IndicatorRecord, String> {
    let get = |i: Option<usize>| {
        i.and_then(|i| fields.get(i))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    };
    let value =
        get(Some(cols.value)).ok_or_else(|| format!("no value in column {}", cols.value + 1))?;
    let observable = match get(cols.kind).and_then(kind_of) {
        Some(kind) => Observable::parse(kind, value),
        None => Observable::detect(value),
    }
    .map_err(|e| e.to_string())?;
    let mut a = defaults.attributes();
    if !defaults.force {
        if let Some(f) = get(cols.family)
            && !mapping.no_family.iter().any(|n| n.eq_ignore_ascii_case(f))
        {
            a.family = Some(Family::new(f).map_err(|e| format!("family: {e}"))?);
        }
        if let Some(t) = get(cols.threat_type) {
            a.threat_type = ThreatType::from_str(t).map_err(|e| format!("threat type: {e}"))?;
        }
        if let Some(t) = get(cols.tlp) {
            a.tlp = Tlp::from_str(t).map_err(|e| format!("tlp: {e}"))?;
        }
        if let Some(c) = get(cols.confidence) {
            a.confidence = Confidence::from_str(c).map_err(|e| format!("confidence: {e}"))?;
        }
    }
    if let Some(t) = get(cols.first_seen) {
        a.first_seen = parse_time(t).ok_or_else(|| format!("first_seen: {t:?} is not a time"))?;
        a.last_seen = a.first_seen;
    }
    if let Some(t) = get(cols.last_seen) {
        a.last_seen = parse_time(t).ok_or_else(|| format!("last_seen: {t:?} is not a time"))?;
    }
    if a.last_seen < a.first_seen {
        a.last_seen = a.first_seen;
    }
    a.reference = get(cols.reference).map(str::to_string);
    Ok(IndicatorRecord {
        observable,
        attributes: a,
    })
}

/// A feed's kind name (`ip:port`, `md5_hash`, `domain`) as ours; `None` to
/// detect from the value.
fn kind_of(name: &str) -> Option<ObservableKind> {
    let n = name.to_ascii_lowercase();
    match n.as_str() {
        "ip:port" | "ip" => None,
        "md5_hash" => Some(ObservableKind::Md5),
        "sha1_hash" => Some(ObservableKind::Sha1),
        "sha256_hash" => Some(ObservableKind::Sha256),
        _ => ObservableKind::from_str(&n).ok(),
    }
}

/// RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or a date.
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S UTC",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Splits one CSV line into `out`: quoted fields with `""` escapes, white
/// space allowed around fields and before an opening quote.
pub(crate) fn split_fields(line: &str, delimiter: u8, out: &mut Vec<String>) -> Result<(), String> {
    out.clear();
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') && bytes[i] != delimiter {
            i += 1;
        }
        let mut field = Vec::new();
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err("unterminated quoted field".into()),
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                        field.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&b) => {
                        field.push(b);
                        i += 1;
                    }
                }
            }
            while i < bytes.len() && bytes[i] != delimiter {
                if !bytes[i].is_ascii_whitespace() {
                    return Err(format!("text after a closing quote at byte {}", i + 1));
                }
                i += 1;
            }
        } else {
            while i < bytes.len() && bytes[i] != delimiter {
                field.push(bytes[i]);
                i += 1;
            }
        }
        out.push(String::from_utf8_lossy(&field).trim().to_string());
        if i >= bytes.len() {
            return Ok(());
        }
        i += 1; // the delimiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        let mut v = Vec::new();
        split_fields(s, b',', &mut v).unwrap();
        v
    }

    #[test]
    fn splits_threatfox_style_fields() {
        assert_eq!(
            split(r#""a", "b,c", "d""e",f"#),
            vec!["a", "b,c", "d\"e", "f"]
        );
        assert_eq!(split("x,,y"), vec!["x", "", "y"]);
        assert!(split_fields(r#""open"#, b',', &mut Vec::new()).is_err());
    }

    #[test]
    fn parses_mapping_specs() {
        let m = CsvMapping::parse("value=url,family=3,delimiter=;,header=no").unwrap();
        assert_eq!(m.value, Column::Name("url".into()));
        assert_eq!(m.family, Some(Column::Position(3)));
        assert_eq!((m.delimiter, m.has_header), (b';', Some(false)));
        assert!(CsvMapping::parse("colour=3").is_err());
        assert!(CsvMapping::parse("family=2").is_err());
        assert!(CsvMapping::parse("threatfox").is_ok());
    }

    #[test]
    fn parses_feed_times() {
        assert!(parse_time("2024-01-02 03:04:05").is_some());
        assert!(parse_time("2024-01-02T03:04:05Z").is_some());
        assert!(parse_time("2024-01-02").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
