//! `khien serve` (being written).

use std::process::ExitCode;

use clap::Args;

use crate::cli::Global;

#[derive(Debug, Args)]
pub struct ServeArgs {}

pub fn run(_global: &Global, _args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet available")
}
