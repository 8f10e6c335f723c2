//! The Khiên hub: the HTTP server sensors ship hits to and fetch matcher
//! snapshots from. (The organisations, users and cases around it come
//! later; this is the ingest core.)
//!
//! - [`HubConfig`] (TOML, `deny_unknown_fields`) → [`HubConfig::build`]
//!   opens the store and binds → [`Hub::run`] serves until a shutdown
//!   future completes ([`shutdown_signal`] for Ctrl-C/SIGTERM), or
//!   [`Hub::spawn`] runs it as a task and returns a [`HubHandle`].
//! - `POST /api/v1/hits` takes idempotent batches of
//!   [`khien_model::Hit`] as NDJSON or JSON, optionally gzip-compressed
//!   with bounded decompression ([`wire`] parses them without I/O).
//! - `GET /api/v1/snapshots/latest` serves the matcher snapshot, rebuilt
//!   in the background when indicators change ([`snapshot`]), with an
//!   ETag so sensors download it only when it changed.
//! - `/healthz`, `/metrics` (Prometheus text).
//!
//! Decisions: the store is synchronous, so requests reach it through
//! blocking tasks over one mutex-guarded connection and the snapshot
//! builder has a connection of its own; a batch is answered 200 only after
//! its transaction committed; errors are RFC 9457 problem documents, mapped
//! in one place (`error.rs`, policy at its top). The wire contract is
//! `docs/hub-api.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), khien_hub::Error> {
//! use khien_hub::HubConfig;
//! let config = HubConfig {
//!     listen: "127.0.0.1:0".parse().expect("address"),
//!     database: "sqlite:/tmp/khien.db".into(),
//!     ..HubConfig::default()
//! };
//! let hub = config.build().await?;
//! println!("listening on {}", hub.local_addr());
//! let handle = hub.spawn();
//! // … talk to it over HTTP …
//! handle.shutdown().await?;
//! # Ok(()) }
//! ```

// An `ApiError` (problem document with its location fields) is returned
// on the error path of a request only; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod api;
pub mod attribution;
mod auth;
mod clock;
mod config;
mod db;
pub mod directory;
mod error;
pub mod guidance;
mod ingest;
mod metrics;
pub mod notify;
pub mod secrets;
mod server;
pub mod snapshot;
pub mod wire;

pub use auth::{SCOPE_ADMIN, SCOPE_ATTRIBUTION_WRITE, SCOPE_HITS_WRITE, SCOPE_READ, SCOPES};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    CaseConfig, CookieSecure, HitConfig, HubConfig, LoginConfig, LookupConfig, NoticeListener,
    NotificationConfig, OrganizationConfig, SecretsConfig, SessionConfig,
};
pub use error::Error;
pub use secrets::{Secrets, SecretsSource};
pub use server::{
    FIRST_ADMIN_EMAIL, FirstStart, Hub, HubHandle, open_admin_store, openapi_json, org_role_of,
    serve, shutdown_signal,
};
pub use snapshot::{BuildSummary, build_from_store, build_within};
