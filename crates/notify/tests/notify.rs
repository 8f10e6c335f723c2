//! khien-notify end to end: every built-in template rendered, overrides,
//! e-mail through a real SMTP server (aiosmtpd, `tests/smtp_sink.py`) over
//! STARTTLS and implicit TLS with a certificate made here, and SMS through
//! a loopback HTTP gateway. Modules by theme under `tests/notify/`.
//!
//! The SMTP tests need Python with aiosmtpd: `KHIEN_PYTHON`, else the venv
//! at `$CARGO_TARGET_DIR/py` (or `target/py`) that the test command
//! installs. Without it they are skipped loudly, and fail under `CI=true`.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use khien_notify::NoticeContext;

/// A notice as the hub would fill it, in Vietnamese.
fn context() -> NoticeContext {
    NoticeContext {
        operator: "Viettel".into(),
        subscriber_name: Some("Nguyễn Thị Hồng Nhung".into()),
        family: "mirai".into(),
        guidance_title: "Làm sạch bộ định tuyến và camera".into(),
        guidance_steps: vec![
            "Khởi động lại bộ định tuyến (router) và camera.".into(),
            "Cập nhật phần mềm (firmware) mới nhất từ nhà sản xuất.".into(),
            "Đổi mật khẩu quản trị mặc định thành mật khẩu mạnh, riêng cho từng thiết bị.".into(),
            "Tắt quản trị từ xa, Telnet và UPnP nếu không dùng.".into(),
        ],
        first_seen: Utc.with_ymd_and_hms(2026, 11, 28, 17, 5, 0).unwrap(),
        last_seen: Utc.with_ymd_and_hms(2026, 12, 1, 2, 40, 0).unwrap(),
        hit_count: 12_873,
        ticket: "20261201-00000042".into(),
        verify_code: "K7PX3QMD".into(),
        verify_url: "https://viettel.vn/khien".into(),
        ack_url: "https://canhbao.viettel.vn/ack/AQAAAAAAAAAqAAAAAHEnxUCl5n4zyDLvqq5gAz6UAyHL"
            .into(),
        scanner_url: "https://khonggianmang.vn/quet".into(),
        address: Some("203.0.113.45".into()),
        round: 1,
    }
}

/// The same notice in English.
fn context_en() -> NoticeContext {
    NoticeContext {
        subscriber_name: Some("Jane Doe".into()),
        guidance_title: "Clean your router and cameras".into(),
        guidance_steps: vec![
            "Restart the router and cameras.".into(),
            "Install the latest firmware from the manufacturer.".into(),
            "Replace the default admin password with a strong one.".into(),
        ],
        ..context()
    }
}

/// Where the test command's Python venv lives.
fn venv() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("py")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[path = "notify/gateway.rs"]
mod gateway;
#[path = "notify/smtp.rs"]
mod smtp;
#[path = "notify/templates.rs"]
mod templates;
