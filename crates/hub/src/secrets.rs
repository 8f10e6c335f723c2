//! Key material and what is done with it: keyed hashes of secrets,
//! subscriber pseudonyms, encryption of contact fields, password hashes.
//!
//! Two keys come from configuration, the environment or
//! `DATA_DIR/secrets.toml` (made at first start, mode 0600):
//!
//! - the **master key**, from which two keys are derived by HMAC-SHA256
//!   over fixed labels: the store's [`HashKey`] (API keys, sessions, setup
//!   tokens) and the pseudonym key. It never rotates: a new one would
//!   void every key and rename every subscriber.
//! - the **encryption key** for contact fields, AES-256-GCM. It rotates:
//!   the previous keys stay readable, new writes use the current one, and
//!   `khien admin rotate-encryption-key` re-encrypts the rest.
//!
//! A contact ciphertext is `01 ‖ key id (8) ‖ nonce (12) ‖ AES-GCM output`,
//! the key id being the first 8 bytes of SHA-256 over a label and the key,
//! so that every ciphertext says which key opens it. The associated data
//! binds a ciphertext to its organisation, subscriber and field: a value
//! copied into another row or field does not decrypt.
//!
//! Pseudonyms are `sub_` and 26 base32 characters of HMAC-SHA256(pseudonym
//! key, organisation ‖ external id): stable, unlinkable across operators,
//! and meaningless without the key.
//!
//! Passwords are hashed with Argon2id at the `argon2` crate's defaults
//! (19 MiB, 2 passes, OWASP's minimum), in PHC form.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use khien_store::HashKey;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::config::HubConfig;

const CIPHERTEXT_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
/// Shortest and longest password accepted.
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// Where the keys came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsSource {
    Config,
    Environment,
    /// The file, and whether this start created it.
    File {
        path: PathBuf,
        created: bool,
    },
}

/// The hub's keys; see the module documentation.
#[derive(Clone)]
pub struct Secrets {
    hash_key: [u8; 32],
    pseudonym_key: [u8; 32],
    link_key: [u8; 32],
    current: EncryptionKey,
    previous: Vec<EncryptionKey>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("encryption_key_id", &self.current.id_hex())
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct EncryptionKey {
    id: [u8; KEY_ID_LEN],
    key: [u8; 32],
}

impl EncryptionKey {
    fn new(key: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"khien encryption key id\0")
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self { id, key }
    }

    fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

/// Why a contact field could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("the ciphertext is malformed")]
    Malformed,
    #[error("encrypted under key {0}, which is not configured")]
    UnknownKey(String),
    #[error("the ciphertext does not authenticate (wrong key, row or field)")]
    Forged,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC accepts keys of any length.
        Err(_) => return [0; 32],
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// RFC 4648 base32, lower-case, no padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Reads a 32-byte key written as 64 hex digits or base64 (standard or
/// URL alphabet, padded or not).
pub fn parse_key(what: &str, text: &str) -> Result<[u8; 32], Error> {
    let text = text.trim();
    let bad = |reason: &str| Error::Config {
        path: None,
        reason: format!("{what}: {reason}"),
    };
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| bad("not hex"))?
    } else {
        base64_decode(text).ok_or_else(|| bad("expected 32 bytes as 64 hex digits or base64"))?
    };
    bytes
        .try_into()
        .map_err(|_| bad("expected exactly 32 bytes (64 hex digits)"))
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// 32 random bytes from the operating system.
pub fn random_key() -> Result<[u8; 32], Error> {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| Error::Config {
        path: None,
        reason: format!("the operating system gave no random bytes: {e}"),
    })?;
    Ok(k)
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    master_key: String,
    encryption_key: String,
    #[serde(default)]
    previous_encryption_keys: Vec<String>,
}

impl Secrets {
    /// Builds the secrets from raw keys.
    pub fn from_keys(master: [u8; 32], encryption: [u8; 32], previous: &[[u8; 32]]) -> Self {
        Self {
            hash_key: hmac(&master, &[b"khien secret hash"]),
            pseudonym_key: hmac(&master, &[b"khien subscriber pseudonym"]),
            link_key: hmac(&master, &[b"khien notice links"]),
            current: EncryptionKey::new(encryption),
            previous: previous.iter().map(|k| EncryptionKey::new(*k)).collect(),
        }
    }

    /// The keys `config` names, from the first place that has them (see
    /// the module documentation); creates `DATA_DIR/secrets.toml` when
    /// nothing names them.
    pub fn load(config: &HubConfig) -> Result<(Self, SecretsSource), Error> {
        let c = &config.secrets;
        let previous = |list: &[String]| -> Result<Vec<[u8; 32]>, Error> {
            list.iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse_key("previous encryption key", s))
                .collect()
        };
        if let (Some(m), Some(e)) = (&c.master_key, &c.encryption_key) {
            let s = Self::from_keys(
                parse_key("secrets.master_key", m)?,
                parse_key("secrets.encryption_key", e)?,
                &previous(&c.previous_encryption_keys)?,
            );
            return Ok((s, SecretsSource::Config));
        }
        if let (Ok(m), Ok(e)) = (
            std::env::var("KHIEN_MASTER_KEY"),
            std::env::var("KHIEN_ENCRYPTION_KEY"),
        ) {
            let prev: Vec<String> = std::env::var("KHIEN_PREVIOUS_ENCRYPTION_KEYS")
                .unwrap_or_default()
                .split(',')
                .map(str::to_string)
                .collect();
            let s = Self::from_keys(
                parse_key("KHIEN_MASTER_KEY", &m)?,
                parse_key("KHIEN_ENCRYPTION_KEY", &e)?,
                &previous(&prev)?,
            );
            return Ok((s, SecretsSource::Environment));
        }
        let path = config.data_dir.join("secrets.toml");
        let created = !path.exists();
        if created {
            write_new_file(&path)?;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Config {
            path: Some(path.clone()),
            reason: e.to_string(),
        })?;
        let file: SecretsFile = toml::from_str(&text).map_err(|e| Error::Config {
            path: Some(path.clone()),
            reason: e.to_string(),
        })?;
        let s = Self::from_keys(
            parse_key("master_key", &file.master_key)?,
            parse_key("encryption_key", &file.encryption_key)?,
            &previous(&file.previous_encryption_keys)?,
        );
        Ok((s, SecretsSource::File { path, created }))
    }

    /// The key of the store's keyed hashes.
    pub fn hash_key(&self) -> HashKey {
        HashKey::new(self.hash_key)
    }

    /// The key that signs acknowledgement links and verification codes
    /// in warnings (derived from the master key, so every replica agrees).
    pub fn link_key(&self) -> [u8; 32] {
        self.link_key
    }

    /// The pseudonym of a subscriber of `org_id`.
    pub fn pseudonym(&self, org_id: i64, external_id: &str) -> String {
        let mac = hmac(
            &self.pseudonym_key,
            &[&org_id.to_be_bytes(), external_id.as_bytes()],
        );
        format!("sub_{}", base32(&mac[..16]))
    }

    /// The current encryption key's id (hex), as stored with the rows it
    /// encrypted.
    pub fn key_id(&self) -> String {
        self.current.id_hex()
    }

    /// Encrypts a contact field of a subscriber.
    pub fn encrypt(
        &self,
        org_id: i64,
        external_id: &str,
        field: &str,
        plaintext: &str,
    ) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Crypto(e.to_string()))?;
        let cipher = Aes256Gcm::new_from_slice(&self.current.key)
            .map_err(|e| Error::Crypto(e.to_string()))?;
        let aad = aad(org_id, external_id, field);
        let body = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|e| Error::Crypto(e.to_string()))?;
        let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + body.len());
        out.push(CIPHERTEXT_VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts what [`Secrets::encrypt`] made, with whichever configured
    /// key it names.
    pub fn decrypt(
        &self,
        org_id: i64,
        external_id: &str,
        field: &str,
        ciphertext: &[u8],
    ) -> Result<String, DecryptError> {
        if ciphertext.len() < 1 + KEY_ID_LEN + NONCE_LEN + 16 || ciphertext[0] != CIPHERTEXT_VERSION
        {
            return Err(DecryptError::Malformed);
        }
        let id = &ciphertext[1..1 + KEY_ID_LEN];
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| DecryptError::UnknownKey(hex::encode(id)))?;
        let nonce_bytes: [u8; NONCE_LEN] = ciphertext[1 + KEY_ID_LEN..1 + KEY_ID_LEN + NONCE_LEN]
            .try_into()
            .map_err(|_| DecryptError::Malformed)?;
        let cipher = Aes256Gcm::new_from_slice(&key.key).map_err(|_| DecryptError::Malformed)?;
        let aad = aad(org_id, external_id, field);
        let plain = cipher
            .decrypt(
                &Nonce::from(nonce_bytes),
                Payload {
                    msg: &ciphertext[1 + KEY_ID_LEN + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| DecryptError::Forged)?;
        String::from_utf8(plain).map_err(|_| DecryptError::Malformed)
    }
}

fn aad(org_id: i64, external_id: &str, field: &str) -> Vec<u8> {
    format!("khien contact v1\0{org_id}\0{external_id}\0{field}").into_bytes()
}

fn write_new_file(path: &Path) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Config {
        path: Some(path.to_path_buf()),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let text = format!(
        "# Khiên hub keys, made at first start. Keep this file private and backed up:\n\
         # without it no API key, session or encrypted contact can be used again.\n\
         master_key = \"{}\"\nencryption_key = \"{}\"\nprevious_encryption_keys = []\n",
        hex::encode(random_key()?),
        hex::encode(random_key()?)
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)
}

/// Why a password is refused.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(format!(
            "a password needs at least {PASSWORD_MIN_CHARS} characters"
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(format!("a password has at most {PASSWORD_MAX_BYTES} bytes"));
    }
    Ok(())
}

/// An Argon2id hash of `password` in PHC form. Slow on purpose: call it
/// from a blocking task.
pub fn hash_password(password: &str) -> Result<String, Error> {
    use argon2::{Argon2, PasswordHasher};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Crypto(e.to_string()))?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Crypto(e.to_string()))
}

/// Whether `password` matches a PHC hash (false for a malformed hash).
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::{Argon2, PasswordVerifier};
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A hash that matches nothing, verified when a login names an unknown
/// user so that the answer takes as long as for a known one.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("khien decoy password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets::from_keys([1; 32], [2; 32], &[])
    }

    #[test]
    fn contacts_round_trip_and_are_bound_to_their_row_and_field() {
        let s = secrets();
        let c = s
            .encrypt(3, "HN-1", "email", "an@example.vn")
            .expect("encrypt");
        assert_eq!(
            s.decrypt(3, "HN-1", "email", &c).as_deref(),
            Ok("an@example.vn")
        );
        assert_eq!(s.decrypt(3, "HN-1", "phone", &c), Err(DecryptError::Forged));
        assert_eq!(s.decrypt(4, "HN-1", "email", &c), Err(DecryptError::Forged));
        assert_eq!(s.decrypt(3, "HN-2", "email", &c), Err(DecryptError::Forged));
        let mut tampered = c.clone();
        *tampered.last_mut().expect("bytes") ^= 1;
        assert_eq!(
            s.decrypt(3, "HN-1", "email", &tampered),
            Err(DecryptError::Forged)
        );
        assert_eq!(
            s.decrypt(3, "HN-1", "email", &c[..10]),
            Err(DecryptError::Malformed)
        );
        assert_ne!(
            s.encrypt(3, "HN-1", "email", "an@example.vn")
                .expect("encrypt"),
            c,
            "a fresh nonce every time"
        );
    }

    #[test]
    fn rotated_keys_still_decrypt_and_unknown_ones_are_named() {
        let old = secrets();
        let c = old
            .encrypt(1, "x", "name", "Nguyễn Văn A")
            .expect("encrypt");
        let rotated = Secrets::from_keys([1; 32], [9; 32], &[[2; 32]]);
        assert_eq!(
            rotated.decrypt(1, "x", "name", &c).as_deref(),
            Ok("Nguyễn Văn A")
        );
        assert_ne!(rotated.key_id(), old.key_id());
        let without = Secrets::from_keys([1; 32], [9; 32], &[]);
        assert_eq!(
            without.decrypt(1, "x", "name", &c),
            Err(DecryptError::UnknownKey(old.key_id()))
        );
    }

    #[test]
    fn pseudonyms_are_stable_per_tenant_and_key() {
        let s = secrets();
        let p = s.pseudonym(1, "HN-1");
        assert!(p.starts_with("sub_") && p.len() == 4 + 26, "{p}");
        assert_eq!(p, s.pseudonym(1, "HN-1"));
        assert_ne!(p, s.pseudonym(2, "HN-1"));
        assert_ne!(
            p,
            Secrets::from_keys([5; 32], [2; 32], &[]).pseudonym(1, "HN-1")
        );
    }

    #[test]
    fn keys_parse_from_hex_and_base64_only_at_32_bytes() {
        let hex64 = "0f".repeat(32);
        assert_eq!(parse_key("k", &hex64).ok(), Some([0x0f; 32]));
        let b64 = "Dw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8PDw8=";
        assert_eq!(parse_key("k", b64).ok(), Some([0x0f; 32]));
        assert!(parse_key("k", "abcd").is_err());
        assert!(parse_key("k", "not a key at all!").is_err());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a phc string"));
        assert!(check_password("short").is_err());
        assert!(check_password("long enough pw").is_ok());
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32(b"f"), "my");
    }
}
