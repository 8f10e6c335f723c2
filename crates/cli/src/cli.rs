//! Command-line grammar. Every flag documented here shows in `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::i18n::Lang;

#[derive(Debug, Parser)]
#[command(name = "khien", version, about = "Khiên — malware defence and personal-data protection", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Language of messages.
    #[arg(
        long,
        global = true,
        env = "KHIEN_LANG",
        value_enum,
        default_value = "vi"
    )]
    pub lang: Lang,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Database: a SQLite file path (default), `sqlite:PATH`, or a
    /// `postgres://` URL.
    #[arg(
        long,
        global = true,
        env = "KHIEN_DATABASE",
        default_value = "khien-data/khien.db"
    )]
    pub database: String,
    /// Machine-readable JSON on standard output instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Threat intelligence: import feeds, export block lists, search.
    #[command(subcommand)]
    Intel(IntelCommand),
    /// Run the hub: HTTP API for sensors and users.
    Serve(crate::serve::ServeArgs),
    /// Run a sensor: match DNS and flow telemetry against a snapshot,
    /// aggregate hits and ship them.
    Sensor(crate::sensor::SensorArgs),
    /// Administration: API keys.
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum IntelCommand {
    /// Import indicators from files or MISP feed directories.
    Import(ImportArgs),
    /// Export active indicators (RPZ zone, STIX 2.1, MISP feed, CSV, list).
    Export(ExportArgs),
    /// Look a value up (exact, parent domains, containing networks), or
    /// list indicators by family, source, kind, type and time.
    Search(SearchArgs),
    /// Counts by kind, source, threat type, TLP and family.
    Stats,
    /// Remove source entries past their expiry (the expiry job).
    Expire(ExpireArgs),
    /// Re-apply warninglists to every stored indicator.
    Allowlist(WarninglistArgs),
    /// Build the sensors' match snapshot from the active indicators.
    Snapshot(SnapshotArgs),
    /// Mark domains exact-host: they match only themselves, not their
    /// subdomains (a bad site on a shared-hosting name).
    ExactHost(ExactHostArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    Auto,
    List,
    Csv,
    Stix,
    Misp,
}

#[derive(Debug, Args)]
pub struct WarninglistArgs {
    /// Extra MISP warninglist directories (each `*/list.json` below).
    #[arg(long = "warninglists", value_name = "DIR")]
    pub warninglists: Vec<PathBuf>,
    /// Do not use the embedded default warninglists.
    #[arg(long)]
    pub no_default_warninglists: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files (`-` for standard input) or MISP feed directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    pub format: ImportFormat,
    /// Source name recorded with every indicator (default: the file name
    /// without extension).
    #[arg(long)]
    pub source: Option<String>,
    /// Malware family for records that do not name one.
    #[arg(long)]
    pub family: Option<String>,
    /// Take the family from each file's name (`emotet.txt` → `emotet`), as
    /// trail collections are organised.
    #[arg(long, conflicts_with = "family")]
    pub family_from_file_name: bool,
    /// Threat type for records that do not name one (c2, malware-download,
    /// phishing, scam, miner, malicious, suspicious, malware).
    #[arg(long = "type", value_name = "TYPE")]
    pub threat_type: Option<String>,
    /// TLP for records that carry no marking (clear, green, amber,
    /// amber+strict, red).
    #[arg(long)]
    pub tlp: Option<String>,
    /// Confidence 0–100 for records that carry none.
    #[arg(long)]
    pub confidence: Option<u8>,
    /// Let the flags above override what the input says.
    #[arg(long)]
    pub force: bool,
    /// CSV column mapping, e.g. `value=url,family=threat`, or a preset
    /// name: urlhaus, threatfox, shadowserver.
    #[arg(long)]
    pub csv_map: Option<String>,
    /// Take MISP attributes marked `to_ids: false` too (some publishers
    /// mark every attribute so).
    #[arg(long)]
    pub include_not_for_detection: bool,
    /// Abort at the first bad record and write nothing.
    #[arg(long)]
    pub strict: bool,
    /// Records per transaction.
    #[arg(long, default_value_t = 50_000)]
    pub batch_size: usize,
    /// Mark every domain of this import exact-host: it will match only
    /// itself, not its subdomains (shared hosting).
    #[arg(long)]
    pub exact_host: bool,
    #[command(flatten)]
    pub warninglists: WarninglistArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Rpz,
    Stix,
    Misp,
    Csv,
    List,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Output file (a directory for `misp`); `-` for standard output.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// RPZ action: nxdomain, nodata, drop, or a walled-garden address
    /// (`garden:192.0.2.1`, `garden:2001:db8::1`, `garden:warn.example.vn`).
    #[arg(long, default_value = "nxdomain")]
    pub rpz_action: String,
    /// Name of the RPZ zone (its SOA owner).
    #[arg(long, default_value = "rpz.khien.")]
    pub zone_name: String,
    /// Producer name in STIX and MISP exports.
    #[arg(long, default_value = "Khiên")]
    pub producer: String,
}

#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Only these kinds (repeatable): ipv4, ipv6, cidr, domain, url, sha256, sha1, md5, email, phone.
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Only these families (repeatable).
    #[arg(long = "family")]
    pub families: Vec<String>,
    /// Only these threat types (repeatable).
    #[arg(long = "type")]
    pub threat_types: Vec<String>,
    /// Only indicators with at least this combined confidence.
    #[arg(long)]
    pub min_confidence: Option<u8>,
    /// Only indicators whose TLP is at most this (e.g. `green` leaves out
    /// amber and red).
    #[arg(long)]
    pub tlp_ceiling: Option<String>,
    /// Only indicators named by these sources (repeatable).
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// Only indicators seen within this many days.
    #[arg(long)]
    pub seen_within_days: Option<u32>,
    /// At most this many indicators.
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A domain, address, network, URL, hash, e-mail or phone number
    /// (defanged forms accepted). Without it, lists the indicators that
    /// match the filters (at most `--limit`, default 100).
    pub value: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// With filters: include expired indicators.
    #[arg(long)]
    pub include_expired: bool,
    /// With filters: include allow-listed indicators.
    #[arg(long)]
    pub include_allowlisted: bool,
}

#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// Keep expired entries this many days before removing them.
    #[arg(long, default_value_t = 0)]
    pub grace_days: u32,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The snapshot file (written under a temporary name, then renamed).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExactHostArgs {
    /// Domains already imported as indicators.
    #[arg(required = true, value_name = "DOMAIN")]
    pub domains: Vec<String>,
    /// Remove the mark instead: subdomains match again.
    #[arg(long)]
    pub off: bool,
}
