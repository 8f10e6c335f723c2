//! Plain lists: real trail files, dirty bytes, and inputs far larger than
//! memory, read in one pass.

use std::io::Read;
use std::path::Path;

use khien_formats::read::{Format, ImportDefaults, MAX_LINE, ReadEvent, SkipReason, read_list};
use khien_formats::{Error, Location};
use khien_model::{ObservableKind, ThreatType, Tlp};

use super::support::shared;

fn collect(
    input: impl std::io::BufRead,
) -> (
    Vec<ReadEvent>,
    Result<khien_formats::read::ReadSummary, Error>,
) {
    let mut events = Vec::new();
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        events.push(e);
        Ok(())
    };
    let r = read_list(input, &defaults(), &mut sink);
    (events, r)
}

#[test]
fn real_trail_file_every_value_line_accounted_for() {
    let path = shared("maltrail/emotet.txt");
    let text = std::fs::read_to_string(&path).expect("read");
    let value_lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    let (events, r) = collect(std::io::BufReader::new(
        std::fs::File::open(&path).expect("open"),
    ));
    let s = r.expect("read");
    let comments = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ReadEvent::Skipped {
                    reason: SkipReason::Comment,
                    ..
                }
            )
        })
        .count() as u64;
    assert_eq!(
        s.records + s.rejected + (s.skipped - comments),
        value_lines as u64
    );
    // maltrail also lists bare URL paths (`/gate.php`), which no observable
    // kind holds: skipped as unsupported, not rejected.
    let path_lines = text
        .lines()
        .filter(|l| l.trim_start().starts_with('/'))
        .count() as u64;
    assert_eq!(s.skipped - comments, path_lines);
    assert!(
        s.records as f64 > 0.99 * (value_lines as u64 - path_lines) as f64,
        "{s:?} of {value_lines}"
    );
    // `ip:port` lines become the address.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ReadEvent::Record(r) if r.observable.value() == "66.210.228.178"))
    );
}

#[test]
fn all_real_trails_read_without_errors() {
    let dir = shared("maltrail");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "txt") {
            let (_, r) = collect(std::io::BufReader::new(
                std::fs::File::open(&path).expect("open"),
            ));
            total += r
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .records;
        }
    }
    assert!(total > 100_000, "{total}");
}

#[test]
fn dirty_bytes_bom_crlf_latin1_and_bad_values() {
    let data =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/read/dirty.txt"))
            .expect("fixture");
    let (events, r) = collect(&data[..]);
    r.expect("read");
    let records: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let ReadEvent::Record(r) = e {
                Some(r.observable.value().to_string())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        records,
        vec!["evil.com", "xn--caf-dma.example.com", "1.2.3.4", "evil.com"]
    );
    let rejected: Vec<(u64, String)> = events
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Rejected {
                location: Location::Line(n),
                reason,
            } => Some((*n, reason.clone())),
            _ => None,
        })
        .collect();
    let lines: Vec<u64> = rejected.iter().map(|r| r.0).collect();
    assert_eq!(lines, vec![7, 8, 9, 10, 11]);
    assert!(rejected[0].1.contains("prefix length"), "{:?}", rejected[0]);
    assert!(rejected[2].1.contains("hyphen"), "{:?}", rejected[2]);
    assert!(rejected[4].1.contains("63"), "{:?}", rejected[4]);
    assert!(events.iter().any(|e| matches!(
        e,
        ReadEvent::Skipped {
            location: Location::Line(6),
            reason: SkipReason::UnsupportedType
        }
    )));
}

#[test]
fn utf16_input_is_refused_with_a_reason() {
    let (_, r) = collect(&b"\xff\xfee\0v\0i\0l\0"[..]);
    let err = r.expect_err("utf-16");
    assert!(err.to_string().contains("UTF-16"), "{err}");
}

/// An endless-looking input produced on the fly: `lines` generated domains.
struct Generated {
    lines: u64,
    next: u64,
    pending: Vec<u8>,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.len() < buf.len() && self.next < self.lines {
            self.pending.extend_from_slice(
                format!("host{}.evil{}.com\n", self.next, self.next % 97).as_bytes(),
            );
            self.next += 1;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[test]
fn streams_generated_input_without_collecting() {
    let input = std::io::BufReader::new(Generated {
        lines: 300_000,
        next: 0,
        pending: Vec::new(),
    });
    let mut count = 0u64;
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        if matches!(e, ReadEvent::Record(_)) {
            count += 1;
        }
        Ok(())
    };
    read_list(input, &defaults(), &mut sink).expect("read");
    assert_eq!(count, 300_000);
}

/// Two gigabytes without a newline, then one good line: the huge line is
/// rejected without being held in memory, and reading goes on.
struct HugeLine {
    left: u64,
    tail: &'static [u8],
}

impl Read for HugeLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left > 0 {
            let n = (buf.len() as u64).min(self.left) as usize;
            buf[..n].fill(b'a');
            self.left -= n as u64;
            return Ok(n);
        }
        let n = buf.len().min(self.tail.len());
        buf[..n].copy_from_slice(&self.tail[..n]);
        self.tail = &self.tail[n..];
        Ok(n)
    }
}

#[test]
fn two_gigabyte_line_is_rejected_and_reading_continues() {
    let input = std::io::BufReader::with_capacity(
        1 << 20,
        HugeLine {
            left: 2 << 30,
            tail: b"\nevil.com\n",
        },
    );
    let (events, r) = collect(input);
    r.expect("read");
    assert_eq!(events.len(), 2);
    assert!(
        matches!(&events[0], ReadEvent::Rejected { location: Location::Line(1), reason } if reason.contains(&MAX_LINE.to_string()))
    );
    assert!(
        matches!(&events[1], ReadEvent::Record(r) if r.observable.kind() == ObservableKind::Domain)
    );
}

#[test]
fn a_sink_that_refuses_stops_the_reader_at_that_line() {
    let mut sink = |e: ReadEvent| -> Result<(), String> {
        match e {
            ReadEvent::Rejected { reason, .. } => Err(reason),
            _ => Ok(()),
        }
    };
    let err = read_list(
        &b"good.com\n-bad-.com\nlater.com\n"[..],
        &defaults(),
        &mut sink,
    )
    .expect_err("stopped");
    assert!(
        matches!(
            err,
            Error::Stopped {
                location: Location::Line(2),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn plain_text_is_detected_as_a_list() {
    assert_eq!(
        Format::detect(b"# comment\nevil.com\n", Some("emotet.txt")),
        Format::List
    );
}

fn defaults() -> ImportDefaults {
    ImportDefaults {
        source: "maltrail".into(),
        tlp: Tlp::Clear,
        threat_type: ThreatType::C2,
        ..super::support::defaults()
    }
}
