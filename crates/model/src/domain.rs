//! Domain names: UTS-46 to ASCII, DNS length and label rules, and the
//! registrable domain from the public suffix list.

use crate::{ObservableError, ObservableKind};

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Normalises a domain name: UTS-46 mapping to ASCII (punycode), lower case,
/// no trailing dot, a leading `*.` wildcard dropped (suffix matching already
/// covers subdomains), and the DNS rules checked: labels of 1–63 characters
/// made of letters, digits, hyphens (not first or last) and underscores
/// (seen in real names such as `_dmarc`), at most 253 characters, at least
/// two labels, and a top-level label that is not all digits.
pub fn normalize_domain(input: &str) -> Result<String, ObservableError> {
    let invalid = |reason: &str| ObservableError::invalid(ObservableKind::Domain, reason);
    let mut name = input.trim();
    if let Some(rest) = name.strip_prefix("*.") {
        name = rest;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(ObservableError::Empty);
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("contains white space or a control character"));
    }
    let ascii = if name.is_ascii() {
        // The fast path: plain ASCII needs only case folding, but punycode
        // labels must still decode to valid Unicode.
        let lower = name.to_ascii_lowercase();
        if lower.contains("xn--") {
            idna::domain_to_ascii(&lower).map_err(|_| invalid("invalid punycode label"))?
        } else {
            lower
        }
    } else {
        idna::domain_to_ascii(name).map_err(|_| invalid("not valid under IDNA (UTS-46)"))?
    };
    check_dns_rules(&ascii).map_err(|reason| invalid(&reason))?;
    Ok(ascii)
}

fn check_dns_rules(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME {
        return Err(format!("name longer than {MAX_NAME} characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("a single label is not a domain".into());
    }
    for label in &labels {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > MAX_LABEL {
            return Err(format!("label longer than {MAX_LABEL} characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with a hyphen"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("character {c:?} is not allowed in a domain"));
        }
    }
    let tld = labels[labels.len() - 1];
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err("top-level label is numeric".into());
    }
    if tld.contains('_') {
        return Err("top-level label contains an underscore".into());
    }
    Ok(())
}

/// The registrable domain ("eTLD+1") of a normalised name, from the public
/// suffix list compiled into the binary: `a.b.vietcombank.com.vn` →
/// `vietcombank.com.vn`. `None` when the name is itself a public suffix.
pub fn registrable_domain(normalized: &str) -> Option<&str> {
    psl::domain_str(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_dot_and_idna() {
        assert_eq!(
            normalize_domain("WWW.Example.COM.").unwrap(),
            "www.example.com"
        );
        assert_eq!(normalize_domain("*.evil.com").unwrap(), "evil.com");
        assert_eq!(normalize_domain("bücher.de").unwrap(), "xn--bcher-kva.de");
        assert_eq!(normalize_domain("vnexpress.net").unwrap(), "vnexpress.net");
        assert_eq!(
            normalize_domain("ngânhàng.vn").unwrap(),
            normalize_domain("NGÂNHÀNG.vn").unwrap()
        );
        assert_eq!(
            normalize_domain("_dmarc.example.com").unwrap(),
            "_dmarc.example.com"
        );
    }

    #[test]
    fn rejects_invalid_names() {
        for bad in [
            "-bad-.com",
            "exa mple.com",
            &format!("{}.com", "a".repeat(64)),
            "localhost",
            "a..b.com",
            "1.2.3.999",
            "evil.com/path",
            "evil_.c_m",
            &format!("{}.com", vec!["a".repeat(60); 5].join(".")),
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn finds_registrable_domain() {
        assert_eq!(
            registrable_domain("a.b.vietcombank.com.vn"),
            Some("vietcombank.com.vn")
        );
        assert_eq!(registrable_domain("www.gov.vn"), Some("www.gov.vn"));
        assert_eq!(
            registrable_domain("x.y.example.co.uk"),
            Some("example.co.uk")
        );
        assert_eq!(registrable_domain("com.vn"), None);
    }
}
