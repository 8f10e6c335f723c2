use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::ObservableError;

/// The kinds of value an indicator can be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObservableKind {
    Ipv4,
    Ipv6,
    /// An IPv4 or IPv6 network in network form (`10.0.0.0/8`).
    Cidr,
    Domain,
    Url,
    Sha256,
    Sha1,
    Md5,
    Email,
    /// A telephone number in E.164 form.
    Phone,
}

impl ObservableKind {
    pub const ALL: [ObservableKind; 10] = [
        Self::Ipv4,
        Self::Ipv6,
        Self::Cidr,
        Self::Domain,
        Self::Url,
        Self::Sha256,
        Self::Sha1,
        Self::Md5,
        Self::Email,
        Self::Phone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Cidr => "cidr",
            Self::Domain => "domain",
            Self::Url => "url",
            Self::Sha256 => "sha256",
            Self::Sha1 => "sha1",
            Self::Md5 => "md5",
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }

    /// How long a source's listing stays valid when the source gives no
    /// expiry: addresses are re-assigned within weeks, domains and URLs
    /// live longer, a file hash never stops being that file. Operators
    /// override these per kind.
    pub fn default_lifetime(self) -> Option<chrono::Duration> {
        let days = match self {
            Self::Ipv4 | Self::Ipv6 => 30,
            Self::Cidr => 90,
            Self::Url => 90,
            Self::Domain => 180,
            Self::Email | Self::Phone => 365,
            Self::Sha256 | Self::Sha1 | Self::Md5 => return None,
        };
        Some(chrono::Duration::days(days))
    }

    /// True for the kinds that are file hashes.
    pub fn is_hash(self) -> bool {
        matches!(self, Self::Sha256 | Self::Sha1 | Self::Md5)
    }

    /// True for the kinds that are addresses or networks.
    pub fn is_ip(self) -> bool {
        matches!(self, Self::Ipv4 | Self::Ipv6 | Self::Cidr)
    }
}

impl fmt::Display for ObservableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObservableKind {
    type Err = ObservableError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "ipv4" | "ip" | "ipv4-addr" => Self::Ipv4,
            "ipv6" | "ipv6-addr" => Self::Ipv6,
            "cidr" | "net" | "network" => Self::Cidr,
            "domain" | "hostname" | "domain-name" | "fqdn" => Self::Domain,
            "url" | "uri" => Self::Url,
            "sha256" | "sha-256" => Self::Sha256,
            "sha1" | "sha-1" => Self::Sha1,
            "md5" => Self::Md5,
            "email" | "email-addr" | "e-mail" => Self::Email,
            "phone" | "phone-number" => Self::Phone,
            _ => return Err(ObservableError::UnknownKind(s.to_string())),
        })
    }
}

/// A normalised value of one kind. Built only by parsing, so equal
/// observables are equal values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Observable {
    kind: ObservableKind,
    value: String,
}

impl Observable {
    /// Parses `input` as an observable of `kind`, undoing defanging first.
    ///
    /// A host address given as a CIDR (`1.2.3.4/32`) becomes an address; an
    /// address given where a CIDR is expected becomes a host network.
    pub fn parse(kind: ObservableKind, input: &str) -> Result<Self, ObservableError> {
        let refanged = crate::refang(input);
        let text: &str = &refanged;
        if text.is_empty() {
            return Err(ObservableError::Empty);
        }
        let invalid = |reason: &str| ObservableError::invalid(kind, reason);
        let (kind, value) = match kind {
            ObservableKind::Ipv4 => {
                let ip =
                    parse_ipv4(text).ok_or_else(|| invalid("not a dotted-quad IPv4 address"))?;
                (kind, ip.to_string())
            }
            ObservableKind::Ipv6 => {
                let ip = parse_ipv6(text).ok_or_else(|| invalid("not an IPv6 address"))?;
                (kind, ip.to_string())
            }
            ObservableKind::Cidr => return parse_cidr(text),
            ObservableKind::Domain => (kind, crate::normalize_domain(text)?),
            ObservableKind::Url => (kind, crate::url_canon::canonicalize_url(text)?),
            ObservableKind::Sha256 => (
                kind,
                parse_hex(text, 64).ok_or_else(|| invalid("not 64 hex digits"))?,
            ),
            ObservableKind::Sha1 => (
                kind,
                parse_hex(text, 40).ok_or_else(|| invalid("not 40 hex digits"))?,
            ),
            ObservableKind::Md5 => (
                kind,
                parse_hex(text, 32).ok_or_else(|| invalid("not 32 hex digits"))?,
            ),
            ObservableKind::Email => (kind, parse_email(text)?),
            ObservableKind::Phone => (kind, crate::phone::normalize_phone(text)?),
        };
        Ok(Self { kind, value })
    }

    /// Guesses the kind of a bare value, as plain lists and reports give
    /// them: an address, a network, a hash by its length, an e-mail address,
    /// a URL (with a scheme, or a host followed by a path), a phone number,
    /// or else a domain.
    pub fn detect(input: &str) -> Result<Self, ObservableError> {
        let refanged = crate::refang(input);
        let text: &str = &refanged;
        if text.is_empty() {
            return Err(ObservableError::Empty);
        }
        if text.contains("://") {
            return Self::parse(ObservableKind::Url, text);
        }
        if let Some(ip) = parse_ipv4(text) {
            return Ok(Self::ip(IpAddr::V4(ip)));
        }
        if let Some(ip) = parse_ipv6(text) {
            return Ok(Self::ip(IpAddr::V6(ip)));
        }
        if text.contains('/') {
            if let Some((net, len)) = text.split_once('/')
                && (parse_ipv4(net).is_some() || parse_ipv6(net).is_some())
                && !len.is_empty()
                && len.bytes().all(|b| b.is_ascii_digit())
            {
                return parse_cidr(text);
            }
            return Self::parse(ObservableKind::Url, text);
        }
        if text.bytes().all(|b| b.is_ascii_hexdigit()) {
            match text.len() {
                64 => return Self::parse(ObservableKind::Sha256, text),
                40 => return Self::parse(ObservableKind::Sha1, text),
                32 => return Self::parse(ObservableKind::Md5, text),
                _ => {}
            }
        }
        if text.contains('@') {
            return Self::parse(ObservableKind::Email, text);
        }
        let first = text.as_bytes()[0];
        if (first == b'+' || first.is_ascii_digit())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b" +-.()".contains(&b))
            && !text.contains('.')
        {
            return Self::parse(ObservableKind::Phone, text);
        }
        if let Some((host, port)) = text.rsplit_once(':') {
            // `ip:port` and `host:port`, as C&C trails write them: the port
            // is not part of the indicator.
            if !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) {
                return Self::detect(host);
            }
        }
        match crate::normalize_domain(text) {
            Ok(value) => Ok(Self {
                kind: ObservableKind::Domain,
                value,
            }),
            Err(ObservableError::Invalid { reason, .. }) if looks_like_domain(text) => {
                Err(ObservableError::invalid(ObservableKind::Domain, reason))
            }
            Err(_) => Err(ObservableError::Unrecognised(truncate(text, 80))),
        }
    }

    /// Builds the observable of an IP address.
    pub fn ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self {
                kind: ObservableKind::Ipv4,
                value: v4.to_string(),
            },
            IpAddr::V6(v6) => Self {
                kind: ObservableKind::Ipv6,
                value: v6.to_string(),
            },
        }
    }

    pub fn kind(&self) -> ObservableKind {
        self.kind
    }

    /// The normalised value.
    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn into_value(self) -> String {
        self.value
    }

    /// The address, for `ipv4` and `ipv6` observables.
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self.kind {
            ObservableKind::Ipv4 | ObservableKind::Ipv6 => self.value.parse().ok(),
            _ => None,
        }
    }

    /// The network, for `cidr` observables (and addresses as host networks).
    pub fn as_net(&self) -> Option<IpNet> {
        match self.kind {
            ObservableKind::Cidr => self.value.parse().ok(),
            ObservableKind::Ipv4 | ObservableKind::Ipv6 => self.as_ip().map(IpNet::from),
            _ => None,
        }
    }

    /// The host of a URL or e-mail observable, or the domain itself.
    pub fn host(&self) -> Option<&str> {
        match self.kind {
            ObservableKind::Domain => Some(&self.value),
            ObservableKind::Email => self.value.rsplit_once('@').map(|(_, d)| d),
            ObservableKind::Url => {
                let rest = self.value.split_once("://")?.1;
                let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                let authority = &rest[..end];
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                if host.starts_with('[') {
                    host.find(']').map(|i| &host[..=i])
                } else {
                    Some(host.split(':').next().unwrap_or(host))
                }
            }
            _ => None,
        }
    }
}

impl fmt::Display for Observable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    // std rejects leading zeros (octal ambiguity) — exactly what we want.
    s.parse().ok()
}

fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    let ip: Ipv6Addr = s.parse().ok()?;
    Some(ip)
}

fn parse_cidr(text: &str) -> Result<Observable, ObservableError> {
    let invalid = |reason: &str| ObservableError::invalid(ObservableKind::Cidr, reason);
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let ip: IpAddr = parse_ipv4(addr)
        .map(IpAddr::V4)
        .or_else(|| parse_ipv6(addr).map(IpAddr::V6))
        .ok_or_else(|| invalid("network address is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = match len {
        None => max,
        Some(l) => l
            .parse()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| invalid(&format!("prefix length must be 0 to {max}")))?,
    };
    if len == max {
        return Ok(Observable::ip(ip));
    }
    let net = IpNet::new(ip, len)
        .map_err(|e| invalid(&e.to_string()))?
        .trunc();
    Ok(Observable {
        kind: ObservableKind::Cidr,
        value: net.to_string(),
    })
}

fn parse_hex(s: &str, len: usize) -> Option<String> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

fn parse_email(s: &str) -> Result<String, ObservableError> {
    let invalid = |reason: &str| ObservableError::invalid(ObservableKind::Email, reason);
    let s = s.strip_prefix("mailto:").unwrap_or(s);
    let (local, domain) = s.rsplit_once('@').ok_or_else(|| invalid("no @"))?;
    if local.is_empty() || local.len() > 64 {
        return Err(invalid("local part must be 1 to 64 characters"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(invalid("misplaced dot in local part"));
    }
    if let Some(c) = local
        .chars()
        .find(|c| !(c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(*c)))
    {
        return Err(invalid(&format!(
            "character {c:?} is not allowed in the local part"
        )));
    }
    let domain = crate::normalize_domain(domain).map_err(|e| match e {
        ObservableError::Invalid { reason, .. } => invalid(&format!("domain: {reason}")),
        other => other,
    })?;
    // Mailbox names are case-insensitive at every provider that matters here;
    // one spelling keeps one indicator.
    Ok(format!("{}@{domain}", local.to_lowercase()))
}

fn looks_like_domain(s: &str) -> bool {
    s.contains('.') && !s.contains(char::is_whitespace) || s.contains(' ') && s.contains('.')
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(s: &str) -> (ObservableKind, String) {
        let o = Observable::detect(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (o.kind(), o.value().to_string())
    }

    #[test]
    fn detects_kinds() {
        use ObservableKind::*;
        assert_eq!(detect("1.2.3[.]4"), (Ipv4, "1.2.3.4".into()));
        assert_eq!(detect("10.1.2.3/8"), (Cidr, "10.0.0.0/8".into()));
        assert_eq!(detect("10.1.2.3/32"), (Ipv4, "10.1.2.3".into()));
        assert_eq!(detect("2001:DB8::1"), (Ipv6, "2001:db8::1".into()));
        assert_eq!(detect("2001:db8::1/32"), (Cidr, "2001:db8::/32".into()));
        assert_eq!(detect("evil(.)com"), (Domain, "evil.com".into()));
        assert_eq!(
            detect("hxxp://evil[.]com/x"),
            (Url, "http://evil.com/x".into())
        );
        assert_eq!(
            detect("evil.com/x.exe"),
            (Url, "http://evil.com/x.exe".into())
        );
        assert_eq!(detect("185.1.2.3:443"), (Ipv4, "185.1.2.3".into()));
        assert_eq!(detect("c2.evil.com:8080"), (Domain, "c2.evil.com".into()));
        assert_eq!(detect(&"A".repeat(64)), (Sha256, "a".repeat(64)));
        assert_eq!(detect(&"b".repeat(40)), (Sha1, "b".repeat(40)));
        assert_eq!(detect(&"C".repeat(32)), (Md5, "c".repeat(32)));
        assert_eq!(detect("Scam@Mail.VN"), (Email, "scam@mail.vn".into()));
        assert_eq!(detect("0912 345 678"), (Phone, "+84912345678".into()));
    }

    #[test]
    fn rejects_bad_values_with_reasons() {
        assert!(matches!(
            Observable::detect("-bad-.com"),
            Err(ObservableError::Invalid {
                kind: ObservableKind::Domain,
                ..
            })
        ));
        assert!(matches!(
            Observable::detect("exa mple.com"),
            Err(ObservableError::Invalid { .. })
        ));
        assert!(Observable::detect("10.0.0.0/33").is_err());
        assert!(Observable::parse(ObservableKind::Cidr, "300.0.0.0/8").is_err());
        assert!(Observable::parse(ObservableKind::Ipv4, "01.2.3.4").is_err());
        assert!(Observable::detect("").is_err());
        assert!(Observable::detect("just words").is_err());
    }

    #[test]
    fn host_of_urls_and_emails() {
        let u = Observable::detect("http://user@evil.com:8080/x").unwrap();
        assert_eq!(u.host(), Some("evil.com"));
        let e = Observable::detect("a@b.vn").unwrap();
        assert_eq!(e.host(), Some("b.vn"));
    }
}
