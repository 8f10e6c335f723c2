//! URL canonical form, so that spellings of one URL meet in one indicator:
//! scheme and host in lower case (host through IDNA), default port dropped,
//! dot-segments resolved, percent-escapes of unreserved characters decoded
//! and the rest in upper-case hex, no fragment, an empty path as `/`.
//! Query strings are kept as written: their order can matter to a server.

use crate::{ObservableError, ObservableKind};

const MAX_URL: usize = 8192;

/// Canonicalises a URL. A value without a scheme is read as `http://`.
pub fn canonicalize_url(input: &str) -> Result<String, ObservableError> {
    let invalid = |reason: &str| ObservableError::invalid(ObservableKind::Url, reason);
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ObservableError::Empty);
    }
    if trimmed.len() > MAX_URL {
        return Err(invalid("longer than 8192 characters"));
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err(invalid("contains white space"));
    }
    // `mailto:x@y`, `javascript:…`: a scheme without `//` is not a host
    // followed by a port (`evil.com:8080/x`).
    if !trimmed.contains("://")
        && let Some((scheme, rest)) = trimmed.split_once(':')
    {
        let schemeish = !scheme.is_empty()
            && !scheme.contains('.')
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-');
        if schemeish && !rest.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(invalid(&format!("scheme {scheme:?} is not a web URL")));
        }
    }
    let with_scheme;
    let text = if has_scheme(trimmed) {
        trimmed
    } else {
        with_scheme = format!("http://{trimmed}");
        &with_scheme
    };
    let mut url = url::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
    match url.scheme() {
        "http" | "https" | "ftp" | "ws" | "wss" => {}
        other => return Err(invalid(&format!("scheme {other:?} is not a web URL"))),
    }
    let Some(host) = url.host_str() else {
        return Err(invalid("no host"));
    };
    if url.domain().is_some() {
        // The url crate maps the host through IDNA but is more lenient than
        // DNS; hold URL hosts to the same rules as domain indicators.
        let checked = crate::normalize_domain(host).map_err(|e| match e {
            ObservableError::Invalid { reason, .. } => invalid(&format!("host: {reason}")),
            other => other,
        })?;
        if checked != host {
            url.set_host(Some(&checked))
                .map_err(|e| invalid(&e.to_string()))?;
        }
    }
    url.set_fragment(None);
    let path = normalize_percent(url.path());
    url.set_path(&path);
    if let Some(q) = url.query() {
        let q = normalize_percent(q);
        url.set_query(if q.is_empty() { None } else { Some(&q) });
    }
    Ok(url.into())
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b.wrapping_sub(b'A').wrapping_add(10),
    }
}

fn has_scheme(s: &str) -> bool {
    match s.find("://") {
        Some(i) => s[..i]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'),
        None => false,
    }
}

/// Decodes `%XX` where XX is an unreserved character (RFC 3986 §6.2.2.2),
/// upper-cases the hex of every other escape, and escapes a stray `%`.
fn normalize_percent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let v = hex_value(bytes[i + 1]) * 16 + hex_value(bytes[i + 2]);
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v as char);
            } else {
                out.push('%');
                out.push(bytes[i + 1].to_ascii_uppercase() as char);
                out.push(bytes[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
            continue;
        }
        if bytes[i] == b'%' {
            // A `%` that starts no escape is data; written as `%25` it can
            // no longer pair with the characters after it on a second pass.
            out.push_str("%25");
        } else {
            out.push(bytes[i] as char);
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::canonicalize_url;

    #[test]
    fn canonical_forms_meet() {
        let want = "http://evil.com/b/c";
        for s in [
            "http://evil.com/b/c",
            "HTTP://EVIL.COM:80/b/c",
            "http://evil.com/a/../b/./c#frag",
            "evil.com/b/c",
            "http://evil.com/%62/c",
        ] {
            assert_eq!(canonicalize_url(s).unwrap(), want, "{s}");
        }
        assert_eq!(canonicalize_url("https://x.vn").unwrap(), "https://x.vn/");
        assert_eq!(
            canonicalize_url("https://x.vn/a%2fb?q=%7e1").unwrap(),
            "https://x.vn/a%2Fb?q=~1"
        );
        assert_eq!(
            canonicalize_url("http://1.2.3.4:8080/x").unwrap(),
            "http://1.2.3.4:8080/x"
        );
        assert_eq!(
            canonicalize_url("http://bücher.de/").unwrap(),
            "http://xn--bcher-kva.de/"
        );
    }

    #[test]
    fn rejects_non_urls() {
        for s in [
            "javascript:alert(1)",
            "mailto:a@b.vn",
            "http://",
            "http://-bad-.com/",
            "http://a b.com/",
            "file:///etc/passwd",
        ] {
            assert!(canonicalize_url(s).is_err(), "{s}");
        }
    }
}
