//! Imports N generated, new domain indicators (one source each) in batches
//! and prints the rate, then streams every stored indicator back.
//!
//! ```text
//! cargo run --release -p khien-store --example import_bench -- DATABASE [N] [BATCH]
//! cargo run --release -p khien-store --example import_bench -- /tmp/bench.db 1000000 10000
//! cargo run --release -p khien-store --example import_bench -- postgres://postgres@127.0.0.1:55432/postgres
//! ```
//!
//! Records are generated per batch outside the timed store calls; the
//! rate printed is records per second spent in the store (and overall).
//!
//! Measured on the 2-core development VM (1,000,000 new records, batches
//! of 10,000, release build): SQLite ~225,000 records/s in the store
//! (~200,000/s overall, 88 MB peak RSS, streaming back ~750,000/s);
//! PostgreSQL 15 on the same machine (local TCP, default settings except
//! `fsync=off`) ~95,000-102,000 records/s, 23 MB client RSS, streaming back
//! ~250,000/s. PostgreSQL time is dominated by index maintenance on
//! `indicators` (five indexes), not by round trips.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use khien_model::{
    Confidence, Family, IndicatorRecord, Observable, ObservableKind, SourceAttributes, ThreatType,
    Tlp,
};
use khien_store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args
        .next()
        .ok_or("usage: import_bench DATABASE [N] [BATCH]")?;
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let batch: u64 = args.next().map_or(Ok(10_000), |s| s.parse())?;
    // A fresh run id keeps repeated runs against one database "new".
    let run = Utc::now().timestamp_millis();
    let seen = Utc
        .with_ymd_and_hms(2026, 1, 15, 0, 0, 0)
        .single()
        .ok_or("date")?;
    let family = Family::new("emotet")?;

    let mut store = Store::open(&db)?;
    let mut importer = store.import(false)?;
    let started = Instant::now();
    let mut in_store = Duration::ZERO;
    let mut new = 0u64;
    let mut done = 0u64;
    while done < n {
        let size = batch.min(n - done);
        let mut records = Vec::with_capacity(size as usize);
        for i in done..done + size {
            let value = format!("h{i}.r{run}.bench-{}.example.com", i % 997);
            records.push(IndicatorRecord {
                observable: Observable::parse(ObservableKind::Domain, &value)?,
                attributes: SourceAttributes {
                    source: "bench".into(),
                    tlp: Tlp::Green,
                    confidence: Confidence::new(70)?,
                    family: (i % 3 == 0).then(|| family.clone()),
                    threat_type: ThreatType::C2,
                    reference: None,
                    first_seen: seen,
                    last_seen: seen,
                    expires_at: None,
                },
            });
        }
        let verdicts = vec![None; records.len()];
        let t = Instant::now();
        let out = importer.add_batch(&records, &verdicts)?;
        in_store += t.elapsed();
        new += out.new;
        done += size;
    }
    importer.commit()?;
    let total = started.elapsed();
    println!(
        "{}: {done} records ({new} new) in batches of {batch}: {:.2}s in the store = {:.0} records/s; {:.2}s overall = {:.0} records/s",
        store.backend(),
        in_store.as_secs_f64(),
        done as f64 / in_store.as_secs_f64(),
        total.as_secs_f64(),
        done as f64 / total.as_secs_f64(),
    );
    // Then stream everything back, as an export would.
    let t = Instant::now();
    let filter = khien_store::IndicatorFilter {
        include_expired: true,
        ..Default::default()
    };
    let mut bytes = 0usize;
    let read = store.for_each_indicator(&filter, &mut |i| {
        bytes += i.observable.value().len();
        Ok(())
    })?;
    println!(
        "{}: streamed {read} indicators in {:.2}s = {:.0} indicators/s",
        store.backend(),
        t.elapsed().as_secs_f64(),
        read as f64 / t.elapsed().as_secs_f64()
    );
    Ok(())
}
