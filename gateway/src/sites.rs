//! Embedding sites: the widget presents a site key; a site may sign its customers' identity.
//! With no site configured, a `demo` site is created whose identity secret lives in the data
//! dir (mode 0600), so signed identities can be tried without any configuration.

use crate::auth::token::random_string;
use crate::config::{Config, SiteConfig};
use crate::origin::Origin;
use anyhow::Context;
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::Path;

pub struct Site {
    pub key: String,
    pub name: String,
    pub identity_secret: Option<SecretString>,
    /// Pages besides the gateway's own that may embed the widget (see [`crate::origin`]).
    pub allowed_origins: Vec<Origin>,
    /// The widget asks for a name and an optional email before the first message.
    pub prechat: bool,
    /// Admits phone streams signed by Twilio (`X-Twilio-Signature`), see
    /// [`crate::voice::signature`].
    pub twilio_auth_token: Option<SecretString>,
}

pub struct Sites {
    by_key: HashMap<String, Site>,
}

pub const DEMO_SITE: &str = "demo";

impl Sites {
    pub fn load(config: &Config) -> anyhow::Result<Sites> {
        let mut by_key = HashMap::new();
        let configured: Vec<SiteConfig> = if config.sites.is_empty() {
            let path = config.data.join("sites").join("demo.identity-secret");
            ensure_secret_file(&path)?;
            vec![SiteConfig {
                key: DEMO_SITE.into(),
                name: Some("Demo".into()),
                identity_secret: None,
                identity_secret_file: Some(path),
                allowed_origins: Vec::new(),
                prechat: false,
                language: None,
                twilio_auth_token: None,
                twilio_auth_token_file: None,
            }]
        } else {
            config.sites.clone()
        };
        for s in configured {
            let allowed_origins = s
                .allowed_origins
                .iter()
                .map(|o| Origin::parse(o).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("site {}", s.key))?;
            let secret = match (&s.identity_secret, &s.identity_secret_file) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(path)) => Some(read_secret(path)?),
                (None, None) => None,
            };
            let twilio = match (&s.twilio_auth_token, &s.twilio_auth_token_file) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(path)) => Some(read_secret(path)?),
                (None, None) => None,
            };
            by_key.insert(
                s.key.clone(),
                Site {
                    name: s.name.clone().unwrap_or_else(|| s.key.clone()),
                    key: s.key,
                    identity_secret: secret,
                    allowed_origins,
                    prechat: s.prechat,
                    twilio_auth_token: twilio,
                },
            );
        }
        Ok(Sites { by_key })
    }

    pub fn get(&self, key: &str) -> Option<&Site> {
        self.by_key.get(key)
    }

    pub fn all(&self) -> impl Iterator<Item = &Site> {
        self.by_key.values()
    }
}

fn read_secret(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read identity secret {}", path.display()))?;
    let trimmed = text.trim();
    anyhow::ensure!(
        trimmed.len() >= 16,
        "identity secret {} is shorter than 16 characters",
        path.display()
    );
    Ok(SecretString::from(trimmed.to_string()))
}

/// Creates a random secret file readable only by its owner, unless it exists.
fn ensure_secret_file(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(path, random_string(32).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
