//! An organisation's notification policy: which channels warn a
//! subscriber, how often reminders go out, when to escalate, quiet hours
//! and rate limits. Stored per organisation (`PUT
//! /api/v1/notification-policy`); the configuration's `[notifications.policy]`
//! is the default.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use khien_model::Channel;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A later channel for cases still not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// This long after the episode began (`"3d"`).
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "3d")]
    pub after: Duration,
    #[schema(value_type = String, example = "call-queue")]
    pub channel: Channel,
}

/// See the module documentation; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationPolicy {
    /// Warn subscribers at all.
    pub enabled: bool,
    /// Channels of every round (the first warning and each reminder), as
    /// far as the subscriber can be reached on them.
    #[schema(value_type = Vec<String>, example = json!(["email", "sms", "web"]))]
    pub channels: Vec<Channel>,
    /// A reminder round this long after the previous one while the case is
    /// neither acknowledged nor resolved.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "7d")]
    pub remind_every: Duration,
    /// Rounds at most (the first warning included).
    pub max_rounds: u32,
    pub escalations: Vec<Escalation>,
    /// No e-mail or SMS between these local hours (Asia/Ho_Chi_Minh),
    /// `"21:00-07:00"`; empty for none. Web notices and the call-queue and
    /// bill exports are not held back.
    pub quiet_hours: String,
    /// Most notifications per hour and channel for the whole organisation
    /// (`email` and `sms`: the others reach nobody at once).
    #[schema(value_type = BTreeMap<String, u32>)]
    pub per_hour: BTreeMap<Channel, u32>,
    /// Most e-mails, and most SMS, per subscriber and day.
    pub per_subscriber_per_day: u32,
    /// Tries before a notification goes to the dead-letter list.
    pub max_attempts: u32,
    /// Hits this long after the subscriber acknowledged are taken as the
    /// device still infected: the case is warned again at the reminder
    /// pace. Earlier ones are the clean-up in progress.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "1d")]
    pub ack_grace: Duration,
    /// How long the acknowledgement link of a notification works.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "30d")]
    pub ack_link_valid: Duration,
}

impl Default for NotificationPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            channels: vec![Channel::Email, Channel::Sms, Channel::Web],
            remind_every: Duration::from_secs(7 * 86_400),
            max_rounds: 3,
            escalations: vec![
                Escalation {
                    after: Duration::from_secs(3 * 86_400),
                    channel: Channel::CallQueue,
                },
                Escalation {
                    after: Duration::from_secs(30 * 86_400),
                    channel: Channel::Bill,
                },
            ],
            quiet_hours: "21:00-07:00".into(),
            per_hour: [(Channel::Email, 10_000), (Channel::Sms, 2_000)]
                .into_iter()
                .collect(),
            per_subscriber_per_day: 1,
            max_attempts: 6,
            ack_grace: Duration::from_secs(86_400),
            ack_link_valid: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Minutes after local midnight.
fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl NotificationPolicy {
    /// Checks what serde cannot; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        if self.max_rounds == 0 {
            return bad("max_rounds", "at least 1");
        }
        if self.max_attempts == 0 {
            return bad("max_attempts", "at least 1");
        }
        if self.remind_every.is_zero() {
            return bad("remind_every", "must be longer than 0");
        }
        if self.ack_link_valid.is_zero() {
            return bad("ack_link_valid", "must be longer than 0");
        }
        if let Some(c) = self
            .per_hour
            .keys()
            .find(|c| !matches!(c, Channel::Email | Channel::Sms))
        {
            return Err((
                "per_hour".to_string(),
                format!("only email and sms are limited, not {c}"),
            ));
        }
        if !self.quiet_hours.is_empty() && self.quiet_window().is_none() {
            return bad("quiet_hours", "write it as HH:MM-HH:MM, e.g. 21:00-07:00");
        }
        Ok(())
    }

    fn quiet_window(&self) -> Option<(u32, u32)> {
        let (a, b) = self.quiet_hours.split_once('-')?;
        Some((minutes(a)?, minutes(b)?))
    }

    /// When quiet hours end if `now` is inside them (for channels that
    /// reach a person at once: e-mail, SMS).
    pub fn quiet_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (start, end) = self.quiet_window()?;
        let local = now + chrono::Duration::seconds(khien_store::LOCAL_OFFSET_SECONDS);
        let m = local.hour() * 60 + local.minute();
        let inside = if start <= end {
            (start..end).contains(&m)
        } else {
            m >= start || m < end
        };
        if !inside {
            return None;
        }
        let wait = (i64::from(end) - i64::from(m)).rem_euclid(24 * 60);
        Some(
            now + chrono::Duration::minutes(wait)
                - chrono::Duration::seconds(i64::from(local.second())),
        )
    }

    /// The hourly limit of `channel` (none when not set).
    pub fn hourly_limit(&self, channel: Channel) -> Option<u32> {
        self.per_hour.get(&channel).copied()
    }

    /// The wait before attempt number `attempts + 1`: 1 min, 5 min, 15 min,
    /// 1 h, then 3 h.
    pub fn backoff(attempts: u32) -> chrono::Duration {
        let mins = match attempts {
            0 | 1 => 1,
            2 => 5,
            3 => 15,
            4 => 60,
            _ => 180,
        };
        chrono::Duration::minutes(mins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn quiet_hours_are_local_and_may_span_midnight() {
        let p = NotificationPolicy::default();
        // 15:00Z is 22:00 in Hà Nội: quiet until 07:00 local, 00:00Z.
        assert_eq!(
            p.quiet_until(utc("2026-12-01T15:00:00Z")),
            Some(utc("2026-12-02T00:00:00Z"))
        );
        // 23:30Z is 06:30 local: 30 minutes more.
        assert_eq!(
            p.quiet_until(utc("2026-12-01T23:30:00Z")),
            Some(utc("2026-12-02T00:00:00Z"))
        );
        // 03:00Z is 10:00 local: not quiet.
        assert_eq!(p.quiet_until(utc("2026-12-01T03:00:00Z")), None);
        let none = NotificationPolicy {
            quiet_hours: String::new(),
            ..NotificationPolicy::default()
        };
        assert_eq!(none.quiet_until(utc("2026-12-01T15:00:00Z")), None);
    }

    #[test]
    fn policies_parse_with_defaults_and_refuse_nonsense() {
        let p: NotificationPolicy = serde_json::from_str(
            r#"{"channels": ["sms"], "remind_every": "2d", "per_hour": {"sms": 10}}"#,
        )
        .expect("valid");
        assert_eq!(p.channels, vec![Channel::Sms]);
        assert_eq!(p.remind_every, Duration::from_secs(2 * 86_400));
        assert_eq!(p.hourly_limit(Channel::Sms), Some(10));
        assert_eq!(p.hourly_limit(Channel::Email), None);
        assert_eq!(p.max_rounds, 3);
        assert!(serde_json::from_str::<NotificationPolicy>(r#"{"chanels": []}"#).is_err());
        let bad = NotificationPolicy {
            quiet_hours: "late".into(),
            ..NotificationPolicy::default()
        };
        assert_eq!(bad.validate().expect_err("bad").0, "quiet_hours");
        let web_limit: NotificationPolicy =
            serde_json::from_str(r#"{"per_hour": {"web": 10}}"#).expect("parses");
        let (field, reason) = web_limit.validate().expect_err("web is not limited");
        assert_eq!(field, "per_hour");
        assert!(reason.contains("web"), "{reason}");
        let no_link = NotificationPolicy {
            ack_link_valid: Duration::ZERO,
            ..NotificationPolicy::default()
        };
        assert_eq!(no_link.validate().expect_err("bad").0, "ack_link_valid");
    }
}
