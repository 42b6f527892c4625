//! Delivery of code emails: over SMTP with lettre (STARTTLS or implicit TLS with rustls; plain
//! only when told so explicitly), or, when no SMTP server is configured, to a file outbox
//! under the data dir so a single node works with zero setup.
//!
//! Every send opens its own connection (no pool), so a server that was down is used again as
//! soon as it is back. Every send is bounded by one deadline for the whole exchange: lettre's
//! own timeout covers only the TCP connect, and a server that accepts and then says nothing
//! would otherwise hold the send forever.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::time::Duration;

/// How the connection to the SMTP server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all: only for a relay on the same host.
    None,
}

impl std::str::FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "starttls" => Ok(TlsMode::Starttls),
            "implicit" => Ok(TlsMode::Implicit),
            "none" => Ok(TlsMode::None),
            other => Err(format!(
                "unknown TLS mode {other:?}: starttls, implicit or none"
            )),
        }
    }
}

/// Where and how to reach the SMTP server.
#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Extra root certificate (PEM) to trust, for a server with a private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Longest time one send may take, from connecting to the server's last answer.
    pub timeout: Duration,
}

/// One email to send.
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    /// Plain text; holds the code, so it is a secret.
    pub body: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail settings are invalid: {0}")]
    Config(String),
    #[error("invalid address: {0}")]
    Address(String),
    /// Nothing answered, the connection broke, or TLS failed.
    #[error("the mail server could not be reached: {0}")]
    Unreachable(String),
    /// The server answered with an error (4xx or 5xx).
    #[error("the mail server refused the message: {0}")]
    Refused(String),
    /// The server did not accept the configured SMTP login (or offers no way to log in).
    #[error("the mail server did not accept the SMTP login: {0}")]
    Auth(String),
    /// No complete answer within the deadline.
    #[error("the mail server did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("cannot write to the outbox: {0}")]
    Outbox(String),
}

pub enum Mailer {
    Smtp {
        /// Boxed: the transport is large, and the outbox variant small.
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        host: String,
        port: u16,
        timeout: Duration,
    },
    /// Writes each message as an `.eml` file (mode 0600) into the directory.
    Outbox(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Mailer {
    pub fn smtp(s: &SmtpSettings) -> Result<Mailer, MailError> {
        let config = |e: lettre::transport::smtp::Error| MailError::Config(e.to_string());
        let tls_params = || -> Result<TlsParameters, MailError> {
            let mut b = TlsParameters::builder(s.host.clone());
            if let Some(pem) = &s.ca_pem {
                b = b.add_root_certificate(Certificate::from_pem(pem).map_err(config)?);
            }
            b.build_rustls().map_err(config)
        };
        let tls = match s.tls {
            TlsMode::Starttls => Tls::Required(tls_params()?),
            TlsMode::Implicit => Tls::Wrapper(tls_params()?),
            TlsMode::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(s.timeout));
        match (&s.username, &s.password) {
            (Some(u), Some(p)) => {
                b = b.credentials(Credentials::new(u.clone(), p.expose_secret().to_string()));
            }
            (None, None) => {}
            _ => {
                return Err(MailError::Config(
                    "give both an SMTP username and password, or neither".into(),
                ))
            }
        }
        Ok(Mailer::Smtp {
            transport: Box::new(b.build()),
            host: s.host.clone(),
            port: s.port,
            timeout: s.timeout,
        })
    }

    pub fn outbox(dir: PathBuf) -> Mailer {
        Mailer::Outbox(dir)
    }

    /// Where mail goes, for the start-up log (no credentials).
    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { host, port, .. } => format!("smtp://{host}:{port}"),
            Mailer::Outbox(dir) => format!("outbox {}", dir.display()),
        }
    }

    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let from: Mailbox = mail
            .from
            .parse()
            .map_err(|_| MailError::Address("the from address is not valid".into()))?;
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| MailError::Address("the recipient address is not valid".into()))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.expose_secret().to_string())
            .map_err(|e| MailError::Address(e.to_string()))?;
        match self {
            Mailer::Smtp {
                transport, timeout, ..
            } => match tokio::time::timeout(*timeout, transport.send(message)).await {
                Err(_) => Err(MailError::Timeout(*timeout)),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) if is_auth_failure(&e) => Err(MailError::Auth(status_of(&e))),
                Ok(Err(e)) if e.is_permanent() || e.is_transient() => {
                    Err(MailError::Refused(status_of(&e)))
                }
                Ok(Err(e)) => Err(MailError::Unreachable(e.to_string())),
            },
            Mailer::Outbox(dir) => write_outbox(dir, &message.formatted()).await,
        }
    }
}

/// A refused login: 530 (authentication required), 534 and 535 (credentials refused), 538
/// (encryption required for it), or no mechanism in common.
fn is_auth_failure(e: &lettre::transport::smtp::Error) -> bool {
    match e.status() {
        Some(code) => matches!(u16::from(code), 530 | 534 | 535 | 538),
        None => e.to_string().contains("authentication mechanism"),
    }
}

fn status_of(e: &lettre::transport::smtp::Error) -> String {
    match e.status() {
        Some(code) => format!("SMTP status {code}"),
        None => e.to_string(),
    }
}

async fn write_outbox(dir: &std::path::Path, bytes: &[u8]) -> Result<(), MailError> {
    let fail = |e: std::io::Error| MailError::Outbox(e.to_string());
    tokio::fs::create_dir_all(dir).await.map_err(fail)?;
    let mut name = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut name);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let path = dir.join(format!("{millis}-{}.eml", hex::encode(name)));
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&path).await.map_err(fail)?;
    tokio::io::AsyncWriteExt::write_all(&mut f, bytes)
        .await
        .map_err(fail)?;
    tokio::io::AsyncWriteExt::flush(&mut f).await.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> Mail {
        Mail {
            from: "ACME Support <support@acme.test>".into(),
            to: "ada@example.com".into(),
            subject: "code".into(),
            body: SecretString::from("Your code: 123456"),
        }
    }

    #[tokio::test]
    async fn the_outbox_keeps_each_message_as_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mailer::outbox(dir.path().join("outbox"));
        m.send(&mail()).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("123456") && text.contains("To: ada@example.com"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable_not_a_panic() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let m = Mailer::smtp(&SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::Starttls,
            username: None,
            password: None,
            ca_pem: None,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        assert!(matches!(
            m.send(&mail()).await,
            Err(MailError::Unreachable(_))
        ));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts, then holds the connection without a word.
        let held = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(stream);
        });
        let m = Mailer::smtp(&SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::Starttls,
            username: None,
            password: None,
            ca_pem: None,
            timeout: Duration::from_millis(300),
        })
        .unwrap();
        assert!(matches!(
            m.send(&mail()).await,
            Err(MailError::Timeout(t)) if t == Duration::from_millis(300)
        ));
        held.abort();
    }

    #[test]
    fn half_given_credentials_are_a_config_error() {
        let r = Mailer::smtp(&SmtpSettings {
            host: "mail.test".into(),
            port: 587,
            tls: TlsMode::Starttls,
            username: Some("u".into()),
            password: None,
            ca_pem: None,
            timeout: Duration::from_secs(5),
        });
        assert!(matches!(r, Err(MailError::Config(_))));
    }
}
