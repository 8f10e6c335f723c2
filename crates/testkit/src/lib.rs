//! Helpers for integration tests that need a real peer process, shared so
//! that each crate's tests start it the same way.
//!
//! - [`unbound`]: Debian's Unbound on a loopback port, checked with
//!   `unbound-checkconf` first, killed when dropped, and asked with `dig`
//!   (optionally from another loopback source address).
//! - [`browser`]: Debian's headless Chromium driven over WebDriver by its
//!   ChromeDriver, with JavaScript on or off.
//!
//! A missing tool skips the test loudly, and fails it when `CI=true`: CI
//! installs every peer, so a skip there would hide a broken install step.
#![allow(clippy::print_stderr, clippy::panic, clippy::expect_used)]

pub mod browser;
pub mod unbound;

use std::net::{TcpListener, UdpSocket};

/// A free loopback port for both UDP and TCP.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether a test can run: `present`, else a loud skip, or a panic under
/// `CI=true`.
pub fn required(present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}");
    }
    eprintln!("\n*** SKIP: {what}; not found ***\n");
    false
}
