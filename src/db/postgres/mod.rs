//! Connecting to Postgres: URL parsing with libpq's `sslmode`/`sslrootcert`,
//! TLS through rustls, password redaction, and errors a person can act on.

pub mod apply;
pub mod catalog;
pub mod copy;
pub mod definer;
pub mod digest;
pub mod drift;
pub mod filled;
pub mod probe;
pub mod receipts;
pub mod rollback;
pub mod rowlock;
pub mod rowset;
pub mod search_path;
pub mod sequences;
pub mod state;
pub mod tx;
pub mod undo;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::{Client, Config};

use crate::error::environment;
use crate::types::SESSION_SETTINGS;

/// libpq's sslmode values that matter to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries plaintext first; TLS-if-offered is the
            // closest safe behaviour we offer.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(environment(format!(
                    "unknown sslmode '{other}' in the database URL: use one of disable, prefer, \
                     require, verify-ca, verify-full"
                )))
            }
        })
    }
}

/// A parsed database URL. Holds the password only inside `config`; every
/// text meant for people or files comes from [`Target::redacted`].
#[derive(Clone)]
pub struct Target {
    pub config: Config,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    redacted: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.redacted)
    }
}

impl Target {
    /// The URL with any password replaced by `***`: safe to print or store.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// `host:port` for messages.
    pub fn endpoint(&self) -> String {
        let host = self
            .config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(s) => s.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    pub fn user(&self) -> String {
        self.config.get_user().unwrap_or("postgres").to_string()
    }

    pub fn dbname(&self) -> String {
        self.config
            .get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| self.user())
    }
}

/// Parses a `postgres://` URL (or libpq key=value string). `sslmode` and
/// `sslrootcert` are taken out first because tokio-postgres knows only
/// disable/prefer/require and no CA file.
pub fn parse_target(raw: &str) -> Result<Target> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(environment(
            "no database URL given: pass --database-url or set SANDBOX_DATABASE_URL \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres)",
        ));
    }
    let is_url = raw.starts_with("postgres://") || raw.starts_with("postgresql://");
    if !is_url && raw.contains("://") {
        return Err(environment(format!(
            "the database URL must start with postgres:// or postgresql://{}",
            shown_scheme(raw)
                .map(|s| format!(" (it starts with {s}://)"))
                .unwrap_or_default()
        )));
    }
    let (rest, sslmode, sslrootcert, redacted) = if is_url {
        split_url(raw)?
    } else {
        split_keyvalue(raw)?
    };
    let mut config = Config::from_str(&rest).map_err(|e| {
        // Only the URL form is shown: its password is reliably masked.
        let shown = if is_url {
            format!(" {redacted}")
        } else {
            String::new()
        };
        environment(format!(
            "the database URL{shown} is not a valid URL ({e}); expected \
             postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...] — percent-encode \
             special characters in the password"
        ))
    })?;
    let sslmode = match sslmode {
        Some(m) => m.parse::<SslMode>()?,
        None => SslMode::Prefer,
    };
    config.ssl_mode(match sslmode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        _ => PgSslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("sandbox");
    }
    // TCP keepalives after 10 s of silence, every 5 s, 3 unanswered: a
    // server or network gone mid-statement ends the run within about 25 s
    // instead of the operating system's 2 hours. Unless the URL sets them.
    if !rest.contains("keepalives") {
        config
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(10))
            .keepalives_interval(std::time::Duration::from_secs(5))
            .keepalives_retries(3);
    }
    if config.get_hosts().is_empty() {
        config.host("localhost");
    }
    Ok(Target {
        config,
        sslmode,
        sslrootcert: sslrootcert.map(PathBuf::from),
        redacted,
    })
}

type Split = (String, Option<String>, Option<String>, String);

/// Splits a `postgres://` URL exactly the way tokio-postgres reads it, so
/// that what we redact is what the driver takes as the password: the
/// credentials run to the FIRST `@` (an unencoded `#`, `/` or `?` in a
/// password stays in the password), the query starts at the first `?`
/// after them. Kept parameters pass through byte for byte: re-encoding
/// them would change what the driver decodes (`%20` is not `+`).
fn split_url(raw: &str) -> Result<Split> {
    let prefix_len = if raw.starts_with("postgresql://") {
        "postgresql://".len()
    } else {
        "postgres://".len()
    };
    let (prefix, after) = raw.split_at(prefix_len);
    let (creds, rest) = match after.find('@') {
        Some(at) => (Some(&after[..at]), &after[at + 1..]),
        None => (None, after),
    };
    if let (Some(creds), Some(last_at)) = (creds, rest.rfind('@')) {
        // The driver ends the password at the first '@': with another one
        // after it, part of the password would be read (and shown) as the
        // host. Show the user and what follows the last '@' only.
        let user = creds.split_once(':').map_or(creds, |(user, _)| user);
        let host = rest[last_at + 1..].split('?').next().unwrap_or("");
        return Err(environment(format!(
            "the database URL {prefix}{user}:***@{host} has more than one '@': if the password \
             contains '@', write each one as %40 (and ':' as %3A, '/' as %2F, '?' as %3F, '#' as \
             %23, '%' as %25); the password is not shown"
        )));
    }
    let (location, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let mut sslmode = None;
    let mut sslrootcert = None;
    let mut kept: Vec<&str> = Vec::new();
    let mut shown_params: Vec<String> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !KNOWN_PARAMETERS.contains(&k) {
            let hint = KNOWN_PARAMETERS
                .iter()
                .find(|known| known.starts_with(k) || k.starts_with(*known))
                .map(|known| format!(" (did you mean {known}?)"))
                .unwrap_or_default();
            return Err(environment(format!(
                "unknown parameter '{k}' in the database URL{hint}; known: {}",
                KNOWN_PARAMETERS.join(", ")
            )));
        }
        match k {
            "sslmode" => sslmode = Some(percent_decode(v)),
            "sslrootcert" => sslrootcert = Some(percent_decode(v)),
            _ => kept.push(pair),
        }
        shown_params.push(if k == "password" {
            "password=***".to_string()
        } else {
            pair.to_string()
        });
    }
    let mut config = String::from(prefix);
    let mut shown = String::from(prefix);
    if let Some(creds) = creds {
        config.push_str(creds);
        config.push('@');
        match creds.split_once(':') {
            Some((user, _)) => {
                shown.push_str(user);
                shown.push_str(":***@");
            }
            None => {
                shown.push_str(creds);
                shown.push('@');
            }
        }
    }
    // The driver only says "invalid connection string"; name the usual cause.
    let hosts = location.split('/').next().unwrap_or("");
    for host in hosts.split(',') {
        if host.starts_with('[') && !host.contains(']') {
            return Err(environment(format!(
                "the database URL {shown}{location} is not a valid URL (invalid IPv6 address: \
                 missing ']'); expected postgres://USER@[ADDRESS]:PORT/DATABASE"
            )));
        }
        let port = match host.rfind(']') {
            Some(close) => host[close + 1..].strip_prefix(':'),
            None => host.rsplit_once(':').map(|(_, p)| p),
        };
        if let Some(port) = port {
            if port.parse::<u16>().is_err() {
                return Err(environment(format!(
                    "the database URL {shown}{location} is not a valid URL (invalid port number \
                     '{port}'); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
                )));
            }
        }
    }
    config.push_str(location);
    shown.push_str(location);
    if !kept.is_empty() {
        config.push('?');
        config.push_str(&kept.join("&"));
    }
    if !shown_params.is_empty() {
        shown.push('?');
        shown.push_str(&shown_params.join("&"));
    }
    Ok((config, sslmode, sslrootcert, shown))
}

/// The URL query parameters tokio-postgres understands, plus ours.
const KNOWN_PARAMETERS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslrootcert",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// `%XX` decoding as tokio-postgres does it (no `+` for space).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let digit = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (digit(bytes[i + 1]), digit(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The scheme of a URL-looking string, when it is safe to show: it must
/// not carry anything that could be part of a secret.
fn shown_scheme(raw: &str) -> Option<&str> {
    let scheme = &raw[..raw.find("://")?];
    (scheme.len() <= 30
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | ':')))
    .then_some(scheme)
}

/// Splits libpq key=value pairs the way tokio-postgres reads them (values
/// may be single-quoted, with backslash escapes), so a quoted password with
/// spaces is redacted whole. Error messages echo no text from a string that
/// holds a password: a stray word there may be a piece of it.
fn split_keyvalue(raw: &str) -> Result<Split> {
    let mut sslmode = None;
    let mut sslrootcert = None;
    let mut kept = Vec::new();
    let mut shown = Vec::new();
    let chars: Vec<(usize, char)> = raw.char_indices().collect();
    let byte = |i: usize| chars.get(i).map(|(b, _)| *b).unwrap_or(raw.len());
    let is_ws = |i: usize| chars.get(i).is_some_and(|(_, c)| c.is_whitespace());
    let bad = |problem: &str, near: &str| {
        environment(format!(
            "the database URL is neither a postgres:// URL nor key=value pairs ({problem}{})",
            // A stray word may be a piece of a password: echo nothing from
            // a string that could hold one.
            if near.is_empty() || raw.contains("password") || raw.contains('@') || raw.contains(':')
            {
                String::new()
            } else {
                format!(" near '{near}'")
            }
        ))
    };
    let mut i = 0;
    loop {
        while is_ws(i) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && !is_ws(i) && chars[i].1 != '=' {
            i += 1;
        }
        let key = &raw[byte(start)..byte(i)];
        while is_ws(i) {
            i += 1;
        }
        if key.is_empty() || chars.get(i).map(|(_, c)| *c) != Some('=') {
            // The word may be a password pasted where the URL goes.
            return Err(bad("a word without '='", ""));
        }
        i += 1;
        while is_ws(i) {
            i += 1;
        }
        let mut value = String::new();
        if chars.get(i).map(|(_, c)| *c) == Some('\'') {
            i += 1;
            loop {
                match chars.get(i).map(|(_, c)| *c) {
                    None => return Err(bad("a quoted value is not closed", key)),
                    Some('\'') => break,
                    Some('\\') => {
                        value.extend(chars.get(i + 1).map(|(_, c)| *c));
                        i += 2;
                    }
                    Some(c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            i += 1;
        } else {
            while i < chars.len() && !is_ws(i) {
                if chars[i].1 == '\\' {
                    i += 1;
                }
                value.extend(chars.get(i).map(|(_, c)| *c));
                i += 1;
            }
        }
        let text = &raw[byte(start)..byte(i)];
        match key {
            "sslmode" => sslmode = Some(value),
            "sslrootcert" => sslrootcert = Some(value),
            _ => kept.push(text.to_string()),
        }
        shown.push(if key == "password" {
            "password=***".to_string()
        } else {
            text.to_string()
        });
    }
    Ok((kept.join(" "), sslmode, sslrootcert, shown.join(" ")))
}

/// The two libpq modes rustls has no verifier for. `require` and `prefer`
/// (`chain: None`) encrypt without authenticating the server; `verify-ca`
/// (`chain: Some`) requires a chain to the CA but lets the host name differ.
/// Handshake signatures are checked either way, so the handshake itself is
/// sound. (`verify-full` is rustls's own WebPKI verifier.)
#[derive(Debug)]
struct Lenient {
    provider: Arc<rustls::crypto::CryptoProvider>,
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            })) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls_config(target: &Target) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS setup failed")?;
    let config = match target.sslmode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient {
                provider,
                chain: None,
            }))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            match &target.sslrootcert {
                Some(path) if path.as_os_str() != "system" => {
                    let pem = std::fs::read(path).map_err(|e| {
                        environment(format!(
                            "cannot read sslrootcert {}: {e}; give the path of the server's \
                             CA certificate (PEM)",
                            path.display()
                        ))
                    })?;
                    let mut found = 0;
                    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                        let cert = cert.map_err(|e| {
                            environment(format!(
                                "sslrootcert {} is not a PEM certificate file: {e}",
                                path.display()
                            ))
                        })?;
                        roots.add(cert).map_err(|e| {
                            environment(format!(
                                "sslrootcert {} holds a certificate rustls cannot use: {e}",
                                path.display()
                            ))
                        })?;
                        found += 1;
                    }
                    if found == 0 {
                        return Err(environment(format!(
                            "sslrootcert {} holds no PEM certificate",
                            path.display()
                        )));
                    }
                }
                _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .context("TLS verifier setup failed")?;
            if target.sslmode == SslMode::VerifyCa {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Lenient {
                        provider,
                        chain: Some(verifier),
                    }))
                    .with_no_client_auth()
            } else {
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            }
        }
    };
    Ok(config)
}

/// Opens a connection and drives it on a thread of its own (with its own
/// small runtime), not on the caller's: the socket is then read and
/// written while the caller's thread computes, so a keepalive sent
/// meanwhile (see `tx::computing`) goes out and its answer comes back, and
/// the connection never waits for the caller to yield. The client's
/// requests and answers travel over channels, which any runtime can await.
pub async fn connect(target: &Target) -> Result<Client> {
    Ok(connect_watched(target).await?.0)
}

/// What the server said as it ended a connection: the SQLSTATE and message
/// of the FATAL error it sent before closing (an idle-in-transaction
/// timeout, `pg_terminate_backend`, a shutdown). Without it a command
/// whose session the server ended met only the driver's "connection
/// closed", which names no cause. Empty while the connection lives, and
/// when it ended without a word (a dropped network).
#[derive(Debug, Clone, Default)]
pub struct SessionEnd(Arc<std::sync::Mutex<Option<(String, String)>>>);

impl SessionEnd {
    /// The SQLSTATE and message the server ended the session with.
    pub fn said(&self) -> Option<(String, String)> {
        self.0.lock().ok().and_then(|s| s.clone())
    }

    fn record(&self, e: &tokio_postgres::Error) {
        if let (Some(db), Ok(mut slot)) = (e.as_db_error(), self.0.lock()) {
            *slot = Some((db.code().code().to_string(), db.message().to_string()));
        }
    }
}

/// [`connect`], and what the server says if it ends the session (see
/// [`SessionEnd`]). The connection is recorded before its channels close,
/// so a request that fails because it closed finds the cause recorded.
pub async fn connect_watched(target: &Target) -> Result<(Client, SessionEnd)> {
    let (client, end, _) = connect_watched_on(target).await?;
    Ok((client, end))
}

/// [`connect_watched`], and the runtime of the thread that drives the
/// connection: a task spawned there receives the connection's answers
/// without crossing threads (pull's COPY reader, see `ops::pull`).
pub async fn connect_watched_on(
    target: &Target,
) -> Result<(Client, SessionEnd, tokio::runtime::Handle)> {
    let end = SessionEnd::default();
    let ended = end.clone();
    let tls = match target.sslmode {
        SslMode::Disable => None,
        _ => Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
            target,
        )?)),
    };
    let config = target.config.clone();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("postgres-connection".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = sender.send(Err(Err(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                // Until the client is dropped: then the connection ends.
                match tls {
                    None => match config.connect(tokio_postgres::NoTls).await {
                        Ok((client, conn)) => {
                            let _ = sender.send(Ok((client, tokio::runtime::Handle::current())));
                            // Pinned, not consumed: the connection (and the
                            // channels the client's requests wait on) lives
                            // until its end is recorded.
                            let mut conn = std::pin::pin!(conn);
                            if let Err(e) = conn.as_mut().await {
                                ended.record(&e);
                            }
                        }
                        Err(e) => {
                            let _ = sender.send(Err(Ok(e)));
                        }
                    },
                    Some(tls) => match config.connect(tls).await {
                        Ok((client, conn)) => {
                            let _ = sender.send(Ok((client, tokio::runtime::Handle::current())));
                            let mut conn = std::pin::pin!(conn);
                            if let Err(e) = conn.as_mut().await {
                                ended.record(&e);
                            }
                        }
                        Err(e) => {
                            let _ = sender.send(Err(Ok(e)));
                        }
                    },
                }
            });
        })
        .context("cannot start the thread that drives the Postgres connection")?;
    match receiver
        .await
        .context("the thread that drives the Postgres connection ended")?
    {
        Ok((client, runtime)) => Ok((client, end, runtime)),
        Err(Ok(e)) => Err(explain_connect_error(target, &e)),
        Err(Err(e)) => {
            Err(anyhow::Error::new(e).context("cannot start the Postgres connection's runtime"))
        }
    }
}

/// Turns a driver error into one paragraph naming the cause and the fix.
/// The URL is shown redacted; driver messages never contain the password.
pub fn explain_connect_error(target: &Target, e: &tokio_postgres::Error) -> anyhow::Error {
    let endpoint = target.endpoint();
    let shown = target.redacted();
    let detail = full_message(e);
    let lower = detail.to_lowercase();
    let msg = if let Some(db) = e.as_db_error() {
        match db.code().code() {
            "28P01" => format!(
                "authentication failed for user '{}' at {endpoint}: the password is wrong \
                 (check the URL or PGPASSWORD-style secret you passed; it is never printed)",
                target.user()
            ),
            "3D000" => format!(
                "database '{}' does not exist at {endpoint}: check the database name in {shown}",
                target.dbname()
            ),
            "28000"
                if target.sslmode == SslMode::Disable || db.message().contains("no encryption") =>
            {
                format!(
                    "the server at {endpoint} refused the connection: {} — it requires TLS: use \
                 sslmode=verify-full with sslrootcert=CA.pem (or sslmode=require)",
                    db.message()
                )
            }
            _ => format!(
                "the server at {endpoint} refused the connection: {}",
                db.message()
            ),
        }
    } else if lower.contains("server does not support tls")
        || lower.contains("does not support ssl")
    {
        format!(
            "the server at {endpoint} does not offer TLS but sslmode={} requires it: enable \
             ssl on the server or use sslmode=prefer/disable for a trusted local server",
            sslmode_name(target.sslmode)
        )
    } else if lower.contains("not valid for name") || lower.contains("notvalidforname") {
        // The chain is fine (rustls checks it first); only the name differs,
        // so the CA advice below would mislead.
        format!(
            "the TLS certificate of {endpoint} does not list the host name you connect to \
             ({detail}): with sslmode=verify-full the host in the URL must be one of the \
             certificate's names; connect by one of those, or use sslmode=verify-ca to check \
             only that the certificate chains to the CA in sslrootcert"
        )
    } else if lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
        || lower.contains("invalid peer certificate")
        || lower.contains("badsignature")
    {
        format!(
            "the TLS certificate of {endpoint} was not accepted ({detail}): with sslmode={} the \
             server's certificate must chain to the CA in sslrootcert{}; Supabase's CA is \
             private, download it from the project's database settings",
            sslmode_name(target.sslmode),
            if target.sslmode == SslMode::VerifyFull {
                " and name the host you connect to"
            } else {
                ""
            }
        )
    } else if lower.contains("refused") {
        format!(
            "cannot reach Postgres at {endpoint}: connection refused — is the server running \
             and is the port right? ({shown})"
        )
    } else if lower.contains("failed to lookup")
        || lower.contains("name or service not known")
        || lower.contains("nodename nor servname")
        || lower.contains("no address")
    {
        format!("cannot resolve the host in {shown}: check the host name ({detail})")
    } else if lower.contains("timed out") || lower.contains("timeout") {
        format!("connecting to {endpoint} timed out: check the host, port and firewall ({shown})")
    } else {
        format!("cannot connect to {shown}: {detail}")
    };
    environment(msg)
}

fn sslmode_name(m: SslMode) -> &'static str {
    match m {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// The driver error with its sources, on one line.
pub fn full_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

/// `SET LOCAL` statements that fix value formatting for this transaction.
/// Transaction-scoped so they also work through a transaction-mode pooler.
///
/// `row_security = off` makes Postgres raise an error instead of silently
/// hiding rows when row-level security would filter what this role reads
/// (as pg_dump does): a snapshot or drift check must see every row.
pub fn set_local_settings_sql() -> String {
    let mut sql = SESSION_SETTINGS
        .iter()
        .map(|(k, v)| format!("SET LOCAL {k} = '{v}';"))
        .collect::<Vec<_>>()
        .join(" ");
    sql.push_str(" SET LOCAL row_security = off;");
    // No JIT: the catalog reads of the drift, write and DDL checks are
    // cheap queries whose estimated cost on a big catalog (Supabase's
    // thousands of extension functions) passes `jit_above_cost`, and
    // compiling them took ~1 s, while the push holds its locks, for a
    // query that runs in 40 ms without it.
    sql.push_str(" SET LOCAL jit = off;");
    // One pinned search_path for pull, drift checks and the plan's SQL in
    // push and rollback: format_type() prints a type unqualified only when
    // its schema is on the path, so a catalog read under the database's own
    // path (`''`, or without `extensions`) and compared under another would
    // report every `extensions.citext` or `app.mood` column as drift that
    // pulling again can never clear. The row writes leave it for the app's
    // path while they run (see `search_path`).
    sql.push(' ');
    sql.push_str(&search_path::pin_sql());
    sql
}

/// Why a statement under `row_security = off` (see
/// [`set_local_settings_sql`]) met a table whose row-level security
/// applies to the role, and what to do: said the same way wherever that
/// happens (lock step, reads, writes, digests, COPY).
pub(crate) const ROW_SECURITY_EXPLAINED: &str =
    "this role cannot read every row past row-level security, \
     and the tool evaluates no policy (it runs with row_security off). Use a role with BYPASSRLS, \
     or the tables' owner where a table does not FORCE ROW LEVEL SECURITY (Supabase's `postgres` \
     role has both)";

/// Whether Postgres refused a statement because row-level security applies
/// to the role (SQLSTATE 42501 under `row_security = off`).
pub fn is_row_security_error(db: &tokio_postgres::error::DbError) -> bool {
    db.code().code() == "42501" && db.message().contains("row-level security")
}

/// `e` with [`ROW_SECURITY_EXPLAINED`] when a row-level security refusal
/// is in its chain and was not explained where it happened: push,
/// rollback and pull pass their errors through it, so the statements
/// after the lock step (a trigger's insert, the undo's delete, a read of
/// an app table that references pushed rows, a digest) say it as the lock
/// step does. An environment error (exit 2): the role is what must change.
pub fn explain_row_security(e: anyhow::Error) -> anyhow::Error {
    let Some(db) = e
        .chain()
        .filter_map(|c| c.downcast_ref::<tokio_postgres::Error>())
        .find_map(|pg| pg.as_db_error().filter(|d| is_row_security_error(d)))
    else {
        return e;
    };
    let why = format!("{} — {ROW_SECURITY_EXPLAINED}", db.message());
    e.context(why)
}

/// Explains a query error that the role's privileges cause.
pub fn explain_query_error(e: &tokio_postgres::Error, what: &str) -> anyhow::Error {
    if let Some(db) = e.as_db_error() {
        if is_row_security_error(db) {
            return environment(format!(
                "{what}: {} — {ROW_SECURITY_EXPLAINED}",
                db.message()
            ));
        }
        if db.code().code() == "42501" {
            return environment(format!(
                "{what}: {} — the role lacks a privilege the plan needs",
                db.message()
            ));
        }
    }
    if let Some(db) = e.as_db_error().filter(|d| d.severity() == "FATAL") {
        // Kept as data: the caller says why the server ended the session.
        return anyhow::Error::new(ServerEnded {
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            shown: full_message(e),
        })
        .context(what.to_string());
    }
    anyhow::Error::new(full_error(e)).context(what.to_string())
}

/// The server ending the session (a FATAL error) as the answer to a
/// query whose error [`explain_query_error`] explained: its SQLSTATE and
/// message, for `tx::fatal_in`.
#[derive(Debug)]
pub struct ServerEnded {
    pub code: String,
    pub message: String,
    shown: String,
}
impl std::fmt::Display for ServerEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}
impl std::error::Error for ServerEnded {}

#[derive(Debug)]
struct DriverError(String);
impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for DriverError {}

fn full_error(e: &tokio_postgres::Error) -> DriverError {
    DriverError(full_message(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_in_redacted_url() {
        let t =
            parse_target("postgres://u:s3cr%40t@db.example:6543/postgres?sslmode=require").unwrap();
        assert!(!t.redacted().contains("s3cr"), "{}", t.redacted());
        assert!(t.redacted().contains("***"));
        assert_eq!(t.sslmode, SslMode::Require);
        assert_eq!(t.endpoint(), "db.example:6543");
        let kv = parse_target("host=h user=u password=hunter2 dbname=d sslmode=disable").unwrap();
        assert!(!kv.redacted().contains("hunter2"));
        assert_eq!(kv.sslmode, SslMode::Disable);
    }

    #[test]
    fn quoted_keyvalue_password_is_redacted_whole() {
        let t = parse_target(
            r"host=h user=u password='pa ss=w\'d' sslrootcert='/a b/ca.pem' sslmode=verify-ca",
        )
        .unwrap();
        assert_eq!(
            t.redacted(),
            r"host=h user=u password=*** sslrootcert='/a b/ca.pem' sslmode=verify-ca"
        );
        assert_eq!(t.config.get_password(), Some(&b"pa ss=w'd"[..]));
        assert_eq!(
            t.sslrootcert.as_deref(),
            Some(std::path::Path::new("/a b/ca.pem"))
        );
        for raw in ["host=h password=xq1 zk2", "host=h password='xq1 zk2"] {
            let e = format!("{:#}", parse_target(raw).unwrap_err());
            assert!(!e.contains("xq1") && !e.contains("zk2"), "{e}");
        }
    }

    #[test]
    fn bad_sslmode_and_bad_url_are_explained() {
        let e = parse_target("postgres://u@h/d?sslmode=sometimes").unwrap_err();
        assert!(e.to_string().contains("unknown sslmode 'sometimes'"));
        let e = parse_target("postgres://u:pw@h:notaport/d").unwrap_err();
        assert!(!format!("{e:#}").contains("pw@"));
    }
}
