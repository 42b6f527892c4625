//! The audit log from the gateway's side. Everything that must leave a trace calls
//! [`App::audit`] with a [`Context`] (who, from where, which request) and an [`Event`] (what,
//! to whom, with what outcome); the entry is appended through the store's single writer, so
//! the hash chain has one order (`recorder::audit` holds the chain and its rules).
//!
//! Every `checkpoint_every` entries, on the periodic sweep when entries were added, and at
//! shutdown, the head of the chain is signed with the Ed25519 checkpoint key, which lives in a
//! file apart from the database (`<data>/keys/audit-checkpoint.key` unless configured). Each
//! checkpoint chains to the one before it and is written to the database and to the
//! checkpoint log beside the key (and its optional copy); [`verify_store`] checks the log of
//! entries against both.
//!
//! Entries never carry message bodies, codes, keys or clear customer contact details.

use crate::api::ApiError;
use crate::app::App;
use crate::clock::{Clock, Timestamp};
use crate::config::Config;
use crate::ids::{CustomerId, UserId};
use crate::store::{AuditCheckpoint, AuditEntry, AuditRecord, Store, StoreError, User};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use recorder::audit::{CheckpointKey, CheckpointLog, ObjectRef};
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
                .get::<crate::proxy::ClientIp>()
                .map(|c| c.0.to_string())
                .or_else(|| {
                    parts
                        .extensions
                        .get::<ConnectInfo<SocketAddr>>()
                        .map(|c| c.0.ip().to_string())
                }),
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
    /// Every customer a list read showed (one entry per listing, found by each customer).
    pub customers: Vec<CustomerId>,
}

impl Event {
    pub fn new(action: Action, outcome: Outcome) -> Event {
        Event {
            action,
            outcome,
            customer: None,
            object: None,
            detail: None,
            customers: Vec::new(),
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

    /// The customers a list read showed.
    pub fn customers(mut self, ids: impl IntoIterator<Item = CustomerId>) -> Event {
        self.customers = ids.into_iter().collect();
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log unavailable: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] recorder::audit::KeyError),
    #[error(transparent)]
    Log(#[from] recorder::audit::LogError),
    #[error("checkpoint log writer failed: {0}")]
    Join(String),
}

/// Appends entries and signs checkpoints.
pub struct Auditor {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// `None`: entries are appended but not signed (a command run without the private key);
    /// the gateway signs them at its next checkpoint.
    key: Option<CheckpointKey>,
    every: i64,
    /// Where every signed checkpoint is also appended, outside the database.
    logs: Vec<CheckpointLog>,
    /// The last checkpoint this process knows of; `None` until read from the store.
    last: Mutex<Option<Option<AuditCheckpoint>>>,
    /// Every new entry is also handed here (the anomaly rules), without waiting.
    watcher: std::sync::OnceLock<tokio::sync::mpsc::Sender<AuditRecord>>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("key", &self.key)
            .field("every", &self.every)
            .field("logs", &self.logs)
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

/// Where signed checkpoints are appended: the configured file, or `audit-checkpoints.jsonl`
/// beside the checkpoint key; then the optional copy (a SIEM-watched or WORM path).
pub fn checkpoint_logs(config: &Config) -> Vec<CheckpointLog> {
    let primary = config
        .audit
        .log_file
        .clone()
        .unwrap_or_else(|| key_path(config).with_file_name(CHECKPOINT_LOG_NAME));
    let mut logs = vec![CheckpointLog::new(primary)];
    if let Some(copy) = &config.audit.copy_file {
        logs.push(CheckpointLog::new(copy.clone()));
    }
    logs
}

/// File name of the checkpoint log beside the checkpoint key.
pub const CHECKPOINT_LOG_NAME: &str = "audit-checkpoints.jsonl";

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

/// Signers retry this often when another process stored a checkpoint in between.
const SIGN_ATTEMPTS: usize = 3;

impl Auditor {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        key: Option<CheckpointKey>,
        every: u64,
        logs: Vec<CheckpointLog>,
    ) -> Auditor {
        Auditor {
            store,
            clock,
            key,
            every: i64::try_from(every.max(1)).unwrap_or(i64::MAX),
            logs,
            watcher: std::sync::OnceLock::new(),
            last: Mutex::new(None),
        }
    }

    /// The auditor of a configuration: its checkpoint key (created under the data dir on
    /// first run unless configured) and its checkpoint logs, checked writable now so that a
    /// log that cannot be written stops the start rather than the first checkpoint.
    pub fn configured(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Auditor, AuditError> {
        let key = configured_key(config)?;
        let logs = checkpoint_logs(config);
        for log in &logs {
            log.check_writable()?;
        }
        Ok(Auditor::new(
            store,
            clock,
            Some(key),
            config.audit.checkpoint_every,
            logs,
        ))
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
            customers: ev.customers.iter().map(|c| c.0).collect(),
        }
        .bounded();
        let record = self.store.append_audit(&entry).await.inspect_err(|e| {
            tracing::error!(target: "deskgate::security", action = ev.action.as_str(), error = %e, "audit entry not written");
        })?;
        if let Some(w) = self.watcher.get() {
            if w.try_send(record.clone()).is_err() {
                tracing::warn!(target: "deskgate::security", "anomaly rules behind: an audit entry was not looked at");
            }
        }
        if record.seq % self.every == 0 {
            if let Err(e) = self.sign(record.seq, record.hash).await {
                tracing::error!(target: "deskgate::security", error = %e, "audit checkpoint not written");
            }
        }
        Ok(record)
    }

    /// Hands every entry appended from now on to `tx` as well (once; later calls are ignored).
    pub fn watch(&self, tx: tokio::sync::mpsc::Sender<AuditRecord>) {
        let _ = self.watcher.set(tx);
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
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let mut last = self.last.lock().await;
        for _ in 0..SIGN_ATTEMPTS {
            let known = match last.take() {
                Some(known) => known,
                None => self.store.audit_checkpoints().await?.pop(),
            };
            if known.as_ref().is_some_and(|c| c.seq >= seq) {
                *last = Some(known);
                return Ok(None);
            }
            let prev = known
                .as_ref()
                .map_or(recorder::audit::GENESIS, |c| c.digest());
            let checkpoint = key.sign(seq, hash, self.clock.now().0, prev);
            let after = known.as_ref().map(|c| c.seq);
            if !self.store.add_audit_checkpoint(&checkpoint, after).await? {
                // Another process (a `deskgate` command) signed meanwhile: chain onto its.
                continue;
            }
            *last = Some(Some(checkpoint.clone()));
            // Still holding `last`: a check of the chain ([`Auditor::verify_options`]) sees
            // this checkpoint in both places or in neither.
            self.append_to_logs(&checkpoint).await?;
            return Ok(Some(checkpoint));
        }
        Ok(None)
    }

    /// Writes a stored checkpoint to every checkpoint log, off the async workers (each append
    /// is synced to disk).
    async fn append_to_logs(&self, checkpoint: &AuditCheckpoint) -> Result<(), AuditError> {
        for log in &self.logs {
            let (log, c) = (log.clone(), checkpoint.clone());
            let written = tokio::task::spawn_blocking(move || log.append(&c))
                .await
                .map_err(|e| AuditError::Join(e.to_string()))?;
            if let Err(e) = written {
                tracing::error!(target: "deskgate::security", error = %e, seq = checkpoint.seq,
                    "checkpoint stored in the database but not in the checkpoint log; `deskgate audit verify` will report it");
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// The id of the key that signs checkpoints, if this auditor signs.
    pub fn key_id(&self) -> Option<String> {
        self.key.as_ref().map(CheckpointKey::id)
    }

    /// The public half of the checkpoint key, to verify the log with (`GET /api/audit/status`);
    /// `None` when this auditor does not sign.
    pub fn verifying_key(&self) -> Option<recorder::audit::VerifyingKey> {
        self.key.as_ref().map(CheckpointKey::verifying_key)
    }

    /// What `deskgate audit verify` checks besides the key, as this running auditor sees it:
    /// the checkpoints of its first checkpoint log and of the database, read while no
    /// checkpoint is being signed (one stored in the database and not yet in the log is not
    /// a cut log), and the bound on the unsigned end at `now`.
    pub async fn verify_options(&self, now: Timestamp) -> Result<VerifyOptions, AuditError> {
        let _signing = self.last.lock().await;
        let logged = match self.logs.first() {
            Some(log) => {
                let log = log.clone();
                tokio::task::spawn_blocking(move || log.read())
                    .await
                    .map_err(|e| AuditError::Join(e.to_string()))??
            }
            None => None,
        };
        let checkpoints = Some(self.store.audit_checkpoints().await?);
        let max_age_ms = i64::try_from(unsigned_max_age().as_millis()).unwrap_or(i64::MAX);
        Ok(VerifyOptions {
            logged,
            checkpoints,
            freshness: Some(recorder::audit::Freshness {
                now: now.0,
                max_age_ms,
                max_entries: self.every,
            }),
        })
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

/// The read side of an audit log, as verification walks it: the running store, or a data
/// dir opened read-only ([`crate::store::sqlite::AuditReader`]).
#[async_trait::async_trait]
pub trait AuditSource: Send + Sync {
    async fn records_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>, StoreError>;
    async fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError>;
}

#[async_trait::async_trait]
impl AuditSource for dyn Store {
    async fn records_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_after(after, limit).await
    }
    async fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        self.audit_checkpoints().await
    }
}

#[async_trait::async_trait]
impl AuditSource for crate::store::sqlite::AuditReader {
    async fn records_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        crate::store::sqlite::AuditReader::records_after(self, after, limit).await
    }
    async fn checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        crate::store::sqlite::AuditReader::checkpoints(self).await
    }
}

/// What verification checks against besides the key.
pub struct VerifyOptions {
    /// Checkpoints read from the checkpoint log (`None`: no log file exists).
    pub logged: Option<Vec<AuditCheckpoint>>,
    /// The database's checkpoints, when read together with `logged`; `None`: read them from
    /// the store being verified.
    pub checkpoints: Option<Vec<AuditCheckpoint>>,
    /// The bound on the unsigned end of the log; `None` skips that check.
    pub freshness: Option<recorder::audit::Freshness>,
}

/// How old an unsigned entry may be: the gateway signs on its sweep, so two sweeps is the
/// longest an entry of a running gateway stays unsigned.
pub fn unsigned_max_age() -> std::time::Duration {
    crate::server::SWEEP * 2
}

/// Checks the whole log against its checkpoints (those in the database joined with the
/// checkpoint log's) and `key`: `Ok(Err(..))` names the first bad entry, `Err` is a store that
/// could not be read.
pub async fn verify_store<S: AuditSource + ?Sized>(
    store: &S,
    key: &recorder::audit::VerifyingKey,
    options: VerifyOptions,
) -> Result<Result<recorder::audit::Verified, recorder::audit::Broken>, StoreError> {
    use recorder::audit::{Anchors, Broken, Verifier};
    let in_db = match options.checkpoints {
        Some(read) => read,
        None => store.checkpoints().await?,
    };
    let anchors = match options.logged {
        Some(logged) => match Anchors::join(in_db, logged) {
            Ok(a) => a,
            Err(broken) => return Ok(Err(broken)),
        },
        None => {
            // Without the log, chained checkpoints in the database cannot be cross-checked:
            // that the log is gone is itself the finding.
            if let Some(c) = in_db.iter().find(|c| c.prev.is_some()) {
                return Ok(Err(Broken::NotLogged { seq: c.seq }));
            }
            Anchors::database_only(in_db)
        }
    };
    let mut verifier = match Verifier::with_anchors(key, anchors) {
        Ok(v) => v,
        Err(broken) => return Ok(Err(broken)),
    };
    let mut after = 0;
    loop {
        let page = store.records_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            if let Err(broken) = verifier.feed(r) {
                return Ok(Err(broken));
            }
        }
    }
    Ok(verifier.finish(options.freshness))
}

/// Writes the log as JSON lines (one entry per line, in log order, after `after`); returns
/// the first and last entry written.
pub async fn export<S: AuditSource + ?Sized>(
    store: &S,
    after: i64,
    out: &mut impl std::io::Write,
) -> anyhow::Result<Option<(i64, i64)>> {
    let mut range = None;
    let mut after = after;
    loop {
        let page = store.records_after(after, PAGE).await?;
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
