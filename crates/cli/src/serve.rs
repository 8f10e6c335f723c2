//! `khien serve`: runs the hub (`khien-hub`) until Ctrl-C or SIGTERM, and
//! the configuration every hub-side command (`serve`, `admin`) shares.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use khien_hub::{HubConfig, SecretsSource};

use crate::cli::Global;
use crate::i18n::t;
use crate::output;

/// The default of the global `--database` (in `cli.rs`): any other value
/// was given on purpose and overrides the configuration file.
pub const DEFAULT_DATABASE: &str = "khien-data/khien.db";

/// How long shutdown waits for a snapshot build still running.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Where a hub-side command finds its configuration.
#[derive(Debug, Args, Clone, Default)]
pub struct HubArgs {
    /// TOML configuration file of the hub (see docs/hub.md); flags given
    /// here override it. A `--database` (or KHIEN_DATABASE) other than the
    /// default overrides its `database`.
    #[arg(long, value_name = "FILE", env = "KHIEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// The hub's data directory: its SQLite database and `secrets.toml`
    /// (default `khien-data`).
    #[arg(long, value_name = "DIR", env = "KHIEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl HubArgs {
    /// The hub configuration these flags and `global` describe.
    pub fn config(&self, global: &Global) -> anyhow::Result<HubConfig> {
        let mut config = match &self.config {
            Some(path) => HubConfig::load(path)?,
            None => HubConfig::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        if global.database != DEFAULT_DATABASE {
            config.database.clone_from(&global.database);
        }
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Address and port to listen on (default 127.0.0.1:8080; port 0
    /// picks a free one, printed at start).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Seconds between checks for changed indicators (snapshot rebuild).
    #[arg(long, value_name = "SECONDS")]
    pub snapshot_refresh: Option<u64>,
    /// Load a demo operator with real indicators, subscribers and address
    /// logs, and replay a sample resolver log through the sensor, so that
    /// cases show at once.
    #[arg(long)]
    pub demo: bool,
}

pub fn run(global: &Global, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.hub.config(global)?;
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
    let demo = args.demo;
    if demo {
        crate::demo::prepare(&mut config).context("preparing the demo")?;
    }
    let result = runtime.block_on(async move {
        let hub = config.clone().build().await.context("starting the hub")?;
        let addr = hub.local_addr();
        if let SecretsSource::File {
            path,
            created: true,
        } = hub.secrets_source()
        {
            output::note(&t("serve.secrets_created", &[("path", &path.display())]));
        }
        let first = hub.first_start().cloned();
        if json {
            output::json(&serde_json::json!({
                "listen": addr.to_string(),
                "admin": first.as_ref().map(|f| &f.email),
                "setup_token": first.as_ref().map(|f| &f.setup_token),
            }))?;
        } else {
            output::line(&t("serve.listening", &[("addr", &addr)]));
            if let Some(f) = &first {
                output::line(&t(
                    "serve.first_admin",
                    &[
                        ("email", &f.email),
                        ("token", &f.setup_token),
                        ("addr", &addr),
                    ],
                ));
            }
        }
        let notice = hub.notice_addrs().first().copied();
        let handle = hub.spawn();
        if demo {
            let base = format!("http://{addr}");
            let c = config.clone();
            let report = tokio::task::spawn_blocking(move || crate::demo::load(&c, &base, notice))
                .await
                .context("the demo")??;
            report.print(json)?;
        }
        khien_hub::shutdown_signal().await;
        handle.shutdown().await?;
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    result?;
    output::note(&t("serve.stopped", &[]));
    Ok(ExitCode::SUCCESS)
}
