//! Notifications of one's organisation: the queue and its dead-letter
//! list, retries, the call-centre and bill exports (with the contact
//! details a call script or invoice needs — an audited read), marking
//! those done, the organisation's policy, and previews of what a case's
//! subscriber would receive.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use khien_model::{Channel, NotificationStatus};
use khien_store::{NotificationContext, NotificationFilter, NotificationRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::orgs::audit;
use crate::api::{JsonBody, PageParams, Paged, PathParam, QueryParams};
use crate::auth::{Auth, Permission};
use crate::error::{ApiError, Problem};
use crate::notify::policy::NotificationPolicy;
use crate::server::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NotificationView {
    pub id: i64,
    pub case_id: i64,
    /// The subscriber's pseudonym.
    pub subscriber: String,
    #[schema(value_type = String, example = "email")]
    pub channel: Channel,
    pub language: String,
    pub round: u32,
    /// `YYYYMMDD-NNNNNNNN`.
    pub ticket: String,
    #[schema(value_type = String, example = "sent")]
    pub status: NotificationStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub done_at: Option<DateTime<Utc>>,
}

fn view(n: &NotificationContext) -> NotificationView {
    let r: &NotificationRecord = &n.notification;
    NotificationView {
        id: r.id,
        case_id: r.case_id,
        subscriber: n.pseudonym.clone(),
        channel: r.channel,
        language: r.language.clone(),
        round: r.round,
        ticket: r.ticket.clone(),
        status: r.status,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        last_error: r.last_error.clone(),
        created_at: r.created_at,
        sent_at: r.sent_at,
        delivered_at: r.delivered_at,
        acknowledged_at: r.acknowledged_at,
        done_at: r.done_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptView {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NotificationDetail {
    #[serde(flatten)]
    pub notification: NotificationView,
    pub attempts_made: Vec<AttemptView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct NotificationQuery {
    /// queued, sent, delivered, failed (the dead-letter list), acknowledged,
    /// cancelled.
    pub status: Option<String>,
    /// email, sms, web, call-queue, bill.
    pub channel: Option<String>,
    pub case_id: Option<i64>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn parse_word<T: std::str::FromStr>(field: &str, v: &Option<String>) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    v.as_deref()
        .map(|s| {
            s.parse::<T>()
                .map_err(|e| ApiError::new(Problem::InvalidQuery, e.to_string()).with_field(field))
        })
        .transpose()
}

/// Notifications of one's organisation, by id.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(NotificationQuery),
    responses((status = 200, body = Paged<NotificationView>), (status = 400, body = crate::error::ProblemSchema)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<NotificationQuery>,
) -> Result<Json<Paged<NotificationView>>, ApiError> {
    p.require(Permission::Read)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .page()?;
    let filter = NotificationFilter {
        status: parse_word("status", &q.status)?,
        channel: parse_word("channel", &q.channel)?,
        case_id: q.case_id,
        ..NotificationFilter::default()
    };
    let org = p.org_id;
    let rows = state
        .store
        .run(move |s| s.notifications(org, &filter, page))
        .await?;
    Ok(Json(Paged::new(
        rows.iter().map(view).collect(),
        page.limit,
        |n| n.id,
    )))
}

/// One notification with its attempts.
#[utoipa::path(get, path = "/api/v1/notifications/{id}", tag = "notifications",
    params(("id" = i64, Path, description = "Notification id")),
    responses((status = 200, body = NotificationDetail), (status = 404, body = crate::error::ProblemSchema)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
) -> Result<Json<NotificationDetail>, ApiError> {
    p.require(Permission::Read)?;
    let org = p.org_id;
    let (n, attempts) = state
        .store
        .run(move |s| {
            let Some(n) = s.notification(org, id)? else {
                return Ok(None);
            };
            Ok(Some((n, s.notification_attempts(org, id)?)))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    Ok(Json(NotificationDetail {
        notification: view(&n),
        attempts_made: attempts
            .into_iter()
            .map(|a| AttemptView {
                at: a.at,
                ok: a.ok,
                error: a.error,
            })
            .collect(),
    }))
}

/// Put a failed notification back in the queue (from the dead-letter list).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/retry", tag = "notifications",
    params(("id" = i64, Path, description = "Notification id")),
    responses((status = 200, body = NotificationView), (status = 404, body = crate::error::ProblemSchema),
        (status = 409, description = "Not failed", body = crate::error::ProblemSchema)))]
pub(crate) async fn retry(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
) -> Result<Json<NotificationView>, ApiError> {
    p.require(Permission::WorkCases)?;
    let org = p.org_id;
    let now = state.clock.now().timestamp();
    let n = state
        .store
        .run(move |s| {
            let Some(n) = s.notification(org, id)? else {
                return Ok(None);
            };
            let retried = s.retry_notification(org, id, now)?;
            Ok(Some((retried, s.notification(org, id)?.unwrap_or(n))))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    if !n.0 {
        return Err(ApiError::new(
            Problem::Conflict,
            format!(
                "notification {id} is {}, not failed",
                n.1.notification.status
            ),
        ));
    }
    audit(
        &state,
        &p,
        Some(org),
        "notification.retry",
        Some(format!("notification:{id}")),
        None,
    )
    .await?;
    state.notify_work.notify_one();
    Ok(Json(view(&n.1)))
}

/// Mark a call-queue or bill row handled (called, printed on the bill).
#[utoipa::path(post, path = "/api/v1/notifications/{id}/done", tag = "notifications",
    params(("id" = i64, Path, description = "Notification id")),
    responses((status = 200, body = NotificationView), (status = 404, body = crate::error::ProblemSchema),
        (status = 409, description = "Not a call-queue or bill row, or done already", body = crate::error::ProblemSchema)))]
pub(crate) async fn done(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
) -> Result<Json<NotificationView>, ApiError> {
    p.require(Permission::WorkCases)?;
    let org = p.org_id;
    let now = state.clock.now().timestamp();
    let (marked, n) = state
        .store
        .run(move |s| {
            let marked = s.mark_notification_done(org, id, now)?;
            Ok(s.notification(org, id)?.map(|n| (marked, n)))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    if !marked {
        return Err(ApiError::new(
            Problem::Conflict,
            "only call-queue and bill rows are marked done, once",
        ));
    }
    Ok(Json(view(&n)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// call-queue or bill.
    pub channel: String,
    /// The billing cycle, `YYYY-MM` (default: rows not done yet, any month).
    pub cycle: Option<String>,
    /// csv (default) or json.
    pub format: Option<String>,
}

/// A row of a call-centre or bill export.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExportRow {
    pub id: i64,
    pub ticket: String,
    pub external_id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub language: String,
    pub family: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub hit_count: u64,
    pub case_id: i64,
    pub created_at: DateTime<Utc>,
    pub done: bool,
    /// The call script line or the invoice note, rendered.
    pub text: String,
}

/// The call-centre queue or the bill notes of a billing cycle, as CSV or
/// JSON; an audited read of personal data.
#[utoipa::path(get, path = "/api/v1/notifications/export", tag = "notifications", params(ExportQuery),
    responses((status = 200, description = "CSV (default) or JSON rows", body = Vec<ExportRow>),
        (status = 400, body = crate::error::ProblemSchema)))]
pub(crate) async fn export(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<ExportQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::Read)?;
    let channel: Channel = q.channel.parse().map_err(|e: khien_model::UnknownWord| {
        ApiError::new(Problem::InvalidQuery, e.to_string()).with_field("channel")
    })?;
    if !matches!(channel, Channel::CallQueue | Channel::Bill) {
        return Err(
            ApiError::new(Problem::InvalidQuery, "channel: call-queue or bill")
                .with_field("channel"),
        );
    }
    let (from, to) = match &q.cycle {
        None => (None, None),
        Some(c) => {
            let first =
                NaiveDate::parse_from_str(&format!("{c}-01"), "%Y-%m-%d").map_err(|_| {
                    ApiError::new(Problem::InvalidQuery, format!("cycle {c:?}: write YYYY-MM"))
                        .with_field("cycle")
                })?;
            let next = first
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(first);
            let at = |d: NaiveDate| {
                d.and_hms_opt(0, 0, 0)
                    .map_or(0, |t| t.and_utc().timestamp())
                    - khien_store::LOCAL_OFFSET_SECONDS
            };
            (Some(at(first)), Some(at(next)))
        }
    };
    let csv = match q.format.as_deref() {
        None | Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::new(
                Problem::InvalidQuery,
                format!("format {other:?}: csv or json"),
            )
            .with_field("format"));
        }
    };
    let org = p.org_id;
    let filter = NotificationFilter {
        channel: Some(channel),
        created_from: from,
        created_to: to,
        open_only: q.cycle.is_none(),
        ..NotificationFilter::default()
    };
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let f = filter.clone();
        let page = khien_store::Page { after, limit: 1000 };
        let chunk = state
            .store
            .run(move |s| s.notifications(org, &f, page))
            .await?;
        let last = chunk.last().map(|n| n.notification.id);
        rows.extend(chunk);
        match last {
            Some(l) if rows.len() % 1000 == 0 => after = Some(l),
            _ => break,
        }
    }
    let notifier = state.notifier.as_ref();
    let operator = state.store.run(move |s| s.org(org)).await?.map_or_else(
        || state.config.notifications.sender_name.clone(),
        |o| o.name,
    );
    let mut out = Vec::with_capacity(rows.len());
    for n in &rows {
        let dec = |field: &str, b: &Option<Vec<u8>>| {
            b.as_ref()
                .and_then(|b| state.secrets.decrypt(org, &n.external_id, field, b).ok())
        };
        let name = dec("name", &n.contacts.name);
        let text = notifier
            .and_then(|nf| {
                crate::notify::render(&state, nf, n, &operator, name.clone(), None, String::new())
                    .ok()
            })
            .map(|r| r.text)
            .unwrap_or_default();
        out.push(ExportRow {
            id: n.notification.id,
            ticket: n.notification.ticket.clone(),
            external_id: n.external_id.clone(),
            name,
            phone: dec("phone", &n.contacts.phone),
            language: n.notification.language.clone(),
            family: n.family.clone(),
            first_seen: n.first_hit_at,
            last_seen: n.last_hit_at,
            hit_count: n.hit_count,
            case_id: n.notification.case_id,
            created_at: n.notification.created_at,
            done: n.notification.done_at.is_some(),
            text,
        });
    }
    audit(
        &state,
        &p,
        Some(org),
        "subscriber.export",
        None,
        Some(serde_json::json!({"channel": channel, "rows": out.len(), "cycle": q.cycle})),
    )
    .await?;
    if !csv {
        return Ok(Json(out).into_response());
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let write = (|| -> Result<(), csv::Error> {
        w.write_record([
            "id",
            "ticket",
            "subscriber_id",
            "name",
            "phone",
            "language",
            "family",
            "first_seen",
            "last_seen",
            "hits",
            "case_id",
            "created_at",
            "done",
            "text",
        ])?;
        for r in &out {
            w.write_record([
                r.id.to_string(),
                r.ticket.clone(),
                r.external_id.clone(),
                r.name.clone().unwrap_or_default(),
                r.phone.clone().unwrap_or_default(),
                r.language.clone(),
                r.family.clone(),
                r.first_seen.to_rfc3339(),
                r.last_seen.to_rfc3339(),
                r.hit_count.to_string(),
                r.case_id.to_string(),
                r.created_at.to_rfc3339(),
                r.done.to_string(),
                r.text.clone(),
            ])?;
        }
        Ok(())
    })();
    write.map_err(|e| ApiError::internal(&e))?;
    let bytes = w.into_inner().map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct GardenQuery {
    /// `json` (default), `text` (one network a line), `unbound`
    /// (`access-control-tag` lines for an `include:`) or `bind` (an `acl`).
    pub format: Option<String>,
    /// Only notices posted within this long (default `7d`): the walled
    /// garden is a reminder, not a permanent detour.
    pub max_age: Option<String>,
    /// The tag (Unbound) or ACL name (BIND); default `khien-garden`.
    pub tag: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GardenClients {
    pub generated_at: DateTime<Utc>,
    /// Subscribers with a web notice up.
    pub subscribers: usize,
    /// The addresses (IPv4, `/32`) and delegated prefixes (IPv6) they hold
    /// now, from the organisation's attribution uploads.
    pub clients: Vec<String>,
}

/// The walled garden's client list: where the subscribers with a web
/// notice up are now, for the resolvers that send them to the notice
/// listener (`docs/notifications.md`); an audited read.
#[utoipa::path(get, path = "/api/v1/notices/clients", tag = "notifications", params(GardenQuery),
    responses((status = 200, description = "JSON, or a text, Unbound or BIND fragment", body = GardenClients),
        (status = 400, body = crate::error::ProblemSchema)))]
pub(crate) async fn garden_clients(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<GardenQuery>,
) -> Result<Response, ApiError> {
    p.require(Permission::Read)?;
    let bad = |field: &'static str, reason: String| {
        ApiError::new(Problem::InvalidQuery, format!("{field}: {reason}")).with_field(field)
    };
    let max_age = match q.max_age.as_deref() {
        None => std::time::Duration::from_secs(7 * 86_400),
        Some(v) => humantime_serde::re::humantime::parse_duration(v)
            .map_err(|e| bad("max_age", format!("{v:?}: {e} (e.g. 7d)")))?,
    };
    let tag = q.tag.as_deref().unwrap_or("khien-garden");
    if tag.is_empty()
        || tag.len() > 63
        || !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad("tag", "1 to 63 letters, digits, - or _".into()));
    }
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "text" | "unbound" | "bind") {
        return Err(bad(
            "format",
            format!("{format:?}: json, text, unbound or bind"),
        ));
    }
    let now = state.clock.now();
    let since = now.timestamp() - i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX / 2);
    let org = p.org_id;
    let subscribers = state
        .store
        .run(move |s| s.subscribers_with_web_notices(org, since))
        .await?;
    let wanted: std::collections::HashSet<i64> = subscribers.iter().copied().collect();
    let clients: Vec<String> = state
        .attribution
        .get(org)
        .map(|index| index.held_by(&wanted, now.timestamp()))
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    audit(
        &state,
        &p,
        Some(org),
        "notice.clients",
        None,
        Some(serde_json::json!({"subscribers": wanted.len(), "clients": clients.len()})),
    )
    .await?;
    let text = |body: String| {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body,
        )
            .into_response()
    };
    let stamp = format!("generated {}", now.to_rfc3339());
    Ok(match format {
        "text" => text(clients.iter().map(|c| format!("{c}\n")).collect()),
        // An include file: valid with no clients too.
        "unbound" => text(format!(
            "# khien walled garden, {stamp}\nserver:\n{}",
            clients
                .iter()
                .map(|c| format!("    access-control-tag: {c} \"{tag}\"\n"))
                .collect::<String>()
        )),
        // `none` keeps an empty list valid.
        "bind" => text(format!(
            "// khien walled garden, {stamp}\nacl \"{tag}\" {{\n    none;\n{}}};\n",
            clients
                .iter()
                .map(|c| format!("    {c};\n"))
                .collect::<String>()
        )),
        _ => Json(GardenClients {
            generated_at: now,
            subscribers: wanted.len(),
            clients,
        })
        .into_response(),
    })
}

/// The organisation's notification policy (its own, or the hub's default).
#[utoipa::path(get, path = "/api/v1/notification-policy", tag = "notifications",
    responses((status = 200, body = NotificationPolicy)))]
pub(crate) async fn get_policy(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
) -> Result<Json<NotificationPolicy>, ApiError> {
    p.require(Permission::Read)?;
    crate::notify::policy_of(&state, p.org_id).await.map(Json)
}

/// Set the organisation's notification policy (admins). Fields left out
/// keep the hub's default policy (`[notifications.policy]`), not the
/// built-in one.
#[utoipa::path(put, path = "/api/v1/notification-policy", tag = "notifications",
    request_body = NotificationPolicy,
    responses((status = 200, body = NotificationPolicy), (status = 422, body = crate::error::ProblemSchema)))]
pub(crate) async fn put_policy(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Json<NotificationPolicy>, ApiError> {
    p.require(Permission::Admin)?;
    // The body alone first, so that a bad or unknown field is named.
    let sent = serde_json::to_vec(&body).map_err(|e| ApiError::internal(&e))?;
    crate::api::parse_json::<NotificationPolicy>(&sent)?;
    let serde_json::Value::Object(sent) = body else {
        return Err(ApiError::invalid("body", "a JSON object"));
    };
    let mut merged = match serde_json::to_value(&state.config.notifications.policy) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    merged.extend(sent);
    let policy: NotificationPolicy = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| ApiError::internal(&e))?;
    policy
        .validate()
        .map_err(|(field, reason)| ApiError::invalid(field, reason))?;
    let json = serde_json::to_string(&policy).map_err(|e| ApiError::internal(&e))?;
    let org = p.org_id;
    let now = state.clock.now().timestamp();
    state
        .store
        .run(move |s| s.set_notification_policy(org, &json, now))
        .await?;
    audit(
        &state,
        &p,
        Some(org),
        "notification_policy.update",
        None,
        serde_json::to_value(&policy).ok(),
    )
    .await?;
    Ok(Json(policy))
}

/// Forget the organisation's own policy: the hub's default applies again
/// (admins).
#[utoipa::path(delete, path = "/api/v1/notification-policy", tag = "notifications",
    responses((status = 200, description = "The policy that applies now (the hub's default)", body = NotificationPolicy)))]
pub(crate) async fn delete_policy(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
) -> Result<Json<NotificationPolicy>, ApiError> {
    p.require(Permission::Admin)?;
    let org = p.org_id;
    let had = state
        .store
        .run(move |s| s.delete_notification_policy(org))
        .await?;
    if had {
        audit(
            &state,
            &p,
            Some(org),
            "notification_policy.reset",
            None,
            None,
        )
        .await?;
    }
    crate::notify::policy_of(&state, org).await.map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PreviewQuery {
    /// email, sms, web, call-queue, bill.
    pub channel: String,
    /// vi or en (default: the subscriber's).
    pub lang: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Preview {
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    /// For SMS: GSM-7 or UCS-2, and how many segments.
    pub sms_encoding: Option<String>,
    pub sms_segments: Option<u32>,
}

/// What the case's subscriber would receive on a channel (nothing is
/// sent; the subscriber's name is left out).
#[utoipa::path(get, path = "/api/v1/cases/{id}/preview", tag = "notifications",
    params(("id" = i64, Path, description = "Case id"), PreviewQuery),
    responses((status = 200, body = Preview), (status = 404, body = crate::error::ProblemSchema)))]
pub(crate) async fn preview(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(id): PathParam<i64>,
    QueryParams(q): QueryParams<PreviewQuery>,
) -> Result<Json<Preview>, ApiError> {
    p.require(Permission::WorkCases)?;
    let channel: Channel = q.channel.parse().map_err(|e: khien_model::UnknownWord| {
        ApiError::new(Problem::InvalidQuery, e.to_string()).with_field("channel")
    })?;
    if state.notifier.is_none() {
        return Err(ApiError::new(
            Problem::NotFound,
            "notifications are not set up",
        ));
    }
    let org = p.org_id;
    let now = state.clock.now();
    let app = state.clone();
    let lang = q.lang.clone();
    let r = state
        .store
        .run(move |s| {
            let Some(nf) = app.notifier.as_ref() else {
                return Ok(None);
            };
            crate::notify::Renderer {
                config: &app.config.notifications,
                templates: &nf.templates,
                link_key: &nf.link_key,
            }
            .preview(s, org, id, channel, lang.as_deref(), now)
            .map_err(|e| khien_store::Error::Invalid {
                what: "preview",
                reason: e.to_string(),
            })
        })
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    let sms = (channel == Channel::Sms).then(|| khien_notify::sms::measure(&r.text));
    Ok(Json(Preview {
        subject: r.subject,
        sms_encoding: sms.as_ref().map(|m| m.encoding.as_str().to_string()),
        sms_segments: sms.as_ref().map(|m| m.segments),
        text: r.text,
        html: r.html,
    }))
}

/// 201 marker for handlers that create.
#[allow(dead_code)]
const CREATED: StatusCode = StatusCode::CREATED;
