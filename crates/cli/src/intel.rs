//! `khien intel …`: glue between the format readers/writers, the
//! warninglists and the store. Batching and counting live here; parsing and
//! persistence do not.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::Utc;
use khien_formats::read::{self, CsvMapping, Format, ImportDefaults, ReadEvent};
use khien_formats::warninglist::WarninglistSet;
use khien_model::{
    Confidence, Family, IndicatorRecord, Observable, ObservableKind, ThreatType, Tlp,
};
use khien_store::{IndicatorFilter, Store};
use serde::Serialize;

use crate::cli::Global;
use crate::cli::{
    ExactHostArgs, ExpireArgs, FilterArgs, ImportArgs, ImportFormat, IntelCommand, SearchArgs,
    SnapshotArgs, WarninglistArgs,
};
use crate::i18n::t;
use crate::output;

mod export;

/// How many rejected records are shown with their location; all are counted.
const REJECTIONS_SHOWN: usize = 20;

pub fn run(global: &Global, cmd: IntelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        IntelCommand::Import(args) => import(global, args),
        IntelCommand::Export(args) => export::run(global, args),
        IntelCommand::Search(args) => search(global, args),
        IntelCommand::Stats => stats(global),
        IntelCommand::Expire(args) => expire(global, args),
        IntelCommand::Allowlist(args) => reapply_allowlist(global, args),
        IntelCommand::Snapshot(args) => snapshot(global, args),
        IntelCommand::ExactHost(args) => exact_host(global, args),
    }
}

pub fn open_store(global: &Global) -> anyhow::Result<Store> {
    Store::open(&global.database)
        .with_context(|| format!("opening database {}", redact(&global.database)))
}

/// Hides a password in a database URL before it reaches a terminal or log.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The warninglists in force: the embedded defaults (unless turned off)
/// followed by the operator's own directories.
pub struct Warninglists {
    default: Option<&'static WarninglistSet>,
    sets: Vec<WarninglistSet>,
}

impl Warninglists {
    pub fn load(args: &WarninglistArgs) -> anyhow::Result<Self> {
        let mut sets = Vec::new();
        for dir in &args.warninglists {
            sets.push(
                WarninglistSet::load_dir(dir)
                    .with_context(|| format!("loading warninglists from {}", dir.display()))?,
            );
        }
        let default = if args.no_default_warninglists {
            None
        } else {
            Some(WarninglistSet::embedded_default()?)
        };
        Ok(Self { default, sets })
    }

    pub fn check(&self, observable: &Observable) -> Option<String> {
        self.default
            .into_iter()
            .chain(&self.sets)
            .find_map(|s| s.check(observable))
            .map(str::to_string)
    }
}

#[derive(Debug, Default, Serialize)]
struct ImportReport {
    path: String,
    format: String,
    read: u64,
    new: u64,
    updated: u64,
    unchanged: u64,
    allowlisted: u64,
    skipped: BTreeMap<String, u64>,
    rejected: u64,
    rejections: Vec<Rejection>,
}

#[derive(Debug, Serialize)]
struct Rejection {
    location: String,
    reason: String,
}

impl ImportReport {
    fn add(&mut self, o: Stored) {
        self.new += o.new;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.allowlisted += o.allowlisted;
    }

    fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn summary(&self) -> String {
        t(
            "import.summary",
            &[
                ("read", &self.read),
                ("new", &self.new),
                ("updated", &self.updated),
                ("unchanged", &self.unchanged),
                ("allowlisted", &self.allowlisted),
                ("skipped", &self.skipped_total()),
                ("rejected", &self.rejected),
            ],
        )
    }
}

fn defaults_for(args: &ImportArgs, path: &Path) -> anyhow::Result<ImportDefaults> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| s != "-" && !s.is_empty())
        .unwrap_or_else(|| "stdin".to_string());
    let family = if args.family_from_file_name {
        Some(Family::new(&stem).with_context(|| format!("family from file name {stem:?}"))?)
    } else {
        args.family
            .as_deref()
            .map(Family::new)
            .transpose()
            .context("--family")?
    };
    Ok(ImportDefaults {
        source: args.source.clone().unwrap_or(stem),
        tlp: args
            .tlp
            .as_deref()
            .map(str::parse::<Tlp>)
            .transpose()
            .context("--tlp")?
            .unwrap_or(Tlp::Amber),
        confidence: args
            .confidence
            .map(Confidence::new)
            .transpose()
            .context("--confidence")?
            .unwrap_or_default(),
        family,
        threat_type: args
            .threat_type
            .as_deref()
            .map(str::parse::<ThreatType>)
            .transpose()
            .context("--type")?
            .unwrap_or_default(),
        now: Utc::now(),
        force: args.force,
        include_not_for_detection: args.include_not_for_detection,
    })
}

fn import(global: &Global, args: ImportArgs) -> anyhow::Result<ExitCode> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let warninglists = Warninglists::load(&args.warninglists)?;
    let mut store = open_store(global)?;
    let started = Instant::now();
    // With --strict the whole run is one transaction: the first bad record
    // in any file aborts it and nothing is written.
    let mut importer = store.import(args.strict)?;
    importer.mark_exact_host(args.exact_host);
    // Two threads: this one reads, parses and checks warninglists; the
    // writer stores. A bounded channel keeps at most two batches in flight.
    let reports = std::thread::scope(|scope| -> anyhow::Result<Vec<ImportReport>> {
        let (tx, rx) = mpsc::sync_channel::<Batch>(2);
        let file_count = args.paths.len();
        let writer = scope.spawn(move || store_batches(importer, rx, file_count));
        let mut reports = Vec::new();
        let mut failure = None;
        for path in &args.paths {
            let read = defaults_for(&args, path).and_then(|defaults| {
                import_one(path, reports.len(), &args, &defaults, &warninglists, &tx)
            });
            match read {
                Ok(report) => reports.push(report),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let stored = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the store thread panicked"))?;
        // A store error explains a reader that was stopped, so it comes first.
        let (importer, counts) = stored?;
        if let Some(e) = failure {
            return Err(e);
        }
        importer.commit()?;
        for (report, c) in reports.iter_mut().zip(counts) {
            report.add(c);
        }
        Ok(reports)
    })?;
    if !global.json {
        for report in &reports {
            print_file_report(report);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut total = ImportReport {
        path: t("import.total", &[]),
        ..Default::default()
    };
    for r in &reports {
        total.read += r.read;
        total.new += r.new;
        total.updated += r.updated;
        total.unchanged += r.unchanged;
        total.allowlisted += r.allowlisted;
        total.rejected += r.rejected;
        for (k, v) in &r.skipped {
            *total.skipped.entry(k.clone()).or_default() += v;
        }
    }
    if global.json {
        output::json(&serde_json::json!({
            "files": reports,
            "total": total,
            "seconds": elapsed,
        }))?;
    } else {
        output::line(&format!("{}: {}", total.path, total.summary()));
        let rate = if elapsed > 0.0 {
            (total.read as f64 / elapsed) as u64
        } else {
            total.read
        };
        output::note(&t(
            "import.rate",
            &[
                ("count", &total.read),
                ("seconds", &format!("{elapsed:.2}")),
                ("rate", &rate),
            ],
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// One batch on its way to the store. Allow-listed records travel apart so
/// the report can count them apart from new and updated ones: users read
/// "new" as "will be blocked".
struct Batch {
    file: usize,
    records: Vec<IndicatorRecord>,
    listed: Vec<IndicatorRecord>,
    verdicts: Vec<Option<String>>,
}

/// Per-file store counts, as the writer thread saw them.
#[derive(Debug, Default, Clone, Copy)]
struct Stored {
    new: u64,
    updated: u64,
    unchanged: u64,
    allowlisted: u64,
}

fn store_batches<'s>(
    mut importer: khien_store::Importer<'s>,
    rx: mpsc::Receiver<Batch>,
    files: usize,
) -> anyhow::Result<(khien_store::Importer<'s>, Vec<Stored>)> {
    let mut counts = vec![Stored::default(); files];
    let mut none: Vec<Option<String>> = Vec::new();
    for batch in rx {
        let c = &mut counts[batch.file];
        if !batch.records.is_empty() {
            none.resize(batch.records.len(), None);
            let o = importer.add_batch(&batch.records, &none[..batch.records.len()])?;
            c.new += o.new;
            c.updated += o.updated;
            c.unchanged += o.unchanged;
        }
        if !batch.listed.is_empty() {
            importer.add_batch(&batch.listed, &batch.verdicts)?;
            c.allowlisted += batch.listed.len() as u64;
        }
    }
    Ok((importer, counts))
}

fn print_file_report(report: &ImportReport) {
    output::note(&format!("{}: {}", report.path, report.summary()));
    for (reason, count) in &report.skipped {
        output::note(&format!(
            "  {}",
            t("import.skipped", &[("reason", reason), ("count", count)])
        ));
    }
    for r in &report.rejections {
        output::note(&format!(
            "  {}",
            t(
                "import.rejected",
                &[("location", &r.location), ("reason", &r.reason)]
            )
        ));
    }
    let hidden = report
        .rejected
        .saturating_sub(report.rejections.len() as u64);
    if hidden > 0 {
        output::note(&format!(
            "  {}",
            t("import.rejected_more", &[("count", &hidden)])
        ));
    }
}

/// Reads one input, sending full batches to the store thread.
fn import_one(
    path: &Path,
    file: usize,
    args: &ImportArgs,
    defaults: &ImportDefaults,
    warninglists: &Warninglists,
    tx: &mpsc::SyncSender<Batch>,
) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport {
        path: path.display().to_string(),
        ..Default::default()
    };
    let strict = args.strict;
    let batch_size = args.batch_size;
    let mut batch: Vec<IndicatorRecord> = Vec::with_capacity(batch_size);
    let mut writer_gone = false;

    let send = |batch: &mut Vec<IndicatorRecord>| -> bool {
        let mut records = std::mem::replace(batch, Vec::with_capacity(batch_size));
        let (mut listed, mut verdicts) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < records.len() {
            match warninglists.check(&records[i].observable) {
                Some(name) => {
                    listed.push(records.swap_remove(i));
                    verdicts.push(Some(name));
                }
                None => i += 1,
            }
        }
        tx.send(Batch {
            file,
            records,
            listed,
            verdicts,
        })
        .is_ok()
    };

    let mut on_event = |event: ReadEvent,
                        report: &mut ImportReport,
                        batch: &mut Vec<IndicatorRecord>|
     -> Result<(), String> {
        match event {
            ReadEvent::Record(record) => {
                report.read += 1;
                batch.push(record);
                if batch.len() >= batch_size && !send(batch) {
                    writer_gone = true;
                    return Err("the store stopped".into());
                }
            }
            ReadEvent::Skipped { reason, .. } => {
                *report
                    .skipped
                    .entry(reason.as_str().to_string())
                    .or_default() += 1;
            }
            ReadEvent::Rejected { location, reason } => {
                report.read += 1;
                report.rejected += 1;
                if strict {
                    return Err(format!("{location}: {reason}"));
                }
                if report.rejections.len() < REJECTIONS_SHOWN {
                    report.rejections.push(Rejection {
                        location: location.to_string(),
                        reason,
                    });
                }
            }
        }
        Ok(())
    };

    let result = if path.is_dir() {
        report.format = "misp-feed".into();
        let mut sink = |event: ReadEvent| on_event(event, &mut report, &mut batch);
        read::read_misp_feed_dir(path, defaults, &mut sink).map(|_| ())
    } else {
        let mut input = open_input(path)?;
        let format = choose_format(args, &mut input, path)?;
        report_format(&format, path);
        report.format = format.name().into();
        let mut sink = |event: ReadEvent| on_event(event, &mut report, &mut batch);
        read::read(format, input, defaults, &mut sink).map(|_| ())
    };
    if writer_gone {
        // The store thread's own error is reported by the caller.
        return Ok(report);
    }
    match result {
        Ok(()) => {}
        Err(khien_formats::Error::Stopped { location, reason }) if strict => {
            bail!(
                "{}: {location}: {reason}\n{}",
                path.display(),
                t("import.strict_abort", &[])
            );
        }
        Err(e) if strict => {
            return Err(anyhow::Error::new(e).context(t("import.strict_abort", &[])));
        }
        Err(e) => {
            // The input broke off (truncated JSON, I/O error): what was read
            // before it is stored, and the break is reported as an error.
            send(&mut batch);
            return Err(anyhow::Error::new(e).context(format!(
                "reading {} ({})",
                path.display(),
                report.summary()
            )));
        }
    }
    if !batch.is_empty() {
        send(&mut batch);
    }
    Ok(report)
}

fn report_format(format: &Format, path: &Path) {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        output::note(&t(
            "import.file",
            &[
                ("path", &path.display()),
                ("format", &format!("{format:?}")),
            ],
        ));
    }
}

fn open_input(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = indicatif::ProgressBar::new(len).with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Box::new(bar.wrap_read(file))
        } else {
            Box::new(file)
        }
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, raw)))
}

fn choose_format(
    args: &ImportArgs,
    input: &mut Box<dyn BufRead>,
    path: &Path,
) -> anyhow::Result<Format> {
    let csv_mapping = || -> anyhow::Result<CsvMapping> {
        match args.csv_map.as_deref() {
            Some(spec) => CsvMapping::parse(spec)
                .map_err(anyhow::Error::new)
                .context("--csv-map"),
            None => Ok(CsvMapping::default()),
        }
    };
    Ok(match args.format {
        ImportFormat::List => Format::List,
        ImportFormat::Stix => Format::Stix,
        ImportFormat::Misp => Format::Misp,
        ImportFormat::Csv => Format::Csv(csv_mapping()?),
        ImportFormat::Auto => {
            let head = input.fill_buf().context("reading the start of the input")?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            match Format::detect(head, name.as_deref()) {
                Format::Csv(guessed) if args.csv_map.is_none() => Format::Csv(guessed),
                Format::Csv(_) => Format::Csv(csv_mapping()?),
                other => other,
            }
        }
    })
}

fn search(global: &Global, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let mut store = open_store(global)?;
    let now = Utc::now();
    let found = match &args.value {
        Some(query) => store
            .search(query, now)
            .with_context(|| format!("searching {query:?}"))?,
        None => {
            let mut filter = filter_from(&args.filter)?;
            filter.include_expired = args.include_expired;
            filter.include_allowlisted = args.include_allowlisted;
            filter.limit = Some(filter.limit.unwrap_or(100));
            let mut found = Vec::new();
            store.for_each_indicator(&filter, &mut |ind| {
                found.push(ind);
                Ok(())
            })?;
            found
        }
    };
    let any_active = found.iter().any(|i| i.is_active(now));
    if global.json {
        output::json(&found)?;
    } else if found.is_empty() {
        let query = args.value.as_deref().unwrap_or("…");
        output::line(&t("search.none", &[("query", &query)]));
    } else {
        for ind in &found {
            print_indicator(ind, now);
        }
    }
    Ok(if any_active {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_indicator(ind: &khien_model::Indicator, now: chrono::DateTime<Utc>) {
    let state = if let Some(list) = &ind.allowlisted_by {
        t("search.allowlisted", &[("list", list)])
    } else if ind.is_active(now) {
        t("search.active", &[])
    } else {
        t("search.expired", &[])
    };
    output::line(&format!(
        "{} {}  [{}] type={} family={} confidence={} tlp={} first={} last={}",
        ind.observable.kind(),
        ind.observable.value(),
        state,
        ind.threat_type,
        ind.family.as_ref().map_or("-", Family::as_str),
        ind.confidence,
        ind.tlp,
        ind.first_seen.format("%Y-%m-%d"),
        ind.last_seen.format("%Y-%m-%d"),
    ));
    for s in &ind.sources {
        output::line(&format!(
            "    {} type={} family={} confidence={} tlp={} last={}{}",
            s.source,
            s.threat_type,
            s.family.as_ref().map_or("-", Family::as_str),
            s.confidence,
            s.tlp,
            s.last_seen.format("%Y-%m-%d"),
            s.reference
                .as_deref()
                .map(|r| format!(" ref={r}"))
                .unwrap_or_default(),
        ));
    }
}

fn stats(global: &Global) -> anyhow::Result<ExitCode> {
    let mut store = open_store(global)?;
    let s = store.stats(Utc::now())?;
    if global.json {
        output::json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    output::line(&t("stats.title", &[("backend", &store.backend())]));
    output::line(&t(
        "stats.indicators",
        &[
            ("total", &s.indicators),
            ("active", &s.active),
            ("allowlisted", &s.allowlisted),
            ("expired", &s.expired),
            ("sources", &s.sources),
        ],
    ));
    for (title, rows) in [
        ("stats.by_kind", &s.by_kind),
        ("stats.by_source", &s.by_source),
        ("stats.by_type", &s.by_threat_type),
        ("stats.by_tlp", &s.by_tlp),
        ("stats.top_families", &s.top_families),
    ] {
        if rows.is_empty() {
            continue;
        }
        output::line(&format!("{}:", t(title, &[])));
        for (name, count) in rows {
            output::line(&format!("  {name:<24} {count:>10}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn expire(global: &Global, args: ExpireArgs) -> anyhow::Result<ExitCode> {
    let mut store = open_store(global)?;
    let out = store.expire(
        Utc::now(),
        chrono::Duration::days(i64::from(args.grace_days)),
    )?;
    if global.json {
        output::json(&out)?;
    } else {
        output::line(&t(
            "expire.done",
            &[
                ("sources", &out.sources_removed),
                ("indicators", &out.indicators_removed),
                ("updated", &out.indicators_updated),
            ],
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn reapply_allowlist(global: &Global, args: WarninglistArgs) -> anyhow::Result<ExitCode> {
    let lists = Warninglists::load(&args)?;
    let mut store = open_store(global)?;
    let changed = store.reapply_allowlist(&|o| lists.check(o))?;
    if global.json {
        output::json(&serde_json::json!({ "changed": changed }))?;
    } else {
        output::line(&t("allowlist.done", &[("changed", &changed)]));
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the matcher snapshot and writes it atomically: a sensor reading
/// the file never sees half of it.
fn snapshot(global: &Global, args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    let mut store = open_store(global)?;
    let (bytes, summary) = khien_hub::build_from_store(&mut store, Utc::now())?;
    write_atomically(&args.out, &bytes)?;
    if global.json {
        output::json(&summary)?;
        return Ok(ExitCode::SUCCESS);
    }
    output::line(&t(
        "snapshot.done",
        &[
            ("path", &args.out.display()),
            ("indicators", &summary.indicators),
            ("domains", &summary.domains),
            ("ipv4", &summary.ipv4),
            ("ipv6", &summary.ipv6),
            ("cidrs", &summary.cidrs),
            ("urls", &summary.urls),
            ("hashes", &summary.hashes),
            ("rejected", &summary.rejected),
            ("bytes", &summary.bytes),
            ("checksum", &summary.checksum_hex()),
        ],
    ));
    for r in &summary.rejections {
        output::note(&format!(
            "  {}",
            t(
                "snapshot.rejected",
                &[
                    ("kind", &r.kind),
                    ("value", &r.value),
                    ("reason", &r.reason)
                ]
            )
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames
/// it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn exact_host(global: &Global, args: ExactHostArgs) -> anyhow::Result<ExitCode> {
    // Every argument is checked before anything changes.
    let domains = args
        .domains
        .iter()
        .map(|d| {
            Observable::parse(ObservableKind::Domain, d).with_context(|| format!("domain {d:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut store = open_store(global)?;
    let mut missing = Vec::new();
    let mut done = Vec::new();
    for d in &domains {
        if store.set_exact_host(d, !args.off)? {
            done.push(d.value().to_string());
        } else {
            missing.push(d.value().to_string());
        }
    }
    if global.json {
        output::json(&serde_json::json!({
            "exact_host": !args.off,
            "domains": done,
            "missing": missing,
        }))?;
    } else {
        let key = if args.off {
            "exact_host.off"
        } else {
            "exact_host.on"
        };
        for d in &done {
            output::line(&t(key, &[("domain", d)]));
        }
    }
    if !missing.is_empty() {
        bail!(t("exact_host.missing", &[("domains", &missing.join(", "))]));
    }
    Ok(ExitCode::SUCCESS)
}

/// Turns the filter flags into a store filter, naming the flag on error.
pub fn filter_from(args: &FilterArgs) -> anyhow::Result<IndicatorFilter> {
    let kinds = args
        .kinds
        .iter()
        .map(|k| {
            k.parse::<ObservableKind>()
                .with_context(|| format!("--kind {k}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let threat_types = args
        .threat_types
        .iter()
        .map(|k| {
            k.parse::<ThreatType>()
                .with_context(|| format!("--type {k}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let families = args
        .families
        .iter()
        .map(|f| {
            Family::new(f)
                .map(|f| f.as_str().to_string())
                .with_context(|| format!("--family {f}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(IndicatorFilter {
        kinds,
        families,
        threat_types,
        min_confidence: args
            .min_confidence
            .map(Confidence::new)
            .transpose()
            .context("--min-confidence")?,
        tlp_ceiling: args
            .tlp_ceiling
            .as_deref()
            .map(str::parse::<Tlp>)
            .transpose()
            .context("--tlp-ceiling")?,
        sources: args.sources.clone(),
        seen_since: args
            .seen_within_days
            .map(|d| Utc::now() - chrono::Duration::days(i64::from(d))),
        include_allowlisted: false,
        include_expired: false,
        now: None,
        limit: args.limit,
    })
}
