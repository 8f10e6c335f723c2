//! SMS through an operator's HTTP gateway, and its delivery reports.
//!
//! Gateways differ in everything but HTTP, so the request is configured:
//! URL, method, headers and a minijinja body template with `to`, `text`,
//! `ticket` and `sender` (a `json` filter writes a JSON string with its
//! quotes, minijinja's `urlencode` serves form bodies). With `GET` the
//! rendered template is the query string. The provider's message id is
//! read from the JSON response with a JSON pointer, so a later delivery
//! report can be matched.
//!
//! Before anything is sent the text is measured ([`crate::sms::measure`]);
//! with `ascii_fallback` its "không dấu" form is sent instead when that
//! takes fewer parts, and a text still above `max_segments` is refused as
//! a permanent error, since retrying cannot shorten it.
//!
//! Outcomes: 2xx is sent; 5xx, 408, 429, a timeout or a connection error
//! is temporary; any other status is permanent. The HTTP client is the
//! blocking `ureq`, run on Tokio's blocking pool.
//!
//! Delivery reports arrive as webhooks: [`parse_delivery_report`] reads
//! the body without I/O, [`verify_signature`] checks its HMAC header.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::sms::{self, SmsEncoding};
use crate::{Error, SendError};

/// Largest response body read from the gateway.
const RESPONSE_LIMIT: u64 = 64 * 1024;
/// Longest provider message id accepted in a delivery report.
const MAX_ID_LEN: usize = 256;

fn default_method() -> String {
    "POST".into()
}
fn default_content_type() -> String {
    "application/json".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_true() -> bool {
    true
}
fn default_max_segments() -> u32 {
    3
}

/// How to reach the operator's SMS gateway.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The endpoint, `http://` or `https://`.
    pub url: String,
    /// `POST` (default) or `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers, e.g. `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body's `Content-Type` (default `application/json`; ignored for
    /// GET). A JSON content type makes [`SmsGateway::new`] check that the
    /// template renders valid JSON.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The body (query string for GET), a minijinja template over `to`,
    /// `text`, `ticket` and `sender`, e.g.
    /// `{"to": {{ to|json }}, "text": {{ text|json }}}`.
    pub body_template: String,
    /// The sender name or number the gateway shows.
    pub sender: String,
    /// A JSON pointer (RFC 6901) to the provider's message id in the
    /// response, e.g. `/messages/0/id`.
    #[serde(default)]
    pub id_pointer: Option<String>,
    /// Timeout for the whole request (default 10s).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Send without diacritics when that takes fewer parts (default true).
    #[serde(default = "default_true")]
    pub ascii_fallback: bool,
    /// Longest text sent, in parts (default 3).
    #[serde(default = "default_max_segments")]
    pub max_segments: u32,
    /// The secret the gateway signs its delivery reports with
    /// ([`verify_signature`]); without it the receiver takes none.
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are credentials more often than not.
        let headers: BTreeMap<&str, &str> = self
            .headers
            .keys()
            .map(|k| (k.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("GatewayConfig")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &headers)
            .field("content_type", &self.content_type)
            .field("body_template", &self.body_template)
            .field("sender", &self.sender)
            .field("id_pointer", &self.id_pointer)
            .field("timeout", &self.timeout)
            .field("ascii_fallback", &self.ascii_fallback)
            .field("max_segments", &self.max_segments)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What the gateway accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsSent {
    /// The provider's message id, when `id_pointer` found one.
    pub provider_id: Option<String>,
    pub segments: u32,
    pub encoding: SmsEncoding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Post,
    Get,
}

/// A configured SMS gateway.
pub struct SmsGateway {
    cfg: GatewayConfig,
    method: Method,
    env: Environment<'static>,
    agent: ureq::Agent,
}

impl fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsGateway")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

const BODY: &str = "body_template";

fn json_filter(value: Value) -> Result<String, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "json of an undefined value",
        ));
    }
    serde_json::to_string(&value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn temporary(message: String) -> SendError {
    SendError {
        permanent: false,
        message,
    }
}

fn permanent(message: String) -> SendError {
    SendError {
        permanent: true,
        message,
    }
}

impl SmsGateway {
    /// Checks the configuration and compiles the body template.
    pub fn new(cfg: GatewayConfig) -> Result<SmsGateway, Error> {
        let config = |field: &'static str, reason: String| Error::Config { field, reason };
        let url = url::Url::parse(&cfg.url).map_err(|e| config("url", format!("{e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config("url", "must be http:// or https://".into()));
        }
        let method = match cfg.method.to_ascii_uppercase().as_str() {
            "POST" => Method::Post,
            "GET" => Method::Get,
            other => return Err(config("method", format!("{other:?}: expected POST or GET"))),
        };
        for (name, value) in &cfg.headers {
            if !is_header_name(name) {
                return Err(config("headers", format!("invalid header name {name:?}")));
            }
            if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(config(
                    "headers",
                    format!("value of {name} has control characters"),
                ));
            }
        }
        if cfg.max_segments == 0 {
            return Err(config("max_segments", "must be at least 1".into()));
        }
        if let Some(p) = &cfg.id_pointer
            && !p.is_empty()
            && !p.starts_with('/')
        {
            return Err(config(
                "id_pointer",
                format!("{p:?}: a JSON pointer starts with '/'"),
            ));
        }

        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.add_filter("json", json_filter);
        env.add_template_owned(BODY, cfg.body_template.clone())
            .map_err(|e| Error::Template {
                file: BODY.into(),
                line: e.line(),
                reason: e.to_string(),
            })?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("khien-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let gateway = SmsGateway {
            cfg,
            method,
            env,
            agent,
        };
        // A sample with characters that need escaping in JSON.
        let sample = gateway
            .body(
                "+84901234567",
                "Thử \"Khiên\"\\\n\t🛡 & = ?",
                "20261201-00000001",
            )
            .map_err(|e| Error::Template {
                file: BODY.into(),
                line: e.line(),
                reason: e.to_string(),
            })?;
        if method == Method::Post
            && gateway
                .cfg
                .content_type
                .to_ascii_lowercase()
                .contains("json")
            && let Err(e) = serde_json::from_str::<serde_json::Value>(&sample)
        {
            return Err(Error::Template {
                file: BODY.into(),
                line: None,
                reason: format!(
                    "renders invalid JSON ({e}); wrap values in the json filter: {{{{ text|json }}}}"
                ),
            });
        }
        Ok(gateway)
    }

    fn body(&self, to: &str, text: &str, ticket: &str) -> Result<String, minijinja::Error> {
        self.env.get_template(BODY)?.render(minijinja::context! {
            to => to,
            text => text,
            ticket => ticket,
            sender => &self.cfg.sender,
        })
    }

    /// The text to send and its size: the "không dấu" form when allowed
    /// and shorter in parts.
    pub fn prepare(&self, text: &str) -> (String, sms::SmsInfo) {
        let info = sms::measure(text);
        if self.cfg.ascii_fallback && info.encoding == SmsEncoding::Ucs2 {
            let plain = sms::without_diacritics(text);
            let plain_info = sms::measure(&plain);
            if plain_info.segments < info.segments {
                return (plain, plain_info);
            }
        }
        (text.to_string(), info)
    }

    /// Sends one SMS.
    pub async fn send(
        &self,
        to_e164: &str,
        text: &str,
        ticket: &str,
    ) -> Result<SmsSent, SendError> {
        if !is_e164(to_e164) {
            return Err(permanent(format!(
                "{to_e164:?} is not an E.164 number (+ and 8 to 15 digits)"
            )));
        }
        let (text, info) = self.prepare(text);
        if info.segments > self.cfg.max_segments {
            return Err(permanent(format!(
                "text takes {} {} parts, more than the {} allowed",
                info.segments, info.encoding, self.cfg.max_segments
            )));
        }
        let body = self
            .body(to_e164, &text, ticket)
            .map_err(|e| permanent(format!("body template: {e}")))?;
        let request = Request {
            agent: self.agent.clone(),
            method: self.method,
            url: self.cfg.url.clone(),
            headers: self.cfg.headers.clone(),
            content_type: self.cfg.content_type.clone(),
            body,
        };
        let response = tokio::task::spawn_blocking(move || request.run())
            .await
            .map_err(|e| temporary(format!("SMS gateway request did not finish: {e}")))??;
        let provider_id = self
            .cfg
            .id_pointer
            .as_deref()
            .and_then(|p| provider_id(&response, p));
        if self.cfg.id_pointer.is_some() && provider_id.is_none() {
            tracing::warn!(
                url = %self.cfg.url,
                "notify_gateway_id_missing: the response has no message id at the configured pointer"
            );
        }
        Ok(SmsSent {
            provider_id,
            segments: info.segments,
            encoding: info.encoding,
        })
    }
}

fn provider_id(body: &str, pointer: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    match value.pointer(pointer)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

struct Request {
    agent: ureq::Agent,
    method: Method,
    url: String,
    headers: BTreeMap<String, String>,
    content_type: String,
    body: String,
}

impl Request {
    /// Performs the request; the response body (bounded) on 2xx.
    fn run(self) -> Result<String, SendError> {
        let result = match self.method {
            Method::Post => {
                let mut req = self.agent.post(&self.url);
                for (k, v) in &self.headers {
                    req = req.header(k, v);
                }
                req.content_type(&self.content_type).send(&self.body)
            }
            Method::Get => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                let url = if self.body.is_empty() {
                    self.url.clone()
                } else {
                    format!("{}{sep}{}", self.url, self.body)
                };
                let mut req = self.agent.get(&url);
                for (k, v) in &self.headers {
                    req = req.header(k, v);
                }
                req.call()
            }
        };
        let mut response = result.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_LIMIT)
            .read_to_string()
            .unwrap_or_default();
        match status {
            200..=299 => Ok(text),
            408 | 429 | 500..=599 => Err(temporary(format!(
                "SMS gateway answered {status}: {}",
                snippet(&text)
            ))),
            _ => Err(permanent(format!(
                "SMS gateway answered {status}: {}",
                snippet(&text)
            ))),
        }
    }
}

fn snippet(text: &str) -> String {
    let t: String = text.trim().chars().take(200).collect();
    if t.is_empty() {
        "(empty body)".into()
    } else {
        t
    }
}

fn classify(e: &ureq::Error) -> SendError {
    match e {
        ureq::Error::Timeout(_) => temporary(format!("SMS gateway timed out: {e}")),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            permanent(format!("SMS gateway request is invalid: {e}"))
        }
        _ => temporary(format!("SMS gateway unreachable: {e}")),
    }
}

/// A delivery report from the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// The provider's message id ([`SmsSent::provider_id`]).
    pub id: String,
    /// `Some(true)` delivered, `Some(false)` failed, `None` still on its way
    /// (a provider's intermediate status such as `sent` or `queued`).
    pub delivered: Option<bool>,
    pub error: Option<String>,
}

impl DeliveryReport {
    /// The report in the webhook's own shape (`status` is `delivered`,
    /// `failed` or `sent`), which [`parse_delivery_report`] reads back.
    pub fn to_json(&self) -> Vec<u8> {
        let mut obj = serde_json::Map::new();
        obj.insert("id".into(), self.id.clone().into());
        obj.insert(
            "status".into(),
            match self.delivered {
                Some(true) => "delivered",
                Some(false) => "failed",
                None => "sent",
            }
            .into(),
        );
        if let Some(e) = &self.error {
            obj.insert("error".into(), e.clone().into());
        }
        serde_json::Value::Object(obj).to_string().into_bytes()
    }
}

/// Webhook body: JSON {"id": "...", "status": "delivered"|"failed"|"undelivered"|"expired", "error": "..."} (also accept "message_id" for id).
///
/// Ids may be strings or integers; status is case-insensitive; an empty
/// `error` counts as none. The intermediate statuses providers report on
/// the way (`sent`, `queued`, `accepted`, `submitted`, `buffered`,
/// `enroute`, `pending`, `scheduled`) parse with `delivered: None`, so the
/// receiver can answer 200 and change nothing: a gateway that retries
/// every non-2xx answer would otherwise retry them forever. Any other
/// status is an error.
pub fn parse_delivery_report(body: &[u8]) -> Result<DeliveryReport, Error> {
    let bad = |reason: String| Error::DeliveryReport { reason };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    let id_value = obj
        .get("id")
        .filter(|v| !v.is_null())
        .or_else(|| obj.get("message_id"))
        .ok_or_else(|| bad("no \"id\" or \"message_id\"".into()))?;
    let id = match id_value {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return Err(bad("id is neither a string nor an integer".into())),
    };
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(bad(format!(
            "id must be 1 to {MAX_ID_LEN} bytes without control characters"
        )));
    }
    let status = obj
        .get("status")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad("no \"status\" string".into()))?;
    let delivered = match status.trim().to_ascii_lowercase().as_str() {
        "delivered" => Some(true),
        "failed" | "undelivered" | "expired" => Some(false),
        "sent" | "queued" | "accepted" | "submitted" | "buffered" | "enroute" | "pending"
        | "scheduled" => None,
        other => return Err(bad(format!("unknown status {other:?}"))),
    };
    let error = match obj.get("error") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(s.trim().to_string()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(bad("error is neither a string nor a number".into())),
    };
    Ok(DeliveryReport {
        id,
        delivered,
        error,
    })
}

fn hmac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// Signature header value "sha256=<hex HMAC-SHA256(secret, body)>"; constant-time compare.
pub fn verify_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(value) = header.map(str::trim) else {
        return false;
    };
    let Some(hex_part) = value
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("sha256="))
        .map(|_| &value[7..])
    else {
        return false;
    };
    let Ok(tag) = hex::decode(hex_part) else {
        return false;
    };
    if tag.len() != 32 {
        return false;
    }
    let mut mac = hmac(secret);
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// The signature header value for `body`, as [`verify_signature`] expects it.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config() -> GatewayConfig {
        GatewayConfig {
            url: "http://127.0.0.1:9/send".into(),
            method: "POST".into(),
            headers: BTreeMap::from([("Authorization".into(), "Bearer s3cr3t".into())]),
            content_type: "application/json".into(),
            body_template:
                r#"{"from": {{ sender|json }}, "to": {{ to|json }}, "text": {{ text|json }}, "ref": {{ ticket|json }}}"#
                    .into(),
            sender: "KHIEN".into(),
            id_pointer: Some("/id".into()),
            timeout: Duration::from_secs(2),
            ascii_fallback: true,
            max_segments: 3,
            webhook_secret: None,
        }
    }

    #[test]
    fn template_renders_escaped_json() {
        let g = SmsGateway::new(config()).unwrap();
        let body = g.body("+84901234567", "Mã \"độc\"\n", "T1").unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["text"], "Mã \"độc\"\n");
        assert_eq!(v["from"], "KHIEN");
        assert_eq!(v["ref"], "T1");
    }

    #[test]
    fn invalid_configs_are_refused() {
        let mut c = config();
        c.body_template = "{{ text".into();
        assert!(matches!(SmsGateway::new(c), Err(Error::Template { .. })));
        let mut c = config();
        c.body_template = r#"{"text": "{{ text }}"}"#.into();
        let e = SmsGateway::new(c).unwrap_err();
        assert!(e.to_string().contains("invalid JSON"), "{e}");
        let mut c = config();
        c.body_template = r#"{"text": {{ txt|json }}}"#.into();
        assert!(matches!(SmsGateway::new(c), Err(Error::Template { .. })));
        let mut c = config();
        c.method = "PUT".into();
        assert!(matches!(
            SmsGateway::new(c),
            Err(Error::Config {
                field: "method",
                ..
            })
        ));
        let mut c = config();
        c.url = "ftp://x".into();
        assert!(SmsGateway::new(c).is_err());
        let mut c = config();
        c.headers.insert("Bad Header".into(), "x".into());
        assert!(SmsGateway::new(c).is_err());
        let mut c = config();
        c.headers.insert("X-Ok".into(), "a\r\nb".into());
        assert!(SmsGateway::new(c).is_err());
        let mut c = config();
        c.id_pointer = Some("id".into());
        assert!(SmsGateway::new(c).is_err());
    }

    #[test]
    fn form_bodies_use_urlencode() {
        let mut c = config();
        c.content_type = "application/x-www-form-urlencoded".into();
        c.body_template = "to={{ to|urlencode }}&text={{ text|urlencode }}".into();
        let g = SmsGateway::new(c).unwrap();
        assert_eq!(
            g.body("+84901234567", "a b&c", "T").unwrap(),
            "to=%2B84901234567&text=a%20b%26c"
        );
    }

    #[test]
    fn debug_hides_header_values() {
        let s = format!("{:?}", SmsGateway::new(config()).unwrap());
        assert!(!s.contains("s3cr3t"), "{s}");
        assert!(s.contains("Authorization"));
    }

    #[test]
    fn ascii_fallback_only_when_it_saves_parts() {
        let g = SmsGateway::new(config()).unwrap();
        let vi = "Thiết bị của Quý khách có dấu hiệu nhiễm mã độc mirai. Xem hướng dẫn tại trang của nhà mạng.";
        let (text, info) = g.prepare(vi);
        assert_eq!(info.encoding, SmsEncoding::Gsm7);
        assert!(text.starts_with("Thiet bi cua Quy khach"));
        // Short enough to fit one UCS-2 part: kept with its marks.
        let (text, info) = g.prepare("Mã độc");
        assert_eq!(
            (text.as_str(), info.encoding),
            ("Mã độc", SmsEncoding::Ucs2)
        );
        let mut c = config();
        c.ascii_fallback = false;
        let g = SmsGateway::new(c).unwrap();
        assert_eq!(g.prepare(vi).1.encoding, SmsEncoding::Ucs2);
    }

    #[test]
    fn e164_numbers() {
        assert!(is_e164("+84901234567"));
        assert!(is_e164("+12025550123"));
        for bad in [
            "84901234567",
            "+",
            "+0901234567",
            "+84 90 123",
            "+8490123456789012",
            "+849a",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn provider_ids() {
        assert_eq!(
            provider_id(r#"{"id":"abc"}"#, "/id").as_deref(),
            Some("abc")
        );
        assert_eq!(
            provider_id(
                r#"{"data":{"messages":[{"id":17}]}}"#,
                "/data/messages/0/id"
            )
            .as_deref(),
            Some("17")
        );
        assert_eq!(provider_id(r#"{"id":""}"#, "/id"), None);
        assert_eq!(provider_id("not json", "/id"), None);
        assert_eq!(provider_id(r#"{"x":1}"#, "/id"), None);
    }

    #[test]
    fn delivery_reports() {
        let r = parse_delivery_report(br#"{"id": "m-1", "status": "delivered"}"#).unwrap();
        assert_eq!(
            r,
            DeliveryReport {
                id: "m-1".into(),
                delivered: Some(true),
                error: None
            }
        );
        let r = parse_delivery_report(
            br#"{"message_id": 12345, "status": "UNDELIVERED", "error": "absent subscriber"}"#,
        )
        .unwrap();
        assert_eq!(r.id, "12345");
        assert_eq!(r.delivered, Some(false));
        assert_eq!(r.error.as_deref(), Some("absent subscriber"));
        for status in ["failed", "expired", "Undelivered"] {
            let body = format!(r#"{{"id": "x", "status": "{status}"}}"#);
            let r = parse_delivery_report(body.as_bytes()).unwrap();
            assert_eq!(r.delivered, Some(false), "{status}");
        }
        for status in ["sent", "QUEUED", "accepted", "enroute"] {
            let body = format!(r#"{{"id": "x", "status": "{status}"}}"#);
            let r = parse_delivery_report(body.as_bytes()).unwrap();
            assert_eq!(r.delivered, None, "{status}");
        }
        let r = parse_delivery_report(br#"{"id": "x", "status": "failed", "error": 34}"#).unwrap();
        assert_eq!(r.error.as_deref(), Some("34"));
        let r = parse_delivery_report(br#"{"id": "x", "status": "failed", "error": ""}"#).unwrap();
        assert_eq!(r.error, None);
    }

    #[test]
    fn bad_delivery_reports() {
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"status\": \"delivered\"}",
            b"{\"id\": \"\", \"status\": \"delivered\"}",
            b"{\"id\": 1.5, \"status\": \"delivered\"}",
            b"{\"id\": {}, \"status\": \"delivered\"}",
            b"{\"id\": \"x\"}",
            b"{\"id\": \"x\", \"status\": \"read-by-martians\"}",
            b"{\"id\": \"x\", \"status\": 1}",
            b"{\"id\": \"x\", \"status\": \"failed\", \"error\": []}",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(
                    parse_delivery_report(body),
                    Err(Error::DeliveryReport { .. })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!(r#"{{"id": "{}", "status": "delivered"}}"#, "a".repeat(300));
        assert!(parse_delivery_report(long.as_bytes()).is_err());
    }

    #[test]
    fn delivery_report_round_trips() {
        for r in [
            DeliveryReport {
                id: "a\"b".into(),
                delivered: Some(true),
                error: None,
            },
            DeliveryReport {
                id: "42".into(),
                delivered: Some(false),
                error: Some("hết hạn".into()),
            },
            DeliveryReport {
                id: "m-7".into(),
                delivered: None,
                error: None,
            },
        ] {
            assert_eq!(parse_delivery_report(&r.to_json()).unwrap(), r);
        }
    }

    #[test]
    fn signatures() {
        let body = br#"{"id":"x","status":"delivered"}"#;
        let sig = sign(b"secret", body);
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        assert!(verify_signature(b"secret", body, Some(&sig)));
        assert!(verify_signature(b"secret", body, Some(&sig.to_uppercase())));
        assert!(verify_signature(b"secret", body, Some(&format!(" {sig} "))));
        assert!(!verify_signature(b"other", body, Some(&sig)));
        assert!(!verify_signature(b"secret", b"{}", Some(&sig)));
        assert!(!verify_signature(b"secret", body, None));
        assert!(!verify_signature(b"secret", body, Some("")));
        assert!(!verify_signature(b"secret", body, Some(&sig[7..])));
        assert!(!verify_signature(b"secret", body, Some(&sig[..70])));
        assert!(!verify_signature(b"secret", body, Some("sha256=zz")));
        assert!(!verify_signature(b"secret", body, Some("sha1=abcd")));
        assert!(!verify_signature(b"secret", body, Some("ÿÿÿÿÿÿÿÿ")));
    }
}
