//! Sensor integration tests: real files, sockets, Unbound and softflowd.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod dnstap;
mod files;
mod netflow;
mod support;
