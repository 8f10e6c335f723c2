//! Plain lists: one value per line, as trail collections, blocklists and
//! analysts' notes write them.
//!
//! - Comments: whole lines starting with `#`, `;` or `//`, and anything after
//!   white space followed by `#` or `;` (`evil.com   # was: …`).
//! - Values are read with [`Observable::detect`], so defanged forms, `ip:port`
//!   and URLs with or without a scheme all work; a value that starts with `/`
//!   is a bare URL path (maltrail's HTTP trails), which no observable kind
//!   holds, and is skipped as unsupported rather than rejected.
//! - Bytes: a UTF-8 byte-order mark is dropped; a line that is not UTF-8 is
//!   read as Windows-1252 (the usual other encoding of such files) and then
//!   judged like any other; a UTF-16 file is refused as a whole with a clear
//!   error, because every line of it would be garbage.
//! - Lines longer than [`MAX_LINE`] are rejected without being buffered, so a
//!   file without newlines cannot exhaust memory; the reader keeps a single
//!   reused buffer and its memory is flat whatever the input size.

use std::borrow::Cow;
use std::io::BufRead;

use khien_model::{IndicatorRecord, Observable};

use super::{ImportDefaults, ReadEvent, ReadSink, ReadSummary, SkipReason};
use crate::{Error, Location};

/// The longest line read as a value (64 KiB): far above any real indicator,
/// far below a memory problem.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads a plain list, calling `sink` once per line that is not blank.
pub fn read_list(
    mut input: impl BufRead,
    defaults: &ImportDefaults,
    sink: &mut dyn ReadSink,
) -> Result<ReadSummary, Error> {
    let mut summary = ReadSummary::default();
    let mut line = Vec::with_capacity(256);
    let mut number: u64 = 0;
    loop {
        line.clear();
        let (read_any, too_long) = read_bounded_line(&mut input, &mut line)?;
        if !read_any {
            break;
        }
        number += 1;
        let location = Location::Line(number);
        if number == 1 {
            if line.starts_with(&[0xFF, 0xFE]) || line.starts_with(&[0xFE, 0xFF]) {
                return Err(Error::Malformed {
                    format: "list",
                    location,
                    reason: "UTF-16 text; convert the file to UTF-8".into(),
                });
            }
            if line.starts_with(b"\xEF\xBB\xBF") {
                line.drain(..3);
            }
        }
        let event = if too_long {
            ReadEvent::Rejected {
                location,
                reason: format!("line longer than {MAX_LINE} bytes"),
            }
        } else {
            match classify(&line) {
                Line::Blank => continue,
                Line::Comment => ReadEvent::Skipped {
                    location,
                    reason: SkipReason::Comment,
                },
                Line::Path => ReadEvent::Skipped {
                    location,
                    reason: SkipReason::UnsupportedType,
                },
                Line::Value(text) => match Observable::detect(&text) {
                    Ok(observable) => ReadEvent::Record(IndicatorRecord {
                        observable,
                        attributes: defaults.attributes(),
                    }),
                    Err(e) => ReadEvent::Rejected {
                        location,
                        reason: format!("{e}"),
                    },
                },
            }
        };
        summary.count(&event);
        sink.event(event).map_err(|reason| Error::Stopped {
            location: Location::Line(number),
            reason,
        })?;
    }
    Ok(summary)
}

enum Line<'a> {
    Blank,
    Comment,
    Path,
    Value(Cow<'a, str>),
}

fn classify(raw: &[u8]) -> Line<'_> {
    let text: Cow<'_, str> = match std::str::from_utf8(raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            let (decoded, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(raw);
            decoded
        }
    };
    let value = strip_comment(&text).trim();
    if value.is_empty() {
        let t = text.trim();
        return if t.is_empty() {
            Line::Blank
        } else {
            Line::Comment
        };
    }
    if value.starts_with('/') && !value.starts_with("//") {
        return Line::Path;
    }
    match text {
        Cow::Borrowed(s) => Line::Value(Cow::Borrowed(strip_comment(s).trim())),
        Cow::Owned(s) => Line::Value(Cow::Owned(strip_comment(&s).trim().to_string())),
    }
}

/// The part of a line before its comment.
fn strip_comment(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with(';') || t.starts_with("//") {
        return "";
    }
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if (*b == b'#' || *b == b';') && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

/// Reads one line (without its `\n` or `\r\n`) into `out`, keeping at most
/// `MAX_LINE` bytes. Returns (anything read, line was longer than allowed).
pub(super) fn read_bounded_line(
    input: &mut impl BufRead,
    out: &mut Vec<u8>,
) -> Result<(bool, bool), Error> {
    let mut read_any = false;
    let mut too_long = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io(e)),
        };
        if buf.is_empty() {
            break;
        }
        read_any = true;
        let (chunk, consumed, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if !too_long {
            if out.len() + chunk.len() > MAX_LINE {
                too_long = true;
                out.clear();
            } else {
                out.extend_from_slice(chunk);
            }
        }
        input.consume(consumed);
        if done {
            break;
        }
    }
    if out.last() == Some(&b'\r') {
        out.pop();
    }
    Ok((read_any, too_long))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_comments() {
        assert_eq!(strip_comment("evil.com    # was: x"), "evil.com    ");
        assert_eq!(strip_comment("# Reference: x"), "");
        assert_eq!(strip_comment("; x"), "");
        assert_eq!(strip_comment("http://a.vn/x#frag"), "http://a.vn/x#frag");
    }

    #[test]
    fn bounded_lines() {
        let data = format!("short\r\n{}\nnext", "x".repeat(MAX_LINE + 1));
        let mut input = std::io::BufReader::with_capacity(1024, data.as_bytes());
        let mut out = Vec::new();
        assert_eq!(
            read_bounded_line(&mut input, &mut out).unwrap(),
            (true, false)
        );
        assert_eq!(out, b"short");
        out.clear();
        assert_eq!(
            read_bounded_line(&mut input, &mut out).unwrap(),
            (true, true)
        );
        assert!(out.is_empty());
        out.clear();
        assert_eq!(
            read_bounded_line(&mut input, &mut out).unwrap(),
            (true, false)
        );
        assert_eq!(out, b"next");
        out.clear();
        assert_eq!(
            read_bounded_line(&mut input, &mut out).unwrap(),
            (false, false)
        );
    }
}
