//! `khien` — one binary, several roles. This crate only parses arguments and
//! calls the libraries; see ARCHITECTURE.md for where the work happens.
//!
//! Exit codes: 0 success; 1 findings (e.g. `intel search` found an active
//! indicator); 2 error (bad arguments, unreadable input, `--strict` abort).

mod admin;
mod cli;
mod demo;
mod i18n;
mod intel;
mod logging;
mod output;
mod sensor;
mod serve;

use std::process::ExitCode;

use clap::Parser;

// Import and export hand records between two threads; glibc's allocator
// serialises such cross-thread frees on one arena lock, mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    i18n::init(args.lang);
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&err);
            ExitCode::from(2)
        }
    }
}

fn run(args: cli::Cli) -> anyhow::Result<ExitCode> {
    match args.command {
        cli::Command::Intel(cmd) => intel::run(&args.global, cmd),
        cli::Command::Serve(serve_args) => serve::run(&args.global, serve_args),
        cli::Command::Sensor(sensor_args) => sensor::run(&args.global, sensor_args),
        cli::Command::Admin(cmd) => admin::run(&args.global, cmd),
    }
}
