//! The time forms attribution files use, all read into UTC.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use khien_model::Timestamp;

/// 1990-01-01T00:00:00Z: nothing a provider keeps is older.
const EARLIEST: i64 = 631_152_000;
/// 2100-01-01T00:00:00Z.
const LATEST: i64 = 4_102_444_800;

/// Whether `t` can be the time of a real record.
pub(super) fn plausible(t: Timestamp) -> bool {
    (EARLIEST..LATEST).contains(&t.timestamp())
}

/// Unix seconds, optionally with a fraction that is dropped.
pub(super) fn unix(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    let whole = match s.split_once('.') {
        Some((w, frac)) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => w,
        Some(_) => return None,
        None => s,
    };
    // Twelve digits reach the year 33658; more is not a time.
    if whole.is_empty() || whole.len() > 12 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    DateTime::from_timestamp(whole.parse().ok()?, 0)
}

/// A wall-clock time at `offset`, in UTC.
pub(super) fn local(naive: NaiveDateTime, offset: FixedOffset) -> Option<Timestamp> {
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// `Jan`…`Dec`, any case.
pub(super) fn month(s: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    if s.len() != 3 {
        return None;
    }
    NAMES
        .iter()
        .position(|m| m.eq_ignore_ascii_case(s))
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// `HH:MM:SS`, with an optional fraction that is dropped.
fn hms(s: &str) -> Option<NaiveTime> {
    let whole = s.split_once('.').map_or(s, |(w, _)| w);
    let mut parts = whole.split(':');
    let mut next = || -> Option<u32> {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let (h, m, sec) = (next()?, next()?, next()?);
    if parts.next().is_some() {
        return None;
    }
    NaiveTime::from_hms_opt(h, m, sec)
}

/// A date from its words: four-digit year, month name, day, `HH:MM:SS`.
pub(super) fn date_time(year: &str, mon: &str, day: &str, time: &str) -> Option<NaiveDateTime> {
    if year.len() != 4 || day.is_empty() || day.len() > 2 {
        return None;
    }
    let y: i32 = year.parse().ok()?;
    let d: u32 = day.parse().ok()?;
    Some(NaiveDate::from_ymd_opt(y, month(mon)?, d)?.and_time(hms(time)?))
}

/// ctime's `Tue Nov 24 10:00:00 2026` (day possibly space-padded) at
/// `offset`. The weekday must be a word but is not checked against the
/// date: it says nothing the date does not.
pub(super) fn ctime(s: &str, offset: FixedOffset) -> Option<Timestamp> {
    let w: Vec<&str> = s.split_whitespace().take(6).collect();
    let [weekday, mon, day, time, year] = w.as_slice() else {
        return None;
    };
    if weekday.len() != 3 || !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    local(date_time(year, mon, day, time)?, offset)
}

/// FreeRADIUS' Event-Timestamp: unix seconds (`dates_as_integer`), RFC 3339,
/// or its text form `Nov 24 2026 10:00:00 +07` / `… ICT` / `… UTC`. A zone
/// abbreviation other than UTC/GMT/ICT is the server's own (strftime `%Z`),
/// so it is read at `offset`, like the record's header.
pub(super) fn radius(s: &str, offset: FixedOffset) -> Option<Timestamp> {
    let s = s.trim();
    if let Some(t) = unix(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let w: Vec<&str> = s.split_whitespace().take(6).collect();
    match w.as_slice() {
        [mon, day, year, time] => local(date_time(year, mon, day, time)?, offset),
        [mon, day, year, time, zone] => {
            local(date_time(year, mon, day, time)?, zone_offset(zone, offset)?)
        }
        _ => None,
    }
}

/// A zone as strftime writes it: `+07`, `+0700`, `+07:00`, `UTC`, `ICT`.
fn zone_offset(z: &str, local: FixedOffset) -> Option<FixedOffset> {
    if let Some(rest) = z.strip_prefix(['+', '-']) {
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (h, m) = match digits.len() {
            2 => (digits.parse::<i32>().ok()?, 0),
            4 => (
                digits[..2].parse::<i32>().ok()?,
                digits[2..].parse::<i32>().ok()?,
            ),
            _ => return None,
        };
        if h > 14 || m > 59 {
            return None;
        }
        let secs = (h * 60 + m) * 60;
        return FixedOffset::east_opt(if z.starts_with('-') { -secs } else { secs });
    }
    if z.is_empty() || !z.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    match z.to_ascii_uppercase().as_str() {
        "UTC" | "GMT" | "UT" | "Z" => FixedOffset::east_opt(0),
        "ICT" => FixedOffset::east_opt(7 * 3600),
        _ => Some(local),
    }
}

/// A CSV time: RFC 3339 (also with a space for the `T`), unix seconds, or
/// `YYYY-MM-DD HH:MM:SS` (`T` or `/` forms too) at `offset`.
pub(super) fn plain(s: &str, offset: FixedOffset) -> Option<Timestamp> {
    let s = s.trim();
    if let Some(t) = unix(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split(['-', '/']);
    let (y, m, day) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || y.len() != 4 || m.is_empty() || m.len() > 2 || day.len() > 2 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, day.parse().ok()?)?;
    local(date.and_time(hms(time.trim())?), offset)
}

/// A dhcpd time after `starts`/`ends`/`cltt`: `2 2026/11/24 10:00:00`
/// (UTC, the weekday ignored), `epoch 1795000000` (db-time-format local),
/// a bare number (DHCPv6 `starts`), or `never` (`Ok(None)`).
pub(super) fn dhcpd(words: &[&str]) -> Result<Option<Timestamp>, ()> {
    match words {
        ["never"] => Ok(None),
        ["epoch", n] | [n] => unix(n).map(Some).ok_or(()),
        [weekday, date, time] if weekday.len() == 1 => {
            let mut d = date.split('/');
            let (y, m, day) = (d.next(), d.next(), d.next());
            let (Some(y), Some(m), Some(day), None) = (y, m, day, d.next()) else {
                return Err(());
            };
            let parse = |s: &str| s.parse::<u32>().map_err(|_| ());
            let y = i32::try_from(parse(y)?).map_err(|_| ())?;
            let date = NaiveDate::from_ymd_opt(y, parse(m)?, parse(day)?).ok_or(())?;
            Ok(Some(date.and_time(hms(time).ok_or(())?).and_utc()))
        }
        _ => Err(()),
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (the PIC's own stamp in Juniper lines).
pub(super) fn iso_utc(date: &str, time: &str) -> Option<Timestamp> {
    let n = NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S").ok()?;
    Some(n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vn() -> FixedOffset {
        FixedOffset::east_opt(7 * 3600).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn unix_seconds() {
        assert_eq!(unix("1795489200"), Some(at("2026-11-24T03:00:00Z")));
        assert_eq!(unix(" 1795489200.250 "), Some(at("2026-11-24T03:00:00Z")));
        for bad in ["", "-5", "1e9", "12.", "0x10", "9999999999999"] {
            assert_eq!(unix(bad), None, "{bad}");
        }
    }

    #[test]
    fn ctime_headers() {
        let t = Some(at("2026-11-24T03:00:00Z"));
        assert_eq!(ctime("Tue Nov 24 10:00:00 2026", vn()), t);
        assert_eq!(
            ctime("Wed Nov  4 10:00:00 2026", vn()),
            Some(at("2026-11-04T03:00:00Z"))
        );
        assert_eq!(ctime("Tue Nov 24 10:00:00 2026 extra", vn()), None);
        assert_eq!(ctime("Tue Nov 31 10:00:00 2026", vn()), None);
        assert_eq!(ctime("Tue Nov 24 25:00:00 2026", vn()), None);
        assert_eq!(ctime("\tUser-Name = \"x\"", vn()), None);
    }

    #[test]
    fn event_timestamps() {
        let t = Some(at("2026-11-24T03:00:00Z"));
        for s in [
            "1795489200",
            "Nov 24 2026 10:00:00 +07",
            "Nov 24 2026 10:00:00 +0700",
            "Nov 24 2026 10:00:00 +07:00",
            "Nov 24 2026 10:00:00 ICT",
            "Nov 24 2026 03:00:00 UTC",
            "Nov 24 2026 10:00:00",
            "Nov 24 2026 10:00:00 WHATEVER",
            "2026-11-24T10:00:00+07:00",
        ] {
            assert_eq!(radius(s, vn()), t, "{s}");
        }
        assert_eq!(radius("Nov 24 2026 10:00:00 +99", vn()), None);
        assert_eq!(radius("Nov 24 2026 10:00:00 +7a", vn()), None);
        assert_eq!(radius("yesterday", vn()), None);
    }

    #[test]
    fn csv_times() {
        let t = Some(at("2026-11-24T03:00:00Z"));
        for s in [
            "2026-11-24T03:00:00Z",
            "2026-11-24 10:00:00+07:00",
            "2026-11-24 10:00:00",
            "2026-11-24T10:00:00",
            "2026/11/24 10:00:00.123",
            "1795489200",
        ] {
            assert_eq!(plain(s, vn()), t, "{s}");
        }
        for bad in [
            "2026-11-24",
            "24/11/2026 10:00:00",
            "2026-13-01 00:00:00",
            "x y",
        ] {
            assert_eq!(plain(bad, vn()), None, "{bad}");
        }
    }

    #[test]
    fn dhcpd_times() {
        let t = Ok(Some(at("2026-11-24T10:00:00Z")));
        assert_eq!(dhcpd(&["2", "2026/11/24", "10:00:00"]), t);
        assert_eq!(dhcpd(&["epoch", "1795514400"]), t);
        assert_eq!(dhcpd(&["1795514400"]), t);
        assert_eq!(dhcpd(&["never"]), Ok(None));
        assert_eq!(dhcpd(&["2", "2026/11/24"]), Err(()));
        assert_eq!(dhcpd(&["2", "2026/02/30", "10:00:00"]), Err(()));
        assert_eq!(dhcpd(&[]), Err(()));
    }

    #[test]
    fn plausibility() {
        assert!(plausible(at("1990-01-01T00:00:00Z")));
        assert!(!plausible(at("1989-12-31T23:59:59Z")));
        assert!(plausible(at("2099-12-31T23:59:59Z")));
        assert!(!plausible(at("2100-01-01T00:00:00Z")));
    }
}
