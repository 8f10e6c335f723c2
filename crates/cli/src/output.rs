//! Printing to the terminal: results on stdout, progress and errors on
//! stderr, so `--json` output can be piped.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use crate::i18n::t;

pub fn print_error(err: &anyhow::Error) {
    eprintln!("{}: {err}", t("error.prefix", &[]));
    for cause in err.chain().skip(1) {
        eprintln!("  {}: {cause}", t("error.cause", &[]));
    }
}

pub fn line(text: &str) {
    println!("{text}");
}

pub fn note(text: &str) {
    eprintln!("{text}");
}

pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
