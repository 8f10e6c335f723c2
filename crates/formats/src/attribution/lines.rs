//! Lines of untrusted text: bounded, checked for UTF-8, numbered from 1.

use std::io::BufRead;

use super::AttributionFormat;
use crate::read::MAX_LINE;
use crate::{Error, Location};

/// One line as a reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line<'a> {
    /// The line without its `\n` or `\r\n`.
    Text(&'a str),
    /// Longer than [`MAX_LINE`]; its bytes were not kept.
    TooLong,
    /// Not UTF-8; `indented` when it starts with a space or tab.
    NotUtf8 { indented: bool },
}

impl Line<'_> {
    /// Why a line that is not text cannot be read.
    pub(super) fn problem(&self) -> Option<String> {
        match self {
            Self::Text(_) => None,
            Self::TooLong => Some(format!("line longer than {MAX_LINE} bytes")),
            Self::NotUtf8 { .. } => Some("line is not UTF-8".into()),
        }
    }
}

/// A line with its place in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Next<'a> {
    /// 1-based line number.
    pub number: u64,
    pub line: Line<'a>,
    /// Whether the line ended with a newline; a daemon's file whose last
    /// line does not was cut while being written.
    pub terminated: bool,
}

/// A line reader with one reused buffer.
pub(super) struct Lines<R> {
    input: R,
    format: AttributionFormat,
    buf: Vec<u8>,
    number: u64,
    terminated: bool,
}

impl<R: BufRead> Lines<R> {
    pub(super) fn new(input: R, format: AttributionFormat) -> Self {
        Self {
            input,
            format,
            buf: Vec::with_capacity(256),
            number: 0,
            terminated: true,
        }
    }

    /// The next line, `None` at the end of the input. A UTF-16 file is
    /// refused as a whole: every line of it would be rejected.
    pub(super) fn next_line(&mut self) -> Result<Option<Next<'_>>, Error> {
        self.buf.clear();
        let Some(too_long) = self.fill()? else {
            return Ok(None);
        };
        self.number += 1;
        if self.number == 1 {
            if self.buf.starts_with(&[0xFF, 0xFE]) || self.buf.starts_with(&[0xFE, 0xFF]) {
                return Err(Error::Malformed {
                    format: self.format.as_str(),
                    location: Location::Line(1),
                    reason: "UTF-16 text; convert the file to UTF-8".into(),
                });
            }
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.drain(..3);
            }
        }
        let line = if too_long {
            Line::TooLong
        } else {
            match std::str::from_utf8(&self.buf) {
                Ok(s) => Line::Text(s),
                Err(_) => Line::NotUtf8 {
                    indented: matches!(self.buf.first(), Some(b' ' | b'\t')),
                },
            }
        };
        Ok(Some(Next {
            number: self.number,
            line,
            terminated: self.terminated,
        }))
    }

    /// Reads one line into `buf`, keeping at most `MAX_LINE` bytes. Returns
    /// `None` at the end, else whether the line was too long.
    fn fill(&mut self) -> Result<Option<bool>, Error> {
        let mut read_any = false;
        let mut too_long = false;
        self.terminated = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            };
            if chunk.is_empty() {
                break;
            }
            read_any = true;
            let (part, consumed, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], i + 1, true),
                None => (chunk, chunk.len(), false),
            };
            if !too_long {
                if self.buf.len() + part.len() > MAX_LINE {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(part);
                }
            }
            self.input.consume(consumed);
            if done {
                self.terminated = true;
                break;
            }
        }
        if !read_any {
            self.terminated = true;
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(too_long))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(data: &[u8]) -> Vec<(u64, Result<String, String>, bool)> {
        let mut lines = Lines::new(
            std::io::BufReader::with_capacity(16, data),
            AttributionFormat::KeaCsv,
        );
        let mut v = Vec::new();
        while let Some(next) = lines.next_line().unwrap() {
            let item = match next.line {
                Line::Text(t) => Ok(t.to_string()),
                other => Err(other.problem().unwrap()),
            };
            v.push((next.number, item, next.terminated));
        }
        v
    }

    #[test]
    fn numbers_bounds_and_termination() {
        let mut bytes = b"\xEF\xBB\xBFa\r\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
        bytes.extend_from_slice(b"\n\xC3\n\nlast");
        assert_eq!(
            all(&bytes),
            vec![
                (1, Ok("a".into()), true),
                (2, Err(format!("line longer than {MAX_LINE} bytes")), true),
                (3, Err("line is not UTF-8".into()), true),
                (4, Ok(String::new()), true),
                (5, Ok("last".into()), false),
            ]
        );
    }

    #[test]
    fn refuses_utf16() {
        let mut lines = Lines::new(&b"\xFF\xFEa\x00"[..], AttributionFormat::CgnatCsv);
        assert!(matches!(
            lines.next_line(),
            Err(Error::Malformed {
                format: "cgnat-csv",
                ..
            })
        ));
    }
}
