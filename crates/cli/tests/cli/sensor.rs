//! The sensor shipping to a real hub, both as processes, while they are
//! killed: afterwards the hub holds exactly the hits the input implies —
//! compared with a count made here, independently of the sensor.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use khien_store::{HitFilter, Store};

use super::{Db, both, khien};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed (SIGKILL) when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_hub(db: &Db, port: u16, log: &Path) -> Proc {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("hub log");
    let child = Command::new(env!("CARGO_BIN_EXE_khien"))
        .env("KHIEN_DATA_DIR", db.data_dir())
        .args(["--database", &db.url, "serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--snapshot-refresh", "1"])
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start khien serve");
    let hub = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "hub did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    hub
}

fn start_sensor(dir: &Path, port: u16, key: &str, log: &Path) -> Proc {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sensor.log"))
        .expect("sensor log");
    let child = Command::new(env!("CARGO_BIN_EXE_khien"))
        .args([
            "sensor",
            "--sensor",
            "sensor-1",
            "--flush",
            "1",
            "--workers",
            "2",
        ])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--snapshot")
        .arg(dir.join("snapshot.bin"))
        .arg("--input")
        .arg(format!("file:{}:unbound", log.display()))
        .arg("--output")
        .arg(format!("hub:http://127.0.0.1:{port}"))
        .env("KHIEN_API_KEY", key)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start khien sensor");
    Proc(child)
}

/// Imports `text` (one indicator per line) from source `test`.
pub(crate) fn import(db: &Db, dir: &Path, name: &str, text: &str) {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write indicators");
    let out = khien(
        db,
        &[
            "intel",
            "import",
            "--source",
            "test",
            &file.display().to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `hits:write` API key named `sensor-1`; returns its secret.
fn sensor_key(db: &Db) -> String {
    let out = khien(
        db,
        &[
            "--json",
            "admin",
            "api-key",
            "create",
            "--name",
            "sensor-1",
            "--scope",
            "hits:write",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("api key JSON");
    created["secret"].as_str().expect("secret").to_owned()
}

const LISTED: [&str; 3] = ["c2.evil.example", "stealer.example", "miner.example"];

/// Appends `lines` log lines starting at `from`, returning the hits they
/// imply by (bucket start, client, indicator).
fn append_lines(
    log: &Path,
    from: u64,
    lines: u64,
    expected: &mut BTreeMap<(i64, String, String), u64>,
) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    let mut text = String::new();
    for i in from..from + lines {
        let ts = 1_764_079_200 + (i as i64 % 3) * 3600 + (i as i64 % 1000);
        let client = format!("10.0.{}.{}", (i / 7) % 20, i % 7 + 1);
        let name = if i % 50 == 0 {
            let indicator = LISTED[(i / 50 % 3) as usize];
            let bucket = ts - ts.rem_euclid(3600);
            *expected
                .entry((bucket, client.clone(), indicator.to_owned()))
                .or_insert(0) += 1;
            format!("h{}.{indicator}", i % 5)
        } else {
            format!("www.site{}.example.com", i % 997)
        };
        text.push_str(&format!(
            "[{ts}] unbound[1:0] info: {client} {name}. A IN\n"
        ));
    }
    f.write_all(text.as_bytes()).expect("append");
}

fn hub_totals(db: &Db) -> BTreeMap<(i64, String, String), u64> {
    let mut store = Store::open(&db.url).expect("open store");
    let hits = store
        .hits(&HitFilter {
            sensor: Some("sensor-1".into()),
            ..HitFilter::default()
        })
        .expect("hits");
    let mut out = BTreeMap::new();
    for h in hits {
        *out.entry((h.bucket.timestamp(), h.client.to_string(), h.indicator))
            .or_insert(0) += h.count;
    }
    out
}

#[test]
fn hub_and_sensor_killed_while_shipping_lose_and_duplicate_nothing() {
    both(|db| {
        let dir = tempfile::tempdir().expect("tempdir");
        import(db, dir.path(), "indicators.txt", &LISTED.join("\n"));
        let snap = dir.path().join("snapshot.bin");
        let out = khien(
            db,
            &["intel", "snapshot", "--out", &snap.display().to_string()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = sensor_key(db);

        let log = dir.path().join("queries.log");
        let hub_log = dir.path().join("hub.log");
        let mut expected = BTreeMap::new();
        let port = free_port();
        let mut hub = Some(start_hub(db, port, &hub_log));
        let mut sensor = start_sensor(dir.path(), port, &key, &log);
        let mut written = 0;
        let mut append = |n: u64, expected: &mut BTreeMap<_, _>| {
            append_lines(&log, written, n, expected);
            written += n;
        };
        for round in 0..12 {
            append(20_000, &mut expected);
            std::thread::sleep(Duration::from_millis(300));
            match round {
                // The hub dies while batches are in flight, and comes back.
                3 => hub = None,
                5 => hub = Some(start_hub(db, port, &hub_log)),
                // The sensor dies mid-file (and mid-spool) and restarts.
                7 => {
                    drop(sensor);
                    sensor = start_sensor(dir.path(), port, &key, &log);
                }
                9 => {
                    drop(sensor);
                    std::thread::sleep(Duration::from_millis(200));
                    sensor = start_sensor(dir.path(), port, &key, &log);
                }
                _ => {}
            }
        }
        let want: u64 = expected.values().sum();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got: u64 = hub_totals(db).values().sum();
            if got >= want || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        // A little longer: late duplicates would show now.
        std::thread::sleep(Duration::from_secs(2));
        let got = hub_totals(db);
        drop(sensor);
        drop(hub);
        if got != expected {
            let sensor_log =
                std::fs::read_to_string(dir.path().join("sensor.log")).unwrap_or_default();
            let tail: String = sensor_log
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n");
            panic!(
                "hub holds {} hits in {} keys, the input implies {} in {} keys\nsensor log (last lines, newest first):\n{tail}",
                got.values().sum::<u64>(),
                got.len(),
                want,
                expected.len()
            );
        }
    });
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn sensor_takes_new_snapshots_from_the_hub_and_serves_metrics() {
    let db = super::sqlite();
    let dir = tempfile::tempdir().expect("tempdir");
    import(&db, dir.path(), "first.txt", "c2.evil.example\n");
    let key = sensor_key(&db);
    let port = free_port();
    let _hub = start_hub(&db, port, &dir.path().join("hub.log"));
    let metrics_port = free_port();
    let log = dir.path().join("queries.log");
    std::fs::write(&log, "").expect("log");
    let sensor_log = dir.path().join("sensor.log");
    let child = Command::new(env!("CARGO_BIN_EXE_khien"))
        .args([
            "sensor",
            "--sensor",
            "sensor-1",
            "--flush",
            "1",
            "--snapshot-refresh",
            "1",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--snapshot")
        .arg(format!("http://127.0.0.1:{port}/api/v1/snapshots/latest"))
        .arg("--input")
        .arg(format!("file:{}:unbound", log.display()))
        .arg("--output")
        .arg(format!("hub:http://127.0.0.1:{port}"))
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .env("KHIEN_API_KEY", &key)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&sensor_log).expect("sensor log"))
        .spawn()
        .expect("start sensor");
    let _sensor = Proc(child);
    let wait = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out: {what}\n{}",
                std::fs::read_to_string(&sensor_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("metrics endpoint", &|| {
        std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_ok()
    });
    let metrics = http_get(metrics_port, "/metrics");
    assert!(
        metrics.contains("sensor_snapshot_indicators{sensor=\"sensor-1\"} 1"),
        "{metrics}"
    );

    // A new indicator at the hub reaches the running sensor.
    import(&db, dir.path(), "second.txt", "new-c2.example\n");
    wait("snapshot swap", &|| {
        http_get(metrics_port, "/metrics")
            .contains("sensor_snapshot_indicators{sensor=\"sensor-1\"} 2")
    });
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    writeln!(
        f,
        "[1764079200] unbound[1:0] info: 10.9.8.7 www.new-c2.example. A IN"
    )
    .expect("append");
    drop(f);
    wait("hit at the hub", &|| {
        hub_totals(&db).get(&(1_764_079_200, "10.9.8.7".into(), "new-c2.example".into()))
            == Some(&1)
    });
    let metrics = http_get(metrics_port, "/metrics");
    assert!(
        metrics.contains("sensor_snapshot_swaps_total{sensor=\"sensor-1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sensor_hub_batches_sent_total{sensor=\"sensor-1\"} 1"),
        "{metrics}"
    );
}
