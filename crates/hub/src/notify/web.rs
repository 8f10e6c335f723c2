//! The pages subscribers see: the walled-garden notice, the
//! acknowledgement of an e-mail or SMS link, the check that a warning is
//! genuine — and the SMS gateway's delivery reports.
//!
//! The **notice listener** (one per operator, `notifications.notice`)
//! answers every request, whatever the host name the resolver sent the
//! browser there for, with the notice of the subscriber who holds the
//! client's address now (the operator's attribution index). Anyone else
//! gets a neutral page that says nothing about anybody. The page is plain
//! HTML with inline CSS: no JavaScript, no third-party resource, no ads
//! (RFC 6108's lessons). Its acknowledgement is a form `POST` with a
//! signed token; showing the page marks the notice delivered.
//!
//! Acknowledgement links in e-mail and SMS open a confirmation page whose
//! form does the `POST`: a mail scanner that follows links must not
//! acknowledge for the subscriber.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use khien_model::{Channel, NotificationStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{PathParam, QueryParams};
use crate::error::{ApiError, Problem};
use crate::guidance::{self, Language};
use crate::server::AppState;

/// Where the notice page's form posts.
const NOTICE_ACK: &str = "/khien-notice/acknowledge";

fn page(lang: Language, title: &str, body: &str) -> String {
    let l = match lang {
        Language::Vi => "vi",
        Language::En => "en",
    };
    format!(
        "<!doctype html><html lang=\"{l}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;\
         margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}}\
         button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head><body><h1>{}</h1>{body}\
         </body></html>",
        escape(title),
        escape(title)
    )
}

/// HTML-escapes text.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn lang_of(headers: &HeaderMap, query: Option<&str>) -> Language {
    Language::choose(
        query,
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, Html(body)).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    res
}

fn message_page(lang: Language, status: StatusCode, title_key: &str, text_key: &str) -> Response {
    let title = guidance::message(lang, title_key, &[]);
    let text = guidance::message(lang, text_key, &[]);
    html(
        status,
        page(lang, &title, &format!("<p>{}</p>", escape(&text))),
    )
}

// --- The walled-garden listener ------------------------------------------------

/// The state of one notice listener.
#[derive(Debug, Clone)]
pub(crate) struct NoticeState {
    pub app: Arc<AppState>,
    pub org: i64,
}

/// The router of a notice listener.
pub(crate) fn notice_router(app: Arc<AppState>, org: i64) -> Router {
    Router::new()
        .route(NOTICE_ACK, post(notice_acknowledge))
        .fallback(get(notice_page))
        .with_state(NoticeState { app, org })
}

fn client(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let ip = peer.ip();
    if state.config.lookups.trusted_proxies.contains(&ip)
        && let Some(f) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return f;
    }
    ip
}

async fn notice_page(
    State(ns): State<NoticeState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let state = &ns.app;
    let lang = lang_of(&headers, None);
    let Some(notifier) = state.notifier.as_ref() else {
        return message_page(lang, StatusCode::OK, "notice_none_title", "notice_none");
    };
    let ip = client(state, peer, &headers);
    let now = state.clock.now();
    let Some(subscriber) = state
        .attribution
        .get(ns.org)
        .and_then(|idx| idx.lookup(ip, None, now.timestamp()))
    else {
        return message_page(lang, StatusCode::OK, "notice_none_title", "notice_none");
    };
    let org = ns.org;
    let notices = match state
        .store
        .run(move |s| s.active_web_notices(org, subscriber))
        .await
    {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let Some(n) = notices.into_iter().next() else {
        return message_page(lang, StatusCode::OK, "notice_none_title", "notice_none");
    };
    let policy = super::policy_of(state, org).await.unwrap_or_default();
    let expires = now.timestamp() + i64::try_from(policy.ack_link_valid.as_secs()).unwrap_or(0);
    let token = khien_notify::token::ack_token(&notifier.link_key, n.notification.id, expires);
    let operator = match state.store.run(move |s| s.org(org)).await {
        Ok(Some(o)) => o.name,
        _ => state.config.notifications.sender_name.clone(),
    };
    let ack_url = format!("{NOTICE_ACK}?token={token}");
    let rendered = match super::render(
        state,
        notifier,
        &n,
        &operator,
        None,
        Some(ip.to_string()),
        ack_url,
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(event = "hub_notice_render_failed", error = %e);
            return message_page(lang, StatusCode::OK, "notice_none_title", "notice_none");
        }
    };
    if n.notification.status == NotificationStatus::Sent {
        let id = n.notification.id;
        let t = now.timestamp();
        let _ = state
            .store
            .run(move |s| s.notification_delivered(id, true, None, t))
            .await;
    }
    html(StatusCode::OK, rendered.html.unwrap_or(rendered.text))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn notice_acknowledge(
    State(ns): State<NoticeState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<TokenQuery>,
    body: Bytes,
) -> Response {
    // The token comes in the form action's query, or as a form field.
    let token = q.token.or_else(|| {
        form_urlencoded::parse(&body)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    acknowledge(
        &ns.app,
        &headers,
        token.as_deref().unwrap_or(""),
        "web",
        Some(ns.org),
    )
    .await
}

async fn acknowledge(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    via: &'static str,
    org: Option<i64>,
) -> Response {
    let lang = lang_of(headers, None);
    let Some(notifier) = state.notifier.as_ref() else {
        return message_page(
            lang,
            StatusCode::NOT_FOUND,
            "ack_invalid_title",
            "ack_invalid",
        );
    };
    let now = state.clock.now().timestamp();
    let id = match khien_notify::token::verify_ack_token(&notifier.link_key, token, now) {
        Ok(id) => id,
        Err(e) => {
            tracing::info!(event = "hub_ack_refused", reason = %e);
            return message_page(
                lang,
                StatusCode::BAD_REQUEST,
                "ack_invalid_title",
                "ack_invalid",
            );
        }
    };
    let found = state
        .store
        .run(move |s| {
            let Some(n) = s.notification_by_id(id)? else {
                return Ok(None);
            };
            if org.is_some_and(|o| o != n.notification.org_id) {
                return Ok(None);
            }
            Ok(s.acknowledge_notification(id, via, now)?
                .map(|_| n.notification.language))
        })
        .await;
    match found {
        // In the language of the notice just read, not the browser's.
        Ok(Some(notice_lang)) => message_page(
            Language::choose(Some(&notice_lang), None),
            StatusCode::OK,
            "ack_done_title",
            "ack_done",
        ),
        Ok(None) => message_page(
            lang,
            StatusCode::NOT_FOUND,
            "ack_invalid_title",
            "ack_invalid",
        ),
        Err(e) => e.into_response(),
    }
}

// --- Links from e-mail and SMS ----------------------------------------------------

/// `GET /ack/{token}`: the notice of the link's notification, as the
/// walled garden shows it, whose form acknowledges (a plain confirmation
/// page if it cannot be rendered). Opening it acknowledges nothing, so a
/// mail scanner that follows links does not acknowledge for the subscriber.
pub(crate) async fn ack_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    PathParam(token): PathParam<String>,
) -> Response {
    let lang = lang_of(&headers, None);
    let Some(notifier) = state.notifier.as_ref() else {
        return message_page(
            lang,
            StatusCode::NOT_FOUND,
            "ack_invalid_title",
            "ack_invalid",
        );
    };
    let Ok(id) = khien_notify::token::verify_ack_token(
        &notifier.link_key,
        &token,
        state.clock.now().timestamp(),
    ) else {
        return message_page(
            lang,
            StatusCode::BAD_REQUEST,
            "ack_invalid_title",
            "ack_invalid",
        );
    };
    let found = state
        .store
        .run(move |s| {
            let Some(n) = s.notification_by_id(id)? else {
                return Ok(None);
            };
            let operator = s.org(n.notification.org_id)?.map(|o| o.name);
            Ok(Some((n, operator)))
        })
        .await;
    let (mut n, operator) = match found {
        Ok(Some(f)) => f,
        Ok(None) => {
            return message_page(
                lang,
                StatusCode::NOT_FOUND,
                "ack_invalid_title",
                "ack_invalid",
            );
        }
        Err(e) => return e.into_response(),
    };
    if n.notification.status == NotificationStatus::Acknowledged {
        return message_page(lang, StatusCode::OK, "ack_done_title", "ack_done");
    }
    let operator = operator.unwrap_or_else(|| state.config.notifications.sender_name.clone());
    n.notification.channel = Channel::Web;
    let action = format!("/ack/{token}");
    match super::render(&state, notifier, &n, &operator, None, None, action.clone()) {
        Ok(r) if r.html.is_some() => html(StatusCode::OK, r.html.unwrap_or_default()),
        other => {
            if let Err(e) = other {
                tracing::error!(event = "hub_notice_render_failed", error = %e);
            }
            let title = guidance::message(lang, "ack_confirm_title", &[]);
            let text = guidance::message(lang, "ack_confirm", &[]);
            let button = guidance::message(lang, "ack_button", &[]);
            html(
                StatusCode::OK,
                page(
                    lang,
                    &title,
                    &format!(
                        "<p>{}</p><form method=\"post\" action=\"{}\"><button type=\"submit\">{}</button></form>",
                        escape(&text),
                        escape(&action),
                        escape(&button)
                    ),
                ),
            )
        }
    }
}

/// `POST /ack/{token}`: the acknowledgement itself.
pub(crate) async fn ack_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    PathParam(token): PathParam<String>,
) -> Response {
    acknowledge(&state, &headers, &token, "link", None).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct VerifyQuery {
    /// The ticket number on the warning, `YYYYMMDD-NNNNNNNN`.
    pub ticket: String,
    /// The verification code printed with it.
    pub code: String,
    pub lang: Option<String>,
}

/// Whether a warning is genuine.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Verification {
    pub genuine: bool,
    /// The operator that sent it (when genuine).
    pub operator: Option<String>,
    #[schema(value_type = Option<String>)]
    pub channel: Option<Channel>,
    pub issued_at: Option<chrono::DateTime<chrono::Utc>>,
    pub message: String,
    /// The malware family the warning is about (when genuine), and what
    /// to do about it: a printed bill note or a call has no room for the
    /// steps, so checking the warning is also where to read them.
    pub family: Option<String>,
    pub guidance: Option<guidance::Guidance>,
    /// Where to get the free scanner (when genuine).
    pub scanner_url: Option<String>,
}

async fn verify(
    state: &AppState,
    q: &VerifyQuery,
    lang: Language,
) -> Result<Verification, ApiError> {
    let Some(notifier) = state.notifier.as_ref() else {
        return Err(ApiError::new(
            Problem::NotFound,
            "notifications are not set up",
        ));
    };
    let ok = khien_notify::token::verify_code_matches(&notifier.link_key, &q.ticket, &q.code);
    let ticket = q.ticket.clone();
    let found = if ok {
        state
            .store
            .run(move |s| s.notification_by_ticket(&ticket))
            .await?
    } else {
        None
    };
    Ok(match found {
        Some(n) => {
            let org = n.notification.org_id;
            let operator = state.store.run(move |s| s.org(org)).await?.map(|o| o.name);
            Verification {
                genuine: true,
                message: guidance::message(
                    lang,
                    "verify_genuine",
                    &[("operator", operator.as_deref().unwrap_or(""))],
                ),
                operator,
                channel: Some(n.notification.channel),
                issued_at: Some(n.notification.created_at),
                guidance: Some(guidance::guidance(lang, &n.family)),
                family: Some(n.family),
                scanner_url: Some(state.config.notifications.scanner_url.clone()),
            }
        }
        None => Verification {
            genuine: false,
            operator: None,
            channel: None,
            issued_at: None,
            message: guidance::message(lang, "verify_not_genuine", &[]),
            family: None,
            guidance: None,
            scanner_url: None,
        },
    })
}

/// Is this warning genuine? (No login; rate-limited like the lookups.)
#[utoipa::path(get, path = "/api/v1/notices/verify", tag = "public", params(VerifyQuery),
    responses((status = 200, body = Verification), (status = 429, body = crate::error::ProblemSchema)),
    security(()))]
pub(crate) async fn verify_api(
    State(state): State<Arc<AppState>>,
    crate::auth::ClientAddr(client): crate::auth::ClientAddr,
    headers: HeaderMap,
    QueryParams(q): QueryParams<VerifyQuery>,
) -> Result<axum::Json<Verification>, ApiError> {
    crate::api::lookup::rate_limit(&state, client)?;
    let lang = lang_of(&headers, q.lang.as_deref());
    verify(&state, &q, lang).await.map(axum::Json)
}

/// `GET /verify?ticket=…&code=…`: the same as a page (and a form when
/// asked without parameters).
pub(crate) async fn verify_page(
    State(state): State<Arc<AppState>>,
    crate::auth::ClientAddr(client): crate::auth::ClientAddr,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let lang = lang_of(&headers, None);
    if let Err(e) = crate::api::lookup::rate_limit(&state, client) {
        return e.into_response();
    }
    let params: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let title = guidance::message(lang, "verify_title", &[]);
    let form = format!(
        "<form method=\"get\" action=\"/verify\"><p><label>{} <input name=\"ticket\" required></label></p>\
         <p><label>{} <input name=\"code\" required></label></p><button type=\"submit\">{}</button></form>",
        escape(&guidance::message(lang, "verify_ticket", &[])),
        escape(&guidance::message(lang, "verify_code", &[])),
        escape(&guidance::message(lang, "verify_button", &[]))
    );
    let (Some(ticket), Some(code)) = (get("ticket"), get("code")) else {
        return html(StatusCode::OK, page(lang, &title, &form));
    };
    let q = VerifyQuery {
        ticket,
        code,
        lang: None,
    };
    match verify(&state, &q, lang).await {
        Ok(v) => {
            let mut body = format!("<p><strong>{}</strong></p>", escape(&v.message));
            if let Some(g) = &v.guidance {
                body.push_str(&format!("<h2>{}</h2><ol>", escape(&g.title)));
                for step in &g.steps {
                    body.push_str(&format!("<li>{}</li>", escape(step)));
                }
                body.push_str("</ol>");
            }
            if let Some(url) = v.scanner_url.as_deref().filter(|u| !u.is_empty()) {
                body.push_str(&format!(
                    "<p>{} <a href=\"{}\">{}</a></p>",
                    escape(&guidance::message(lang, "verify_scanner", &[])),
                    escape(url),
                    escape(url)
                ));
            }
            body.push_str(&form);
            html(StatusCode::OK, page(lang, &title, &body))
        }
        Err(e) => e.into_response(),
    }
}

// --- SMS delivery reports ------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReportOutcome {
    pub ticket: String,
    pub status: String,
}

/// The SMS gateway's delivery report, signed with the shared secret
/// (`X-Khien-Signature: sha256=<hex HMAC-SHA256 of the body>`).
#[utoipa::path(post, path = "/api/v1/sms/delivery-reports", tag = "notifications",
    request_body(content = String, content_type = "application/json",
        description = "{\"id\": \"<the gateway's id or our ticket>\", \"status\": \"delivered|failed|undelivered|expired\", \"error\": \"…\"}; intermediate statuses (sent, queued, accepted, submitted, buffered, enroute, pending, scheduled) are answered 200 and change nothing"),
    responses((status = 200, body = ReportOutcome),
        (status = 401, description = "Missing or wrong signature", body = crate::error::ProblemSchema),
        (status = 404, description = "No notification has this id", body = crate::error::ProblemSchema),
        (status = 422, body = crate::error::ProblemSchema)),
    security(()))]
pub(crate) async fn delivery_report(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<ReportOutcome>, ApiError> {
    let Some(secret) = state
        .notifier
        .as_ref()
        .and_then(|n| n.webhook_secret.clone())
    else {
        return Err(ApiError::new(
            Problem::NotFound,
            "delivery reports are not set up (notifications.sms.webhook_secret)",
        ));
    };
    let signature = headers
        .get("x-khien-signature")
        .and_then(|v| v.to_str().ok());
    if !khien_notify::verify_signature(&secret, &body, signature) {
        return Err(ApiError::new(
            Problem::Unauthorized,
            "the X-Khien-Signature header is missing or does not match the body",
        ));
    }
    let report = khien_notify::parse_delivery_report(&body)
        .map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let now = state.clock.now().timestamp();
    let id = report.id.clone();
    let found = state
        .store
        .run(move |s| {
            let n = match s.notification_by_provider_id(&id)? {
                Some(n) => Some(n),
                None => s.notification_by_ticket(&id)?.map(|c| c.notification),
            };
            let Some(n) = n.filter(|n| n.channel == Channel::Sms) else {
                return Ok(None);
            };
            // An intermediate status changes nothing; it is still answered
            // 200 so that the gateway stops sending it.
            if let Some(delivered) = report.delivered {
                s.notification_delivered(n.id, delivered, report.error.as_deref(), now)?;
            }
            s.notification(n.org_id, n.id)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("SMS notification with this id"))?;
    Ok(axum::Json(ReportOutcome {
        ticket: found.notification.ticket,
        status: found.notification.status.as_str().to_string(),
    }))
}
