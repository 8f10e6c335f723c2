//! Secrets the store keeps only as keyed hashes: API keys, session cookies
//! and one-time setup tokens.
//!
//! A secret is a short type prefix (`khk_` for API keys, `khs_` for
//! sessions, `khu_` for setup tokens) and 43 base64url characters: 256 bits
//! from the operating system's CSPRNG (through `uuid` v4, which reads
//! `getrandom`; three of them are hashed down to 32 bytes). The store keeps
//! HMAC-SHA256 under the hub's [`HashKey`], never the secret: a copy of
//! the database alone neither authenticates nor lets anyone test guesses
//! offline. A fast keyed hash is enough for 256-bit random secrets, which
//! cannot be guessed; human passwords get Argon2id in the hub instead.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Characters after the type prefix.
pub(crate) const SECRET_BODY_LEN: usize = 43;

/// The key of the keyed hashes. The hub derives it from its master secret;
/// every process that opens the same database must use the same one.
#[derive(Clone)]
pub struct HashKey([u8; 32]);

impl HashKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// HMAC-SHA256 of `secret`, hex.
    pub fn hash(&self, secret: &str) -> String {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return legacy_hash(secret),
        };
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(…)")
    }
}

/// The unkeyed SHA-256 that API keys were stored with before keyed
/// hashing; still accepted for those keys.
pub(crate) fn legacy_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Equal in time independent of where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Unpadded base64url (RFC 4648 §5).
pub(crate) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// 32 random bytes.
pub fn random_bytes() -> [u8; 32] {
    let mut h = Sha256::new();
    for _ in 0..3 {
        h.update(uuid::Uuid::new_v4().as_bytes());
    }
    h.finalize().into()
}

/// A new secret with `prefix`.
pub(crate) fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", base64url(&random_bytes()))
}

/// Whether `secret` has the shape [`new_secret`] gives with `prefix`
/// (checked before any lookup, so junk never reaches the database).
pub(crate) fn well_formed(secret: &str, prefix: &str) -> bool {
    secret.len() == prefix.len() + SECRET_BODY_LEN
        && secret.starts_with(prefix)
        && secret[prefix.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        // RFC 4648 §10, with the URL alphabet and no padding.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), expected);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn secrets_have_the_documented_shape_and_differ() {
        let a = new_secret("khk_");
        let b = new_secret("khk_");
        assert_eq!(a.len(), 4 + SECRET_BODY_LEN);
        assert!(well_formed(&a, "khk_"));
        assert!(!well_formed(&a, "khs_"));
        assert!(!well_formed(&a[1..], "khk_"));
        assert_ne!(a, b);
    }

    #[test]
    fn keyed_hash_depends_on_the_key() {
        let a = HashKey::new([1; 32]);
        let b = HashKey::new([2; 32]);
        assert_eq!(a.hash("x"), a.hash("x"));
        assert_ne!(a.hash("x"), b.hash("x"));
        assert_ne!(a.hash("x"), legacy_hash("x"));
    }

    #[test]
    fn keyed_hash_is_hmac_sha256() {
        // RFC 4231 test case 1: HMAC pads a 20-byte key with zeros, so the
        // same key padded to 32 bytes gives the same MAC.
        let mut key = [0u8; 32];
        key[..20].fill(0x0b);
        assert_eq!(
            HashKey::new(key).hash("Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
