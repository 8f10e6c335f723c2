//! Telephone numbers in E.164 (`+84…`). Vietnamese national forms are the
//! common case: `0912 345 678`, `84912345678`, `(+84) 91-234-5678`, and the
//! old 11-digit mobile prefixes are kept as written (they are no longer
//! dialled, but scam reports still quote them).

use crate::{ObservableError, ObservableKind};

/// Normalises a phone number to E.164 with a leading `+`.
pub fn normalize_phone(input: &str) -> Result<String, ObservableError> {
    let invalid = |reason: &str| ObservableError::invalid(ObservableKind::Phone, reason);
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ObservableError::Empty);
    }
    let mut digits = String::with_capacity(trimmed.len());
    let mut plus = false;
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if digits.is_empty() && !plus => plus = true,
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return Err(invalid(&format!("unexpected character {c:?} at {i}"))),
        }
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else if let Some(national) = digits.strip_prefix('0') {
        format!("84{national}")
    } else if (digits.starts_with("1800") || digits.starts_with("1900"))
        && (digits.len() == 8 || digits.len() == 10)
    {
        format!("84{digits}")
    } else if digits.starts_with("84") && (digits.len() == 11 || digits.len() == 12) {
        digits
    } else {
        return Err(invalid(
            "no country code and not a Vietnamese national number",
        ));
    };
    if international.starts_with('0') {
        return Err(invalid("country code cannot start with 0"));
    }
    if let Some(national) = international.strip_prefix("84") {
        check_vietnamese(national).map_err(|r| invalid(&r))?;
    } else if !(8..=15).contains(&international.len()) {
        return Err(invalid("E.164 numbers have 8 to 15 digits"));
    }
    Ok(format!("+{international}"))
}

fn check_vietnamese(national: &str) -> Result<(), String> {
    let first = national.as_bytes().first().copied().unwrap_or(b'0');
    match (first, national.len()) {
        // Mobile: 3x, 5x, 7x, 8x, 9x followed by 7 digits.
        (b'3' | b'5' | b'7' | b'8' | b'9', 9) => Ok(()),
        // Fixed lines: 2xx area code, 10 digits in all.
        (b'2', 10) => Ok(()),
        // Service numbers: 1800/1900 and the like, 8 to 10 digits.
        (b'1', 8..=10) => Ok(()),
        // Pre-2018 mobile numbers: 12x/16x/18x/19x, 10 digits after the 0.
        (b'1', 11) => Ok(()),
        _ => Err(format!(
            "{} digits after +84 is not a Vietnamese number",
            national.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_phone;

    #[test]
    fn normalises_vietnamese_forms() {
        for s in [
            "0912345678",
            "0912 345 678",
            "84912345678",
            "+84 91-234-5678",
            "(+84) 912.345.678",
            "0084912345678",
        ] {
            assert_eq!(normalize_phone(s).unwrap(), "+84912345678", "{s}");
        }
        assert_eq!(normalize_phone("024 3825 1234").unwrap(), "+842438251234");
        assert_eq!(normalize_phone("1900 1234").unwrap(), "+8419001234");
        assert_eq!(normalize_phone("+1 202 555 0143").unwrap(), "+12025550143");
    }

    #[test]
    fn rejects_wrong_numbers() {
        for s in [
            "091234",
            "+84 4",
            "09123456789012",
            "phone",
            "+0123456789",
            "12345678",
        ] {
            assert!(normalize_phone(s).is_err(), "{s}");
        }
    }
}
