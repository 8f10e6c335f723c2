//! Shared helpers: rendering records for golden files.

use std::path::PathBuf;

use khien_telemetry::{DecodeError, Record};

/// 2026-11-25T10:00:00+07:00, the "now" of every fixture.
pub const NOW_MS: i64 = 1_795_575_600_000;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// One line of a golden file per decoded line.
pub fn render(r: &Result<Option<Record<'_>>, DecodeError>) -> String {
    match r {
        Err(e) => format!("error {}", e.kind()),
        Ok(None) => "none".to_string(),
        Ok(Some(Record::Dns(q))) => format!(
            "dns {} {} {} {} {} {}",
            q.time_ms,
            q.client,
            opt(q.client_port),
            q.qname.escape_ascii(),
            opt(q.qtype),
            if q.is_response { "response" } else { "query" }
        ),
        Ok(Some(Record::Flow(f))) => format!(
            "flow {} {} {} {} {} {} {} {}",
            f.time_ms, f.src, f.src_port, f.dst, f.dst_port, f.protocol, f.packets, f.bytes
        ),
        Ok(Some(Record::Http {
            time_ms,
            client,
            client_port,
            server,
            host,
            url,
        })) => {
            format!(
                "http {time_ms} {client} {} {} {host} {url}",
                opt(*client_port),
                opt(*server)
            )
        }
        Ok(Some(Record::Tls {
            time_ms,
            client,
            client_port,
            server,
            sni,
        })) => {
            format!(
                "tls {time_ms} {client} {} {} {sni}",
                opt(*client_port),
                opt(*server)
            )
        }
    }
}

/// Compares `actual` with the golden file `name`; with
/// `KHIEN_UPDATE_GOLDEN=1`, rewrites the file instead.
pub fn golden(name: &str, actual: &str) {
    let path = fixture(name);
    if std::env::var_os("KHIEN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("golden file writable");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("golden file exists");
    assert_eq!(actual, expected, "golden file {name} differs");
}
