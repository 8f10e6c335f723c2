//! Ticket numbers, signed acknowledgement links and verification codes.
//!
//! An acknowledgement token is `base64url(version ‖ id ‖ expiry ‖ tag)`
//! without padding: one version byte (1), the notification id and the
//! expiry (Unix seconds) as big-endian `i64`, and the first 16 bytes of
//! HMAC-SHA256 over a domain label and the 17 bytes before it. That is 33
//! bytes, a multiple of three, so the 44 characters carry no padding bits
//! and every character counts: changing any of them changes the decoded
//! bytes and breaks the tag. The tag is checked before anything else is
//! believed, so a forged token says nothing about expiry or version.
//!
//! Verification codes are derived from the ticket with the same key under
//! another label, so the operator's "is this notice genuine?" page needs no
//! storage: it recomputes the code from the ticket the subscriber types.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const ACK_VERSION: u8 = 1;
const ACK_LABEL: &[u8] = b"khien-notify ack v1\0";
const ACK_PAYLOAD: usize = 1 + 8 + 8;
const ACK_TAG: usize = 16;
const ACK_BYTES: usize = ACK_PAYLOAD + ACK_TAG;
/// Length of an encoded acknowledgement token (33 bytes in base64url).
pub const ACK_TOKEN_LEN: usize = ACK_BYTES / 3 * 4;

const VERIFY_LABEL: &[u8] = b"khien-notify verify v1\0";
/// The verification code alphabet: digits and capitals without the
/// look-alikes 0/O and 1/I (lower-case l never appears). 32 symbols, so
/// each takes exactly 5 bits of the HMAC and none is more likely.
pub const VERIFY_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Length of a verification code.
pub const VERIFY_CODE_LEN: usize = 8;

/// Why an acknowledgement token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of this format (wrong length or characters).
    #[error("malformed acknowledgement token")]
    Malformed,
    /// Well-formed, but not signed with this key (or altered).
    #[error("acknowledgement token signature does not match")]
    Forged,
    /// Genuine, but past its expiry.
    #[error("acknowledgement token has expired")]
    Expired,
}

fn mac(key: &[u8; 32], label: &[u8], data: &[u8]) -> HmacSha256 {
    // A 32-byte key is always accepted by HMAC.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(label);
    mac.update(data);
    mac
}

/// The ticket number shown to the subscriber and quoted to the call
/// centre: `YYYYMMDD-NNNNNNNN`, the day and a counter zero-padded to 8
/// digits (a counter above 99 999 999 simply gets more digits).
pub fn ticket(day: chrono::NaiveDate, n: u64) -> String {
    format!("{}-{n:08}", day.format("%Y%m%d"))
}

/// A signed, expiring token naming a notification, for the link the
/// subscriber follows to acknowledge it.
pub fn ack_token(key: &[u8; 32], notification_id: i64, expires_unix: i64) -> String {
    let mut buf = [0u8; ACK_BYTES];
    buf[0] = ACK_VERSION;
    buf[1..9].copy_from_slice(&notification_id.to_be_bytes());
    buf[9..17].copy_from_slice(&expires_unix.to_be_bytes());
    let tag = mac(key, ACK_LABEL, &buf[..ACK_PAYLOAD])
        .finalize()
        .into_bytes();
    buf[ACK_PAYLOAD..].copy_from_slice(&tag[..ACK_TAG]);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Checks a token from [`ack_token`] and returns the notification id.
/// The tag is compared in constant time; a token is expired from its
/// expiry second on.
pub fn verify_ack_token(key: &[u8; 32], token: &str, now_unix: i64) -> Result<i64, TokenError> {
    if token.len() != ACK_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut buf = [0u8; ACK_BYTES];
    match URL_SAFE_NO_PAD.decode_slice(token.as_bytes(), &mut buf) {
        Ok(ACK_BYTES) => {}
        _ => return Err(TokenError::Malformed),
    }
    mac(key, ACK_LABEL, &buf[..ACK_PAYLOAD])
        .verify_truncated_left(&buf[ACK_PAYLOAD..])
        .map_err(|_| TokenError::Forged)?;
    if buf[0] != ACK_VERSION {
        return Err(TokenError::Malformed);
    }
    let id = i64::from_be_bytes(buf[1..9].try_into().map_err(|_| TokenError::Malformed)?);
    let expires = i64::from_be_bytes(buf[9..17].try_into().map_err(|_| TokenError::Malformed)?);
    if now_unix >= expires {
        return Err(TokenError::Expired);
    }
    Ok(id)
}

/// The short code printed on a notice beside its ticket: the subscriber
/// types ticket and code on the operator's own site to check that the
/// notice is genuine. Eight symbols of [`VERIFY_ALPHABET`] (40 bits).
pub fn verify_code(key: &[u8; 32], ticket: &str) -> String {
    let tag = mac(key, VERIFY_LABEL, ticket.as_bytes())
        .finalize()
        .into_bytes();
    let mut bits = tag[..5]
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut code = [0u8; VERIFY_CODE_LEN];
    for slot in code.iter_mut().rev() {
        *slot = VERIFY_ALPHABET[(bits & 31) as usize];
        bits >>= 5;
    }
    code.iter().map(|&b| char::from(b)).collect()
}

/// Whether `typed` is the verification code of `ticket`, as a person
/// would type it: case, spaces and hyphens do not matter. Constant time in
/// the code's content.
pub fn verify_code_matches(key: &[u8; 32], ticket: &str, typed: &str) -> bool {
    let expected = verify_code(key, ticket);
    let typed: Vec<u8> = typed
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'-' | b'\t'))
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if typed.len() != expected.len() {
        return false;
    }
    let diff = typed
        .iter()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn ticket_is_day_and_zero_padded_counter() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(ticket(day, 42), "20261201-00000042");
        assert_eq!(ticket(day, 0), "20261201-00000000");
        assert_eq!(ticket(day, 123_456_789), "20261201-123456789");
    }

    #[test]
    fn ack_token_round_trips() {
        let t = ack_token(&KEY, 42, 2_000_000_000);
        assert_eq!(t.len(), ACK_TOKEN_LEN);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(verify_ack_token(&KEY, &t, 1_999_999_999), Ok(42));
        let neg = ack_token(&KEY, -5, 10);
        assert_eq!(verify_ack_token(&KEY, &neg, 9), Ok(-5));
    }

    #[test]
    fn ack_token_expires_at_its_second() {
        let t = ack_token(&KEY, 1, 1000);
        assert_eq!(verify_ack_token(&KEY, &t, 999), Ok(1));
        assert_eq!(verify_ack_token(&KEY, &t, 1000), Err(TokenError::Expired));
        assert_eq!(verify_ack_token(&KEY, &t, 5000), Err(TokenError::Expired));
    }

    #[test]
    fn every_modified_character_is_forged() {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let t = ack_token(&KEY, 123_456, 2_000_000_000);
        for pos in 0..t.len() {
            for &c in ALPHABET {
                if c == t.as_bytes()[pos] {
                    continue;
                }
                let mut bytes = t.clone().into_bytes();
                bytes[pos] = c;
                let altered = String::from_utf8(bytes).unwrap();
                assert_eq!(
                    verify_ack_token(&KEY, &altered, 0),
                    Err(TokenError::Forged),
                    "position {pos} changed to {}",
                    char::from(c)
                );
            }
        }
    }

    #[test]
    fn expired_forgery_is_still_forged() {
        let t = ack_token(&KEY, 1, 1000);
        let other = [8u8; 32];
        assert_eq!(verify_ack_token(&other, &t, 5000), Err(TokenError::Forged));
    }

    #[test]
    fn garbage_is_malformed() {
        let t = ack_token(&KEY, 1, 1000);
        for bad in [
            "",
            "abc",
            &t[..t.len() - 1],
            &format!("{t}A"),
            &format!("{}!", &t[..t.len() - 1]),
            &format!("{}=", &t[..t.len() - 1]),
            &"é".repeat(22),
        ] {
            assert_eq!(
                verify_ack_token(&KEY, bad, 0),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn verify_code_is_stable_and_avoids_look_alikes() {
        let a = verify_code(&KEY, "20261201-00000042");
        assert_eq!(a.len(), VERIFY_CODE_LEN);
        assert_eq!(a, verify_code(&KEY, "20261201-00000042"));
        assert_ne!(a, verify_code(&KEY, "20261201-00000043"));
        assert_ne!(a, verify_code(&[9; 32], "20261201-00000042"));
        for n in 0..2000 {
            let code = verify_code(&KEY, &format!("20261201-{n:08}"));
            assert!(code.bytes().all(|b| VERIFY_ALPHABET.contains(&b)), "{code}");
            assert!(!code.contains(['0', 'O', '1', 'I', 'l']), "{code}");
        }
    }

    #[test]
    fn verify_code_uses_the_whole_alphabet() {
        let mut seen = [false; 32];
        for n in 0..500 {
            for b in verify_code(&KEY, &n.to_string()).bytes() {
                let i = VERIFY_ALPHABET.iter().position(|&a| a == b).unwrap();
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn typed_code_ignores_case_and_separators() {
        let code = verify_code(&KEY, "T");
        let typed = format!("{}-{}", &code[..4], &code[4..]).to_lowercase();
        assert!(verify_code_matches(&KEY, "T", &typed));
        assert!(verify_code_matches(&KEY, "T", &format!(" {code} ")));
        assert!(!verify_code_matches(&KEY, "U", &code));
        assert!(!verify_code_matches(&KEY, "T", &code[..7]));
    }
}
