//! E-mail notices over SMTP (lettre, Tokio, rustls).
//!
//! A message is `multipart/alternative` (text, then HTML) or plain text
//! when the rendering has no HTML. Subjects and bodies are UTF-8: lettre
//! encodes the subject per RFC 2047 and picks quoted-printable or base64
//! for the bodies, so Vietnamese survives 7-bit relays. Each message
//! carries `Message-ID`, `Date`, `X-Khien-Ticket` (the ticket the
//! subscriber may quote), `Auto-Submitted: auto-generated` (RFC 3834, so
//! auto-responders stay quiet), `List-Unsubscribe` when configured, and a
//! DKIM signature when a key is configured (relaxed/relaxed, over From,
//! To, Subject, Date, Message-ID, X-Khien-Ticket and, when present,
//! Reply-To and List-Unsubscribe).
//!
//! Failures are sorted for the caller's retry policy: an invalid address
//! or a 5xx reply (including a refused login) is permanent; a refused or
//! broken connection, a timeout, a TLS failure and a 4xx reply are
//! temporary.
//!
//! Connections are pooled here rather than by lettre's transport: its
//! sockets keep Nagle's algorithm on, and since it writes a message's body
//! and the closing `.` separately, every message waited for the server's
//! delayed ACK (40 ms on Linux), capping one connection at about 25
//! messages a second. The pool opens its own TCP connections with
//! `TCP_NODELAY` (and does implicit TLS itself with rustls), hands them to
//! lettre's SMTP session ([`AsyncSmtpConnection`]), keeps up to
//! `pool_size` sessions open, drops one that failed, and retries a message
//! once on a fresh session when a reused one turns out to be closed. No
//! runtime is needed until the first send.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig as LettreDkim, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::{Error, Rendered, SendError};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain text: only for a relay on the same host or network.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (usually
    /// port 587 or 25).
    #[default]
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_pool_size() -> u32 {
    4
}

/// Where and how e-mail notices are sent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The SMTP server (submission relay) host name; TLS checks the
    /// certificate against it.
    pub host: String,
    /// Its port: 587 for STARTTLS submission, 465 for implicit TLS.
    pub port: u16,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// Login (AUTH PLAIN or LOGIN), with `password`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The `From` address, e.g. `"Nhà mạng <canhbao@nhamang.vn>"`.
    pub from: String,
    /// An optional `Reply-To` address (the operator's support desk).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// A PEM file of extra CA certificates to trust (a private CA), on top
    /// of the built-in web PKI roots.
    #[serde(default)]
    pub root_ca_pem: Option<PathBuf>,
    /// The longest one message may take, connecting included (default
    /// 30s). lettre only bounds the TCP connect, so the whole send is
    /// bounded here: a server that accepts and then stalls is a temporary
    /// failure, not a stuck worker.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The `List-Unsubscribe` value, e.g. `<mailto:unsub@nhamang.vn>`;
    /// angle brackets are added when missing. Omitted when unset.
    #[serde(default)]
    pub list_unsubscribe: Option<String>,
    /// DKIM signing, when set.
    #[serde(default)]
    pub dkim: Option<DkimConfig>,
    /// Connections kept open to the server (default 4).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("reply_to", &self.reply_to)
            .field("root_ca_pem", &self.root_ca_pem)
            .field("timeout", &self.timeout)
            .field("list_unsubscribe", &self.list_unsubscribe)
            .field("dkim", &self.dkim)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// DKIM signing key and where its public half is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// The selector: the key is published at `{selector}._domainkey.{domain}`.
    pub selector: String,
    /// The signing domain (`d=`), normally the domain of `from`.
    pub domain: String,
    /// The private key: PEM, RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
    pub private_key_pem: PathBuf,
}

/// Sends e-mail notices through one SMTP server.
pub struct EmailSender {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    list_unsubscribe: Option<String>,
    dkim: Option<LettreDkim>,
    endpoint: String,
    timeout: Duration,
    host: String,
    port: u16,
    security: SmtpSecurity,
    credentials: Option<Credentials>,
    /// For STARTTLS (lettre upgrades the session).
    starttls: Option<TlsParameters>,
    /// For implicit TLS (done here, before the greeting).
    implicit_tls: Option<tokio_rustls::TlsConnector>,
    pool: Pool,
}

/// Open sessions waiting for a message, and a bound on sessions in use.
struct Pool {
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: tokio::sync::Semaphore,
}

/// How long an idle session is kept: servers drop quiet clients (Postfix
/// after 300 s), and a session found closed costs a retry.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// A TCP connection with TLS from the first byte (implicit TLS).
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSender")
            .field("endpoint", &self.endpoint)
            .field("from", &self.from.to_string())
            .field("dkim", &self.dkim.is_some())
            .finish_non_exhaustive()
    }
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

fn permanent(message: String) -> SendError {
    SendError {
        permanent: true,
        message,
    }
}

/// A header value the caller passes through: printable ASCII, no spaces.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

impl EmailSender {
    /// Checks the addresses, reads the CA file and the DKIM key, and
    /// prepares the transport (connections open on the first send).
    pub fn new(cfg: &SmtpConfig) -> Result<EmailSender, Error> {
        let config = |field: &'static str, reason: String| Error::Config { field, reason };
        if cfg.host.trim().is_empty() {
            return Err(config("host", "empty".into()));
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| config("from", format!("{:?}: {e}", cfg.from)))?;
        let reply_to = cfg
            .reply_to
            .as_deref()
            .map(|r| {
                r.parse::<Mailbox>()
                    .map_err(|e| config("reply_to", format!("{r:?}: {e}")))
            })
            .transpose()?;
        let list_unsubscribe = match cfg.list_unsubscribe.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) if v.contains(['\r', '\n']) || !v.is_ascii() => {
                return Err(config(
                    "list_unsubscribe",
                    "must be one line of ASCII".into(),
                ));
            }
            Some(v) if v.starts_with('<') => Some(v.to_string()),
            Some(v) => Some(format!("<{v}>")),
        };
        if cfg.username.is_some() != cfg.password.is_some() {
            return Err(config(
                "password",
                "username and password go together".into(),
            ));
        }
        if cfg.timeout.is_zero() {
            return Err(config("timeout", "must be above zero".into()));
        }
        if cfg.pool_size == 0 {
            return Err(config("pool_size", "must be at least 1".into()));
        }

        let ca = cfg.root_ca_pem.as_deref().map(read_ca).transpose()?;
        let starttls = match cfg.security {
            SmtpSecurity::StartTls => {
                let mut params = TlsParameters::builder(cfg.host.clone());
                if let Some((cert, _)) = &ca {
                    params = params.add_root_certificate(cert.clone());
                }
                Some(
                    params
                        .build_rustls()
                        .map_err(|e| config("root_ca_pem", e.to_string()))?,
                )
            }
            SmtpSecurity::None | SmtpSecurity::Tls => None,
        };
        let implicit_tls = match cfg.security {
            SmtpSecurity::Tls => Some(rustls_connector(
                ca.as_ref().map(|(_, pem)| pem.as_slice()),
            )?),
            SmtpSecurity::None | SmtpSecurity::StartTls => None,
        };
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            _ => None,
        };

        let dkim = cfg
            .dkim
            .as_ref()
            .map(|d| {
                let key = read_dkim_key(&d.private_key_pem)?;
                let mut headers = vec!["From", "To", "Subject", "Date", "Message-ID"];
                if reply_to.is_some() {
                    headers.push("Reply-To");
                }
                if list_unsubscribe.is_some() {
                    headers.push("List-Unsubscribe");
                }
                headers.push("X-Khien-Ticket");
                Ok::<_, Error>(LettreDkim::new(
                    d.selector.clone(),
                    d.domain.clone(),
                    key,
                    headers
                        .into_iter()
                        .map(HeaderName::new_from_ascii_str)
                        .collect(),
                    DkimCanonicalization {
                        header: DkimCanonicalizationType::Relaxed,
                        body: DkimCanonicalizationType::Relaxed,
                    },
                ))
            })
            .transpose()?;

        Ok(EmailSender {
            from,
            reply_to,
            list_unsubscribe,
            dkim,
            endpoint: format!("{}:{}", cfg.host, cfg.port),
            timeout: cfg.timeout,
            host: cfg.host.clone(),
            port: cfg.port,
            security: cfg.security,
            credentials,
            starttls,
            implicit_tls,
            pool: Pool {
                idle: Mutex::new(Vec::new()),
                slots: tokio::sync::Semaphore::new(
                    usize::try_from(cfg.pool_size).unwrap_or(usize::MAX),
                ),
            },
        })
    }

    /// Builds the message for `to` without sending it.
    pub fn message(
        &self,
        to: &str,
        rendered: &Rendered,
        message_id: &str,
        ticket: &str,
    ) -> Result<Message, SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| permanent(format!("invalid recipient address {to:?}: {e}")))?;
        let subject = rendered
            .subject
            .as_deref()
            .ok_or_else(|| permanent("the rendered notice has no subject".into()))?;
        let id = message_id
            .strip_prefix('<')
            .and_then(|m| m.strip_suffix('>'))
            .unwrap_or(message_id);
        if !is_token(id) || !id.contains('@') || id.contains(['<', '>']) {
            return Err(permanent(format!(
                "invalid Message-ID {message_id:?} (expected local@domain)"
            )));
        }
        if !is_token(ticket) {
            return Err(permanent(format!("invalid ticket {ticket:?}")));
        }

        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .date_now()
            .message_id(Some(format!("<{id}>")))
            .raw_header(header("X-Khien-Ticket", ticket.to_string()))
            .raw_header(header("Auto-Submitted", "auto-generated".to_string()));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        if let Some(value) = &self.list_unsubscribe {
            builder = builder.raw_header(header("List-Unsubscribe", value.clone()));
        }
        let built = match &rendered.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(SinglePart::plain(rendered.text.clone())),
        };
        let mut message = built.map_err(|e| permanent(format!("cannot build the message: {e}")))?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        Ok(message)
    }

    /// Builds and sends the message.
    pub async fn send(
        &self,
        to: &str,
        rendered: &Rendered,
        message_id: &str,
        ticket: &str,
    ) -> Result<(), SendError> {
        let message = self.message(to, rendered, message_id, ticket)?;
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        let Ok(_slot) = self.pool.slots.acquire().await else {
            return Err(self.temporary("the connection pool is closed".into()));
        };
        let attempt = async {
            if let Some(mut session) = self.idle_session() {
                match session.send(&envelope, &bytes).await {
                    Ok(_) => {
                        self.put_back(session);
                        return Ok(());
                    }
                    // 4xx/5xx are the server's answer to this message.
                    Err(e) if e.is_permanent() || e.is_transient() => {
                        session.abort().await;
                        return Err(self.classify(&e));
                    }
                    // Closed while idle: once more on a fresh session.
                    Err(_) => session.abort().await,
                }
            }
            let mut session = self.connect().await?;
            match session.send(&envelope, &bytes).await {
                Ok(_) => {
                    self.put_back(session);
                    Ok(())
                }
                Err(e) => {
                    session.abort().await;
                    Err(self.classify(&e))
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(self.temporary(format!("timed out after {:?}", self.timeout))),
        }
    }

    fn temporary(&self, what: String) -> SendError {
        SendError {
            permanent: false,
            message: format!("SMTP {}: {what}", self.endpoint),
        }
    }

    fn classify(&self, e: &lettre::transport::smtp::Error) -> SendError {
        SendError {
            permanent: e.is_permanent(),
            message: format!("SMTP {}: {e}", self.endpoint),
        }
    }

    fn idle_session(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = match self.pool.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        while let Some((session, since)) = idle.pop() {
            if since.elapsed() < IDLE_FOR {
                return Some(session);
            }
            // Dropping it closes the socket; the server sees a reset.
            drop(session);
        }
        None
    }

    fn put_back(&self, session: AsyncSmtpConnection) {
        if session.has_broken() {
            return;
        }
        let mut idle = match self.pool.idle.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        idle.push((session, Instant::now()));
    }

    /// A new session: TCP with `TCP_NODELAY`, TLS as configured, EHLO,
    /// STARTTLS, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.temporary(format!("cannot connect: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| self.temporary(format!("TCP_NODELAY: {e}")))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.implicit_tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| self.temporary(format!("TLS name {:?}: {e}", self.host)))?;
                let tls = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| self.temporary(format!("TLS: {e}")))?;
                Box::new(ImplicitTls(tls))
            }
            None => Box::new(tcp),
        };
        let hello = ClientId::default();
        let mut session = AsyncSmtpConnection::connect_with_transport(stream, &hello)
            .await
            .map_err(|e| self.classify(&e))?;
        if let (SmtpSecurity::StartTls, Some(params)) = (self.security, &self.starttls) {
            if !session.can_starttls() {
                session.abort().await;
                return Err(SendError {
                    permanent: true,
                    message: format!(
                        "SMTP {}: the server does not offer STARTTLS, which is required",
                        self.endpoint
                    ),
                });
            }
            session
                .starttls(params.clone(), &hello)
                .await
                .map_err(|e| self.temporary(format!("STARTTLS: {e}")))?;
        }
        if let Some(credentials) = &self.credentials
            && let Err(e) = session
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
        {
            session.abort().await;
            return Err(self.classify(&e));
        }
        Ok(session)
    }
}

/// rustls for implicit TLS: the web PKI roots, and the configured CA.
fn rustls_connector(ca_pem: Option<&[u8]>) -> Result<tokio_rustls::TlsConnector, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let bad = |reason: String| Error::Config {
        field: "root_ca_pem",
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn read_ca(path: &Path) -> Result<(Certificate, Vec<u8>), Error> {
    let pem = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| Error::Config {
        field: "root_ca_pem",
        reason: format!("{}: {reason}", path.display()),
    };
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad("no PEM certificate in the file".into()));
    }
    let cert = Certificate::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
    Ok((cert, pem))
}

/// The body of the first PEM block labelled `label`.
fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The 32-byte seed of a PKCS#8 Ed25519 key (RFC 8410), if it is one.
fn ed25519_seed(der: &[u8]) -> Option<[u8; 32]> {
    // AlgorithmIdentifier { id-Ed25519 (1.3.101.112) }, then the
    // privateKey OCTET STRING wrapping a 32-byte OCTET STRING.
    const OID: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    const KEY: &[u8] = &[0x04, 0x22, 0x04, 0x20];
    let at = der.windows(OID.len()).position(|w| w == OID)? + OID.len();
    let rest = der.get(at..)?;
    let rest = rest.strip_prefix(KEY)?;
    rest.get(..32)?.try_into().ok()
}

fn read_dkim_key(path: &Path) -> Result<DkimSigningKey, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| Error::Config {
        field: "dkim.private_key_pem",
        reason: format!("{}: {reason}", path.display()),
    };
    if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
        return DkimSigningKey::new(&text, DkimSigningAlgorithm::Rsa)
            .map_err(|e| bad(format!("RSA key: {e}")));
    }
    let der = pem_block(&text, "PRIVATE KEY").ok_or_else(|| {
        bad("expected a PEM \"PRIVATE KEY\" (PKCS#8) or \"RSA PRIVATE KEY\" block".into())
    })?;
    if let Some(seed) = ed25519_seed(&der) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(seed);
        return DkimSigningKey::new(&b64, DkimSigningAlgorithm::Ed25519)
            .map_err(|e| bad(format!("Ed25519 key: {e}")));
    }
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    let key = rsa::RsaPrivateKey::from_pkcs8_der(&der)
        .map_err(|e| bad(format!("neither Ed25519 nor RSA: {e}")))?;
    let pkcs1 = key
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| bad(format!("RSA key: {e}")))?;
    DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa).map_err(|e| bad(format!("RSA key: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config() -> SmtpConfig {
        SmtpConfig {
            host: "smtp.example".into(),
            port: 587,
            security: SmtpSecurity::StartTls,
            username: Some("user".into()),
            password: Some("secret".into()),
            from: "Nhà mạng Ví Dụ <canhbao@nhamang.example>".into(),
            reply_to: None,
            root_ca_pem: None,
            timeout: Duration::from_secs(5),
            list_unsubscribe: None,
            dkim: None,
            pool_size: 2,
        }
    }

    fn rendered(html: bool) -> Rendered {
        Rendered {
            subject: Some("Cảnh báo: thiết bị nhiễm mã độc".into()),
            text: "Kính gửi Quý khách,\nmã độc mirai.".into(),
            html: html.then(|| "<p>Kính gửi Quý khách</p>".into()),
        }
    }

    fn formatted(m: &Message) -> String {
        String::from_utf8(m.formatted()).unwrap()
    }

    #[test]
    fn debug_hides_the_password() {
        let c = config();
        let s = format!("{c:?}");
        assert!(!s.contains("secret"), "{s}");
        let sender = EmailSender::new(&c).unwrap();
        assert!(!format!("{sender:?}").contains("secret"));
    }

    #[test]
    fn config_is_validated() {
        let mut c = config();
        c.from = "not an address".into();
        assert!(matches!(
            EmailSender::new(&c),
            Err(Error::Config { field: "from", .. })
        ));
        let mut c = config();
        c.password = None;
        assert!(matches!(
            EmailSender::new(&c),
            Err(Error::Config {
                field: "password",
                ..
            })
        ));
        let mut c = config();
        c.root_ca_pem = Some("/nonexistent/ca.pem".into());
        assert!(matches!(EmailSender::new(&c), Err(Error::Io { .. })));
    }

    #[test]
    fn config_deserializes_with_defaults() {
        let c: SmtpConfig = serde_json::from_str(
            r#"{"host": "smtp.example", "port": 465, "security": "tls", "from": "a@b.example"}"#,
        )
        .unwrap();
        assert_eq!(c.security, SmtpSecurity::Tls);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.pool_size, 4);
        let e = serde_json::from_str::<SmtpConfig>(
            r#"{"host": "h", "port": 1, "from": "a@b.example", "tls": true}"#,
        );
        assert!(e.is_err());
    }

    #[test]
    fn message_has_the_headers() {
        let mut c = config();
        c.list_unsubscribe = Some("mailto:unsub@nhamang.example".into());
        c.reply_to = Some("hotro@nhamang.example".into());
        let sender = EmailSender::new(&c).unwrap();
        let m = sender
            .message(
                "khach@example.net",
                &rendered(true),
                "n42@hub.example",
                "20261201-00000042",
            )
            .unwrap();
        let raw = formatted(&m);
        assert!(raw.contains("Message-ID: <n42@hub.example>\r\n"), "{raw}");
        assert!(
            raw.contains("X-Khien-Ticket: 20261201-00000042\r\n"),
            "{raw}"
        );
        assert!(raw.contains("List-Unsubscribe: <mailto:unsub@nhamang.example>\r\n"));
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"));
        assert!(raw.contains("Reply-To: hotro@nhamang.example\r\n"), "{raw}");
        assert!(raw.contains("Date: "));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("Subject: =?utf-8?"), "{raw}");
        assert!(raw.is_ascii(), "non-ASCII leaked into the wire form");
        assert!(!raw.contains("DKIM-Signature"));
    }

    #[test]
    fn text_only_without_html_and_no_unsubscribe_unless_configured() {
        let sender = EmailSender::new(&config()).unwrap();
        let m = sender
            .message("khach@example.net", &rendered(false), "<a@b>", "T-1")
            .unwrap();
        let raw = formatted(&m);
        assert!(!raw.contains("multipart"), "{raw}");
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(raw.contains("Message-ID: <a@b>\r\n"));
        assert!(!raw.contains("List-Unsubscribe"));
    }

    #[test]
    fn bad_inputs_are_permanent() {
        let sender = EmailSender::new(&config()).unwrap();
        for (to, id, ticket) in [
            ("not an address", "a@b", "T"),
            ("x@example.net", "no-at-sign", "T"),
            ("x@example.net", "a@b", "T\r\nBcc: evil@example"),
            ("x@example.net", "a b@c", "T"),
        ] {
            let e = sender.message(to, &rendered(true), id, ticket).unwrap_err();
            assert!(e.permanent, "{to} {id} {ticket}: {e}");
        }
        let mut no_subject = rendered(true);
        no_subject.subject = None;
        assert!(
            sender
                .message("x@example.net", &no_subject, "a@b", "T")
                .unwrap_err()
                .permanent
        );
    }

    #[test]
    fn ed25519_seed_is_found_in_pkcs8() {
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend(1..=32u8);
        let seed = ed25519_seed(&der).unwrap();
        assert_eq!(seed[0], 1);
        assert_eq!(seed[31], 32);
        assert!(ed25519_seed(&der[..40]).is_none());
        assert!(ed25519_seed(b"garbage").is_none());
    }
}
