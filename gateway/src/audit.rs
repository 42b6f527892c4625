//! The audit log from the gateway's side. Everything that must leave a trace calls
//! [`App::audit`] with a [`Context`] (who, from where, which request) and an [`Event`] (what,
//! to whom, with what outcome); the entry is appended through the store's single writer, so
//! the hash chain has one order (`recorder::audit` holds the chain and its rules).
//!
//! Every `checkpoint_every` entries, on the periodic sweep when entries were added, and at
//! shutdown, the head of the chain is signed with the Ed25519 checkpoint key, which lives in a
//! file apart from the database (`<data>/keys/audit-checkpoint.key` unless configured).
//!
//! Entries never carry message bodies, codes, keys or clear customer contact details.

use crate::api::ApiError;
use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::ids::{CustomerId, UserId};
use crate::store::{AuditCheckpoint, AuditEntry, AuditRecord, Store, StoreError, User};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use recorder::audit::{CheckpointKey, ObjectRef};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

pub use recorder::audit::{Action, Outcome};

/// Longest `User-Agent` and `X-Request-Id` kept.
const MAX_HEADER: usize = 256;

/// Who acted and from where: the staff user (or none for customers and the system), the
/// client's address, user agent and request id.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub actor: Option<UserId>,
    /// `agent`, …, `admin`; `customer` or `system` when there is no staff actor.
    pub role: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Context {
    /// The gateway itself (expiry of grants, shutdown checkpoints).
    pub fn system() -> Context {
        Context {
            role: Some("system".into()),
            ..Default::default()
        }
    }

    /// A customer's own action (a card number they typed).
    pub fn customer() -> Context {
        Context {
            role: Some("customer".into()),
            ..Default::default()
        }
    }

    /// This context, acted in by a staff user with their current role.
    pub fn by(mut self, user: &User) -> Context {
        self.actor = Some(user.id);
        self.role = Some(user.role.as_str().to_string());
        self
    }
}

impl FromRequestParts<App> for Context {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _app: &App) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(MAX_HEADER).collect::<String>())
        };
        // A caller's request id is kept only if it looks like one; otherwise one is made.
        let request_id = header("x-request-id")
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            })
            .unwrap_or_else(|| crate::auth::token::random_string(12));
        Ok(Context {
            actor: None,
            role: None,
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            user_agent: header("user-agent"),
            request_id: Some(request_id),
        })
    }
}

/// What happened, to which customer or object, with what outcome.
#[derive(Clone, Debug)]
pub struct Event {
    pub action: Action,
    pub outcome: Outcome,
    pub customer: Option<CustomerId>,
    pub object: Option<ObjectRef>,
    /// Short and never sensitive: a field name, a stated reason, `agent -> lead`.
    pub detail: Option<String>,
}

impl Event {
    pub fn new(action: Action, outcome: Outcome) -> Event {
        Event {
            action,
            outcome,
            customer: None,
            object: None,
            detail: None,
        }
    }

    pub fn allowed(action: Action) -> Event {
        Event::new(action, Outcome::Allowed)
    }

    pub fn denied(action: Action) -> Event {
        Event::new(action, Outcome::Denied)
    }

    pub fn customer(mut self, id: CustomerId) -> Event {
        self.customer = Some(id);
        self
    }

    pub fn object(mut self, kind: &str, id: i64) -> Event {
        self.object = Some(ObjectRef::new(kind, id));
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = Some(detail.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log unavailable: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] recorder::audit::KeyError),
}

/// Appends entries and signs checkpoints.
pub struct Auditor {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    key: CheckpointKey,
    every: i64,
    /// The last entry covered by a checkpoint this process knows of; `None` until read.
    signed: Mutex<Option<i64>>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("key", &self.key)
            .field("every", &self.every)
            .finish()
    }
}

/// Where the checkpoint key lives: the configured file, or `keys/audit-checkpoint.key` under
/// the data dir.
pub fn key_path(config: &Config) -> PathBuf {
    config
        .audit
        .key_file
        .clone()
        .unwrap_or_else(|| config.data.join("keys").join("audit-checkpoint.key"))
}

/// The checkpoint key of this configuration. A configured file (mounted from a secret
/// manager) must exist; the default one under the data dir is created on first run.
pub fn configured_key(config: &Config) -> Result<CheckpointKey, AuditError> {
    match &config.audit.key_file {
        Some(path) => Ok(CheckpointKey::load(path)?),
        None => load_key(&key_path(config)),
    }
}

/// Loads the checkpoint key, creating it (0600) with a warning on first run, and writes its
/// public half beside it (`.pub`) for auditors who verify elsewhere.
pub fn load_key(path: &Path) -> Result<CheckpointKey, AuditError> {
    let (key, created) = CheckpointKey::load_or_create(path)?;
    if created {
        tracing::warn!(
            path = %path.display(),
            key_id = %key.id(),
            "created a new audit checkpoint key; keep a copy apart from the database backups \
             (in production, mount it from a secret manager with --audit-key-file)"
        );
    }
    let public = public_key_path(path);
    if !public.exists() {
        let text = format!("{}\n", hex::encode(key.verifying_key().as_bytes()));
        if let Err(e) = std::fs::write(&public, text) {
            tracing::warn!(path = %public.display(), error = %e, "cannot write the public checkpoint key");
        }
    }
    Ok(key)
}

/// The public key file beside a checkpoint key file.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

impl Auditor {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        key: CheckpointKey,
        every: u64,
    ) -> Auditor {
        Auditor {
            store,
            clock,
            key,
            every: i64::try_from(every.max(1)).unwrap_or(i64::MAX),
            signed: Mutex::new(None),
        }
    }

    /// Appends one entry. A failure is logged here; callers that must not proceed without
    /// an entry (a reveal) refuse on `Err`, the others go on.
    pub async fn record(&self, ctx: &Context, ev: Event) -> Result<AuditRecord, AuditError> {
        let entry = AuditEntry {
            at: self.clock.now().0,
            actor_id: ctx.actor.map(|u| u.0),
            actor_role: ctx.role.clone(),
            action: ev.action.as_str().to_string(),
            outcome: ev.outcome.as_str().to_string(),
            customer_id: ev.customer.map(|c| c.0),
            object: ev.object,
            detail: ev.detail,
            ip: ctx.ip.clone(),
            user_agent: ctx.user_agent.clone(),
            request_id: ctx.request_id.clone(),
        }
        .bounded();
        let record = self.store.append_audit(&entry).await.inspect_err(|e| {
            tracing::error!(target: "deskgate::security", action = ev.action.as_str(), error = %e, "audit entry not written");
        })?;
        if record.seq % self.every == 0 {
            if let Err(e) = self.sign(record.seq, record.hash).await {
                tracing::error!(target: "deskgate::security", error = %e, "audit checkpoint not written");
            }
        }
        Ok(record)
    }

    /// Signs the head of the chain if entries were added since the last checkpoint.
    pub async fn checkpoint(&self) -> Result<Option<AuditCheckpoint>, AuditError> {
        match self.store.audit_head().await? {
            Some((seq, hash)) => self.sign(seq, hash).await,
            None => Ok(None),
        }
    }

    async fn sign(
        &self,
        seq: i64,
        hash: recorder::audit::ChainHash,
    ) -> Result<Option<AuditCheckpoint>, AuditError> {
        let mut signed = self.signed.lock().await;
        let last = match *signed {
            Some(s) => s,
            None => self
                .store
                .audit_checkpoints()
                .await?
                .last()
                .map_or(0, |c| c.seq),
        };
        if seq <= last {
            *signed = Some(last);
            return Ok(None);
        }
        let checkpoint = self.key.sign(seq, hash, self.clock.now().0);
        self.store.add_audit_checkpoint(&checkpoint).await?;
        *signed = Some(seq);
        Ok(Some(checkpoint))
    }

    /// The id of the key that signs checkpoints.
    pub fn key_id(&self) -> String {
        self.key.id()
    }

    /// The public half of the checkpoint key, to verify the log with (`GET /api/audit/status`).
    pub fn verifying_key(&self) -> recorder::audit::VerifyingKey {
        self.key.verifying_key()
    }
}

impl App {
    /// Writes one audit entry. See [`Auditor::record`].
    pub async fn audit(&self, ctx: &Context, event: Event) -> Result<AuditRecord, AuditError> {
        self.auditor.record(ctx, event).await
    }
}

/// Entries read per page when the whole log is walked.
const PAGE: i64 = 1000;

/// Checks the whole log in the store against its checkpoints and `key`: `Ok(Err(..))` names
/// the first bad entry, `Err` is a store that could not be read.
pub async fn verify_store(
    store: &dyn Store,
    key: &recorder::audit::VerifyingKey,
) -> Result<Result<recorder::audit::Verified, recorder::audit::Broken>, StoreError> {
    let checkpoints = store.audit_checkpoints().await?;
    let mut verifier = match recorder::audit::Verifier::new(key, checkpoints) {
        Ok(v) => v,
        Err(broken) => return Ok(Err(broken)),
    };
    let mut after = 0;
    loop {
        let page = store.audit_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            if let Err(broken) = verifier.feed(r) {
                return Ok(Err(broken));
            }
        }
    }
    Ok(verifier.finish())
}

/// Writes the log as JSON lines (one entry per line, in log order, after `after`); returns
/// the first and last entry written.
pub async fn export(
    store: &dyn Store,
    after: i64,
    out: &mut impl std::io::Write,
) -> anyhow::Result<Option<(i64, i64)>> {
    let mut range = None;
    let mut after = after;
    loop {
        let page = store.audit_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            serde_json::to_writer(&mut *out, &crate::api::audit::AuditEntryView::from(r))?;
            out.write_all(b"\n")?;
            range = Some((range.map_or(r.seq, |(first, _)| first), r.seq));
        }
    }
    out.flush()?;
    Ok(range)
}
