//! CSV export: one row per merged indicator, with a header, for analysts
//! and spreadsheets.
//!
//! Columns: `kind,value,threat_type,family,confidence,tlp,first_seen,
//! last_seen,expires_at,sources`. Times are RFC 3339 in UTC (`Z`), empty
//! when absent; `sources` joins the source names with `;` so the column
//! stays one cell. Quoting follows RFC 4180 (the `csv` crate), which also
//! keeps hostile values (commas, quotes, newlines in a URL) in their cell.

use std::borrow::Borrow;
use std::io::Write;

use khien_model::Indicator;

use super::rfc3339;
use crate::Error;

/// The header row, in column order.
pub const CSV_HEADER: [&str; 10] = [
    "kind",
    "value",
    "threat_type",
    "family",
    "confidence",
    "tlp",
    "first_seen",
    "last_seen",
    "expires_at",
    "sources",
];

/// Writes the header and one row per indicator; returns the row count.
pub fn write_csv<W, I>(out: W, indicators: I) -> Result<u64, Error>
where
    W: Write,
    I: IntoIterator,
    I::Item: Borrow<Indicator>,
{
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER).map_err(csv_error)?;
    let mut n = 0;
    let mut sources = String::new();
    for ind in indicators {
        let ind = ind.borrow();
        sources.clear();
        for (i, s) in ind.sources.iter().enumerate() {
            if i > 0 {
                sources.push(';');
            }
            sources.push_str(&s.source);
        }
        let confidence = ind.confidence.get().to_string();
        let expires = ind.expires_at.as_ref().map(rfc3339).unwrap_or_default();
        w.write_record([
            ind.observable.kind().as_str(),
            ind.observable.value(),
            ind.threat_type.as_str(),
            ind.family.as_ref().map_or("", |f| f.as_str()),
            &confidence,
            ind.tlp.as_str(),
            &rfc3339(&ind.first_seen),
            &rfc3339(&ind.last_seen),
            &expires,
            &sources,
        ])
        .map_err(csv_error)?;
        n += 1;
    }
    w.flush()?;
    Ok(n)
}

fn csv_error(e: ::csv::Error) -> Error {
    Error::Io(e.into())
}
