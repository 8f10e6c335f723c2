//! Undo the "defanging" that feeds and reports apply so values cannot be
//! clicked: `hxxp://evil[.]com`, `1.2.3[.]4`, `evil(.)com`, `user[@]mail`.

use std::borrow::Cow;

/// Returns the value with common defanging undone and surrounding white
/// space removed. Values without defanging are returned borrowed.
pub fn refang(input: &str) -> Cow<'_, str> {
    let trimmed = input.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let needs = trimmed.contains(['[', '(', '{'])
        || trimmed.len() >= 4 && starts_with_ignore_case(trimmed, "hxxp")
        || trimmed.len() >= 4 && starts_with_ignore_case(trimmed, "fxp")
        || trimmed.contains("://") && starts_with_ignore_case(trimmed, "hXXp");
    if !needs {
        return Cow::Borrowed(trimmed);
    }
    let mut s = trimmed.to_string();
    for (from, to) in [
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("(dot)", "."),
        ("[DOT]", "."),
        ("(DOT)", "."),
        ("[:]", ":"),
        ("[://]", "://"),
        ("[@]", "@"),
        ("(@)", "@"),
        ("[at]", "@"),
        ("(at)", "@"),
        ("[/]", "/"),
    ] {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    for (from, to) in [("hxxps", "https"), ("hxxp", "http"), ("fxp", "ftp")] {
        if s.len() >= from.len() && starts_with_ignore_case(&s, from) {
            s = format!("{to}{}", &s[from.len()..]);
            break;
        }
    }
    Cow::Owned(s)
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::refang;

    #[test]
    fn undoes_common_defanging() {
        assert_eq!(refang("hxxp://evil[.]com/x"), "http://evil.com/x");
        assert_eq!(refang("HXXPS://evil[.]com"), "https://evil.com");
        assert_eq!(refang("1.2.3[.]4"), "1.2.3.4");
        assert_eq!(refang("evil(.)com"), "evil.com");
        assert_eq!(refang("bad[@]mail[.]vn"), "bad@mail.vn");
        assert_eq!(refang("  plain.example  "), "plain.example");
    }

    #[test]
    fn leaves_clean_values_borrowed() {
        assert!(matches!(
            refang("example.com"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
