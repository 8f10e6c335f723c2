//! CSV tables with a header row, shared by the RADIUS, Kea and CGNAT
//! readers.
//!
//! Columns are found by name, so exports with extra or reordered columns
//! (and Kea versions that add `pool_id`) read the same. Names compare
//! case-insensitively with `-`, `_` and spaces equal (`Acct-Session-Id`,
//! `acct_session_id`). One line is one row: quoted fields may not span
//! lines, which keeps line numbers exact. A row whose field count differs
//! from the header's is rejected rather than read with shifted columns.

use std::io::BufRead;

use super::lines::{Line, Lines, Next};
use super::{AddressEvent, AttributionFormat, Out};
use crate::read::split_fields;
use crate::{Error, Location};

/// A column name in comparable form: lower case, `-` and spaces as `_`.
pub(super) fn normalize(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The header row.
#[derive(Debug)]
pub(super) struct Header {
    names: Vec<String>,
    raw: Vec<String>,
}

impl Header {
    fn new(fields: &[String]) -> Self {
        Self {
            names: fields.iter().map(|f| normalize(f)).collect(),
            raw: fields.to_vec(),
        }
    }

    /// The first column named by one of `aliases` (normalised names).
    pub(super) fn find(&self, aliases: &[&str]) -> Option<usize> {
        aliases
            .iter()
            .find_map(|a| self.names.iter().position(|n| n == a))
    }

    /// `Err` naming the column when none of `aliases` is present.
    pub(super) fn require(&self, aliases: &[&str]) -> Result<usize, String> {
        self.find(aliases).ok_or_else(|| missing(aliases))
    }
}

/// "no column time (time, timestamp or event_timestamp)".
pub(super) fn missing(aliases: &[&str]) -> String {
    let first = aliases.first().copied().unwrap_or_default();
    match aliases {
        [] | [_] => format!("no column {first}"),
        [init @ .., last] => format!("no column {first} ({} or {last})", init.join(", ")),
    }
}

/// One data row.
#[derive(Debug)]
pub(super) struct Row<'a> {
    pub line: u64,
    fields: &'a [String],
    header: &'a Header,
}

impl Row<'_> {
    /// The trimmed, non-empty value of column `col`.
    pub(super) fn get(&self, col: Option<usize>) -> Option<&str> {
        col.and_then(|i| self.fields.get(i))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    /// The column's name as the header writes it.
    pub(super) fn name(&self, col: usize) -> &str {
        self.header.raw.get(col).map_or("?", String::as_str)
    }

    /// Column `col` read by `parse`; `Ok(None)` when empty, `Err` naming
    /// the column and the value when it does not parse as `what`.
    pub(super) fn parse<T>(
        &self,
        col: Option<usize>,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, String> {
        let Some(v) = self.get(col) else {
            return Ok(None);
        };
        match parse(v) {
            Some(t) => Ok(Some(t)),
            None => Err(format!(
                "column {}: {} is not {what}",
                self.name(col.unwrap_or(usize::MAX)),
                quoted(v)
            )),
        }
    }

    /// Like [`Row::parse`], but an empty value is an error too.
    pub(super) fn require<T>(
        &self,
        col: usize,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, String> {
        self.parse(Some(col), what, parse)?
            .ok_or_else(|| format!("column {} is empty", self.name(col)))
    }
}

/// A value for an error message: quoted, and cut short when long.
pub(super) fn quoted(v: &str) -> String {
    const SHOWN: usize = 80;
    if v.chars().count() <= SHOWN {
        format!("{v:?}")
    } else {
        let head: String = v.chars().take(SHOWN).collect();
        format!("{head:?}…")
    }
}

/// What a row turned out to be.
#[derive(Debug)]
pub(super) enum Outcome {
    Events(Vec<AddressEvent>),
    Skip(&'static str),
}

/// How a table is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    /// Fields may be quoted (`"a,b"`, `""` escapes); Kea never quotes (it
    /// escapes commas as `&#x2c`), so its `"` are data.
    pub quoted: bool,
    /// Written by a daemon that ends every line with a newline, so a last
    /// line without one was cut.
    pub daemon: bool,
}

/// Reads a table: comments (`#`) and the header are skipped, the header
/// goes to `columns` (whose `Err` stops the reader as
/// [`Error::Malformed`]), each later row to `row`.
pub(super) fn read_table<C>(
    format: AttributionFormat,
    input: impl BufRead,
    out: &mut Out<'_>,
    style: Style,
    columns: impl FnOnce(&Header) -> Result<C, String>,
    mut row: impl FnMut(&C, &Row<'_>) -> Result<Outcome, String>,
) -> Result<(), Error> {
    let mut lines = Lines::new(input, format);
    let mut columns = Some(columns);
    let mut header: Option<(Header, C)> = None;
    let mut fields: Vec<String> = Vec::new();
    while let Some(Next {
        number: n,
        line,
        terminated,
    }) = lines.next_line()?
    {
        let text = match line {
            Line::Text(t) => t.trim(),
            other => {
                out.reject(n, other.problem().unwrap_or_default())?;
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        if style.daemon && !terminated {
            out.reject(n, "line is cut at the end of the file (no newline)")?;
            continue;
        }
        if text.starts_with('#') {
            out.skip(n, "comment")?;
            continue;
        }
        if style.quoted {
            if let Err(reason) = split_fields(text, b',', &mut fields) {
                out.reject(n, reason)?;
                continue;
            }
        } else {
            fields.clear();
            fields.extend(text.split(',').map(|f| f.trim().to_string()));
        }
        match &header {
            None => {
                let h = Header::new(&fields);
                let Some(columns) = columns.take() else {
                    break;
                };
                let c = columns(&h).map_err(|reason| Error::Malformed {
                    format: format.as_str(),
                    location: Location::Line(n),
                    reason,
                })?;
                header = Some((h, c));
                out.skip(n, "header")?;
            }
            Some((h, c)) => {
                if fields.len() != h.names.len() {
                    out.reject(
                        n,
                        format!(
                            "row has {} fields, the header has {}",
                            fields.len(),
                            h.names.len()
                        ),
                    )?;
                    continue;
                }
                let r = Row {
                    line: n,
                    fields: &fields,
                    header: h,
                };
                match row(c, &r) {
                    Ok(Outcome::Events(events)) => {
                        for e in events {
                            out.address(e)?;
                        }
                    }
                    Ok(Outcome::Skip(reason)) => out.skip(n, reason)?,
                    Err(reason) => out.reject(n, reason)?,
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize(" Acct-Session-Id "), "acct_session_id");
        assert_eq!(normalize("Public IP"), "public_ip");
    }

    #[test]
    fn names_missing_columns() {
        assert_eq!(missing(&["expire"]), "no column expire");
        assert_eq!(
            missing(&["time", "timestamp", "event_timestamp"]),
            "no column time (time, timestamp or event_timestamp)"
        );
    }

    #[test]
    fn rows_name_their_columns() {
        let h = Header::new(&["Time".into(), "Port-Start".into()]);
        let fields = vec!["x".to_string(), " ".to_string()];
        let r = Row {
            line: 2,
            fields: &fields,
            header: &h,
        };
        assert_eq!(h.find(&["port_start"]), Some(1));
        assert_eq!(
            r.parse(Some(0), "a time", |_| None::<u8>),
            Err("column Time: \"x\" is not a time".into())
        );
        assert_eq!(
            r.parse(Some(1), "a port", |v| v.parse::<u16>().ok()),
            Ok(None)
        );
        assert_eq!(
            r.require(1, "a port", |v| v.parse::<u16>().ok()),
            Err("column Port-Start is empty".into())
        );
        assert_eq!(quoted(&"y".repeat(100)).chars().count(), 83);
    }
}
