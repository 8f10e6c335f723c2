//! Snapshot figures for N synthetic indicators: build time, bytes per
//! indicator (file and resident), load time, and lookup cost for misses
//! and hits, with a same-run baseline (a `HashSet<String>` of the listed
//! domains probed with every suffix of the name).
//!
//! `cargo run --release -p khien-matcher --example snapshot_bench -- 10000000 [lookups]`
//!
//! Indicators: 90 % domains (word-like labels, two in five with a subdomain,
//! a Vietnamese-heavy mix of TLDs, about 20 characters), 8 % IPv4, 1 %
//! networks, 0.5 % URLs, 0.5 % SHA-256. Prints one JSON line.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
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

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    fn chars(&mut self, lo: usize, hi: usize, alphabet: &[u8]) -> String {
        let n = lo + self.below(hi - lo + 1);
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }

    /// A registrable label: words run together, sometimes with a hyphen
    /// or digits; now and then random letters (DGA-like).
    fn site(&mut self) -> String {
        match self.below(10) {
            0 => self.chars(8, 14, b"abcdefghijklmnopqrstuvwxyz0123456789"),
            1..=3 => format!(
                "{}-{}{}",
                self.pick(&WORDS),
                self.pick(&WORDS),
                self.chars(2, 4, b"abcdefghijklmnopqrstuvwxyz0123456789")
            ),
            4 => format!("{}{}", self.pick(&WORDS), self.below(100_000)),
            _ => format!(
                "{}{}{}",
                self.pick(&WORDS),
                self.pick(&WORDS),
                self.chars(3, 5, b"abcdefghijklmnopqrstuvwxyz0123456789")
            ),
        }
    }

    fn tld(&mut self) -> &'static str {
        let r = self.below(100);
        match r {
            0..=34 => "com",
            35..=44 => "vn",
            45..=54 => "com.vn",
            55..=64 => "net",
            65..=69 => "org",
            70..=74 => "xyz",
            75..=79 => "top",
            80..=83 => "info",
            84..=86 => "edu.vn",
            87..=89 => "io",
            90..=92 => "ru",
            93..=95 => "cn",
            _ => "online",
        }
    }

    fn domain(&mut self) -> String {
        let site = self.site();
        let tld = self.tld();
        if self.below(5) < 2 {
            let sub = match self.below(3) {
                0 => self.pick(&SUBS).to_owned(),
                _ => self.chars(3, 10, b"abcdefghijklmnopqrstuvwxyz0123456789"),
            };
            format!("{sub}.{site}.{tld}")
        } else {
            format!("{site}.{tld}")
        }
    }

    /// A name as a resolver sees it: a host under some site. Sites are
    /// drawn so that they are (almost surely) not listed.
    fn query(&mut self) -> String {
        let site = format!(
            "{}{}",
            self.pick(&WORDS),
            self.chars(4, 9, b"abcdefghijklmnopqrstuvwxyz0123456789-")
        );
        let tld = self.tld();
        match self.below(4) {
            0 => format!("{site}.{tld}"),
            1 => format!(
                "{}.{}.{site}.{tld}",
                self.pick(&SUBS),
                self.chars(2, 6, b"abcdefghijklmnopqrstuvwxyz0123456789")
            ),
            _ => format!("{}.{site}.{tld}", self.pick(&SUBS)),
        }
    }
}

const WORDS: [&str; 48] = [
    "shop", "bank", "login", "secure", "update", "account", "viet", "sai", "gon", "ha", "noi",
    "mail", "cloud", "game", "bet", "win", "free", "gift", "news", "tin", "tuc", "mua", "ban",
    "nhanh", "pay", "wallet", "crypto", "coin", "trade", "invest", "apple", "micro", "soft",
    "office", "support", "service", "online", "store", "market", "express", "fast", "best", "top",
    "hot", "sale", "deal", "city", "green",
];
const SUBS: [&str; 10] = [
    "www", "mail", "api", "cdn", "m", "login", "secure", "static", "img", "app",
];

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Names one after another in one buffer, as lines in a read buffer.
struct Names {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Names {
    fn new(names: impl Iterator<Item = String>) -> Names {
        let (mut bytes, mut spans) = (Vec::new(), Vec::new());
        for n in names {
            spans.push((bytes.len(), bytes.len() + n.len()));
            bytes.extend_from_slice(n.as_bytes());
        }
        Names { bytes, spans }
    }

    fn get(&self, i: usize) -> &[u8] {
        let (a, b) = self.spans[i];
        &self.bytes[a..b]
    }

    fn all(&self) -> Vec<&[u8]> {
        self.spans.iter().map(|&(a, b)| &self.bytes[a..b]).collect()
    }
}

/// Nanoseconds per call of `f` over `items`, and how many it found: each
/// slice of 100,000 items is timed five times and the best counts, so that
/// other processes on a shared machine disturb the figure less.
fn time<T: Copy>(items: &[T], mut f: impl FnMut(T) -> bool) -> (f64, usize) {
    let mut total = 0.0;
    let mut found = 0usize;
    for slice in items.chunks(100_000) {
        let mut best = f64::MAX;
        for pass in 0..5 {
            let started = Instant::now();
            let mut hits = 0usize;
            for item in slice {
                hits += usize::from(f(black_box(*item)));
            }
            best = best.min(started.elapsed().as_secs_f64());
            if pass == 0 {
                found += hits;
            }
        }
        total += best;
    }
    (total * 1e9 / items.len() as f64, found)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().unwrap());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let v = match i % 200 {
            0..=179 => (ObservableKind::Domain, rng.domain()),
            180..=195 => {
                let x = rng.next();
                let ip = Ipv4Addr::from((x as u32) | 0x0100_0000);
                (ObservableKind::Ipv4, ip.to_string())
            }
            196..=197 => {
                let x = rng.next() as u32 & 0xFFFF_FF00 | 0x0100_0000;
                let len = [18u8, 20, 22, 24, 24, 24][rng.below(6)];
                let net = ipnet::Ipv4Net::new(Ipv4Addr::from(x), len).unwrap().trunc();
                (ObservableKind::Cidr, net.to_string())
            }
            198 => (
                ObservableKind::Url,
                format!(
                    "http://{}/{}",
                    rng.domain(),
                    rng.chars(5, 30, b"abcdefgh/._-0123")
                ),
            ),
            _ => (
                ObservableKind::Sha256,
                rng.chars(64, 64, b"0123456789abcdef"),
            ),
        };
        values.push(v);
    }
    let domains: Vec<&str> = values
        .iter()
        .filter(|(k, _)| *k == ObservableKind::Domain)
        .map(|(_, v)| v.as_str())
        .collect();
    let value_bytes: usize = domains.iter().map(|d| d.len()).sum();
    let families = [
        "mirai",
        "emotet",
        "lumma",
        "redline",
        "qakbot",
        "agenttesla",
    ];

    let started = Instant::now();
    let mut b = SnapshotBuilder::new();
    for (i, (kind, value)) in values.iter().enumerate() {
        b.add(&Entry {
            id: i as i64 + 1,
            kind: *kind,
            value,
            exact_host: false,
            family: (i % 3 != 0).then(|| families[i % families.len()]),
            threat_type: ThreatType::ALL[i % ThreatType::ALL.len()],
        })
        .unwrap();
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
    let read = std::fs::read(&path).unwrap();
    let read_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let snapshot = Snapshot::from_bytes(read).unwrap();
    let load_s = started.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    let _ = std::fs::remove_file(&path);
    let indicators = snapshot.len();

    // Lookups: unlisted names as resolvers see them (a few hit by chance),
    // and listed names or hosts under them.
    let lookups: usize = std::env::args()
        .nth(2)
        .map_or(2_000_000, |a| a.parse().unwrap());
    let miss_names = Names::new((0..lookups).map(|_| rng.query()));
    let misses = miss_names.all();
    let hit_names = Names::new((0..lookups / 4).map(|_| {
        let d = domains[rng.below(domains.len())];
        match rng.below(3) {
            0 => d.to_uppercase(),
            _ => format!("{}.{d}.", rng.pick(&SUBS)),
        }
    }));
    let hits = hit_names.all();
    // 0.1 % hits, as on a resolver.
    let mixed: Vec<&[u8]> = (0..lookups)
        .map(|i| {
            if i % 1000 == 0 {
                hit_names.get(i / 1000)
            } else {
                miss_names.get(i)
            }
        })
        .collect();
    let ips: Vec<IpAddr> = (0..lookups)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng.next() as u32)))
        .collect();

    let domain = |n: &[u8]| snapshot.match_domain(n).is_some();
    let (loop_ns, _) = time(&misses, |n: &[u8]| n.len() > 1000);
    let (miss_ns, miss_found) = time(&misses, domain);
    let (hit_ns, hit_found) = time(&hits, domain);
    let (mixed_ns, _) = time(&mixed, domain);
    let (ip_ns, ip_found) = time(&ips, |a| snapshot.match_ip(a).is_some());

    // Baseline: the obvious matcher, a set of the listed names probed with
    // the lowercased name and each of its parents.
    let set: HashSet<&str> = domains.iter().copied().collect();
    let (set_miss_ns, set_found) = time(&misses, |n: &[u8]| {
        let lower = String::from_utf8_lossy(n.strip_suffix(b".").unwrap_or(n)).to_ascii_lowercase();
        let mut s = lower.as_str();
        loop {
            if set.contains(s) {
                return true;
            }
            match s.find('.') {
                Some(dot) => s = &s[dot + 1..],
                None => return false,
            }
        }
    });
    assert_eq!(set_found, miss_found, "baseline and snapshot disagree");
    assert_eq!(hit_found, hits.len(), "every listed name hits");

    println!(
        "{{\"indicators\":{indicators},\"domains\":{},\"avg_domain_chars\":{:.1},\
         \"build_seconds\":{build_s:.3},\"file_bytes\":{file_len},\
         \"bytes_per_indicator\":{:.1},\"read_seconds\":{read_s:.3},\"load_seconds\":{load_s:.3},\
         \"resident_bytes_per_indicator\":{:.1},\"domain_miss_ns\":{miss_ns:.1},\
         \"domain_hit_ns\":{hit_ns:.1},\"domain_mixed_0.1pct_hits_ns\":{mixed_ns:.1},\
         \"ipv4_ns\":{ip_ns:.1},\"bench_loop_ns\":{loop_ns:.1},\"ipv4_found\":{ip_found},\"misses_found\":{miss_found},\
         \"baseline_hashset_miss_ns\":{set_miss_ns:.1}}}",
        domains.len(),
        value_bytes as f64 / domains.len() as f64,
        file_len as f64 / indicators as f64,
        rss_after.saturating_sub(rss_before) as f64 / indicators as f64,
    );
}
