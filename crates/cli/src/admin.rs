//! `khien admin …`: administration of the hub's database from the
//! machine it runs on — organisations, users, API keys, keys for the
//! configuration, and re-encryption after an encryption-key change. Each
//! command reads the hub's configuration and keys as `khien serve` does,
//! and writes what it changes to the audit log as `cli`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use khien_hub::HubConfig;
use khien_model::{OrgRole, UserRole};
use khien_store::{ApiKeyRef, AuditEntry, EncryptedContacts, NewApiKey, NewUser, Page, Store};

use crate::cli::Global;
use crate::i18n::t;
use crate::output;
use crate::serve::HubArgs;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// API keys for sensors, scripts and users of the hub.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Organisations (tenants).
    #[command(subcommand, name = "org")]
    Org(OrgCommand),
    /// Create a user and print their one-time setup token.
    CreateUser(CreateUserArgs),
    /// Print a new setup token for a user (a password reset).
    SetupToken(SetupTokenArgs),
    /// Print a new random key for the configuration (64 hex digits).
    GenerateKey,
    /// Re-encrypt subscribers' contacts still under a previous encryption
    /// key with the current one.
    RotateEncryptionKey(HubOnly),
    /// Notice templates: check an override directory, render one with
    /// sample data.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// What a case's subscriber would receive on a channel (nothing is
    /// sent).
    Preview(PreviewArgs),
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Load the built-in templates and the override directory the way the
    /// hub does: a syntax error is reported with its file and line.
    Check(TemplatesArgs),
    /// Render one template with sample data.
    Render(RenderArgs),
}

#[derive(Debug, Args)]
pub struct TemplatesArgs {
    /// The override directory (`{channel}/{group}.{lang}.{part}`);
    /// default: `notifications.templates_dir` of the configuration.
    #[arg(long = "templates-dir")]
    pub templates_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub hub: HubArgs,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub templates: TemplatesArgs,
    /// email, sms, web, call-queue or bill.
    #[arg(long)]
    pub channel: khien_model::Channel,
    /// The malware family of the sample case; its guidance group picks the
    /// template.
    #[arg(long, default_value = "mirai")]
    pub family: String,
    /// vi or en.
    #[arg(long = "notice-lang", default_value = "vi")]
    pub notice_lang: String,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// The case id.
    #[arg(long)]
    pub case: i64,
    /// The organisation (slug) the case belongs to (default: the hub's own).
    #[arg(long)]
    pub org: Option<String>,
    /// email, sms, web, call-queue or bill.
    #[arg(long)]
    pub channel: khien_model::Channel,
    /// vi or en (default: the subscriber's language).
    #[arg(long = "notice-lang")]
    pub notice_lang: Option<String>,
}

#[derive(Debug, Args)]
pub struct HubOnly {
    #[command(flatten)]
    pub hub: HubArgs,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key and print its secret (shown this once only).
    Create(CreateArgs),
    /// List keys (never their secrets).
    List(ListArgs),
    /// Revoke every active key of a name, or one key by `--id`.
    Revoke(RevokeArgs),
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation.
    Create(CreateOrgArgs),
    /// List organisations.
    List(HubOnly),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Who holds the key. For a sensor, its name: every hit it sends must
    /// carry this name.
    #[arg(long)]
    pub name: String,
    /// What the key may do (repeatable): `hits:write` (send hits, fetch
    /// snapshots), `attribution:write` (upload subscribers and address
    /// logs), `read`, `admin`.
    #[arg(long = "scope", required = true, value_parser = clap::builder::PossibleValuesParser::new(khien_hub::SCOPES))]
    pub scopes: Vec<String>,
    /// The organisation (slug) the key acts for (default: the hub's own).
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Only this organisation's keys (slug).
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// The name whose active keys are revoked.
    #[arg(required_unless_present = "id", conflicts_with = "id")]
    pub name: Option<String>,
    /// Revoke only the key with this id (see `list`).
    #[arg(long)]
    pub id: Option<i64>,
}

#[derive(Debug, Args)]
pub struct CreateOrgArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Short stable name: a-z, 0-9 and -.
    #[arg(long)]
    pub slug: String,
    #[arg(long)]
    pub name: String,
    /// national, operator, organization, province or association.
    #[arg(long)]
    pub role: OrgRole,
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// The login e-mail address.
    #[arg(long)]
    pub email: String,
    #[arg(long = "display-name")]
    pub display_name: Option<String>,
    /// admin, analyst or viewer.
    #[arg(long, default_value = "viewer")]
    pub role: UserRole,
    /// The organisation (slug; default: the hub's own).
    #[arg(long)]
    pub org: Option<String>,
    /// vi or en.
    #[arg(long, default_value = "vi")]
    pub language: String,
}

#[derive(Debug, Args)]
pub struct SetupTokenArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    #[arg(long)]
    pub email: String,
}

/// How long a setup token made here stays valid.
const SETUP_TOKEN_SECONDS: i64 = 72 * 3600;

fn open(global: &Global, hub: &HubArgs) -> anyhow::Result<(Store, khien_hub::Secrets, HubConfig)> {
    let config = hub.config(global)?;
    let (store, secrets) = khien_hub::open_admin_store(&config).with_context(|| {
        format!(
            "opening the hub's database in {}",
            config.data_dir.display()
        )
    })?;
    Ok((store, secrets, config))
}

fn org_id(store: &mut Store, slug: Option<&str>) -> anyhow::Result<i64> {
    match slug {
        None => Ok(1),
        Some(s) => match store.org_by_slug(s)? {
            Some(o) => Ok(o.id),
            None => bail!(t("admin.no_org", &[("slug", &s)])),
        },
    }
}

fn audit(
    store: &mut Store,
    org_id: Option<i64>,
    action: &str,
    target: String,
) -> anyhow::Result<()> {
    store.audit(&AuditEntry {
        org_id,
        actor: "cli".into(),
        action: action.into(),
        target: Some(target),
        ..AuditEntry::default()
    })?;
    Ok(())
}

pub fn run(global: &Global, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::ApiKey(ApiKeyCommand::Create(args)) => create(global, args),
        AdminCommand::ApiKey(ApiKeyCommand::List(args)) => list(global, args),
        AdminCommand::ApiKey(ApiKeyCommand::Revoke(args)) => revoke(global, args),
        AdminCommand::Org(OrgCommand::Create(args)) => create_org(global, args),
        AdminCommand::Org(OrgCommand::List(args)) => list_orgs(global, args),
        AdminCommand::CreateUser(args) => create_user(global, args),
        AdminCommand::SetupToken(args) => setup_token(global, args),
        AdminCommand::GenerateKey => {
            output::line(&hex_key()?);
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::RotateEncryptionKey(args) => rotate(global, args),
        AdminCommand::Templates(TemplatesCommand::Check(args)) => templates_check(global, args),
        AdminCommand::Templates(TemplatesCommand::Render(args)) => templates_render(global, args),
        AdminCommand::Preview(args) => preview(global, args),
    }
}

fn load_templates(
    global: &Global,
    args: &TemplatesArgs,
) -> anyhow::Result<(khien_notify::Templates, HubConfig)> {
    let config = args.hub.config(global)?;
    let dir = args
        .templates_dir
        .clone()
        .or_else(|| config.notifications.templates_dir.clone());
    let templates = khien_notify::Templates::load(dir.as_deref())?;
    Ok((templates, config))
}

fn templates_check(global: &Global, args: TemplatesArgs) -> anyhow::Result<ExitCode> {
    let (templates, _) = load_templates(global, &args)?;
    let names = templates.names();
    let overrides: Vec<&String> = names.iter().filter(|n| templates.is_override(n)).collect();
    if global.json {
        output::json(&serde_json::json!({
            "templates": names.len(),
            "overrides": overrides,
        }))?;
    } else {
        output::line(&t(
            "admin.templates_ok",
            &[("count", &names.len()), ("overrides", &overrides.len())],
        ));
        for o in overrides {
            output::line(&format!("  {o}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A sample notice: what every template must be able to show.
fn sample_context(family: &str, lang: khien_notify::Lang) -> khien_notify::NoticeContext {
    let glang = match lang {
        khien_notify::Lang::En => khien_hub::guidance::Language::En,
        _ => khien_hub::guidance::Language::Vi,
    };
    let g = khien_hub::guidance::guidance(glang, family);
    let now = chrono::Utc::now();
    let key = [7u8; 32];
    let ticket = khien_notify::token::ticket(now.date_naive(), 42);
    khien_notify::NoticeContext {
        operator: "ISP".into(),
        subscriber_name: Some("Nguyễn Văn An".into()),
        family: family.into(),
        guidance_title: g.title,
        guidance_steps: g.steps,
        first_seen: now - chrono::Duration::hours(30),
        last_seen: now - chrono::Duration::hours(2),
        hit_count: 1234,
        verify_code: khien_notify::token::verify_code(&key, &ticket),
        ticket,
        verify_url: "https://hub.example.vn/verify".into(),
        ack_url: "https://hub.example.vn/ack/…".into(),
        scanner_url: "https://hub.example.vn/scanner".into(),
        address: Some("203.0.113.45".into()),
        round: 1,
    }
}

fn print_rendered(
    global: &Global,
    channel: khien_model::Channel,
    r: &khien_notify::Rendered,
) -> anyhow::Result<ExitCode> {
    let sms = (channel == khien_model::Channel::Sms).then(|| {
        let plain = khien_notify::sms::without_diacritics(&r.text);
        (
            khien_notify::sms::measure(&r.text),
            khien_notify::sms::measure(&plain),
        )
    });
    if global.json {
        output::json(&serde_json::json!({
            "subject": r.subject,
            "text": r.text,
            "html": r.html,
            "sms": sms.map(|(a, b)| serde_json::json!({
                "encoding": a.encoding.as_str(), "segments": a.segments,
                "without_diacritics": {"encoding": b.encoding.as_str(), "segments": b.segments},
            })),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(subject) = &r.subject {
        output::line(&format!("Subject: {subject}\n"));
    }
    output::line(&r.text);
    if let Some((a, b)) = sms {
        output::note(&t(
            "admin.sms_parts",
            &[
                ("encoding", &a.encoding.as_str()),
                ("segments", &a.segments),
                ("plain_encoding", &b.encoding.as_str()),
                ("plain_segments", &b.segments),
            ],
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn templates_render(global: &Global, args: RenderArgs) -> anyhow::Result<ExitCode> {
    let (templates, _) = load_templates(global, &args.templates)?;
    let lang: khien_notify::Lang = args.notice_lang.parse()?;
    let ctx = sample_context(&args.family, lang);
    let r = templates.render(
        args.channel,
        khien_hub::guidance::group(&args.family),
        lang,
        &ctx,
    )?;
    print_rendered(global, args.channel, &r)
}

fn preview(global: &Global, args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let (mut store, secrets, config) = open(global, &args.hub)?;
    let org = org_id(&mut store, args.org.as_deref())?;
    let templates = khien_notify::Templates::load(config.notifications.templates_dir.as_deref())?;
    let renderer = khien_hub::notify::Renderer {
        config: &config.notifications,
        templates: &templates,
        link_key: &secrets.link_key(),
    };
    let Some(r) = renderer.preview(
        &mut store,
        org,
        args.case,
        args.channel,
        args.notice_lang.as_deref(),
        chrono::Utc::now(),
    )?
    else {
        bail!(t("admin.no_case", &[("id", &args.case)]));
    };
    print_rendered(global, args.channel, &r)
}

fn hex_key() -> anyhow::Result<String> {
    let key = khien_hub::secrets::random_key()?;
    Ok(key.iter().map(|b| format!("{b:02x}")).collect())
}

fn create(global: &Global, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let (mut store, _, _) = open(global, &args.hub)?;
    let org = org_id(&mut store, args.org.as_deref())?;
    let scopes: Vec<&str> = args.scopes.iter().map(String::as_str).collect();
    let (info, secret) = store
        .create_api_key(&NewApiKey {
            org_id: org,
            name: &args.name,
            scopes: &scopes,
            created_by: None,
        })
        .context("--name/--scope")?;
    audit(
        &mut store,
        Some(org),
        "api_key.create",
        format!("api_key:{}", info.id),
    )?;
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

fn list(global: &Global, args: ListArgs) -> anyhow::Result<ExitCode> {
    let (mut store, _, _) = open(global, &args.hub)?;
    let org = match &args.org {
        Some(s) => Some(org_id(&mut store, Some(s))?),
        None => None,
    };
    let keys = store.list_api_keys(org)?;
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
    let row = |c: [&str; 8]| {
        format!(
            "{:>4}  {:>4}  {:<24} {:<14} {:<20} {:<16} {:<16} {}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
        )
    };
    let columns = t("apikey.columns", &[]);
    let head: Vec<&str> = columns.split('|').collect();
    let h = |i: usize| head.get(i).copied().unwrap_or("");
    output::line(&row([h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7)]));
    for k in &keys {
        let state = if k.is_revoked() {
            t("apikey.state_revoked", &[("at", &when(k.revoked_at))])
        } else {
            t("apikey.state_active", &[])
        };
        output::line(&row([
            &k.id.to_string(),
            &k.org_id.to_string(),
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
    let (mut store, _, _) = open(global, &args.hub)?;
    let (which, label) = match (&args.name, args.id) {
        (_, Some(id)) => (ApiKeyRef::Id(id), format!("id {id}")),
        (Some(name), None) => (ApiKeyRef::Name(name), name.clone()),
        (None, None) => bail!("give a NAME or --id"),
    };
    let revoked = store.revoke_api_key(which, None)?;
    if revoked == 0 {
        bail!(t("apikey.not_found", &[("key", &label)]));
    }
    audit(&mut store, None, "api_key.revoke", label.clone())?;
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

fn create_org(global: &Global, args: CreateOrgArgs) -> anyhow::Result<ExitCode> {
    let (mut store, _, _) = open(global, &args.hub)?;
    let org = store.create_org(&args.slug, &args.name, args.role)?;
    audit(
        &mut store,
        Some(org.id),
        "organization.create",
        format!("organization:{}", org.id),
    )?;
    if global.json {
        output::json(&org)?;
    } else {
        output::line(&t(
            "admin.org_created",
            &[("slug", &org.slug), ("id", &org.id), ("role", &org.role)],
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn list_orgs(global: &Global, args: HubOnly) -> anyhow::Result<ExitCode> {
    let (mut store, _, _) = open(global, &args.hub)?;
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.orgs(Page { after, limit: 1000 })?;
        let Some(last) = page.last().map(|o| o.id) else {
            break;
        };
        all.extend(page);
        after = Some(last);
    }
    if global.json {
        output::json(&all)?;
    } else {
        for o in &all {
            output::line(&format!(
                "{:>4}  {:<24} {:<13} {}",
                o.id, o.slug, o.role, o.name
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create_user(global: &Global, args: CreateUserArgs) -> anyhow::Result<ExitCode> {
    let (mut store, _, _) = open(global, &args.hub)?;
    let org = org_id(&mut store, args.org.as_deref())?;
    let user = store.create_user(&NewUser {
        org_id: org,
        email: &args.email,
        display_name: args.display_name.as_deref().unwrap_or(&args.email),
        role: args.role,
        language: &args.language,
    })?;
    let token = store.create_setup_token(user.id, SETUP_TOKEN_SECONDS)?;
    audit(
        &mut store,
        Some(org),
        "user.create",
        format!("user:{}", user.id),
    )?;
    print_token(global, &user.email, &token)
}

fn setup_token(global: &Global, args: SetupTokenArgs) -> anyhow::Result<ExitCode> {
    let (mut store, _, _) = open(global, &args.hub)?;
    let Some(rec) = store.login_record(&args.email)? else {
        bail!(t("admin.no_user", &[("email", &args.email)]));
    };
    let token = store.create_setup_token(rec.user.id, SETUP_TOKEN_SECONDS)?;
    audit(
        &mut store,
        Some(rec.user.org_id),
        "user.setup_token",
        format!("user:{}", rec.user.id),
    )?;
    print_token(global, &rec.user.email, &token)
}

fn print_token(global: &Global, email: &str, token: &str) -> anyhow::Result<ExitCode> {
    if global.json {
        output::json(&serde_json::json!({ "email": email, "setup_token": token }))?;
    } else {
        output::note(&t("admin.setup_token", &[("email", &email)]));
        output::line(token);
    }
    Ok(ExitCode::SUCCESS)
}

const CONTACT_FIELDS: [&str; 4] = ["name", "email", "phone", "address"];

fn rotate(global: &Global, args: HubOnly) -> anyhow::Result<ExitCode> {
    let (mut store, secrets, _) = open(global, &args.hub)?;
    let key_id = secrets.key_id();
    let (mut done, mut failed) = (0u64, 0u64);
    let mut skip: std::collections::HashSet<i64> = std::collections::HashSet::new();
    loop {
        let batch = store.subscribers_not_under_key(&key_id, 1000)?;
        let todo: Vec<_> = batch
            .into_iter()
            .filter(|s| !skip.contains(&s.id))
            .collect();
        if todo.is_empty() {
            break;
        }
        for s in todo {
            let fields = [
                &s.contacts.name,
                &s.contacts.email,
                &s.contacts.phone,
                &s.contacts.address,
            ];
            let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(4);
            let mut ok = true;
            for (field, value) in CONTACT_FIELDS.iter().zip(fields) {
                match value {
                    None => out.push(None),
                    Some(c) => match secrets.decrypt(s.org_id, &s.external_id, field, c) {
                        Ok(plain) => out.push(Some(secrets.encrypt(
                            s.org_id,
                            &s.external_id,
                            field,
                            &plain,
                        )?)),
                        Err(e) => {
                            output::note(&t(
                                "admin.rekey_failed",
                                &[("id", &s.pseudonym), ("field", field), ("reason", &e)],
                            ));
                            ok = false;
                            break;
                        }
                    },
                }
            }
            if !ok {
                failed += 1;
                skip.insert(s.id);
                continue;
            }
            let mut it = out.into_iter();
            let contacts = EncryptedContacts {
                name: it.next().flatten(),
                email: it.next().flatten(),
                phone: it.next().flatten(),
                address: it.next().flatten(),
            };
            store.set_subscriber_contacts(s.id, &contacts, &key_id)?;
            done += 1;
        }
    }
    store.audit(&AuditEntry {
        actor: "cli".into(),
        action: "subscriber.rekey".into(),
        detail: Some(serde_json::json!({"reencrypted": done, "failed": failed, "key_id": key_id})),
        ..AuditEntry::default()
    })?;
    if global.json {
        output::json(
            &serde_json::json!({"reencrypted": done, "failed": failed, "key_id": key_id}),
        )?;
    } else {
        output::line(&t(
            "admin.rekeyed",
            &[("count", &done), ("failed", &failed), ("key", &key_id)],
        ));
    }
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
