//! `khien sensor` (being written).

use std::process::ExitCode;

use clap::Args;

use crate::cli::Global;

#[derive(Debug, Args)]
pub struct SensorArgs {}

pub fn run(_global: &Global, _args: SensorArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet available")
}
