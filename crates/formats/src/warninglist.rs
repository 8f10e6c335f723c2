//! MISP warninglists: known-good values that must never be blocked.
//!
//! A warninglist is a MISP `list.json` file (`name`, `type`, `list`,
//! `matching_attributes`; see MISP/misp-warninglists). [`WarninglistSet`]
//! loads many of them — from a directory tree ([`WarninglistSet::load_dir`]),
//! from strings ([`Warninglist::from_json`]) or the set compiled into the
//! binary ([`WarninglistSet::embedded_default`]) — and answers
//! [`WarninglistSet::check`]: the name of the first list that covers an
//! observable, or `None`.
//!
//! # Matching rules
//!
//! These were decided for Khiên and differ from MISP where MISP is too loose
//! or too strict for a block list:
//!
//! - **`cidr`** lists hold networks (a bare address is a host network). An
//!   IPv4/IPv6 observable matches when it lies inside a network. A CIDR
//!   observable matches when it *overlaps* a network, in either direction:
//!   blocking `8.0.0.0/8` would block `8.8.8.8`, so a listed `8.8.8.8`
//!   protects it. Networks are kept as merged, sorted ranges and searched by
//!   bisection, so a check is O(log n) even for the 62k entries of
//!   `public-dns-v4`.
//! - **`hostname`** lists match a domain equal to an entry, or a subdomain
//!   of an entry in the same registrable domain (public suffix list):
//!   `mail.google.com` is covered by `google.com`, but `evil.blogspot.com`
//!   is *not* covered by `blogspot.com`, because every name under a public
//!   suffix belongs to someone else. An entry written with a leading dot
//!   (`.google.com`, the way MISP's vendor lists mark "and all subdomains")
//!   covers every subdomain regardless of the public suffix list, since the
//!   list author asked for exactly that.
//! - URLs are **never** allow-listed by hostname lists: a phishing page on
//!   `docs.google.com` is a legitimate URL to block even though the host is
//!   not. Only a `string` list entry equal to the whole URL covers a URL.
//!   Hostname lists do not apply to e-mail addresses either.
//! - **`string`** lists match the normalised value exactly. Entries are
//!   normalised like observables ([`Observable::detect`]) when they parse,
//!   so `WWW.Google.COM.` in a list still meets `www.google.com`; entries
//!   that do not parse are compared as lower-case text. Leading-dot entries
//!   behave as in hostname lists (vendor lists such as `google` are
//!   `string` lists written that way).
//! - **`substring`** lists match when the (lower-cased) value contains an
//!   entry; **`regex`** lists when a pattern matches it. Patterns written
//!   `/…/flags` (PHP style, as in MISP) have the slashes stripped and the
//!   `i`, `m`, `s`, `x` flags turned into inline flags; all patterns of a
//!   list are compiled once into one `RegexSet`. An invalid pattern is an
//!   error naming the list and the entry.
//! - `matching_attributes` restricts a list to compatible observable kinds:
//!   `ip-src`/`ip-dst`/`domain|ip` (and `|port` forms) → IPv4, IPv6, CIDR;
//!   `domain`/`hostname`/`domain|ip` → domain; `url`/`uri`/`link` → URL;
//!   `md5`/`sha1`/`sha256` and their `filename|…` forms → that hash;
//!   e-mail and phone attribute types → e-mail and phone. Other MISP types
//!   (ssdeep, sha512, …) are ignored. A list without `matching_attributes`
//!   applies to every kind its type can express.
//!
//! Lists are checked in the order they were added; [`WarninglistSet::load_dir`]
//! adds them sorted by path, so answers are deterministic.
//!
//! ```
//! use khien_formats::warninglist::WarninglistSet;
//! use khien_model::Observable;
//! let set = WarninglistSet::embedded_default().expect("embedded lists are valid");
//! let o = Observable::detect("8.8.8.8").expect("an address");
//! assert_eq!(set.check(&o), Some("List of known IPv4 public DNS resolvers"));
//! ```

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ipnet::IpNet;
use khien_model::{Observable, ObservableKind, registrable_domain};
use regex::RegexSet;
use serde::Deserialize;

use crate::{Error, Location};

const FORMAT: &str = "MISP warninglist";

/// How deep [`WarninglistSet::load_dir`] descends: the MISP repository
/// layout is `lists/<name>/list.json`, so a few levels suffice and a
/// symlink loop cannot keep us busy.
const MAX_DEPTH: usize = 4;

/// The `type` of a MISP warninglist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListType {
    String,
    Hostname,
    Cidr,
    Substring,
    Regex,
}

impl ListType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Hostname => "hostname",
            Self::Cidr => "cidr",
            Self::Substring => "substring",
            Self::Regex => "regex",
        }
    }
}

/// A set of observable kinds, one bit per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct KindMask(u16);

impl KindMask {
    const ALL: KindMask = KindMask((1 << ObservableKind::ALL.len()) - 1);

    fn bit(kind: ObservableKind) -> u16 {
        let index = ObservableKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        1 << index
    }

    fn of(kinds: &[ObservableKind]) -> Self {
        Self(kinds.iter().fold(0, |m, k| m | Self::bit(*k)))
    }

    fn contains(self, kind: ObservableKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    /// The kinds a MISP attribute type stands for.
    fn for_attribute(attribute: &str) -> Self {
        use ObservableKind::*;
        let ips = [Ipv4, Ipv6, Cidr];
        match attribute.trim().to_ascii_lowercase().as_str() {
            "ip-src" | "ip-dst" | "ip" | "ip-src|port" | "ip-dst|port" => Self::of(&ips),
            // A composite: its IP part meets cidr lists, its name part
            // hostname and string lists.
            "domain|ip" => Self::of(&[Ipv4, Ipv6, Cidr, Domain]),
            "domain" | "hostname" | "hostname|port" => Self::of(&[Domain]),
            "url" | "uri" | "link" => Self::of(&[Url]),
            "md5" | "filename|md5" => Self::of(&[Md5]),
            "sha1" | "filename|sha1" => Self::of(&[Sha1]),
            "sha256" | "filename|sha256" => Self::of(&[Sha256]),
            "email"
            | "email-src"
            | "email-dst"
            | "target-email"
            | "email-reply-to"
            | "whois-registrant-email" => Self::of(&[Email]),
            "phone-number" | "whois-registrant-phone" => Self::of(&[Phone]),
            _ => Self::default(),
        }
    }
}

/// The on-disk shape of `list.json`; other fields (description, version)
/// are ignored.
#[derive(Deserialize)]
struct RawList {
    name: String,
    #[serde(rename = "type")]
    list_type: String,
    list: Vec<String>,
    #[serde(default)]
    matching_attributes: Vec<String>,
}

/// Networks as sorted, merged, non-overlapping inclusive ranges, so that
/// both "contains this address" and "overlaps this network" are one
/// bisection.
#[derive(Debug, Default)]
struct Ranges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Ranges {
    fn build(nets: &[IpNet]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Self {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    fn overlaps(&self, net: &IpNet) -> bool {
        match net {
            IpNet::V4(n) => overlaps(&self.v4, u32::from(n.network()), u32::from(n.broadcast())),
            IpNet::V6(n) => overlaps(&self.v6, u128::from(n.network()), u128::from(n.broadcast())),
        }
    }
}

fn merge<T: Ord + Copy>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// `ranges` must be sorted and non-overlapping, so their ends are sorted
/// too: the first range ending at or after `lo` is the only candidate.
fn overlaps<T: Ord + Copy>(ranges: &[(T, T)], lo: T, hi: T) -> bool {
    let i = ranges.partition_point(|r| r.1 < lo);
    ranges.get(i).is_some_and(|r| r.0 <= hi)
}

/// Exact values plus leading-dot "this name and every subdomain" entries.
#[derive(Debug, Default)]
struct ValueSet {
    exact: HashSet<String>,
    subtree: HashSet<String>,
}

impl ValueSet {
    fn build(entries: &[String], hostname: bool) -> Self {
        let mut set = Self::default();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            if let Some(rest) = entry.strip_prefix("*.").or_else(|| entry.strip_prefix('.')) {
                set.subtree.insert(normalise_name(rest));
            } else if hostname {
                set.exact.insert(normalise_name(entry));
            } else {
                let value = Observable::detect(entry)
                    .map(Observable::into_value)
                    .unwrap_or_else(|_| entry.to_lowercase());
                set.exact.insert(value);
            }
        }
        set
    }

    /// The hostname rule: a listed parent covers the name only while the
    /// parent is still inside the name's registrable domain.
    fn covers_domain(&self, name: &str) -> bool {
        if self.exact.contains(name) || self.subtree.contains(name) {
            return true;
        }
        let floor = registrable_domain(name).map(str::len);
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            if self.subtree.contains(parent) {
                return true;
            }
            // `parent` and the registrable domain are both suffixes of
            // `name`, so comparing lengths is comparing names.
            if floor.is_some_and(|f| parent.len() >= f) && self.exact.contains(parent) {
                return true;
            }
            rest = parent;
        }
        false
    }

    fn subtree_covers(&self, name: &str) -> bool {
        let mut rest = name;
        loop {
            if self.subtree.contains(rest) {
                return true;
            }
            match rest.split_once('.') {
                Some((_, parent)) => rest = parent,
                None => return false,
            }
        }
    }
}

fn normalise_name(name: &str) -> String {
    khien_model::normalize_domain(name)
        .unwrap_or_else(|_| name.trim_end_matches('.').to_ascii_lowercase())
}

#[derive(Debug)]
enum Matcher {
    Cidr(Ranges),
    Hostname(ValueSet),
    String(ValueSet),
    Substring(Vec<String>),
    Regex(RegexSet),
}

/// One loaded warninglist.
#[derive(Debug)]
pub struct Warninglist {
    id: String,
    name: String,
    list_type: ListType,
    kinds: KindMask,
    entries: usize,
    matcher: Matcher,
}

impl Warninglist {
    /// Parses a `list.json` document. `id` names the list in errors and in
    /// [`Warninglist::id`] (the folder name when loaded from a directory).
    pub fn from_json(id: &str, json: &str) -> Result<Self, Error> {
        let err = |reason: String| Error::Malformed {
            format: FORMAT,
            location: Location::File {
                path: id.to_string(),
                inner: Box::new(Location::Input),
            },
            reason,
        };
        let raw: RawList = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        let list_type = match raw.list_type.trim().to_ascii_lowercase().as_str() {
            "string" => ListType::String,
            "hostname" => ListType::Hostname,
            "cidr" => ListType::Cidr,
            "substring" => ListType::Substring,
            "regex" => ListType::Regex,
            other => {
                return Err(err(format!(
                    "list {:?}: unknown type {other:?} (expected string, hostname, cidr, substring or regex)",
                    raw.name
                )));
            }
        };
        let mut kinds = if raw.matching_attributes.is_empty() {
            KindMask::ALL
        } else {
            raw.matching_attributes
                .iter()
                .fold(KindMask::default(), |m, a| {
                    KindMask(m.0 | KindMask::for_attribute(a).0)
                })
        };
        use ObservableKind::*;
        kinds.0 &= match list_type {
            ListType::Cidr => KindMask::of(&[Ipv4, Ipv6, Cidr]).0,
            ListType::Hostname => KindMask::of(&[Domain]).0,
            _ => KindMask::ALL.0,
        };
        let matcher = match list_type {
            ListType::Cidr => {
                let mut nets = Vec::with_capacity(raw.list.len());
                for entry in &raw.list {
                    let entry = entry.trim();
                    if entry.is_empty() {
                        continue;
                    }
                    let net = parse_net(entry).ok_or_else(|| {
                        err(format!(
                            "list {:?}: entry {entry:?} is not an IP address or network",
                            raw.name
                        ))
                    })?;
                    nets.push(net);
                }
                Matcher::Cidr(Ranges::build(&nets))
            }
            ListType::Hostname => Matcher::Hostname(ValueSet::build(&raw.list, true)),
            ListType::String => Matcher::String(ValueSet::build(&raw.list, false)),
            ListType::Substring => Matcher::Substring(
                raw.list
                    .iter()
                    .map(|e| e.trim().to_lowercase())
                    .filter(|e| !e.is_empty())
                    .collect(),
            ),
            ListType::Regex => {
                let mut patterns = Vec::with_capacity(raw.list.len());
                for entry in &raw.list {
                    patterns.push(php_regex(entry).map_err(|reason| {
                        err(format!("list {:?}: entry {entry:?}: {reason}", raw.name))
                    })?);
                }
                let set = RegexSet::new(&patterns).map_err(|e| {
                    // Name the culprit: compile one by one only on failure.
                    let culprit = raw
                        .list
                        .iter()
                        .zip(&patterns)
                        .find(|(_, p)| regex::Regex::new(p).is_err())
                        .map_or_else(|| "?".to_string(), |(entry, _)| entry.clone());
                    err(format!(
                        "list {:?}: invalid regular expression {culprit:?}: {e}",
                        raw.name
                    ))
                })?;
                Matcher::Regex(set)
            }
        };
        Ok(Self {
            id: id.to_string(),
            name: raw.name,
            list_type,
            kinds,
            entries: raw.list.len(),
            matcher,
        })
    }

    /// The list's `name` field, e.g. `List of RFC 1918 CIDR blocks`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the list came from: its folder name, or the id given to
    /// [`Warninglist::from_json`].
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn list_type(&self) -> ListType {
        self.list_type
    }

    /// Number of entries in the file.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Whether this list applies to `observable`'s kind at all.
    pub fn applies_to(&self, kind: ObservableKind) -> bool {
        self.kinds.contains(kind)
    }

    /// True when the list covers `observable` (see the module docs).
    pub fn covers(&self, observable: &Observable) -> bool {
        let kind = observable.kind();
        if !self.applies_to(kind) {
            return false;
        }
        let value = observable.value();
        match &self.matcher {
            Matcher::Cidr(ranges) => observable.as_net().is_some_and(|n| ranges.overlaps(&n)),
            Matcher::Hostname(set) => kind == ObservableKind::Domain && set.covers_domain(value),
            // Only leading-dot entries cover subdomains in a string list;
            // plain entries are exact.
            Matcher::String(set) => {
                set.exact.contains(value)
                    || (kind == ObservableKind::Domain && set.subtree_covers(value))
            }
            Matcher::Substring(entries) => {
                let lower = value.to_lowercase();
                entries.iter().any(|e| lower.contains(e.as_str()))
            }
            Matcher::Regex(set) => set.is_match(value),
        }
    }
}

fn parse_net(entry: &str) -> Option<IpNet> {
    if let Ok(net) = entry.parse::<IpNet>() {
        return Some(net.trunc());
    }
    entry.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Turns a MISP/PHP style `/pattern/flags` entry into a `regex` pattern;
/// bare patterns pass unchanged.
fn php_regex(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    let Some(body) = entry.strip_prefix('/') else {
        return Ok(entry.to_string());
    };
    let Some((pattern, flags)) = body.rsplit_once('/') else {
        return Ok(entry.to_string());
    };
    let mut inline = String::new();
    for flag in flags.chars() {
        match flag {
            'i' | 'm' | 's' | 'x' => inline.push(flag),
            // Global and unicode matching are the regex crate's behaviour
            // already.
            'g' | 'u' => {}
            other => return Err(format!("unsupported regular expression flag {other:?}")),
        }
    }
    Ok(if inline.is_empty() {
        pattern.to_string()
    } else {
        format!("(?{inline}){pattern}")
    })
}

/// An ordered collection of warninglists.
#[derive(Debug, Default)]
pub struct WarninglistSet {
    lists: Vec<Warninglist>,
}

impl WarninglistSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every `list.json` under `dir` (e.g. a checkout of
    /// misp-warninglists or its `lists/` folder), sorted by path. Each list
    /// is named by its folder in [`Warninglist::id`]; errors name the file.
    pub fn load_dir(dir: &Path) -> Result<Self, Error> {
        let mut files = Vec::new();
        collect_lists(dir, 0, &mut files)?;
        files.sort();
        let mut set = Self::new();
        for file in files {
            let shown = file.display().to_string();
            let json = std::fs::read_to_string(&file).map_err(|e| Error::Malformed {
                format: FORMAT,
                location: Location::File {
                    path: shown.clone(),
                    inner: Box::new(Location::Input),
                },
                reason: format!("cannot read: {e}"),
            })?;
            let mut list = Warninglist::from_json(&shown, &json)?;
            list.id = file
                .parent()
                .and_then(Path::file_name)
                .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
            set.push(list);
        }
        Ok(set)
    }

    /// Adds a list from a `list.json` document (see [`Warninglist::from_json`]).
    pub fn add_json(&mut self, id: &str, json: &str) -> Result<(), Error> {
        self.push(Warninglist::from_json(id, json)?);
        Ok(())
    }

    /// Adds a list after the ones already present.
    pub fn push(&mut self, list: Warninglist) {
        self.lists.push(list);
    }

    /// The lists compiled into the binary (special-use ranges and names,
    /// public resolvers (IPv4 from MISP, IPv6 a short list of our own), big vendors, Tranco top 10k, empty-file hashes,
    /// sinkholes, second-level TLDs), built once per process on first use.
    /// The specific lists come first so that `check` names the most
    /// telling reason (`8.8.8.8` is a public resolver before it is popular).
    pub fn embedded_default() -> Result<&'static WarninglistSet, Error> {
        static DEFAULT: OnceLock<Result<WarninglistSet, String>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                let mut set = WarninglistSet::new();
                for (id, json) in EMBEDDED {
                    set.add_json(id, json).map_err(|e| e.to_string())?;
                }
                Ok(set)
            })
            .as_ref()
            .map_err(|e| Error::Config(format!("embedded warninglists: {e}")))
    }

    /// The name of the first list covering `observable`.
    pub fn check(&self, observable: &Observable) -> Option<&str> {
        self.check_list(observable).map(Warninglist::name)
    }

    /// The first list covering `observable`.
    pub fn check_list(&self, observable: &Observable) -> Option<&Warninglist> {
        self.lists.iter().find(|l| l.covers(observable))
    }

    pub fn lists(&self) -> &[Warninglist] {
        &self.lists
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

fn collect_lists(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Malformed {
        format: FORMAT,
        location: Location::File {
            path: dir.display().to_string(),
            inner: Box::new(Location::Input),
        },
        reason: format!("cannot read directory: {e}"),
    })?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            if depth < MAX_DEPTH {
                collect_lists(&path, depth + 1, out)?;
            }
        } else if path.file_name().is_some_and(|n| n == "list.json") {
            out.push(path);
        }
    }
    Ok(())
}

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../data/warninglists/", $name, "/list.json")))),*]
    };
}

/// Checked in this order: special-use space first, then the lists that
/// explain *why* a public value is benign, the popularity list last.
static EMBEDDED: [(&str, &str); 15] = embedded![
    "rfc1918",
    "rfc5735",
    "rfc6598",
    "rfc6761",
    "multicast",
    "ipv6-linklocal",
    "second-level-tlds",
    "empty-hashes",
    "sinkholes",
    "public-dns-v4",
    "public-dns-v6",
    "public-dns-hostname",
    "google",
    "microsoft",
    "tranco10k",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(s: &str) -> Observable {
        Observable::detect(s).expect("valid observable")
    }

    fn list(kind: &str, entries: &[&str], attrs: &[&str]) -> Warninglist {
        let json = serde_json::json!({
            "name": "t", "type": kind, "list": entries, "matching_attributes": attrs,
        });
        Warninglist::from_json("t", &json.to_string()).expect("valid list")
    }

    #[test]
    fn cidr_overlap_both_ways() {
        let l = list(
            "cidr",
            &["8.8.8.8", "10.0.0.0/8", "2001:db8::/32"],
            &["ip-dst"],
        );
        assert!(l.covers(&obs("8.8.8.8")));
        assert!(l.covers(&obs("8.0.0.0/8")));
        assert!(l.covers(&obs("10.1.0.0/16")));
        assert!(l.covers(&obs("0.0.0.0/0")));
        assert!(!l.covers(&obs("8.8.8.9")));
        assert!(!l.covers(&obs("11.0.0.0/8")));
        assert!(l.covers(&obs("2001:db8::1")));
        assert!(!l.covers(&obs("2001:db9::1")));
    }

    #[test]
    fn hostname_respects_public_suffixes() {
        let l = list(
            "hostname",
            &["google.com", "blogspot.com", ".dyn.example"],
            &["domain"],
        );
        assert!(l.covers(&obs("google.com")));
        assert!(l.covers(&obs("mail.google.com")));
        assert!(!l.covers(&obs("evil.blogspot.com")));
        assert!(l.covers(&obs("a.b.dyn.example")));
        assert!(!l.covers(&obs("http://google.com/x")));
        assert!(!l.covers(&obs("googIe.com")));
    }

    #[test]
    fn string_lists_are_exact_unless_dotted() {
        let l = list("string", &["com.vn", ".google.ad", "HTTP://X.COM/a"], &[]);
        assert!(l.covers(&obs("com.vn")));
        assert!(!l.covers(&obs("evil.com.vn")));
        assert!(l.covers(&obs("www.google.ad")));
        assert!(l.covers(&obs("http://x.com/a")));
    }

    #[test]
    fn regex_and_substring() {
        let l = list("regex", &["/^EVIL\\./i"], &["domain"]);
        assert!(l.covers(&obs("evil.example.com")));
        assert!(!l.covers(&obs("1.2.3.4")));
        let l = list("substring", &["Cloudfront"], &["domain"]);
        assert!(l.covers(&obs("d1.cloudfront.net")));
        let bad = serde_json::json!({"name": "bad", "type": "regex", "list": ["(unclosed"]});
        let err = Warninglist::from_json("bad", &bad.to_string()).expect_err("invalid regex");
        assert!(err.to_string().contains("(unclosed"), "{err}");
    }
}
