//! `khien admin …`: administration of the hub's database. For now API
//! keys; users and organisations come with the full hub.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use khien_store::ApiKeyRef;

use crate::cli::Global;
use crate::i18n::t;
use crate::intel::open_store;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// API keys for sensors and users of the hub.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print its secret (shown this once only).
    Create(CreateArgs),
    /// List keys (never their secrets).
    List,
    /// Revoke every active key of a name, or one key by `--id`.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Who holds the key. For a sensor, its name: every hit it sends must
    /// carry this name.
    #[arg(long)]
    pub name: String,
    /// What the key may do (repeatable): `hits:write` (send hits, fetch
    /// snapshots), `read` (fetch snapshots).
    #[arg(long = "scope", required = true, value_parser = clap::builder::PossibleValuesParser::new(khien_hub::SCOPES))]
    pub scopes: Vec<String>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RevokeArgs {
    /// The name whose active keys are revoked.
    pub name: Option<String>,
    /// Revoke only the key with this id (see `list`).
    #[arg(long)]
    pub id: Option<i64>,
}

pub fn run(global: &Global, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::ApiKey(ApiKeyCommand::Create(args)) => create(global, args),
        AdminCommand::ApiKey(ApiKeyCommand::List) => list(global),
        AdminCommand::ApiKey(ApiKeyCommand::Revoke(args)) => revoke(global, args),
    }
}

fn create(global: &Global, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let mut store = open_store(global)?;
    let scopes: Vec<&str> = args.scopes.iter().map(String::as_str).collect();
    let (info, secret) = store
        .create_api_key(&args.name, &scopes)
        .context("--name/--scope")?;
    if global.json {
        output::json(&serde_json::json!({ "key": info, "secret": secret }))?;
    } else {
        output::note(&t(
            "apikey.created",
            &[
                ("name", &info.name),
                ("id", &info.id),
                ("scopes", &info.scopes.join(" ")),
            ],
        ));
        output::line(&secret);
    }
    output::note(&t("apikey.shown_once", &[]));
    Ok(ExitCode::SUCCESS)
}

fn list(global: &Global) -> anyhow::Result<ExitCode> {
    let mut store = open_store(global)?;
    let keys = store.list_api_keys()?;
    if global.json {
        output::json(&keys)?;
        return Ok(ExitCode::SUCCESS);
    }
    if keys.is_empty() {
        output::line(&t("apikey.none", &[]));
        return Ok(ExitCode::SUCCESS);
    }
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "-".to_string(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
    };
    let row = |c: [&str; 7]| {
        format!(
            "{:>4}  {:<24} {:<14} {:<20} {:<16} {:<16} {}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6]
        )
    };
    let columns = t("apikey.columns", &[]);
    let mut head = columns.split('|');
    let mut next = || head.next().unwrap_or("");
    output::line(&row([
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    ]));
    for k in &keys {
        let state = if k.is_revoked() {
            t("apikey.state_revoked", &[("at", &when(k.revoked_at))])
        } else {
            t("apikey.state_active", &[])
        };
        output::line(&row([
            &k.id.to_string(),
            &k.name,
            &format!("{}…", k.prefix),
            &k.scopes.join(" "),
            &when(Some(k.created_at)),
            &when(k.last_used_at),
            &state,
        ]));
    }
    Ok(ExitCode::SUCCESS)
}

fn revoke(global: &Global, args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let mut store = open_store(global)?;
    let (which, label) = match (&args.name, args.id) {
        (_, Some(id)) => (ApiKeyRef::Id(id), format!("id {id}")),
        (Some(name), None) => (ApiKeyRef::Name(name), name.clone()),
        (None, None) => bail!("give a NAME or --id"),
    };
    let revoked = store.revoke_api_key(which)?;
    if revoked == 0 {
        bail!(t("apikey.not_found", &[("key", &label)]));
    }
    if global.json {
        output::json(&serde_json::json!({ "revoked": revoked }))?;
    } else {
        output::line(&t(
            "apikey.revoked",
            &[("count", &revoked), ("key", &label)],
        ));
    }
    Ok(ExitCode::SUCCESS)
}
