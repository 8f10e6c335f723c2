//! The notification engine: which cases need a warning, on which
//! channels, and delivering them within the operator's policy.
//!
//! Every `notifications.interval` the engine
//!
//! 1. **plans**: for each organisation with active cases, the cases due a
//!    round (the first warning when a case opens or is reinfected, then a
//!    reminder every `remind_every` while it is neither acknowledged nor
//!    resolved, at most `max_rounds`) get a notification per policy channel;
//!    cases past an escalation's delay get one on that channel. A channel
//!    the subscriber cannot be reached on (no e-mail address, no phone
//!    number) gets a notification that fails at once with the reason, so it
//!    shows on the dead-letter list and can be retried once the directory
//!    has the contact;
//! 2. **delivers** the due ones: web notices go up, call-queue and bill
//!    rows become exportable, e-mail and SMS go out — outside quiet hours,
//!    within the organisation's hourly limit and the subscriber's daily
//!    one, several at once. Each is claimed in the store before it is sent
//!    (so no two senders send it), failures are retried with backoff, and
//!    after `max_attempts` it is failed for good (the dead-letter list).
//!
//! All decisions use the hub's [`crate::Clock`], so tests move time instead of
//! waiting. Links in warnings are signed (`khien_notify::token`): an
//! acknowledgement link names its notification and expiry under an HMAC
//! of the hub's key; the verification code lets a subscriber check a
//! notice on the operator's public site.

pub mod policy;
pub(crate) mod web;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use khien_model::{Channel, Observable, ObservableKind};
use khien_notify::{EmailSender, Lang, NoticeContext, Rendered, SmsGateway, Templates};
use khien_store::{CaseToNotify, NewNotification, NotificationContext, Store};

use crate::Error;
use crate::config::HubConfig;
use crate::error::ApiError;
use crate::guidance;
use crate::metrics::add;
use crate::server::AppState;
use policy::NotificationPolicy;

/// Cases planned per query.
const PLAN_PAGE: u32 = 1000;
/// How long a claimed notification is reserved for its sender.
const LEASE_SECONDS: i64 = 300;

/// How long a queued notification of an organisation whose warnings are
/// switched off waits before it is looked at again.
const DISABLED_HOLD_SECONDS: i64 = 600;

/// What the engine delivers with.
pub(crate) struct Notifier {
    pub templates: Templates,
    email: Option<Arc<EmailSender>>,
    sms: Option<Arc<SmsGateway>>,
    pub webhook_secret: Option<Vec<u8>>,
    /// Signs acknowledgement links and verification codes.
    pub link_key: [u8; 32],
    /// Organisations with a walled-garden listener.
    pub notice_orgs: HashSet<i64>,
    /// The organisation of each `notifications.notice` listener, in order.
    pub notice_org_ids: Vec<i64>,
    /// The right-hand side of `Message-ID`s: the sender's domain.
    message_domain: String,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("email", &self.email.is_some())
            .field("sms", &self.sms.is_some())
            .field("notice_orgs", &self.notice_orgs)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Loads templates and builds the channels the configuration names;
    /// a template with a syntax error, a bad address or an unreadable key
    /// stops the hub here, naming the file or field.
    pub fn build(config: &HubConfig, link_key: [u8; 32], store: &mut Store) -> Result<Self, Error> {
        let n = &config.notifications;
        // The error names the file and line itself.
        let templates = Templates::load(n.templates_dir.as_deref()).map_err(|e| Error::Config {
            path: None,
            reason: format!("notifications.templates_dir: {e}"),
        })?;
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (smtp, sms_config) = secrets_from(n, env);
        let email = smtp
            .as_ref()
            .map(|s| {
                EmailSender::new(s).map_err(|e| Error::Config {
                    path: None,
                    reason: format!("notifications.smtp: {e}"),
                })
            })
            .transpose()?
            .map(Arc::new);
        let sms = sms_config
            .as_ref()
            .map(|s| {
                SmsGateway::new(s.clone()).map_err(|e| Error::Config {
                    path: None,
                    reason: format!("notifications.sms: {e}"),
                })
            })
            .transpose()?
            .map(Arc::new);
        if (email.is_some() || sms.is_some()) && links_stay_on_this_host(&n.public_url) {
            // Not refused: a test or a single-machine trial is fine with it.
            tracing::warn!(
                event = "hub_notifications_public_url_local",
                public_url = %n.public_url,
                "acknowledgement and verification links in e-mail and SMS point at this \
                 machine; set notifications.public_url to the hub's public address"
            );
        }
        let mut notice_org_ids = Vec::new();
        for l in &n.notice {
            let org = store.org_by_slug(&l.org)?.ok_or_else(|| Error::Config {
                path: None,
                reason: format!(
                    "notifications.notice: no organisation with slug {:?}",
                    l.org
                ),
            })?;
            notice_org_ids.push(org.id);
        }
        Ok(Self {
            templates,
            email,
            sms,
            webhook_secret: sms_config
                .as_ref()
                .and_then(|s| s.webhook_secret.as_ref())
                .map(|s| s.as_bytes().to_vec()),
            link_key,
            message_domain: n
                .smtp
                .as_ref()
                .and_then(|s| s.from.rsplit_once('@'))
                .map(|(_, d)| d.trim_end_matches('>').trim().to_string())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "khien.invalid".into()),
            notice_orgs: notice_org_ids.iter().copied().collect(),
            notice_org_ids,
        })
    }

    /// Whether the hub can deliver on `channel` at all for `org`.
    fn configured(&self, channel: Channel, org: i64) -> bool {
        match channel {
            Channel::Email => self.email.is_some(),
            Channel::Sms => self.sms.is_some(),
            Channel::Web => self.notice_orgs.contains(&org),
            Channel::CallQueue | Channel::Bill => true,
        }
    }
}

/// Why a subscriber cannot be reached on `channel`, if not.
fn unreachable(case: &CaseToNotify, channel: Channel) -> Option<&'static str> {
    match channel {
        Channel::Email if !case.has_email => Some("the subscriber has no e-mail address"),
        Channel::Sms | Channel::CallQueue if !case.has_phone => {
            Some("the subscriber has no phone number")
        }
        _ => None,
    }
}

/// An organisation's policy: its own, or the configured default.
pub(crate) async fn policy_of(state: &AppState, org: i64) -> Result<NotificationPolicy, ApiError> {
    let stored = state.store.run(move |s| s.notification_policy(org)).await?;
    Ok(stored
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_else(|| state.config.notifications.policy.clone()))
}

/// The engine: plans and delivers every `notifications.interval` until
/// the hub stops.
pub(crate) async fn notify_loop(
    state: Arc<AppState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = state.config.notifications.interval;
    loop {
        match run_once(&state).await {
            // A full batch: more are due now.
            Ok(true) if !*stop.borrow() => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(event = "hub_notifications_failed", error = %e.detail),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {},
            () = state.notify_work.notified() => {},
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One plan-and-deliver pass at the clock's now; true when it handled a
/// full batch (more may be due).
pub(crate) async fn run_once(state: &Arc<AppState>) -> Result<bool, ApiError> {
    let Some(notifier) = state.notifier.as_ref() else {
        return Ok(false);
    };
    let now = state.clock.now();
    let started = std::time::Instant::now();
    let planned = plan(state, notifier, now).await?;
    let planning = started.elapsed();
    let (handled, full) = deliver(state, now).await?;
    if planned + handled > 0 {
        tracing::info!(
            event = "hub_notifications_run",
            planned,
            planning_millis = planning.as_millis() as u64,
            handled,
            delivery_millis = (started.elapsed() - planning).as_millis() as u64,
        );
    }
    Ok(full)
}

async fn plan(state: &AppState, notifier: &Notifier, now: DateTime<Utc>) -> Result<u64, ApiError> {
    let orgs = state.store.run(|s| s.orgs_with_active_cases()).await?;
    let t = now.timestamp();
    let mut total = 0;
    for org in orgs {
        let policy = policy_of(state, org).await?;
        if !policy.enabled {
            continue;
        }
        let channels: Vec<Channel> = policy
            .channels
            .iter()
            .copied()
            .filter(|c| notifier.configured(*c, org))
            .collect();
        if channels.is_empty() {
            // Planning now would use up the first round; wait until a
            // channel of the policy is set up.
            tracing::debug!(event = "hub_notifications_no_channel", org);
            continue;
        }
        let remind_before = t - secs(policy.remind_every);
        let max_rounds = policy.max_rounds;
        let grace = secs(policy.ack_grace);
        loop {
            let cases = state
                .store
                .run(move |s| s.cases_to_notify(org, remind_before, max_rounds, grace, PLAN_PAGE))
                .await?;
            let n = cases.len();
            let ch = channels.clone();
            let planned = state
                .store
                .run(move |s| {
                    let mut made = 0u64;
                    for c in &cases {
                        let round = c.round + 1;
                        made += plan_case(s, org, c, &ch, round, Some(round), t)?;
                    }
                    Ok(made)
                })
                .await?;
            add(&state.metrics.notifications_planned, planned);
            total += planned;
            if n < PLAN_PAGE as usize {
                break;
            }
        }
        for esc in &policy.escalations {
            let channel = esc.channel;
            if !notifier.configured(channel, org) {
                continue;
            }
            let before = t - secs(esc.after);
            let cases = state
                .store
                .run(move |s| s.cases_to_escalate(org, channel, before, PLAN_PAGE))
                .await?;
            let planned = state
                .store
                .run(move |s| {
                    let mut made = 0u64;
                    for c in &cases {
                        made += plan_case(s, org, c, &[channel], c.round.max(1), None, t)?;
                    }
                    Ok(made)
                })
                .await?;
            add(&state.metrics.notifications_planned, planned);
            total += planned;
        }
    }
    Ok(total)
}

/// The SMTP and SMS settings with the secrets the configuration leaves
/// out taken from the environment, as the hub's keys are: the SMTP
/// password from `KHIEN_SMTP_PASSWORD` (when a username is set), the
/// delivery-report secret from `KHIEN_SMS_WEBHOOK_SECRET`, and the
/// gateway's `Authorization` header from `KHIEN_SMS_AUTHORIZATION`. A
/// value in the file wins.
fn secrets_from(
    n: &crate::config::NotificationConfig,
    env: impl Fn(&str) -> Option<String>,
) -> (
    Option<khien_notify::SmtpConfig>,
    Option<khien_notify::GatewayConfig>,
) {
    let smtp = n.smtp.clone().map(|mut s| {
        if s.username.is_some() && s.password.is_none() {
            s.password = env("KHIEN_SMTP_PASSWORD");
        }
        s
    });
    let sms = n.sms.clone().map(|mut s| {
        if s.webhook_secret.is_none() {
            s.webhook_secret = env("KHIEN_SMS_WEBHOOK_SECRET");
        }
        let has_auth = s
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("authorization"));
        if !has_auth && let Some(v) = env("KHIEN_SMS_AUTHORIZATION") {
            s.headers.insert("Authorization".into(), v);
        }
        s
    });
    (smtp, sms)
}

/// Whether links under `public_url` only work on the hub's own machine.
fn links_stay_on_this_host(public_url: &str) -> bool {
    let Ok(url) = url::Url::parse(public_url) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// Queues a case's notifications on `channels`; those the subscriber
/// cannot be reached on fail at once with the reason.
fn plan_case(
    s: &mut Store,
    org: i64,
    case: &CaseToNotify,
    channels: &[Channel],
    round: u32,
    record_round: Option<u32>,
    now: i64,
) -> Result<u64, khien_store::Error> {
    let items: Vec<NewNotification> = channels
        .iter()
        .map(|&channel| NewNotification { channel, round })
        .collect();
    let made = s.plan_notifications(org, case, &items, record_round, now)?;
    for ((id, _), item) in made.iter().zip(&items) {
        if let Some(reason) = unreachable(case, item.channel) {
            s.notification_failed(*id, now, reason, None)?;
        }
    }
    Ok(made.len() as u64)
}

/// The texts of a notification, rendered for its subscriber.
pub(crate) fn render(
    state: &AppState,
    notifier: &Notifier,
    n: &NotificationContext,
    operator: &str,
    name: Option<String>,
    address: Option<String>,
    ack_url: String,
) -> Result<Rendered, khien_notify::Error> {
    Renderer {
        config: &state.config.notifications,
        templates: &notifier.templates,
        link_key: &notifier.link_key,
    }
    .render(
        n,
        Personal {
            operator,
            name,
            address,
            ack_url,
        },
    )
}

/// What a notice says that is not in the notification itself.
#[derive(Debug)]
pub struct Personal<'a> {
    /// The operator's name.
    pub operator: &'a str,
    pub name: Option<String>,
    /// The address the web notice was shown to.
    pub address: Option<String>,
    pub ack_url: String,
}

/// Turns notifications into texts: the templates, the link key and the
/// addresses the texts point to.
#[derive(Debug, Clone, Copy)]
pub struct Renderer<'a> {
    pub config: &'a crate::config::NotificationConfig,
    pub templates: &'a Templates,
    pub link_key: &'a [u8; 32],
}

impl Renderer<'_> {
    /// Renders a notification in its subscriber's language, with the removal
    /// guidance of its family's group.
    pub fn render(
        &self,
        n: &NotificationContext,
        personal: Personal<'_>,
    ) -> Result<Rendered, khien_notify::Error> {
        let (config, templates, link_key) = (self.config, self.templates, self.link_key);
        let lang = if n.notification.language == "en" {
            Lang::En
        } else {
            Lang::Vi
        };
        let glang = match lang {
            Lang::En => guidance::Language::En,
            _ => guidance::Language::Vi,
        };
        let g = guidance::guidance(glang, &n.family);
        let base = config.public_url.trim_end_matches('/');
        let ctx = NoticeContext {
            operator: personal.operator.to_string(),
            subscriber_name: personal.name,
            family: n.family.clone(),
            guidance_title: g.title,
            guidance_steps: g.steps,
            first_seen: n.first_hit_at,
            last_seen: n.last_hit_at,
            hit_count: n.hit_count,
            ticket: n.notification.ticket.clone(),
            verify_code: khien_notify::token::verify_code(link_key, &n.notification.ticket),
            verify_url: format!("{base}/verify"),
            ack_url: personal.ack_url,
            scanner_url: config.scanner_url.clone(),
            address: personal.address,
            round: n.notification.round,
        };
        templates.render(
            n.notification.channel,
            guidance::group(&n.family),
            lang,
            &ctx,
        )
    }

    /// What the subscriber of case `case_id` of `org` would receive on
    /// `channel` (in `lang`, else the subscriber's language): rendered
    /// without sending, without the subscriber's name, with a placeholder
    /// ticket. `None` when there is no such case.
    pub fn preview(
        &self,
        store: &mut Store,
        org: i64,
        case_id: i64,
        channel: Channel,
        lang: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Rendered>, Error> {
        let Some(case) = store.case(org, case_id)? else {
            return Ok(None);
        };
        let Some(sub) = store.subscriber(org, case.subscriber_id)? else {
            return Ok(None);
        };
        let config = self.config;
        let operator = store
            .org(org)?
            .map_or_else(|| config.sender_name.clone(), |o| o.name);
        let ctx = NotificationContext {
            notification: khien_store::NotificationRecord {
                id: 0,
                org_id: org,
                case_id: case.id,
                subscriber_id: case.subscriber_id,
                channel,
                language: lang.map_or(sub.language.clone(), str::to_string),
                round: 1,
                ticket: format!("{}-00000000", now.format("%Y%m%d")),
                status: khien_model::NotificationStatus::Queued,
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                provider_id: None,
                created_at: now,
                sent_at: None,
                delivered_at: None,
                acknowledged_at: None,
                done_at: None,
            },
            family: case.family.clone(),
            case_state: case.state,
            case_state_changed_at: case.state_changed_at,
            first_hit_at: case.first_hit_at,
            last_hit_at: case.last_hit_at,
            hit_count: case.hit_count,
            external_id: sub.external_id.clone(),
            pseudonym: sub.pseudonym.clone(),
            contacts: khien_store::EncryptedContacts::default(),
        };
        let base = config.public_url.trim_end_matches('/');
        let personal = Personal {
            operator: &operator,
            name: None,
            address: None,
            ack_url: format!("{base}/ack/…"),
        };
        self.render(&ctx, personal)
            .map(Some)
            .map_err(|e| Error::Config {
                path: None,
                reason: format!("template: {e}"),
            })
    }
}

/// The signed acknowledgement link of a notification.
pub(crate) fn ack_link(
    state: &AppState,
    notifier: &Notifier,
    id: i64,
    valid: std::time::Duration,
) -> String {
    let expires = state.clock.now().timestamp() + secs(valid);
    let token = khien_notify::token::ack_token(&notifier.link_key, id, expires);
    format!(
        "{}/ack/{token}",
        state.config.notifications.public_url.trim_end_matches('/')
    )
}

/// Organisation names, for the "from" of warnings.
async fn operator_name(state: &AppState, org: i64) -> String {
    match state.store.run(move |s| s.org(org)).await {
        Ok(Some(o)) => o.name,
        _ => state.config.notifications.sender_name.clone(),
    }
}

/// The outcome of one delivery.
enum Outcome {
    Sent(Option<String>),
    Failed { permanent: bool, error: String },
}

async fn deliver(state: &Arc<AppState>, now: DateTime<Utc>) -> Result<(u64, bool), ApiError> {
    let t = now.timestamp();
    let batch = state.config.notifications.batch;
    let all = [
        Channel::Web,
        Channel::CallQueue,
        Channel::Bill,
        Channel::Email,
        Channel::Sms,
    ];
    let due = state
        .store
        .run(move |s| s.due_notifications(t, &all, batch))
        .await?;
    let full = due.len() >= batch as usize;
    let handled = due.len() as u64;
    if due.is_empty() {
        return Ok((0, false));
    }
    // What the case no longer needs (resolved, or acknowledged since it
    // was planned) is cancelled rather than sent.
    let (stale, due): (Vec<_>, Vec<_>) = due.into_iter().partition(|n| n.is_stale());
    if !stale.is_empty() {
        let ids: Vec<i64> = stale.iter().map(|n| n.notification.id).collect();
        let cancelled = state
            .store
            .run(move |s| s.cancel_notifications(&ids, t))
            .await?;
        add(&state.metrics.notifications_cancelled, cancelled);
    }
    // Shared, not cloned, by every notification of the organisation.
    let mut policies: HashMap<i64, Arc<NotificationPolicy>> = HashMap::new();
    let mut names: HashMap<i64, String> = HashMap::new();
    for n in &due {
        let org = n.notification.org_id;
        if let Entry::Vacant(e) = policies.entry(org) {
            e.insert(Arc::new(policy_of(state, org).await?));
            names.insert(org, operator_name(state, org).await);
        }
    }
    // An organisation that switched warnings off holds what it had queued
    // too; it goes out within ten minutes of their being switched on again.
    let (due, held): (Vec<_>, Vec<_>) = due.into_iter().partition(|n| {
        policies
            .get(&n.notification.org_id)
            .is_none_or(|p| p.enabled)
    });
    let mut deferred: Vec<(i64, i64)> = held
        .iter()
        .map(|n| (n.notification.id, t + DISABLED_HOLD_SECONDS))
        .collect();
    // Web notices go up, call-queue and bill rows become exportable, at once.
    let (instant, personal): (Vec<_>, Vec<_>) = due.into_iter().partition(|n| {
        matches!(
            n.notification.channel,
            Channel::Web | Channel::CallQueue | Channel::Bill
        )
    });
    if !instant.is_empty() {
        let ids: Vec<i64> = instant.iter().map(|n| n.notification.id).collect();
        let posted = state
            .store
            .run(move |s| {
                let claimed = s.claim_notifications(&ids, t, t + LEASE_SECONDS)?;
                for &id in &claimed {
                    s.notification_sent(id, t, None)?;
                }
                Ok(claimed.len() as u64)
            })
            .await?;
        add(&state.metrics.notifications_sent, posted);
    }
    // What was sent in the windows of the limits, read once per run for
    // everybody in the batch and then kept up to date here.
    let mut hourly: HashMap<(i64, Channel), u64> = HashMap::new();
    let mut daily: HashMap<(i64, Channel), u64> = HashMap::new();
    for channel in [Channel::Email, Channel::Sms] {
        let subscribers: Vec<i64> = personal
            .iter()
            .filter(|n| n.notification.channel == channel)
            .map(|n| n.notification.subscriber_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let day_ago = t - 86_400;
        let counts = state
            .store
            .run(move |s| s.sent_to_subscribers_since(&subscribers, channel, day_ago))
            .await?;
        daily.extend(counts.into_iter().map(|(sub, n)| ((sub, channel), n)));
    }
    let mut go = Vec::new();
    for n in personal {
        let id = n.notification.id;
        let org = n.notification.org_id;
        let channel = n.notification.channel;
        let policy = policies.get(&org).cloned().unwrap_or_default();
        if let Some(until) = policy.quiet_until(now) {
            deferred.push((id, until.timestamp()));
            continue;
        }
        let org_key = (org, channel);
        if let Some(limit) = policy.hourly_limit(channel) {
            if let Entry::Vacant(e) = hourly.entry(org_key) {
                let since = t - 3600;
                let sent = state
                    .store
                    .run(move |s| s.sent_since(org, channel, since))
                    .await?;
                e.insert(sent);
            }
            if hourly.get(&org_key).copied().unwrap_or(0) >= u64::from(limit) {
                add(&state.metrics.notifications_rate_limited, 1);
                deferred.push((id, t + 60));
                continue;
            }
        }
        let subscriber_key = (n.notification.subscriber_id, channel);
        if daily.get(&subscriber_key).copied().unwrap_or(0)
            >= u64::from(policy.per_subscriber_per_day)
        {
            add(&state.metrics.notifications_rate_limited, 1);
            deferred.push((id, t + 3600));
            continue;
        }
        *hourly.entry(org_key).or_default() += 1;
        *daily.entry(subscriber_key).or_default() += 1;
        go.push((n, policy));
    }
    if !deferred.is_empty() {
        state
            .store
            .run(move |s| {
                for (id, until) in deferred {
                    s.defer_notification(id, until)?;
                }
                Ok(())
            })
            .await?;
    }
    let ids: Vec<i64> = go.iter().map(|(n, _)| n.notification.id).collect();
    let claimed: HashSet<i64> = state
        .store
        .run(move |s| s.claim_notifications(&ids, t, t + LEASE_SECONDS))
        .await?
        .into_iter()
        .collect();
    let sends: Vec<_> = go
        .into_iter()
        .filter(|(n, _)| claimed.contains(&n.notification.id))
        .map(|(n, policy)| {
            let name = names
                .get(&n.notification.org_id)
                .cloned()
                .unwrap_or_default();
            (n, policy, name)
        })
        .collect();
    let permits = Arc::new(tokio::sync::Semaphore::new(
        state.config.notifications.concurrency.max(1),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, policy, operator) in sends {
        let state = state.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let outcome = send_one(&state, &n, &operator, &policy).await;
            let id = n.notification.id;
            let attempts = n.notification.attempts + 1;
            let result = match outcome {
                Outcome::Sent(provider) => {
                    add(&state.metrics.notifications_sent, 1);
                    state
                        .store
                        .run(move |s| s.notification_sent(id, t, provider.as_deref()))
                        .await
                }
                Outcome::Failed { permanent, error } => {
                    add(&state.metrics.notifications_failed, 1);
                    let retry = (!permanent && attempts < policy.max_attempts)
                        .then(|| (now + NotificationPolicy::backoff(attempts)).timestamp());
                    tracing::info!(
                        event = "hub_notification_failed",
                        ticket = %n.notification.ticket,
                        channel = %n.notification.channel,
                        permanent,
                        retry = retry.is_some(),
                        error = %error,
                    );
                    state
                        .store
                        .run(move |s| s.notification_failed(id, t, &error, retry))
                        .await
                }
            };
            if let Err(e) = result {
                tracing::error!(event = "hub_notification_record_failed", error = %e.detail);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok((handled, full))
}

fn failed(permanent: bool, error: impl Into<String>) -> Outcome {
    Outcome::Failed {
        permanent,
        error: error.into(),
    }
}

async fn send_one(
    state: &AppState,
    n: &NotificationContext,
    operator: &str,
    policy: &NotificationPolicy,
) -> Outcome {
    let Some(notifier) = state.notifier.as_ref() else {
        return failed(false, "notifications are not set up");
    };
    let org = n.notification.org_id;
    let field = match n.notification.channel {
        Channel::Email => "email",
        _ => "phone",
    };
    let blob = match n.notification.channel {
        Channel::Email => n.contacts.email.as_ref(),
        _ => n.contacts.phone.as_ref(),
    };
    let Some(blob) = blob else {
        return failed(true, format!("the subscriber has no {field}"));
    };
    let contact = match state.secrets.decrypt(org, &n.external_id, field, blob) {
        Ok(c) => c,
        Err(e) => return failed(true, format!("the {field} cannot be decrypted: {e}")),
    };
    let kind = if field == "email" {
        ObservableKind::Email
    } else {
        ObservableKind::Phone
    };
    let contact = match Observable::parse(kind, &contact) {
        Ok(o) => o.into_value(),
        Err(e) => return failed(true, format!("the {field} {contact:?} is not valid: {e}")),
    };
    let name = n
        .contacts
        .name
        .as_ref()
        .and_then(|b| state.secrets.decrypt(org, &n.external_id, "name", b).ok());
    let ack = ack_link(state, notifier, n.notification.id, policy.ack_link_valid);
    let rendered = match render(state, notifier, n, operator, name, None, ack) {
        Ok(r) => r,
        Err(e) => return failed(true, format!("template: {e}")),
    };
    match n.notification.channel {
        Channel::Email => {
            let Some(email) = notifier.email.as_ref() else {
                return failed(false, "no SMTP relay is configured");
            };
            let message_id = format!(
                "{}.{}@{}",
                n.notification.ticket, n.notification.id, notifier.message_domain
            );
            match email
                .send(&contact, &rendered, &message_id, &n.notification.ticket)
                .await
            {
                Ok(()) => Outcome::Sent(None),
                Err(e) => failed(e.permanent, e.message),
            }
        }
        _ => {
            let Some(sms) = notifier.sms.as_ref() else {
                return failed(false, "no SMS gateway is configured");
            };
            match sms
                .send(&contact, &rendered.text, &n.notification.ticket)
                .await
            {
                Ok(sent) => Outcome::Sent(sent.provider_id),
                Err(e) => failed(e.permanent, e.message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NotificationConfig;

    fn smtp(username: Option<&str>, password: Option<&str>) -> khien_notify::SmtpConfig {
        let mut text = String::from("host = \"relay.isp.vn\"\nport = 587\nfrom = \"a@isp.vn\"\n");
        if let Some(u) = username {
            text.push_str(&format!("username = \"{u}\"\n"));
        }
        if let Some(p) = password {
            text.push_str(&format!("password = \"{p}\"\n"));
        }
        toml::from_str(&text).expect("smtp")
    }

    fn gateway(extra: &str) -> khien_notify::GatewayConfig {
        toml::from_str(&format!(
            "url = \"https://sms.isp.vn/send\"\nbody_template = \"{{}}\"\nsender = \"ISP\"\n{extra}"
        ))
        .expect("gateway")
    }

    #[test]
    fn secrets_left_out_of_the_file_come_from_the_environment() {
        let env = |name: &str| Some(format!("env-{name}"));
        let n = NotificationConfig {
            smtp: Some(smtp(Some("noc"), None)),
            sms: Some(gateway("")),
            ..NotificationConfig::default()
        };
        let (s, g) = secrets_from(&n, env);
        let (s, g) = (s.expect("smtp"), g.expect("sms"));
        assert_eq!(s.password.as_deref(), Some("env-KHIEN_SMTP_PASSWORD"));
        assert_eq!(
            g.webhook_secret.as_deref(),
            Some("env-KHIEN_SMS_WEBHOOK_SECRET")
        );
        assert_eq!(
            g.headers.get("Authorization").map(String::as_str),
            Some("env-KHIEN_SMS_AUTHORIZATION")
        );
        // The file wins, and no username means no password.
        let n = NotificationConfig {
            smtp: Some(smtp(Some("noc"), Some("file"))),
            sms: Some(gateway(
                "webhook_secret = \"file\"\nheaders = { authorization = \"Basic file\" }\n",
            )),
            ..NotificationConfig::default()
        };
        let (s, g) = secrets_from(&n, env);
        let (s, g) = (s.expect("smtp"), g.expect("sms"));
        assert_eq!(s.password.as_deref(), Some("file"));
        assert_eq!(g.webhook_secret.as_deref(), Some("file"));
        assert_eq!(g.headers.len(), 1, "{:?}", g.headers);
        let n = NotificationConfig {
            smtp: Some(smtp(None, None)),
            ..NotificationConfig::default()
        };
        assert_eq!(secrets_from(&n, env).0.expect("smtp").password, None);
        assert_eq!(
            secrets_from(&NotificationConfig::default(), env),
            (None, None)
        );
    }
}
