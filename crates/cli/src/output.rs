//! Printing to the terminal: results on stdout, progress and errors on
//! stderr, so `--json` output can be piped.
//!
//! A reader that goes away (`khien … | head -1`, a supervisor that read
//! the first line) must not crash a long-running command: write errors on
//! these streams are ignored instead of panicking as `println!` does.

use std::io::Write;

use crate::i18n::t;

pub fn print_error(err: &anyhow::Error) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{}: {err}", t("error.prefix", &[]));
    for cause in err.chain().skip(1) {
        let _ = writeln!(e, "  {}: {cause}", t("error.cause", &[]));
    }
}

pub fn line(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}
