//! Log lines of the long-running commands (`serve`, `sensor`) go to
//! standard error, one event per line; `KHIEN_LOG` filters them
//! (`info` by default, e.g. `KHIEN_LOG=debug` or `KHIEN_LOG=warn`), and
//! `KHIEN_LOG_FORMAT=json` makes them JSON for a log collector.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("KHIEN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("KHIEN_LOG_FORMAT").is_ok_and(|v| v == "json");
    // A second init (tests calling run twice) is harmless; ignore it.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
