//! Organisations, users and infection cases: the closed vocabularies and
//! the rules of the case life cycle, without storage.
//!
//! A case is one (subscriber, family). It opens on the first attributed
//! hit, moves by the operator's staff (or the notification engine) through
//! `notified` and `acknowledged`, resolves by hand or after days without
//! hits, and becomes `reinfected` when hits newer than its resolution
//! arrive. [`CaseState::can_move_to`] is the rule for hand-made moves;
//! the automatic ones are [`CaseState::after_hits`] and
//! [`CaseState::is_active`] (what the resolution job may resolve).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A word outside one of this module's vocabularies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct UnknownWord {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        value: s.to_string(),
                        expected: concat!($($word, " "),+),
                    }),
                }
            }
        }
    };
}

vocabulary!(
    /// What an organisation is in the programme (DESIGN.md §1); it decides
    /// what its users may see beyond their own tenant.
    OrgRole, "organisation role", {
        /// The national CERT: manages organisations, sees every tenant's
        /// statistics (never subscribers' personal data).
        National => "national",
        /// A telecom operator or ISP: subscribers, attribution, cases.
        Operator => "operator",
        /// A bank, shop or other collector of personal data.
        Organization => "organization",
        /// A provincial department's security operation centre.
        Province => "province",
        /// The security association and its members.
        Association => "association",
    }
);

vocabulary!(
    /// What a user may do inside their organisation.
    UserRole, "user role", {
        /// Everything in the organisation: users, keys, settings, audit.
        Admin => "admin",
        /// Read, work cases, upload subscribers and attribution.
        Analyst => "analyst",
        /// Read only.
        Viewer => "viewer",
    }
);

vocabulary!(
    /// Where an infection case stands.
    CaseState, "case state", {
        /// Hits were attributed to the subscriber; nobody acted yet.
        Open => "open",
        /// The subscriber was warned.
        Notified => "notified",
        /// The subscriber said they are cleaning the device.
        Acknowledged => "acknowledged",
        /// No more hits (or closed by staff).
        Resolved => "resolved",
        /// Hits came back after the case was resolved.
        Reinfected => "reinfected",
    }
);

vocabulary!(
    /// How a subscriber is warned.
    Channel, "notification channel", {
        /// An e-mail over SMTP.
        Email => "email",
        /// An SMS through the operator's HTTP gateway.
        Sms => "sms",
        /// A notice page shown to the subscriber's address (walled garden).
        Web => "web",
        /// A row in the call centre's queue.
        CallQueue => "call-queue",
        /// A note on the next bill.
        Bill => "bill",
    }
);

vocabulary!(
    /// Where a notification stands.
    NotificationStatus, "notification status", {
        /// Waiting to be sent (or to be retried, or for quiet hours to end).
        Queued => "queued",
        /// Handed to the channel (SMTP accepted it, the gateway took it,
        /// the notice is up, the row is exported).
        Sent => "sent",
        /// The channel confirmed delivery (delivery report, notice shown,
        /// call made, bill printed).
        Delivered => "delivered",
        /// Given up after its attempts (the dead-letter list).
        Failed => "failed",
        /// The subscriber acknowledged it.
        Acknowledged => "acknowledged",
        /// No longer needed: its case was acknowledged or resolved before
        /// it went out (or before the call was made, the bill printed).
        Cancelled => "cancelled",
    }
);

impl CaseState {
    /// Still needs work: every state but `resolved`.
    pub fn is_active(self) -> bool {
        self != CaseState::Resolved
    }

    /// Whether staff may move a case from `self` to `to` by hand. Cases
    /// leave `resolved` only through new hits, and never go back to
    /// `open` (a new episode is `reinfected`).
    pub fn can_move_to(self, to: CaseState) -> bool {
        use CaseState::*;
        matches!(
            (self, to),
            (Open | Reinfected, Notified | Acknowledged | Resolved)
                | (Notified, Acknowledged | Resolved)
                | (Acknowledged, Resolved)
        )
    }

    /// The state after hits whose latest is newer than the resolution
    /// (`reinfected` for a resolved case; otherwise unchanged).
    pub fn after_hits(self) -> CaseState {
        match self {
            CaseState::Resolved => CaseState::Reinfected,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_name_the_choices() {
        for s in CaseState::ALL {
            assert_eq!(s.as_str().parse::<CaseState>().ok(), Some(*s));
        }
        for r in OrgRole::ALL {
            assert_eq!(r.as_str().parse::<OrgRole>().ok(), Some(*r));
        }
        let e = "boss".parse::<UserRole>().expect_err("unknown");
        assert!(e.to_string().contains("admin analyst viewer"), "{e}");
        assert_eq!(" Admin ".parse::<UserRole>().ok(), Some(UserRole::Admin));
    }

    #[test]
    fn hand_moves_follow_the_life_cycle() {
        use CaseState::*;
        assert!(Open.can_move_to(Notified));
        assert!(Notified.can_move_to(Acknowledged));
        assert!(Acknowledged.can_move_to(Resolved));
        assert!(Reinfected.can_move_to(Notified));
        assert!(!Resolved.can_move_to(Open));
        assert!(!Resolved.can_move_to(Reinfected));
        assert!(!Acknowledged.can_move_to(Notified));
        assert!(!Open.can_move_to(Open));
        assert!(!Open.can_move_to(Reinfected));
    }

    #[test]
    fn hits_after_resolution_reinfect() {
        assert_eq!(CaseState::Resolved.after_hits(), CaseState::Reinfected);
        assert_eq!(CaseState::Notified.after_hits(), CaseState::Notified);
        assert!(!CaseState::Resolved.is_active());
        assert!(CaseState::Reinfected.is_active());
    }
}
