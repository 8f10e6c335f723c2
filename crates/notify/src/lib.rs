//! How subscribers whose devices are infected are warned: the notice
//! templates, and the delivery mechanics of each channel.
//!
//! The hub owns the queue, the policies (which channel, when, how often),
//! rate limits and retries; it calls this crate to turn a case into words
//! and the words into an e-mail, an SMS, a web notice page, a line in the
//! call centre's queue or a note on the bill ([`khien_model::Channel`]).
//!
//! - [`Templates`] renders a [`NoticeContext`] for a channel, a guidance
//!   group and a [`Lang`] into a [`Rendered`] notice.
//! - [`EmailSender`] sends it over SMTP (STARTTLS or implicit TLS,
//!   authentication, a connection pool, DKIM).
//! - [`SmsGateway`] posts it to the operator's HTTP SMS gateway;
//!   [`parse_delivery_report`] and [`verify_signature`] read the gateway's
//!   webhooks.
//! - [`sms`] measures texts in GSM-7 or UCS-2 parts and strips Vietnamese
//!   diacritics; [`token`] makes tickets, signed acknowledgement links and
//!   verification codes.
//! - Web notices, call-queue rows and bill notes need no transport here:
//!   the hub serves the rendered page, exports the line, hands the note to
//!   billing.
//!
//! Delivery errors are one [`SendError`] with a `permanent` flag, because
//! that is the only question a retry policy asks; everything else is the
//! crate's [`Error`].
//!
//! # Decisions
//!
//! **Templates are files.** Wording is policy that operators and the CERT
//! will want to change without a release, and translators work on text, not
//! Rust. Built-ins are compiled in (so a hub always has a complete set) and
//! an override directory replaces them file by file. Loading renders every
//! template once with sample data, so a broken override stops the hub at
//! start-up instead of failing the first warning; names outside the layout
//! are refused so a typo cannot fall back silently. See [`templates`].
//!
//! **Fallbacks.** A part is looked up for the family's group, then
//! `default`; the other language is used only when the channel has no
//! template at all in the requested one. A new family or group therefore
//! gets the general wording rather than no warning, while a subscriber who
//! chose Vietnamese never gets English because one file was missing.
//!
//! **RFC 6561** (recommendations for ISP malware notification), as far as
//! templates can carry it: each notice says what was seen (family, first
//! and last time in Vietnam time, how often), why it matters for that kind
//! of device, the removal steps, the free scanner; how to check that the
//! notice is genuine without following its links (type the operator's
//! verification address, enter the ticket and code); that the operator
//! never asks for passwords, OTPs or payment; where to get help through a
//! known channel; how to acknowledge. No advertising, no tracking pixels,
//! no remote images, no JavaScript; the web notice works without scripts
//! and acknowledges with a plain form POST.
//!
//! **GSM-7 vs UCS-2.** Vietnamese with diacritics forces UCS-2 (70
//! characters, 67 per part), more than doubling the cost of a warning.
//! [`SmsGateway`] sends the "không dấu" form when configured and when it
//! saves parts, and refuses texts above the configured number of parts
//! before sending (see [`sms`]).
//!
//! **Tokens.** Acknowledgement links carry `base64url(version ‖ id ‖
//! expiry ‖ HMAC-SHA256[..16])`: stateless, expiring, and 44 characters
//! with no padding bits, so any altered character is a forgery. The
//! verification code is an HMAC of the ticket in a 32-symbol alphabet
//! without look-alikes, so checking one needs no storage (see [`token`]).
//!
//! # Example
//!
//! ```
//! use khien_model::Channel;
//! use khien_notify::{Lang, NoticeContext, Templates, token};
//!
//! let key = [0u8; 32];
//! let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
//! let ticket = token::ticket(day, 42);
//! let ctx = NoticeContext {
//!     operator: "Nhà mạng Ví Dụ".into(),
//!     subscriber_name: None,
//!     family: "mirai".into(),
//!     guidance_title: "Làm sạch bộ định tuyến".into(),
//!     guidance_steps: vec!["Khởi động lại thiết bị.".into()],
//!     first_seen: "2026-11-30T01:00:00Z".parse().unwrap(),
//!     last_seen: "2026-12-01T02:00:00Z".parse().unwrap(),
//!     hit_count: 17,
//!     verify_code: token::verify_code(&key, &ticket),
//!     ticket,
//!     verify_url: "https://nhamang.example/kiem-tra".into(),
//!     ack_url: format!("https://nhamang.example/ack/{}", token::ack_token(&key, 42, 1_900_000_000)),
//!     scanner_url: "https://khien.example/quet".into(),
//!     address: None,
//!     round: 1,
//! };
//! let templates = Templates::load(None).unwrap();
//! let sms = templates.render(Channel::Sms, "iot-bot", Lang::Vi, &ctx).unwrap();
//! assert!(sms.text.contains("mirai"));
//! let info = khien_notify::sms::measure(&khien_notify::sms::without_diacritics(&sms.text));
//! assert_eq!(info.encoding, khien_notify::sms::SmsEncoding::Gsm7);
//! ```

pub mod email;
pub mod gateway;
pub mod sms;
pub mod templates;
pub mod token;

use std::path::PathBuf;

use khien_model::Channel;

pub use email::{DkimConfig, EmailSender, SmtpConfig, SmtpSecurity};
pub use gateway::{
    DeliveryReport, GatewayConfig, SmsGateway, SmsSent, parse_delivery_report, sign,
    verify_signature,
};
pub use sms::{SmsEncoding, SmsInfo};
pub use templates::{Lang, NoticeContext, Rendered, Templates};
pub use token::TokenError;

/// Errors of this crate other than delivery failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A template that does not parse, does not render with the sample
    /// context, or is not named by the layout. `file` is the override's
    /// path, or the built-in template's name.
    #[error("template {file}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Template {
        file: String,
        line: Option<usize>,
        reason: String,
    },
    /// No template for a required part, even after the fallbacks.
    #[error("no {part} template for {channel} group {group} in {lang} or any fallback")]
    MissingTemplate {
        channel: Channel,
        group: String,
        lang: Lang,
        part: &'static str,
    },
    /// Reading a template, certificate or key file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A configuration value that cannot work.
    #[error("invalid {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// A delivery-report webhook body that is not one.
    #[error("invalid delivery report: {reason}")]
    DeliveryReport { reason: String },
}

/// A notice that could not be delivered. `permanent` failures (an invalid
/// address, a 5xx SMTP reply, a 4xx from the gateway, a text too long)
/// will fail again; temporary ones (connection refused, timeout, 4xx SMTP
/// reply, 5xx from the gateway) may succeed later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} delivery failure: {message}", if *permanent { "permanent" } else { "temporary" })]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}
