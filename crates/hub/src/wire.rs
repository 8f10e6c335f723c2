//! The body formats of `POST /api/v1/hits`, parsed without I/O from bytes
//! to [`Hit`]s, so they can be tested and fuzzed alone.
//!
//! - NDJSON: one [`Hit`] JSON object per line; blank lines are ignored, a
//!   trailing `\r` is dropped.
//! - JSON: `{"batch_id": "...", "hits": [Hit, ...]}`.
//! - Either may be gzip-compressed; decompression stops one byte past the
//!   limit, so a small bomb costs at most the limit in memory.
//!
//! Errors say where: the NDJSON line (1-based) or the position in `hits`
//! (0-based), and the field of [`Hit`] at fault when there is one.

use std::io::Read;

use khien_model::Hit;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyErrorKind {
    /// Not JSON, or not the expected shape.
    Malformed,
    /// Larger than the limit once decompressed.
    TooLarge,
    /// Not valid gzip.
    BadGzip,
}

/// A refused body, with the location of the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    pub kind: BodyErrorKind,
    pub message: String,
    /// NDJSON: the line (1-based). JSON: the line of a syntax error.
    pub line: Option<u64>,
    /// JSON: the position in `hits` (0-based).
    pub index: Option<usize>,
    /// The field of the hit at fault, when one is.
    pub field: Option<String>,
}

impl BodyError {
    fn malformed(message: impl Into<String>) -> Self {
        Self {
            kind: BodyErrorKind::Malformed,
            message: message.into(),
            line: None,
            index: None,
            field: None,
        }
    }
}

/// A parsed body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The JSON form's `batch_id`; NDJSON carries it in a header.
    pub batch_id: Option<String>,
    pub hits: Vec<Hit>,
    /// NDJSON: the line of each hit (1-based); empty for JSON.
    pub lines: Vec<u64>,
}

impl Batch {
    /// Where hit `i` came from: its NDJSON line, or its index in `hits`.
    pub fn locate(&self, i: usize) -> (Option<u64>, Option<usize>) {
        match self.lines.get(i) {
            Some(&line) => (Some(line), None),
            None => (None, Some(i)),
        }
    }
}

/// The JSON body form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBatch {
    #[serde(default)]
    batch_id: Option<String>,
    hits: Vec<Value>,
}

/// Decompresses a gzip body (several members allowed), refusing to produce
/// more than `max` bytes.
pub fn gunzip_bounded(body: &[u8], max: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| BodyError {
            kind: BodyErrorKind::BadGzip,
            ..BodyError::malformed(format!("gzip: {e}"))
        })?;
    if out.len() > max {
        return Err(BodyError {
            kind: BodyErrorKind::TooLarge,
            ..BodyError::malformed(format!("the body decompresses to more than {max} bytes"))
        });
    }
    Ok(out)
}

/// Parses an NDJSON body.
pub fn parse_ndjson(body: &[u8]) -> Result<Batch, BodyError> {
    let mut hits = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: Value = serde_json::from_slice(line).map_err(|e| BodyError {
            line: Some(line_no),
            ..BodyError::malformed(format!("line {line_no}: {e}"))
        })?;
        let hit = hit_from_value(value).map_err(|(message, field)| BodyError {
            line: Some(line_no),
            field,
            ..BodyError::malformed(format!("line {line_no}: {message}"))
        })?;
        hits.push(hit);
        lines.push(line_no);
    }
    Ok(Batch {
        batch_id: None,
        hits,
        lines,
    })
}

/// Parses a JSON body.
pub fn parse_json(body: &[u8]) -> Result<Batch, BodyError> {
    let batch: JsonBatch = serde_json::from_slice(body).map_err(|e| {
        let line = (e.line() > 0).then_some(e.line() as u64);
        BodyError {
            line,
            ..BodyError::malformed(e.to_string())
        }
    })?;
    let mut hits = Vec::with_capacity(batch.hits.len());
    for (index, value) in batch.hits.into_iter().enumerate() {
        let hit = hit_from_value(value).map_err(|(message, field)| BodyError {
            index: Some(index),
            field,
            ..BodyError::malformed(format!("hits[{index}]: {message}"))
        })?;
        hits.push(hit);
    }
    Ok(Batch {
        batch_id: batch.batch_id,
        hits,
        lines: Vec::new(),
    })
}

/// Turns one JSON value into a hit, or says what is wrong and, when it can,
/// in which field.
fn hit_from_value(value: Value) -> Result<Hit, (String, Option<String>)> {
    let Value::Object(map) = value else {
        return Err(("a hit must be a JSON object".into(), None));
    };
    match Hit::deserialize(&Value::Object(map.clone())) {
        Ok(hit) => Ok(hit),
        Err(e) => {
            let message = e.to_string();
            let field = named_field(&message).or_else(|| failing_field(&map));
            let message = match &field {
                Some(f) if !message.contains(&format!("`{f}`")) => format!("{f}: {message}"),
                _ => message,
            };
            Err((message, field))
        }
    }
}

/// The field serde names in its message: "missing field `x`", "unknown
/// field `x`, expected …".
fn named_field(message: &str) -> Option<String> {
    for lead in ["missing field `", "unknown field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(lead) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

/// Finds the field whose value is at fault: [`Hit`] read from an object
/// holding only that field fails with a "missing field" error when the
/// value is fine, and with the value's own error when it is not (serde
/// checks values as it meets them and missing fields only at the end).
/// Using `Hit`'s own `Deserialize` keeps this in step with the type.
fn failing_field(map: &Map<String, Value>) -> Option<String> {
    map.iter().find_map(|(k, v)| {
        let mut one = Map::new();
        one.insert(k.clone(), v.clone());
        match Hit::deserialize(&Value::Object(one)) {
            Err(e) if e.to_string().starts_with("missing field") => None,
            Err(_) => Some(k.clone()),
            // Only possible if every other field had a default.
            Ok(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"bucket":"2026-11-25T14:00:00Z","client":"192.0.2.7","indicator":"evil.example","kind":"domain","count":2,"first_seen":"2026-11-25T14:01:00Z","last_seen":"2026-11-25T14:02:00Z","sensor":"s1"}"#;

    fn with_field(field: &str, value: &str) -> String {
        let mut v: Map<String, Value> = serde_json::from_str(GOOD).unwrap_or_default();
        v.insert(
            field.into(),
            serde_json::from_str(value).unwrap_or(Value::Null),
        );
        serde_json::to_string(&v).unwrap_or_default()
    }

    #[test]
    fn ndjson_skips_blank_lines_and_crlf() {
        let body = format!("{GOOD}\r\n\n  \n{GOOD}\n");
        let batch = parse_ndjson(body.as_bytes()).expect("valid");
        assert_eq!(batch.hits.len(), 2);
        assert_eq!(batch.lines, vec![1, 4]);
        assert_eq!(batch.locate(1), (Some(4), None));
    }

    #[test]
    fn ndjson_error_names_line_and_field() {
        let bad = with_field("count", "\"many\"");
        let body = format!("{GOOD}\n\n{bad}\n");
        let e = parse_ndjson(body.as_bytes()).expect_err("bad count");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.field.as_deref(), Some("count"));
        assert!(e.message.contains("line 3"), "{}", e.message);

        let bad = with_field("client", "\"not-an-ip\"");
        let e = parse_ndjson(bad.as_bytes()).expect_err("bad client");
        assert_eq!(e.field.as_deref(), Some("client"));
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let mut v: Map<String, Value> = serde_json::from_str(GOOD).unwrap_or_default();
        v.remove("sensor");
        let e = parse_ndjson(serde_json::to_string(&v).unwrap_or_default().as_bytes())
            .expect_err("missing sensor");
        assert_eq!(e.field.as_deref(), Some("sensor"));
        let e = parse_ndjson(with_field("colour", "1").as_bytes()).expect_err("unknown");
        assert_eq!(e.field.as_deref(), Some("colour"));
    }

    #[test]
    fn syntax_errors_and_non_objects_have_a_line_but_no_field() {
        let body = format!("{GOOD}\n{{\"bucket\": \n");
        let e = parse_ndjson(body.as_bytes()).expect_err("truncated");
        assert_eq!((e.line, e.field.as_deref()), (Some(2), None));
        let e = parse_ndjson(b"[1,2]").expect_err("array");
        assert_eq!((e.line, e.field.as_deref()), (Some(1), None));
    }

    #[test]
    fn json_batch_names_index_and_field() {
        let bad = with_field("kind", "\"colour\"");
        let body = format!(r#"{{"batch_id":"b1","hits":[{GOOD},{bad}]}}"#);
        let e = parse_json(body.as_bytes()).expect_err("bad kind");
        assert_eq!(e.index, Some(1));
        assert_eq!(e.field.as_deref(), Some("kind"));
        let body = format!(r#"{{"batch_id":"b1","hits":[{GOOD}]}}"#);
        let batch = parse_json(body.as_bytes()).expect("valid");
        assert_eq!(
            (batch.batch_id.as_deref(), batch.hits.len()),
            (Some("b1"), 1)
        );
        assert_eq!(batch.locate(0), (None, Some(0)));
        assert!(parse_json(br#"{"hits":[], "extra": 1}"#).is_err());
    }

    #[test]
    fn gzip_is_bounded() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 1 << 20]).unwrap_or_default();
        let bomb = enc.finish().unwrap_or_default();
        assert!(bomb.len() < 4096);
        let e = gunzip_bounded(&bomb, 1000).expect_err("bomb");
        assert_eq!(e.kind, BodyErrorKind::TooLarge);
        assert_eq!(gunzip_bounded(&bomb, 1 << 20).map(|v| v.len()), Ok(1 << 20));
        let e = gunzip_bounded(b"not gzip", 1000).expect_err("garbage");
        assert_eq!(e.kind, BodyErrorKind::BadGzip);
    }

    #[test]
    fn garbage_never_panics() {
        for body in [
            &b"\xff\xfe"[..],
            b"{",
            b"\"",
            b"null",
            b"{\"hits\": 3}",
            b"\n\n",
        ] {
            let _ = parse_ndjson(body);
            let _ = parse_json(body);
            let _ = gunzip_bounded(body, 10);
        }
    }
}
