//! `khien intel export`: streams indicators from the store into a writer.
//!
//! The store runs on a second thread and hands indicators over a bounded
//! channel, so a million-row export holds a few thousand rows in memory and
//! reading and formatting overlap. Files are written under a temporary name
//! and renamed into place: a resolver reloading the zone never sees half a
//! file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::{Context, bail};
use khien_formats::write::{
    self, MispFeedOptions, RpzAction, RpzOptions, StixOptions, WalledGarden,
};
use khien_model::Indicator;

use crate::cli::{ExportArgs, ExportFormat, Global};
use crate::i18n::t;
use crate::output;

use super::{filter_from, open_store};

/// Chunks in flight between the store thread and the writer, and their size.
const CHANNEL_DEPTH: usize = 4;
const CHUNK: usize = 2048;

pub fn run(global: &Global, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let filter = filter_from(&args.filter)?;
    let rpz_action = parse_rpz_action(&args.rpz_action)?;
    let mut store = open_store(global)?;
    let format_name = format!("{:?}", args.format).to_lowercase();

    // Indicators cross in chunks: one hand-over per indicator would spend
    // more time waking threads than writing.
    let (tx, rx) = mpsc::sync_channel::<Vec<Indicator>>(CHANNEL_DEPTH);
    let (summary, count) =
        std::thread::scope(|scope| -> anyhow::Result<(serde_json::Value, u64)> {
            let reader = scope.spawn(move || {
                let mut chunk = Vec::with_capacity(CHUNK);
                let n = store.for_each_indicator(&filter, &mut |ind| {
                    chunk.push(ind);
                    if chunk.len() == CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        // A closed channel means the writer failed; its error
                        // is the one to report, so stop quietly.
                        tx.send(full).map_err(|_| {
                            khien_store::Error::Callback("export writer stopped".into())
                        })?;
                    }
                    Ok(())
                })?;
                if !chunk.is_empty() {
                    let _ = tx.send(chunk);
                }
                Ok::<u64, khien_store::Error>(n)
            });
            let written = write_all(&args, rpz_action, rx.into_iter().flatten());
            let read = reader
                .join()
                .map_err(|_| anyhow::anyhow!("the store thread panicked"))?;
            let written = written?;
            let count = match read {
                Ok(n) => n,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context("reading indicators from the store"));
                }
            };
            Ok((written, count))
        })?;

    if global.json {
        output::json(&serde_json::json!({
            "format": format_name,
            "out": args.out.display().to_string(),
            "indicators": count,
            "written": summary,
        }))?;
    } else {
        output::note(&t(
            "export.done",
            &[
                ("count", &count),
                ("path", &args.out.display()),
                ("format", &format_name),
            ],
        ));
        if args.format == ExportFormat::Rpz {
            let n = |k: &str| summary[k].as_u64().unwrap_or(0);
            output::note(&t(
                "export.rpz",
                &[
                    ("domains", &n("domains")),
                    ("ips", &(n("ipv4") + n("ipv6"))),
                    ("cidrs", &n("cidrs")),
                    ("skipped", &(n("skipped") + n("invalid"))),
                ],
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_all(
    args: &ExportArgs,
    rpz_action: RpzAction,
    indicators: impl Iterator<Item = Indicator>,
) -> anyhow::Result<serde_json::Value> {
    if args.format == ExportFormat::Misp {
        let options = MispFeedOptions {
            org_name: args.producer.clone(),
            info_prefix: args.producer.clone(),
            ..MispFeedOptions::default()
        };
        let s = write::write_misp_feed(&args.out, indicators, &options)
            .with_context(|| format!("writing MISP feed to {}", args.out.display()))?;
        return Ok(serde_json::json!({ "events": s.events.len(), "attributes": s.attributes }));
    }
    let mut out = Output::create(&args.out)?;
    let summary = match args.format {
        ExportFormat::Rpz => {
            let serial = u32::try_from(chrono::Utc::now().timestamp()).unwrap_or(u32::MAX);
            let mut options = RpzOptions::new(serial);
            options.action = rpz_action;
            options.zone = args.zone_name.clone();
            let s = write::write_rpz(&mut out, indicators, &options)?;
            serde_json::json!({
                "domains": s.domains, "ipv4": s.ipv4, "ipv6": s.ipv6, "cidrs": s.cidrs,
                "skipped": s.skipped, "invalid": s.invalid,
            })
        }
        ExportFormat::Stix => {
            let options = StixOptions {
                producer: args.producer.clone(),
                ..StixOptions::default()
            };
            let s = write::write_stix(&mut out, indicators, &options)?;
            serde_json::json!({ "indicators": s.indicators, "skipped": s.skipped })
        }
        ExportFormat::Csv => serde_json::json!({ "rows": write::write_csv(&mut out, indicators)? }),
        ExportFormat::List => {
            serde_json::json!({ "lines": write::write_list(&mut out, indicators)? })
        }
        ExportFormat::Misp => bail!("a MISP feed is a directory, written above"),
    };
    out.finish()?;
    Ok(summary)
}

/// `nxdomain`, `nodata`, `drop`, or `garden:<IPv4|IPv6|host name>`.
fn parse_rpz_action(s: &str) -> anyhow::Result<RpzAction> {
    Ok(match s {
        "nxdomain" => RpzAction::Nxdomain,
        "nodata" => RpzAction::Nodata,
        "drop" => RpzAction::Drop,
        _ => {
            let Some(target) = s.strip_prefix("garden:") else {
                bail!("--rpz-action {s:?}: expected nxdomain, nodata, drop or garden:ADDRESS|NAME");
            };
            match target.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) => RpzAction::WalledGarden(WalledGarden::Address {
                    ipv4: Some(v4),
                    ipv6: None,
                }),
                Ok(IpAddr::V6(v6)) => RpzAction::WalledGarden(WalledGarden::Address {
                    ipv4: None,
                    ipv6: Some(v6),
                }),
                Err(_) => {
                    let name = khien_model::normalize_domain(target)
                        .with_context(|| format!("--rpz-action garden:{target}"))?;
                    RpzAction::WalledGarden(WalledGarden::Cname(name))
                }
            }
        }
    })
}

/// Standard output, or a file written under a temporary name and renamed
/// into place by [`Output::finish`]; dropped unfinished, it removes the
/// temporary file.
struct Output {
    sink: Sink,
    /// (temporary, destination) for files.
    paths: Option<(PathBuf, PathBuf)>,
}

enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    File(BufWriter<File>),
}

impl Output {
    fn create(path: &Path) -> anyhow::Result<Self> {
        if path == Path::new("-") {
            return Ok(Self {
                sink: Sink::Stdout(BufWriter::with_capacity(1 << 20, std::io::stdout())),
                paths: None,
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Self {
            sink: Sink::File(BufWriter::with_capacity(1 << 20, file)),
            paths: Some((tmp, path.to_path_buf())),
        })
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.flush().context("writing the export")?;
        if let Sink::File(w) = &self.sink {
            w.get_ref().sync_all().context("syncing the export")?;
        }
        if let Some((tmp, dest)) = self.paths.take() {
            std::fs::rename(&tmp, &dest)
                .with_context(|| format!("renaming into {}", dest.display()))?;
        }
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.sink {
            Sink::Stdout(w) => w.write(buf),
            Sink::File(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Stdout(w) => w.flush(),
            Sink::File(w) => w.flush(),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some((tmp, _)) = &self.paths {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
