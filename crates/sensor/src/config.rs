//! The sensor's configuration: a TOML file (unknown keys rejected) or the
//! quick command-line form, both ending in one [`SensorConfig`].
//!
//! Field doc comments are the user documentation of the config file
//! (`docs/sensor.md` shows a complete example).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use khien_telemetry::LineFormat;
use serde::Deserialize;

use crate::Error;

/// A whole sensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// Name of this sensor, as the hub knows it (its API key's name).
    /// Default: the host name.
    #[serde(default = "default_sensor_name")]
    pub sensor: String,
    /// Where file positions, the spool and the cached snapshot live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Width of an aggregation bucket in seconds (default one hour).
    #[serde(default = "default_bucket_seconds")]
    pub bucket_seconds: u32,
    /// How often aggregated hits are handed to the outputs and file
    /// positions are saved, in seconds (default 60). A bucket that is still
    /// open is shipped in parts; the hub adds the parts up.
    #[serde(default = "default_flush_seconds")]
    pub flush_seconds: u64,
    /// Matching threads (default: one per core).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Read file and stdin inputs to their end, flush every bucket and
    /// exit; network inputs are not allowed. For replaying old logs.
    #[serde(default)]
    pub once: bool,
    pub snapshot: SnapshotConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default, rename = "input")]
    pub inputs: Vec<InputConfig>,
    #[serde(default, rename = "output")]
    pub outputs: Vec<OutputConfig>,
}

/// Where the match snapshot comes from. A file is watched and swapped in
/// when it changes; a hub URL is polled with `If-None-Match`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// A snapshot file written by `khien intel snapshot`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The hub's snapshot URL (`…/api/v1/snapshots/latest`); needs the
    /// API key of a hub output (or `api_key_env`).
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the API key for `url` when no hub
    /// output is configured.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// How often to look for a new snapshot, in seconds (default 30).
    #[serde(default = "default_snapshot_refresh")]
    pub refresh_seconds: u64,
}

/// Prometheus metrics and the periodic log line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address for `GET /metrics`, e.g. `127.0.0.1:9108`. Off when unset.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Seconds between log lines with the counters (0 = never; default 60).
    #[serde(default = "default_log_seconds")]
    pub log_seconds: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: None,
            log_seconds: default_log_seconds(),
        }
    }
}

/// Which dnstap messages count as a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsMessages {
    /// Client queries (`dnstap-log-client-query-messages`); the default.
    #[default]
    Queries,
    /// Client responses, for resolvers that log only those.
    Responses,
}

/// One telemetry input.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum InputConfig {
    /// dnstap over Frame Streams, bidirectional (Unbound, BIND, Knot,
    /// PowerDNS connect here).
    Dnstap {
        /// Unix socket path to listen on (replaced if it exists).
        #[serde(default)]
        unix: Option<PathBuf>,
        /// TCP address to listen on.
        #[serde(default)]
        tcp: Option<SocketAddr>,
        #[serde(default)]
        messages: DnsMessages,
    },
    /// NetFlow v5/v9 and IPFIX datagrams.
    Netflow {
        /// UDP address to listen on, e.g. `0.0.0.0:2055`.
        udp: SocketAddr,
    },
    /// A log file, followed across rotation like `tail -F`; the read
    /// position is saved in the state directory.
    File {
        path: PathBuf,
        /// `unbound`, `bind`, `dnsmasq`, `zeek`, `zeek-json`, `eve`,
        /// `csv:FIELDS`, `json:FIELDS` (see docs/telemetry-formats.md).
        format: String,
    },
    /// Standard input, in one of the file formats.
    Stdin { format: String },
}

/// One place hits go.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum OutputConfig {
    /// One JSON hit per line, appended to `path` (`-` = standard output).
    Ndjson { path: PathBuf },
    /// The hub's `POST /api/v1/hits`, through the disk spool.
    Hub {
        /// Base URL of the hub, e.g. `https://hub.example.vn`.
        url: String,
        /// Environment variable holding the API key (default
        /// `KHIEN_API_KEY`).
        #[serde(default = "default_api_key_env")]
        api_key_env: String,
        /// File holding the API key; read at start, wins over the variable.
        #[serde(default)]
        api_key_file: Option<PathBuf>,
        /// Most bytes the spool may hold before the oldest batches are
        /// dropped (default 1 GiB).
        #[serde(default = "default_spool_max_bytes")]
        spool_max_bytes: u64,
        /// Request timeout in seconds (default 30).
        #[serde(default = "default_hub_timeout")]
        timeout_seconds: u64,
    },
}

fn default_sensor_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sensor".to_owned())
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("khien-data/sensor")
}
fn default_bucket_seconds() -> u32 {
    3600
}
fn default_flush_seconds() -> u64 {
    60
}
fn default_snapshot_refresh() -> u64 {
    30
}
fn default_log_seconds() -> u64 {
    60
}
fn default_api_key_env() -> String {
    "KHIEN_API_KEY".to_owned()
}
fn default_spool_max_bytes() -> u64 {
    1 << 30
}
fn default_hub_timeout() -> u64 {
    30
}

impl SensorConfig {
    /// Parses a TOML config file's text; errors name the key and line.
    pub fn from_toml(text: &str) -> Result<SensorConfig, Error> {
        let config: SensorConfig =
            toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// A config from the quick command-line form, with defaults for the rest.
    pub fn quick(
        snapshot: &str,
        inputs: Vec<InputConfig>,
        outputs: Vec<OutputConfig>,
    ) -> SensorConfig {
        let snapshot = if snapshot.starts_with("http://") || snapshot.starts_with("https://") {
            SnapshotConfig {
                file: None,
                url: Some(snapshot.to_owned()),
                api_key_env: None,
                refresh_seconds: default_snapshot_refresh(),
            }
        } else {
            SnapshotConfig {
                file: Some(PathBuf::from(snapshot)),
                url: None,
                api_key_env: None,
                refresh_seconds: default_snapshot_refresh(),
            }
        };
        SensorConfig {
            sensor: default_sensor_name(),
            state_dir: default_state_dir(),
            bucket_seconds: default_bucket_seconds(),
            flush_seconds: default_flush_seconds(),
            workers: None,
            once: false,
            snapshot,
            metrics: MetricsConfig::default(),
            inputs,
            outputs,
        }
    }

    /// Checks what serde cannot: consistent choices across fields.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.sensor.is_empty() || self.sensor.len() > 128 {
            return bad("`sensor` must be 1 to 128 characters".into());
        }
        if self.bucket_seconds == 0 {
            return bad("`bucket_seconds` must be at least 1".into());
        }
        if self.flush_seconds == 0 {
            return bad("`flush_seconds` must be at least 1".into());
        }
        if self.workers == Some(0) {
            return bad("`workers` must be at least 1".into());
        }
        match (&self.snapshot.file, &self.snapshot.url) {
            (Some(_), Some(_)) => return bad("`snapshot`: give `file` or `url`, not both".into()),
            (None, None) => return bad("`snapshot`: give `file` or `url`".into()),
            _ => {}
        }
        if self.inputs.is_empty() {
            return bad("no input: add at least one `[[input]]` (or --input)".into());
        }
        if self.outputs.is_empty() {
            return bad("no output: add at least one `[[output]]` (or --output)".into());
        }
        let mut stdin = 0;
        for (i, input) in self.inputs.iter().enumerate() {
            let n = i + 1;
            match input {
                InputConfig::Dnstap { unix, tcp, .. } => {
                    if unix.is_some() == tcp.is_some() {
                        return bad(format!("input {n} (dnstap): give `unix` or `tcp`"));
                    }
                    if self.once {
                        return bad(format!("input {n}: --once reads files and stdin only"));
                    }
                }
                InputConfig::Netflow { .. } => {
                    if self.once {
                        return bad(format!("input {n}: --once reads files and stdin only"));
                    }
                }
                InputConfig::File { format, .. } | InputConfig::Stdin { format } => {
                    LineFormat::from_str(format)
                        .map_err(|e| Error::Config(format!("input {n}: format `{format}`: {e}")))?;
                    if matches!(input, InputConfig::Stdin { .. }) {
                        stdin += 1;
                    }
                }
            }
        }
        if stdin > 1 {
            return bad("standard input can be read by one input only".into());
        }
        let stdout = self
            .outputs
            .iter()
            .filter(|o| matches!(o, OutputConfig::Ndjson { path } if path.as_os_str() == "-"))
            .count();
        if stdout > 1 {
            return bad("standard output can be written by one output only".into());
        }
        Ok(())
    }
}

impl FromStr for InputConfig {
    type Err = Error;

    /// `dnstap:unix:PATH`, `dnstap:tcp:ADDR`, `netflow:udp:ADDR` (also
    /// `ipfix:udp:ADDR`), `file:PATH:FORMAT`, `stdin:FORMAT`.
    fn from_str(spec: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Config(format!("--input `{spec}`: {why}"));
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| bad("expected KIND:…, e.g. file:/var/log/unbound.log:unbound"))?;
        match kind {
            "dnstap" => match rest.split_once(':') {
                Some(("unix", path)) if !path.is_empty() => Ok(InputConfig::Dnstap {
                    unix: Some(PathBuf::from(path)),
                    tcp: None,
                    messages: DnsMessages::Queries,
                }),
                Some(("tcp", addr)) => Ok(InputConfig::Dnstap {
                    unix: None,
                    tcp: Some(addr.parse().map_err(|_| bad("bad TCP address"))?),
                    messages: DnsMessages::Queries,
                }),
                _ => Err(bad("expected dnstap:unix:PATH or dnstap:tcp:ADDR:PORT")),
            },
            "netflow" | "ipfix" => match rest.split_once(':') {
                Some(("udp", addr)) => Ok(InputConfig::Netflow {
                    udp: addr.parse().map_err(|_| bad("bad UDP address"))?,
                }),
                _ => Err(bad("expected netflow:udp:ADDR:PORT")),
            },
            "file" => {
                // The path may itself hold ':'; the format is the shortest
                // tail that names one (`csv:…` and `json:…` hold ':' too).
                for (i, _) in rest.match_indices(':') {
                    let (path, format) = (&rest[..i], &rest[i + 1..]);
                    if !path.is_empty() && LineFormat::from_str(format).is_ok() {
                        return Ok(InputConfig::File {
                            path: PathBuf::from(path),
                            format: format.to_owned(),
                        });
                    }
                }
                Err(bad("expected file:PATH:FORMAT with a known format"))
            }
            "stdin" => {
                LineFormat::from_str(rest).map_err(|e| bad(&e.to_string()))?;
                Ok(InputConfig::Stdin {
                    format: rest.to_owned(),
                })
            }
            _ => Err(bad("unknown kind; use dnstap, netflow, file or stdin")),
        }
    }
}

impl FromStr for OutputConfig {
    type Err = Error;

    /// `ndjson:-`, `ndjson:PATH`, `hub:URL`.
    fn from_str(spec: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Config(format!("--output `{spec}`: {why}"));
        match spec.split_once(':') {
            Some(("ndjson", path)) if !path.is_empty() => Ok(OutputConfig::Ndjson {
                path: PathBuf::from(path),
            }),
            Some(("hub", url)) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(OutputConfig::Hub {
                    url: url.trim_end_matches('/').to_owned(),
                    api_key_env: default_api_key_env(),
                    api_key_file: None,
                    spool_max_bytes: default_spool_max_bytes(),
                    timeout_seconds: default_hub_timeout(),
                })
            }
            Some(("hub", _)) => Err(bad("the hub URL must start with http:// or https://")),
            _ => Err(bad("expected ndjson:- , ndjson:PATH or hub:URL")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_inputs_parse() {
        let i: InputConfig = "file:/var/log/a:b.log:unbound".parse().unwrap();
        assert!(
            matches!(i, InputConfig::File { ref path, ref format } if path == &PathBuf::from("/var/log/a:b.log") && format == "unbound")
        );
        let i: InputConfig = "netflow:udp:127.0.0.1:2055".parse().unwrap();
        assert!(matches!(i, InputConfig::Netflow { udp } if udp.port() == 2055));
        let i: InputConfig = "dnstap:unix:/run/dnstap.sock".parse().unwrap();
        assert!(matches!(i, InputConfig::Dnstap { unix: Some(_), .. }));
        assert!("file:/x:nonsense".parse::<InputConfig>().is_err());
        assert!("udp:1".parse::<InputConfig>().is_err());
    }

    #[test]
    fn config_file_rejects_unknown_keys_with_line() {
        let text = r#"
sensor = "s1"
[snapshot]
file = "snap.bin"
[[input]]
type = "file"
path = "a.log"
format = "unbound"
colour = "blue"
[[output]]
type = "ndjson"
path = "-"
"#;
        let err = SensorConfig::from_toml(text).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        // Internally tagged tables report the line of their header.
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn config_file_round_trips_every_input_kind() {
        let text = r#"
sensor = "resolver-hn-1"
bucket_seconds = 600
[snapshot]
url = "http://127.0.0.1:8080/api/v1/snapshots/latest"
[metrics]
listen = "127.0.0.1:9108"
[[input]]
type = "dnstap"
unix = "/run/khien/dnstap.sock"
[[input]]
type = "netflow"
udp = "0.0.0.0:2055"
[[input]]
type = "stdin"
format = "bind"
[[output]]
type = "hub"
url = "http://127.0.0.1:8080"
"#;
        let c = SensorConfig::from_toml(text).unwrap();
        assert_eq!(c.bucket_seconds, 600);
        assert_eq!(c.inputs.len(), 3);
        assert!(
            matches!(c.outputs[0], OutputConfig::Hub { spool_max_bytes, .. } if spool_max_bytes == 1 << 30)
        );
    }

    #[test]
    fn once_refuses_network_inputs() {
        let mut c = SensorConfig::quick(
            "s.bin",
            vec!["netflow:udp:127.0.0.1:2055".parse().unwrap()],
            vec!["ndjson:-".parse().unwrap()],
        );
        c.once = true;
        assert!(c.validate().unwrap_err().to_string().contains("--once"));
    }
}
