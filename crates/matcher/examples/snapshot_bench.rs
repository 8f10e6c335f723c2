//! Snapshot figures: build time, bytes per indicator, load time and lookup
//! cost for N synthetic indicators (90 % domains, 8 % IPv4, 2 % networks).
//!
//! `cargo run --release -p khien-matcher --example snapshot_bench -- 10000000`
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use khien_matcher::{Entry, Snapshot, SnapshotBuilder};
use khien_model::{ObservableKind, ThreatType};

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn label(&mut self, lo: u64, hi: u64) -> String {
        let n = lo + self.next() % (hi - lo + 1);
        (0..n)
            .map(|i| {
                let r = self.next() % 36;
                if i == 0 || r < 26 {
                    (b'a' + (r % 26) as u8) as char
                } else {
                    (b'0' + (r - 26) as u8) as char
                }
            })
            .collect()
    }
}

const TLDS: [&str; 8] = ["com", "vn", "com.vn", "net", "org", "xyz", "top", "info"];

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().unwrap());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let v = match i % 50 {
            0..=44 => (
                ObservableKind::Domain,
                format!("{}.{}", rng.label(6, 14), TLDS[(rng.next() % 8) as usize]),
            ),
            45..=48 => {
                let x = rng.next();
                (
                    ObservableKind::Ipv4,
                    format!(
                        "{}.{}.{}.{}",
                        1 + x % 223,
                        (x >> 8) % 256,
                        (x >> 16) % 256,
                        (x >> 24) % 256
                    ),
                )
            }
            _ => {
                let x = rng.next();
                (
                    ObservableKind::Cidr,
                    format!(
                        "{}.{}.{}.0/24",
                        1 + x % 223,
                        (x >> 8) % 256,
                        (x >> 16) % 256
                    ),
                )
            }
        };
        values.push(v);
    }
    let started = Instant::now();
    let mut b = SnapshotBuilder::new();
    for (i, (kind, value)) in values.iter().enumerate() {
        let _ = b.add(&Entry {
            id: i as i64 + 1,
            kind: *kind,
            value,
            exact_host: false,
            family: Some("bench"),
            threat_type: ThreatType::C2,
        });
    }
    let bytes = b.build(chrono::Utc::now());
    let build_s = started.elapsed().as_secs_f64();
    let path =
        std::env::temp_dir().join(format!("khien-snapshot-bench-{}.bin", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let file_len = bytes.len();
    drop(bytes);
    let rss_before = rss_bytes();
    let started = Instant::now();
    let snapshot = Snapshot::from_bytes(std::fs::read(&path).unwrap()).unwrap();
    let load_s = started.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    let _ = std::fs::remove_file(&path);

    // Lookups: misses are realistic names not listed; hits are listed names' subdomains.
    let misses: Vec<String> = (0..1_000_000)
        .map(|_| {
            format!(
                "www.{}.{}",
                rng.label(4, 12),
                TLDS[(rng.next() % 8) as usize]
            )
        })
        .collect();
    let hits: Vec<String> = values
        .iter()
        .filter(|(k, _)| *k == ObservableKind::Domain)
        .take(1_000_000)
        .map(|(_, v)| format!("api.{v}"))
        .collect();
    let time = |names: &[String]| {
        let started = Instant::now();
        let mut found = 0usize;
        for name in names {
            found += usize::from(snapshot.match_domain(name.as_bytes()).is_some());
        }
        (
            started.elapsed().as_secs_f64() * 1e9 / names.len() as f64,
            found,
        )
    };
    let (miss_ns, miss_found) = time(&misses);
    let (hit_ns, hit_found) = time(&hits);
    println!(
        "{{\"indicators\":{},\"build_seconds\":{build_s:.3},\"file_bytes\":{file_len},\"bytes_per_indicator\":{:.1},\"load_seconds\":{load_s:.3},\"resident_bytes_per_indicator\":{:.1},\"miss_ns\":{miss_ns:.1},\"hit_ns\":{hit_ns:.1},\"misses_found\":{miss_found},\"hits_found\":{hit_found}}}",
        snapshot.len(),
        file_len as f64 / snapshot.len() as f64,
        rss_after.saturating_sub(rss_before) as f64 / snapshot.len() as f64,
    );
}
