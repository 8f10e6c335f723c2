//! `khien serve`: runs the hub (`khien-hub`) until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use khien_hub::HubConfig;

use crate::cli::Global;
use crate::i18n::t;
use crate::output;

/// The default of the global `--database` (in `cli.rs`): any other value
/// was given on purpose and overrides the configuration file.
const DEFAULT_DATABASE: &str = "khien-data/khien.db";

/// How long shutdown waits for a snapshot build still running.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (default 127.0.0.1:8080; port 0
    /// picks a free one, printed at start).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file (see docs/hub-api.md); flags given here
    /// override it. A `--database` (or KHIEN_DATABASE) other than the
    /// default overrides its `database`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seconds between checks for changed indicators (snapshot rebuild).
    #[arg(long, value_name = "SECONDS")]
    pub snapshot_refresh: Option<u64>,
}

pub fn run(global: &Global, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => HubConfig::load(path)?,
        None => HubConfig::default(),
    };
    if args.config.is_none() || global.database != DEFAULT_DATABASE {
        config.database.clone_from(&global.database);
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(s) = args.snapshot_refresh {
        config.snapshot_refresh_seconds = s;
    }
    crate::logging::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("khien-hub")
        .build()
        .context("starting the async runtime")?;
    let json = global.json;
    let result = runtime.block_on(async move {
        let hub = config.build().await.context("starting the hub")?;
        let addr = hub.local_addr();
        if json {
            output::json(&serde_json::json!({ "listen": addr.to_string() }))?;
        } else {
            output::line(&t("serve.listening", &[("addr", &addr)]));
        }
        hub.run(khien_hub::shutdown_signal()).await?;
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    result?;
    output::note(&t("serve.stopped", &[]));
    Ok(ExitCode::SUCCESS)
}
