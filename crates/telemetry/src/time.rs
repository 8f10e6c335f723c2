//! Timestamp parsing without allocation or a time-zone database: the log
//! formats carry a handful of shapes, parsed by hand because chrono's
//! format-string parser costs more than the rest of a log line.

use crate::TimeMs;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil year of a Unix time in milliseconds shifted by `offset_s`.
pub(crate) fn year_of(ms: TimeMs, offset_s: i32) -> i64 {
    let days = (ms + i64::from(offset_s) * 1000).div_euclid(86_400_000);
    // Inverse of days_from_civil, year only.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    if m <= 2 { y + 1 } else { y }
}

pub(crate) fn month_from_abbrev(s: &[u8]) -> Option<u32> {
    let m = match s {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    Some(m)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some(v)
}

/// `HH:MM:SS` → seconds of the day.
fn hms(s: &[u8]) -> Option<i64> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?);
    // 60 allows a leap second.
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(sec))
}

/// A fraction of a second after the dot (any number of digits, truncated to
/// milliseconds). Returns (ms, bytes consumed).
fn fraction_ms(s: &[u8]) -> (i64, usize) {
    let mut ms = 0i64;
    let mut n = 0;
    while n < s.len() && s[n].is_ascii_digit() {
        if n < 3 {
            ms = ms * 10 + i64::from(s[n] - b'0');
        }
        n += 1;
    }
    for _ in n..3 {
        ms *= 10;
    }
    (ms, n)
}

/// Unix seconds with an optional fraction: `1732505000`, `1732505000.123456`.
pub(crate) fn parse_unix_seconds(s: &[u8]) -> Option<TimeMs> {
    let (int, frac) = match memchr::memchr(b'.', s) {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &b""[..]),
    };
    if int.is_empty() || int.len() > 15 || !int.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let secs: i64 = int.iter().fold(0i64, |a, &b| a * 10 + i64::from(b - b'0'));
    let (ms, used) = fraction_ms(frac);
    if used != frac.len() {
        return None;
    }
    secs.checked_mul(1000)?.checked_add(ms)
}

/// A Unix number whose unit is guessed from its magnitude: seconds below
/// 10^11 (year 5138), milliseconds below 10^14, microseconds below 10^17,
/// nanoseconds above. Fractions are allowed on any unit.
pub(crate) fn parse_unix_auto(s: &[u8]) -> Option<TimeMs> {
    let int_len = memchr::memchr(b'.', s).unwrap_or(s.len());
    match int_len {
        0..=11 => parse_unix_seconds(s),
        12..=14 => parse_unix_seconds(s).map(|v| v / 1000),
        15 => parse_unix_seconds(s).map(|v| v / 1_000_000),
        16..=20 => {
            let (int, frac) = (&s[..int_len], s.get(int_len + 1..).unwrap_or_default());
            if !int.iter().all(u8::is_ascii_digit) || !frac.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let v: u128 = int
                .iter()
                .fold(0u128, |a, &b| a * 10 + u128::from(b - b'0'));
            let ms = if int_len <= 17 {
                v / 1000
            } else {
                v / 1_000_000
            };
            i64::try_from(ms).ok()
        }
        _ => None,
    }
}

/// Unix time from a JSON number, unit guessed as in [`parse_unix_auto`].
pub(crate) fn unix_auto_f64(v: f64) -> Option<TimeMs> {
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let ms = if v < 1e11 {
        v * 1000.0
    } else if v < 1e14 {
        v
    } else if v < 1e17 {
        v / 1000.0
    } else {
        v / 1e6
    };
    if ms > 9.0e15 {
        return None;
    }
    // In range (checked above), so the cast neither saturates nor wraps.
    Some(ms as i64)
}

/// ISO 8601 / RFC 3339 as the formats write it: `2026-11-25T10:00:01Z`,
/// `2026-11-25 10:00:01.123456+0700`, `…+07:00`, `…+07`. No offset means
/// `default_offset_s` (local time).
pub(crate) fn parse_iso(s: &[u8], default_offset_s: i32) -> Option<TimeMs> {
    if s.len() < 19 || s[4] != b'-' || s[7] != b'-' || !(s[10] == b'T' || s[10] == b' ') {
        return None;
    }
    let y = digits(&s[0..4])?;
    let mo = digits(&s[5..7])?;
    let d = digits(&s[8..10])?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let secs = hms(&s[11..19])?;
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some((&b'.', tail)) = rest.split_first() {
        let (f, used) = fraction_ms(tail);
        if used == 0 {
            return None;
        }
        ms = f;
        rest = &tail[used..];
    }
    let offset_s: i64 = match rest {
        [] => i64::from(default_offset_s),
        [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), tz @ ..] => {
            let (h, m) = match tz {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                [h1, h2, b':', m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let o = i64::from(h * 3600 + m * 60);
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(y), mo, d);
    Some((days * 86_400 + secs - offset_s) * 1000 + ms)
}

/// BIND's `25-Nov-2026 10:00:00.123` in local time.
pub(crate) fn parse_bind(s: &[u8], offset_s: i32) -> Option<TimeMs> {
    if s.len() < 20 || s[2] != b'-' || s[6] != b'-' || s[11] != b' ' {
        return None;
    }
    let d = digits(&s[0..2])?;
    let mo = month_from_abbrev(&s[3..6])?;
    let y = digits(&s[7..11])?;
    let secs = hms(&s[12..20])?;
    if !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = 0;
    if s.len() > 20 {
        if s[20] != b'.' {
            return None;
        }
        let (f, used) = fraction_ms(&s[21..]);
        if used == 0 || 21 + used != s.len() {
            return None;
        }
        ms = f;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    Some((days * 86_400 + secs - i64::from(offset_s)) * 1000 + ms)
}

/// A syslog timestamp `Nov 25 10:00:01` (day may be space-padded), which has
/// no year: the year that puts it closest to `reference_ms` is chosen, so a
/// December line read in January belongs to the previous year and a January
/// line read on 31 December to the next.
pub(crate) fn parse_syslog(s: &[u8], reference_ms: TimeMs, offset_s: i32) -> Option<TimeMs> {
    if s.len() != 15 || s[3] != b' ' || s[6] != b' ' {
        return None;
    }
    let mo = month_from_abbrev(&s[0..3])?;
    let day = if s[4] == b' ' {
        digits(&s[5..6])?
    } else {
        digits(&s[4..6])?
    };
    if !(1..=31).contains(&day) {
        return None;
    }
    let secs = hms(&s[7..15])?;
    let ref_year = year_of(reference_ms, offset_s);
    let mut best: Option<TimeMs> = None;
    for y in [ref_year - 1, ref_year, ref_year + 1] {
        let t = ((days_from_civil(y, mo, day) * 86_400) + secs - i64::from(offset_s)) * 1000;
        if best.is_none_or(|b| (t - reference_ms).abs() < (b - reference_ms).abs()) {
            best = Some(t);
        }
    }
    best
}

/// Any of the shapes above, for formats whose time column is configurable.
pub(crate) fn parse_auto(s: &[u8], reference_ms: TimeMs, offset_s: i32) -> Option<TimeMs> {
    let first = *s.first()?;
    if first.is_ascii_digit() {
        if s.len() >= 19 && s[4] == b'-' {
            return parse_iso(s, offset_s);
        }
        if s.len() >= 20 && s[2] == b'-' {
            return parse_bind(s, offset_s);
        }
        return parse_unix_auto(s);
    }
    parse_syslog(s, reference_ms, offset_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TimeMs = 1_795_575_600_000; // 2026-11-25T10:00:00+07:00 = 03:00Z
    const ICT: i32 = 7 * 3600;

    #[test]
    fn iso_shapes_agree() {
        for s in [
            "2026-11-25T10:00:00+07:00",
            "2026-11-25T10:00:00+0700",
            "2026-11-25T10:00:00+07",
            "2026-11-25T03:00:00Z",
            "2026-11-25 10:00:00",
            "2026-11-25T10:00:00.000000+0700",
        ] {
            assert_eq!(parse_iso(s.as_bytes(), ICT), Some(T), "{s}");
        }
        assert_eq!(
            parse_iso(b"2026-11-25T10:00:00.123456+0700", 0),
            Some(T + 123)
        );
        assert_eq!(parse_iso(b"2026-13-25T10:00:00Z", 0), None);
        assert_eq!(parse_iso(b"2026-11-25T10:00:00+7", 0), None);
    }

    #[test]
    fn bind_time_is_local() {
        assert_eq!(parse_bind(b"25-Nov-2026 10:00:00.123", ICT), Some(T + 123));
        assert_eq!(parse_bind(b"25-Nov-2026 10:00:00", ICT), Some(T));
        assert_eq!(parse_bind(b"25-Foo-2026 10:00:00", ICT), None);
    }

    #[test]
    fn syslog_year_is_the_closest_to_the_reference() {
        assert_eq!(parse_syslog(b"Nov 25 10:00:00", T, ICT), Some(T));
        // A December line read on 2 January 2027 is from 2026.
        let jan2 = parse_iso(b"2027-01-02T00:00:00Z", 0).unwrap();
        let dec31 = parse_iso(b"2026-12-31T23:59:00+07:00", 0).unwrap();
        assert_eq!(parse_syslog(b"Dec 31 23:59:00", jan2, ICT), Some(dec31));
        // A January line read on 31 December is from the next year.
        let jan1 = parse_iso(b"2027-01-01T00:00:05+07:00", 0).unwrap();
        assert_eq!(parse_syslog(b"Jan  1 00:00:05", dec31, ICT), Some(jan1));
    }

    #[test]
    fn unix_units_by_magnitude() {
        assert_eq!(parse_unix_auto(b"1795575600"), Some(T));
        assert_eq!(parse_unix_auto(b"1795575600.5"), Some(T + 500));
        assert_eq!(parse_unix_auto(b"1795575600000"), Some(T));
        assert_eq!(parse_unix_auto(b"1795575600000000"), Some(T));
        assert_eq!(parse_unix_auto(b"1795575600000000000"), Some(T));
        assert_eq!(parse_unix_auto(b"17x5"), None);
        assert_eq!(unix_auto_f64(1_795_575_600.25), Some(T + 250));
        assert_eq!(unix_auto_f64(f64::NAN), None);
    }

    #[test]
    fn year_of_matches_days_from_civil() {
        for y in [1970, 1999, 2000, 2024, 2026, 2100] {
            let jan1 = days_from_civil(y, 1, 1) * 86_400_000;
            assert_eq!(year_of(jan1, 0), y);
            assert_eq!(year_of(jan1 - 1, 0), y - 1);
        }
    }
}
