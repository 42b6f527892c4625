//! TLS built in: the certificate and key come from PEM files, TLS 1.2 and 1.3 only with
//! AEAD suites and forward secrecy, ALPN `h2` and `http/1.1`. The files are read again on
//! SIGHUP and whenever their modification time changes, so a renewed certificate is served to
//! new connections without a restart; a pair that fails to load keeps the one in use.

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// What `--tls-cert` and `--tls-key` name.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM: the server certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files' modification times are looked at.
    pub watch_every: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("the key in {path} is not usable: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the certificate does not match the key: {0}")]
    Mismatch(String),
}

/// Suites offered: TLS 1.3's three, and for TLS 1.2 only ECDHE with AES-GCM or ChaCha20.
fn suites() -> Vec<rustls::SupportedCipherSuite> {
    use provider::cipher_suite::*;
    vec![
        TLS13_AES_256_GCM_SHA384,
        TLS13_AES_128_GCM_SHA256,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// Reads and checks a certificate chain and its key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.to_path_buf(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_path_buf(),
            message: "no CERTIFICATE block".into(),
        });
    }
    let key_pem = read(key)?;
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: key.to_path_buf(),
        message: format!("no private key ({e})"),
    })?;
    let signing = provider::sign::any_supported_type(&der).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        message: e.to_string(),
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(certified)
}

/// Hands every handshake the pair loaded last.
#[derive(Debug)]
pub struct Reloading {
    config: TlsConfig,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of the files when last loaded.
    stamp: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

impl Reloading {
    pub fn new(config: TlsConfig) -> Result<Arc<Reloading>, TlsError> {
        let pair = load_pair(&config.cert, &config.key)?;
        let stamp = stamps(&config);
        Ok(Arc::new(Reloading {
            config,
            current: RwLock::new(Arc::new(pair)),
            stamp: RwLock::new(stamp),
        }))
    }

    /// Loads the files again; on failure the pair in use stays and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = stamps(&self.config);
        let pair = load_pair(&self.config.cert, &self.config.key)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(pair);
        }
        if let Ok(mut s) = self.stamp.write() {
            *s = stamp;
        }
        Ok(())
    }

    fn changed(&self) -> bool {
        let now = stamps(&self.config);
        self.stamp.read().map(|s| *s != now).unwrap_or(false)
    }

    /// The rustls server config around this resolver.
    pub fn server_config(self: &Arc<Self>) -> ServerConfig {
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: suites(),
            ..provider::default_provider()
        };
        #[allow(clippy::expect_used)] // start-up: the versions and suites above are supported.
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("TLS 1.2 and 1.3 with the ring provider")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    /// Reloads on SIGHUP and when a file's modification time changes, until `stop`.
    pub fn spawn_watcher(self: &Arc<Self>, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.watch_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<()>();
                let why = tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = hangup => "SIGHUP",
                    _ = tick.tick() => {
                        if !this.changed() { continue; }
                        "file change"
                    }
                };
                match this.reload() {
                    Ok(()) => tracing::info!(
                        target: "deskgate::security",
                        trigger = why,
                        cert = %this.config.cert.display(),
                        "TLS certificate reloaded"
                    ),
                    Err(e) => tracing::error!(
                        target: "deskgate::security",
                        trigger = why,
                        error = %e,
                        "TLS certificate reload failed; still serving the previous one"
                    ),
                }
            }
        });
    }
}

fn stamps(c: &TlsConfig) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(&c.cert), m(&c.key))
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}
