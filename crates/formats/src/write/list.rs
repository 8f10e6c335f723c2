//! A plain list: one normalised value per line, `\n`-terminated, the input
//! every firewall, proxy and grep understands. Nothing else is written so
//! that the file can be fed to tools that treat every line as a value.

use std::borrow::Borrow;
use std::io::Write;

use khien_model::Indicator;

use crate::Error;

/// Writes each indicator's value on its own line; returns how many.
pub fn write_list<W, I>(mut out: W, indicators: I) -> Result<u64, Error>
where
    W: Write,
    I: IntoIterator,
    I::Item: Borrow<Indicator>,
{
    let mut n = 0;
    for ind in indicators {
        let ind = ind.borrow();
        out.write_all(ind.observable.value().as_bytes())?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}
