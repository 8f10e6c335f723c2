//! Notice templates: built-in files, overrides, rendering.
//!
//! A template is a file named `{channel}/{group}.{lang}.{part}`:
//!
//! | channel      | parts                                   |
//! |--------------|-----------------------------------------|
//! | `email`      | `subject`, `txt`, `html`                |
//! | `sms`        | `txt`                                   |
//! | `web`        | `html` (the notice page), `txt`         |
//! | `call-queue` | `txt` (the line the agent reads)        |
//! | `bill`       | `txt` (the invoice note, ≤ 160 chars)   |
//!
//! `group` is one of [`GROUPS`], `lang` is `vi` or `en`. The built-in set
//! (under `crates/notify/templates/`, compiled in) has every combination;
//! an override directory with the same layout replaces them file by file.
//! A file whose name does not fit the layout is refused, so a typo such as
//! `email/iot-bots.vi.txt` is an error rather than a template nobody uses.
//! Names starting with a dot (editor and VCS files) are ignored.
//!
//! Lookup for a part: `{group}` then `default`, in the requested language;
//! only when the channel has no template at all in that language is the
//! other language used. The group fallback is what makes a new guidance
//! group work before anyone writes its templates. The built-ins are
//! complete in both languages, so the language fallback is a safety net
//! (for a language added to [`Lang`] before its templates): a subscriber
//! who chose Vietnamese never gets English because one file is missing.
//!
//! The bill note must fit [`BILL_MAX_CHARS`]. The built-in notes leave 46
//! characters for the operator's name, the family and `verify_url`
//! together; [`Templates::render`] does not cut a longer note, the hub
//! decides what to do with it.
//!
//! The syntax is minijinja's (Jinja2) with `trim_blocks` and
//! `lstrip_blocks` on, strict undefined variables, and HTML auto-escaping
//! for `.html` files only. A group file usually `{% extends %}` the
//! channel's default file and replaces `{% block explanation %}`. The
//! context is [`NoticeContext`] plus `lang`, `channel` and `group`. Extra
//! filters: `local_time` (Asia/Ho_Chi_Minh, `dd/mm/yyyy HH:MM (giờ Việt
//! Nam)` or `yyyy-mm-dd HH:MM (Vietnam time)`), `local_date` (the date
//! alone) and `number` (digit grouping: `12.345` in vi, `12,345` in en).
//!
//! Every template is rendered once at load with sample contexts (with and
//! without the optional fields, first warning and reminder), so syntax
//! errors, unknown filters, missing parents and misspelt variables surface
//! in [`Templates::load`] rather than when a subscriber is being warned.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, TimeZone as _, Utc};
use khien_model::Channel;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, State, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The guidance groups a family belongs to, `default` first.
pub const GROUPS: &[&str] = &[
    "default",
    "iot-bot",
    "windows-bot",
    "stealer",
    "android-banker",
    "miner",
];

/// Longest bill note (characters) billing systems print in full.
pub const BILL_MAX_CHARS: usize = 160;

/// The language of a notice.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Vietnamese, the default.
    #[default]
    Vi,
    /// English.
    En,
}

impl Lang {
    pub const ALL: &'static [Lang] = &[Lang::Vi, Lang::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The other language, for the fallback.
    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lang {
    type Err = khien_model::UnknownWord;

    /// `vi` or `en`, any case; a region (`vi-VN`, `en_US`) is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let primary = s.trim().split(['-', '_']).next().unwrap_or_default();
        match primary.to_ascii_lowercase().as_str() {
            "vi" => Ok(Lang::Vi),
            "en" => Ok(Lang::En),
            _ => Err(khien_model::UnknownWord {
                what: "language",
                value: s.to_string(),
                expected: "vi en",
            }),
        }
    }
}

/// What a notice says about one case, passed to the templates as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeContext {
    /// The operator's (ISP's) name.
    pub operator: String,
    pub subscriber_name: Option<String>,
    /// Malware family, e.g. `mirai`.
    pub family: String,
    /// Removal guidance, already in the notice's language.
    pub guidance_title: String,
    pub guidance_steps: Vec<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub hit_count: u64,
    /// `20261201-00000042` ([`crate::token::ticket`]).
    pub ticket: String,
    /// The short code the subscriber can check on the operator's site
    /// ([`crate::token::verify_code`]).
    pub verify_code: String,
    /// Where to check it.
    pub verify_url: String,
    /// The signed link to acknowledge the notice.
    pub ack_url: String,
    /// The free scanner.
    pub scanner_url: String,
    /// The client address (web notice).
    pub address: Option<String>,
    /// 1 for the first warning, 2 for the first reminder, …
    pub round: u32,
}

/// A rendered notice. `subject` is set for e-mail only; `html` for e-mail
/// and the web notice. The text is trimmed; the subject is one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Subject,
    Txt,
    Html,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Txt => "txt",
            Part::Html => "html",
        }
    }
}

/// The parts of a channel, and whether each must exist.
fn parts(channel: Channel) -> &'static [(Part, bool)] {
    match channel {
        Channel::Email => &[
            (Part::Subject, true),
            (Part::Txt, true),
            (Part::Html, false),
        ],
        Channel::Web => &[(Part::Html, true), (Part::Txt, false)],
        Channel::Sms | Channel::CallQueue | Channel::Bill => &[(Part::Txt, true)],
    }
}

/// Checks a template name against the layout; the reason when it does not fit.
fn check_name(name: &str) -> Result<(Channel, Lang), String> {
    let expected = "expected {channel}/{group}.{lang}.{part}";
    let Some((channel, file)) = name.split_once('/') else {
        return Err(format!("not in a channel directory ({expected})"));
    };
    let channel: Channel = channel
        .parse()
        .map_err(|e| format!("{e} ({expected})"))
        .and_then(|c: Channel| {
            if c.as_str() == channel {
                Ok(c)
            } else {
                Err(format!("channel directory must be spelt {:?}", c.as_str()))
            }
        })?;
    let pieces: Vec<&str> = file.split('.').collect();
    let [group, lang, part] = pieces[..] else {
        return Err(format!("not a template file name ({expected})"));
    };
    if !GROUPS.contains(&group) {
        return Err(format!(
            "unknown group {group:?} (expected one of: {})",
            GROUPS.join(" ")
        ));
    }
    let lang = match lang {
        "vi" => Lang::Vi,
        "en" => Lang::En,
        _ => return Err(format!("unknown language {lang:?} (expected vi or en)")),
    };
    let allowed = parts(channel);
    if !allowed.iter().any(|(p, _)| p.as_str() == part) {
        let list: Vec<&str> = allowed.iter().map(|(p, _)| p.as_str()).collect();
        return Err(format!(
            "{channel} has no part {part:?} (expected one of: {})",
            list.join(" ")
        ));
    }
    Ok((channel, lang))
}

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// The built-in templates, compiled in.
const BUILTIN: &[(&str, &str)] = builtin![
    "bill/android-banker.en.txt",
    "bill/android-banker.vi.txt",
    "bill/default.en.txt",
    "bill/default.vi.txt",
    "bill/iot-bot.en.txt",
    "bill/iot-bot.vi.txt",
    "bill/miner.en.txt",
    "bill/miner.vi.txt",
    "bill/stealer.en.txt",
    "bill/stealer.vi.txt",
    "bill/windows-bot.en.txt",
    "bill/windows-bot.vi.txt",
    "call-queue/android-banker.en.txt",
    "call-queue/android-banker.vi.txt",
    "call-queue/default.en.txt",
    "call-queue/default.vi.txt",
    "call-queue/iot-bot.en.txt",
    "call-queue/iot-bot.vi.txt",
    "call-queue/miner.en.txt",
    "call-queue/miner.vi.txt",
    "call-queue/stealer.en.txt",
    "call-queue/stealer.vi.txt",
    "call-queue/windows-bot.en.txt",
    "call-queue/windows-bot.vi.txt",
    "email/android-banker.en.html",
    "email/android-banker.en.subject",
    "email/android-banker.en.txt",
    "email/android-banker.vi.html",
    "email/android-banker.vi.subject",
    "email/android-banker.vi.txt",
    "email/default.en.html",
    "email/default.en.subject",
    "email/default.en.txt",
    "email/default.vi.html",
    "email/default.vi.subject",
    "email/default.vi.txt",
    "email/iot-bot.en.html",
    "email/iot-bot.en.subject",
    "email/iot-bot.en.txt",
    "email/iot-bot.vi.html",
    "email/iot-bot.vi.subject",
    "email/iot-bot.vi.txt",
    "email/miner.en.html",
    "email/miner.en.subject",
    "email/miner.en.txt",
    "email/miner.vi.html",
    "email/miner.vi.subject",
    "email/miner.vi.txt",
    "email/stealer.en.html",
    "email/stealer.en.subject",
    "email/stealer.en.txt",
    "email/stealer.vi.html",
    "email/stealer.vi.subject",
    "email/stealer.vi.txt",
    "email/windows-bot.en.html",
    "email/windows-bot.en.subject",
    "email/windows-bot.en.txt",
    "email/windows-bot.vi.html",
    "email/windows-bot.vi.subject",
    "email/windows-bot.vi.txt",
    "sms/android-banker.en.txt",
    "sms/android-banker.vi.txt",
    "sms/default.en.txt",
    "sms/default.vi.txt",
    "sms/iot-bot.en.txt",
    "sms/iot-bot.vi.txt",
    "sms/miner.en.txt",
    "sms/miner.vi.txt",
    "sms/stealer.en.txt",
    "sms/stealer.vi.txt",
    "sms/windows-bot.en.txt",
    "sms/windows-bot.vi.txt",
    "web/android-banker.en.html",
    "web/android-banker.en.txt",
    "web/android-banker.vi.html",
    "web/android-banker.vi.txt",
    "web/default.en.html",
    "web/default.en.txt",
    "web/default.vi.html",
    "web/default.vi.txt",
    "web/iot-bot.en.html",
    "web/iot-bot.en.txt",
    "web/iot-bot.vi.html",
    "web/iot-bot.vi.txt",
    "web/miner.en.html",
    "web/miner.en.txt",
    "web/miner.vi.html",
    "web/miner.vi.txt",
    "web/stealer.en.html",
    "web/stealer.en.txt",
    "web/stealer.vi.html",
    "web/stealer.vi.txt",
    "web/windows-bot.en.html",
    "web/windows-bot.en.txt",
    "web/windows-bot.vi.html",
    "web/windows-bot.vi.txt",
];

/// Names of the built-in templates.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(name, _)| *name)
}

/// The loaded template set.
pub struct Templates {
    env: Environment<'static>,
    /// Template name → where it came from (the override's path, if any).
    files: BTreeMap<String, Option<PathBuf>>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.files.keys().collect::<Vec<_>>())
            .field(
                "overrides",
                &self.files.values().flatten().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Templates {
    /// Built-in templates, overridden file by file by `override_dir` when given.
    pub fn load(override_dir: Option<&Path>) -> Result<Templates, Error> {
        let mut sources: BTreeMap<String, (Cow<'static, str>, Option<PathBuf>)> = BUILTIN
            .iter()
            .map(|(name, src)| (name.to_string(), (Cow::Borrowed(*src), None)))
            .collect();
        if let Some(dir) = override_dir {
            for (name, path) in override_files(dir)? {
                let bytes = std::fs::read(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                let text = String::from_utf8(bytes).map_err(|e| Error::Template {
                    file: path.display().to_string(),
                    line: None,
                    reason: format!("not UTF-8 ({e})"),
                })?;
                sources.insert(name, (Cow::Owned(text), Some(path)));
            }
        }

        let mut env = new_environment();
        let mut files = BTreeMap::new();
        for (name, (src, path)) in sources {
            files.insert(name.clone(), path);
            if let Err(e) = env.add_template_owned(name.clone(), src) {
                return Err(template_error(&files, &name, &e));
            }
        }
        let templates = Templates { env, files };
        templates.check()?;
        Ok(templates)
    }

    /// Renders every template with sample contexts.
    fn check(&self) -> Result<(), Error> {
        for name in self.files.keys() {
            let Ok((channel, lang)) = check_name(name) else {
                continue;
            };
            let group = name
                .split_once('/')
                .and_then(|(_, f)| f.split('.').next())
                .unwrap_or("default");
            for ctx in sample_contexts() {
                self.render_name(name, channel, group, lang, &ctx)?;
            }
        }
        Ok(())
    }

    /// The template used for a part, after the fallbacks.
    fn resolve(&self, channel: Channel, group: &str, lang: Lang, part: Part) -> Option<String> {
        let prefix = format!("{}/", channel.as_str());
        let has_lang = |l: Lang| {
            let infix = format!(".{}.", l.as_str());
            self.files
                .keys()
                .any(|n| n.starts_with(&prefix) && n.contains(&infix))
        };
        let lang = if has_lang(lang) { lang } else { lang.other() };
        [group, "default"]
            .into_iter()
            .map(|g| format!("{prefix}{g}.{}.{}", lang.as_str(), part.as_str()))
            .find(|n| self.files.contains_key(n))
    }

    fn render_name(
        &self,
        name: &str,
        channel: Channel,
        group: &str,
        lang: Lang,
        ctx: &NoticeContext,
    ) -> Result<String, Error> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|e| template_error(&self.files, name, &e))?;
        let value = minijinja::context! {
            lang => lang.as_str(),
            channel => channel.as_str(),
            group => group,
            ..Value::from(minijinja::value::Serde(ctx))
        };
        tmpl.render(value)
            .map_err(|e| template_error(&self.files, name, &e))
    }

    /// `group` is the family's guidance group: "iot-bot", "windows-bot", "stealer", "android-banker", "miner" or "default".
    /// An unknown group uses the `default` templates.
    pub fn render(
        &self,
        channel: Channel,
        group: &str,
        lang: Lang,
        ctx: &NoticeContext,
    ) -> Result<Rendered, Error> {
        let mut out = Rendered {
            subject: None,
            text: String::new(),
            html: None,
        };
        for &(part, required) in parts(channel) {
            let Some(name) = self.resolve(channel, group, lang, part) else {
                if required {
                    return Err(Error::MissingTemplate {
                        channel,
                        group: group.to_string(),
                        lang,
                        part: part.as_str(),
                    });
                }
                continue;
            };
            let group = if name.contains(&format!("/{group}.")) {
                group
            } else {
                "default"
            };
            let rendered = self.render_name(&name, channel, group, lang, ctx)?;
            match part {
                Part::Subject => {
                    out.subject = Some(rendered.split_whitespace().collect::<Vec<_>>().join(" "))
                }
                Part::Txt => out.text = rendered.trim().to_string(),
                Part::Html => out.html = Some(rendered),
            }
        }
        Ok(out)
    }

    /// Every template loaded, sorted, for a listing.
    pub fn names(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Whether `name` came from the override directory.
    pub fn is_override(&self, name: &str) -> bool {
        self.files.get(name).is_some_and(Option::is_some)
    }
}

fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .unwrap_or_default();
    env.set_syntax(syntax);
    env.add_filter("local_time", local_time);
    env.add_filter("local_date", local_date);
    env.add_filter("number", number);
    env
}

/// The template files under an override directory, by template name.
fn override_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let layout = |path: &Path, reason: String| Error::Template {
        file: path.display().to_string(),
        line: None,
        reason,
    };
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        if dir_name.starts_with('.') {
            continue;
        }
        if !path.is_dir() {
            return Err(layout(
                &path,
                "not in a channel directory (expected {channel}/{group}.{lang}.{part})".into(),
            ));
        }
        let mut files: Vec<_> = std::fs::read_dir(&path)
            .map_err(io(&path))?
            .collect::<Result<_, _>>()
            .map_err(io(&path))?;
        files.sort_by_key(|e| e.file_name());
        for file in files {
            let file_path = file.path();
            let file_name = file.file_name().to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            let name = format!("{dir_name}/{file_name}");
            if file_path.is_dir() {
                return Err(layout(&file_path, "unexpected directory".into()));
            }
            check_name(&name).map_err(|reason| layout(&file_path, reason))?;
            out.push((name, file_path));
        }
    }
    Ok(out)
}

fn template_error(
    files: &BTreeMap<String, Option<PathBuf>>,
    name: &str,
    e: &minijinja::Error,
) -> Error {
    // The error may sit in a parent template rather than the one rendered.
    let at = e.name().unwrap_or(name);
    let file = match files.get(at) {
        Some(Some(path)) => path.display().to_string(),
        _ => at.to_string(),
    };
    let reason = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    let reason = if at == name {
        reason
    } else {
        format!("{reason} (rendering {name})")
    };
    Error::Template {
        file,
        line: e.line(),
        reason,
    }
}

/// Asia/Ho_Chi_Minh: UTC+7 all year.
fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| unreachable!())
}

fn filter_lang(state: &State, lang: Option<&str>) -> Lang {
    lang.map(str::to_string)
        .or_else(|| {
            state
                .lookup("lang")
                .and_then(|v| v.as_str().map(str::to_string))
        })
        .and_then(|l| l.parse().ok())
        .unwrap_or_default()
}

fn undefined(value: &Value) -> Result<(), minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "filter applied to an undefined value",
        ));
    }
    Ok(())
}

fn to_local(value: &Value) -> Result<DateTime<FixedOffset>, minijinja::Error> {
    undefined(value)?;
    let bad = || {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("not a time: {value}"),
        )
    };
    let utc = if let Some(s) = value.as_str() {
        DateTime::parse_from_rfc3339(s)
            .map_err(|_| bad())?
            .with_timezone(&Utc)
    } else if let Some(secs) = value.as_i64() {
        Utc.timestamp_opt(secs, 0).single().ok_or_else(bad)?
    } else {
        return Err(bad());
    };
    Ok(utc.with_timezone(&vietnam()))
}

/// `{{ t|local_time }}`: the time in Vietnam, in the notice's language
/// (or `local_time("en")`).
fn local_time(state: &State, value: Value, lang: Option<&str>) -> Result<String, minijinja::Error> {
    let t = to_local(&value)?;
    Ok(match filter_lang(state, lang) {
        Lang::Vi => format!("{} (giờ Việt Nam)", t.format("%d/%m/%Y %H:%M")),
        Lang::En => format!("{} (Vietnam time)", t.format("%Y-%m-%d %H:%M")),
    })
}

/// `{{ t|local_date }}`: the date in Vietnam, for short texts.
fn local_date(state: &State, value: Value, lang: Option<&str>) -> Result<String, minijinja::Error> {
    let t = to_local(&value)?;
    Ok(match filter_lang(state, lang) {
        Lang::Vi => t.format("%d/%m/%Y").to_string(),
        Lang::En => t.format("%Y-%m-%d").to_string(),
    })
}

/// `{{ n|number }}`: digits grouped by thousands, `.` in Vietnamese and
/// `,` in English.
fn number(state: &State, value: Value, lang: Option<&str>) -> Result<String, minijinja::Error> {
    undefined(&value)?;
    let n = value.as_i64().ok_or_else(|| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("not an integer: {value}"),
        )
    })?;
    let sep = match filter_lang(state, lang) {
        Lang::Vi => '.',
        Lang::En => ',',
    };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    Ok(out)
}

/// Contexts a template is checked against at load: every field set, and
/// the optional ones empty; a first warning and a reminder.
fn sample_contexts() -> [NoticeContext; 2] {
    let first_seen = Utc
        .with_ymd_and_hms(2026, 11, 28, 17, 5, 0)
        .single()
        .unwrap_or_default();
    let full = NoticeContext {
        operator: "Operator".into(),
        subscriber_name: Some("Subscriber".into()),
        family: "family".into(),
        guidance_title: "Guidance".into(),
        guidance_steps: vec!["Step one.".into(), "Step two.".into()],
        first_seen,
        last_seen: first_seen + chrono::Duration::days(3),
        hit_count: 1234,
        ticket: "20261201-00000001".into(),
        verify_code: "ABCD2345".into(),
        verify_url: "https://operator.example/verify".into(),
        ack_url: "https://operator.example/ack/token".into(),
        scanner_url: "https://scanner.example/".into(),
        address: Some("192.0.2.1".into()),
        round: 2,
    };
    let bare = NoticeContext {
        subscriber_name: None,
        address: None,
        guidance_steps: Vec::new(),
        round: 1,
        ..full.clone()
    };
    [full, bare]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn builtin_list_matches_the_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut on_disk: Vec<String> = override_files(&root)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        on_disk.sort();
        let listed: Vec<String> = builtin_names().map(str::to_string).collect();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn builtins_cover_every_channel_group_and_language() {
        let names: Vec<&str> = builtin_names().collect();
        for &channel in Channel::ALL {
            for group in GROUPS {
                for lang in Lang::ALL {
                    for (part, _) in parts(channel) {
                        let name = format!("{channel}/{group}.{lang}.{}", part.as_str());
                        assert!(names.contains(&name.as_str()), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("email/default.vi.txt").is_ok());
        assert!(check_name("call-queue/miner.en.txt").is_ok());
        for bad in [
            "default.vi.txt",
            "mail/default.vi.txt",
            "email/iot-bots.vi.txt",
            "email/default.fr.txt",
            "email/default.vi.text",
            "sms/default.vi.html",
            "bill/default.vi.subject",
            "email/default.vi",
            "email/default.vi.txt.bak",
            "EMAIL/default.vi.txt",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lang_parses() {
        assert_eq!("vi".parse::<Lang>().unwrap(), Lang::Vi);
        assert_eq!("EN".parse::<Lang>().unwrap(), Lang::En);
        assert_eq!("vi-VN".parse::<Lang>().unwrap(), Lang::Vi);
        assert_eq!("en_GB".parse::<Lang>().unwrap(), Lang::En);
        assert!("fr".parse::<Lang>().is_err());
        assert!("".parse::<Lang>().is_err());
        assert_eq!(Lang::default(), Lang::Vi);
    }

    fn render_str(src: &str, lang: &str, value: Value) -> String {
        let env = new_environment();
        let ctx = minijinja::context! { lang => lang, v => value };
        env.render_str(src, ctx).unwrap()
    }

    #[test]
    fn local_time_is_vietnam_time() {
        let t = Value::from("2026-12-01T17:30:00Z");
        assert_eq!(
            render_str("{{ v|local_time }}", "vi", t.clone()),
            "02/12/2026 00:30 (giờ Việt Nam)"
        );
        assert_eq!(
            render_str("{{ v|local_time }}", "en", t.clone()),
            "2026-12-02 00:30 (Vietnam time)"
        );
        assert_eq!(
            render_str("{{ v|local_time('en') }}", "vi", t.clone()),
            "2026-12-02 00:30 (Vietnam time)"
        );
        assert_eq!(render_str("{{ v|local_date }}", "vi", t), "02/12/2026");
        assert_eq!(
            render_str("{{ v|local_time }}", "vi", Value::from(0)),
            "01/01/1970 07:00 (giờ Việt Nam)"
        );
    }

    #[test]
    fn numbers_are_grouped_by_language() {
        for (n, vi, en) in [
            (0i64, "0", "0"),
            (999, "999", "999"),
            (1000, "1.000", "1,000"),
            (1_234_567, "1.234.567", "1,234,567"),
            (-12_345, "-12.345", "-12,345"),
        ] {
            assert_eq!(render_str("{{ v|number }}", "vi", Value::from(n)), vi);
            assert_eq!(render_str("{{ v|number }}", "en", Value::from(n)), en);
        }
    }

    #[test]
    fn bad_filter_input_is_an_error() {
        let env = new_environment();
        assert!(env.render_str("{{ 'x'|local_time }}", ()).is_err());
        assert!(env.render_str("{{ 'x'|number }}", ()).is_err());
        let e = env.render_str("{{ nothing|local_time }}", ()).unwrap_err();
        assert_eq!(e.kind(), minijinja::ErrorKind::UndefinedError);
        let e = env.render_str("{{ nothing|number }}", ()).unwrap_err();
        assert_eq!(e.kind(), minijinja::ErrorKind::UndefinedError);
    }
}
