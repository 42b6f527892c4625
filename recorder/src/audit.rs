//! The tamper-evident audit log: what an entry says, how entries are chained, how the chain is
//! checkpointed and how the whole log is verified.
//!
//! Each entry is encoded canonically (a fixed field order, every field length-prefixed) and
//! stores `hash_i = SHA-256(canonical(entry_i) ‖ hash_{i-1})`, with 32 zero bytes before the
//! first. Changing, removing, reordering or inserting an entry breaks the hash of that entry
//! or of the next one. Because anyone who can write the database can also recompute a chain,
//! the head of the chain is signed every so often with an Ed25519 key that lives outside the
//! database ([`CheckpointKey`]): a rewritten chain no longer matches the signed heads.
//!
//! An entry says who, in which role, when, what, to which customer or object, with what
//! outcome, from where and in which request. It never holds message bodies, codes or keys.

pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signature, Signer, SigningKey};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

/// Hash of one entry in the chain.
pub type ChainHash = [u8; 32];

/// The hash that stands before the first entry.
pub const GENESIS: ChainHash = [0u8; 32];

/// What happened. Stored as its name; the list is closed so filters and reports can rely on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Login,
    LoginFailed,
    TicketRead,
    TranscriptRead,
    CustomerRead,
    PiiRevealed,
    CardNumberBlocked,
    GrantRequested,
    GrantApproved,
    GrantDenied,
    GrantUsed,
    GrantExpired,
    GrantRevoked,
    UserCreated,
    RoleChanged,
    UserDeactivated,
    UserReactivated,
    AuditRead,
    AuditExported,
    VerificationSent,
    VerificationPassed,
    VerificationFailed,
    VerificationLocked,
    SensitiveAction,
    TicketFlagged,
    MfaEnrolled,
    MfaPassed,
    MfaFailed,
    MfaRecoveryUsed,
    MfaDisabled,
    MfaReset,
    TranscriptShredded,
    CustomerShredded,
    KeysRotated,
    LegalHoldSet,
    LegalHoldReleased,
    /// A staff member copied customer data out of a ticket in the console (as it reports).
    CustomerDataCopied,
    /// A staff member exported an open ticket's transcript from the console.
    TranscriptExported,
    /// A staff member opened (downloaded) a file attached to a conversation.
    AttachmentRead,
    /// A call's recording was paused (PCI pause), with who and why.
    RecordingPaused,
    /// A paused recording resumed: by someone, or by the gateway when the pause ran too long.
    RecordingResumed,
    /// A call recording's data key destroyed at the end of its retention, and its file deleted.
    RecordingShredded,
    /// The gateway's anomaly rules raised an alert (detail: level, rule, message).
    AnomalyAlert,
}

impl Action {
    pub const ALL: [Action; 43] = [
        Action::Login,
        Action::LoginFailed,
        Action::TicketRead,
        Action::TranscriptRead,
        Action::CustomerRead,
        Action::PiiRevealed,
        Action::CardNumberBlocked,
        Action::GrantRequested,
        Action::GrantApproved,
        Action::GrantDenied,
        Action::GrantUsed,
        Action::GrantExpired,
        Action::GrantRevoked,
        Action::UserCreated,
        Action::RoleChanged,
        Action::UserDeactivated,
        Action::UserReactivated,
        Action::AuditRead,
        Action::AuditExported,
        Action::VerificationSent,
        Action::VerificationPassed,
        Action::VerificationFailed,
        Action::VerificationLocked,
        Action::SensitiveAction,
        Action::TicketFlagged,
        Action::MfaEnrolled,
        Action::MfaPassed,
        Action::MfaFailed,
        Action::MfaRecoveryUsed,
        Action::MfaDisabled,
        Action::MfaReset,
        Action::TranscriptShredded,
        Action::CustomerShredded,
        Action::KeysRotated,
        Action::LegalHoldSet,
        Action::LegalHoldReleased,
        Action::CustomerDataCopied,
        Action::TranscriptExported,
        Action::AttachmentRead,
        Action::RecordingPaused,
        Action::RecordingResumed,
        Action::RecordingShredded,
        Action::AnomalyAlert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::LoginFailed => "login_failed",
            Action::TicketRead => "ticket_read",
            Action::TranscriptRead => "transcript_read",
            Action::CustomerRead => "customer_read",
            Action::PiiRevealed => "pii_revealed",
            Action::CardNumberBlocked => "card_number_blocked",
            Action::GrantRequested => "grant_requested",
            Action::GrantApproved => "grant_approved",
            Action::GrantDenied => "grant_denied",
            Action::GrantUsed => "grant_used",
            Action::GrantExpired => "grant_expired",
            Action::GrantRevoked => "grant_revoked",
            Action::UserCreated => "user_created",
            Action::RoleChanged => "role_changed",
            Action::UserDeactivated => "user_deactivated",
            Action::UserReactivated => "user_reactivated",
            Action::AuditRead => "audit_read",
            Action::AuditExported => "audit_exported",
            Action::VerificationSent => "verification_sent",
            Action::VerificationPassed => "verification_passed",
            Action::VerificationFailed => "verification_failed",
            Action::VerificationLocked => "verification_locked",
            Action::SensitiveAction => "sensitive_action",
            Action::TicketFlagged => "ticket_flagged",
            Action::MfaEnrolled => "mfa_enrolled",
            Action::MfaPassed => "mfa_passed",
            Action::MfaFailed => "mfa_failed",
            Action::MfaRecoveryUsed => "mfa_recovery_used",
            Action::MfaDisabled => "mfa_disabled",
            Action::MfaReset => "mfa_reset",
            Action::TranscriptShredded => "transcript_shredded",
            Action::CustomerShredded => "customer_shredded",
            Action::KeysRotated => "keys_rotated",
            Action::LegalHoldSet => "legal_hold_set",
            Action::LegalHoldReleased => "legal_hold_released",
            Action::CustomerDataCopied => "customer_data_copied",
            Action::TranscriptExported => "transcript_exported",
            Action::AttachmentRead => "attachment_read",
            Action::RecordingPaused => "recording_paused",
            Action::RecordingResumed => "recording_resumed",
            Action::RecordingShredded => "recording_shredded",
            Action::AnomalyAlert => "anomaly_alert",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether what was attempted happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Permitted and done.
    Allowed,
    /// Refused by a rule (role, ownership, grant state).
    Denied,
    /// Attempted and failed (a wrong password).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Allowed, Outcome::Denied, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// The object an entry is about, e.g. `ticket 12`, `transcript 12`, `grant 3`, `user 7`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    pub id: i64,
}

impl ObjectRef {
    pub fn new(kind: &str, id: i64) -> ObjectRef {
        ObjectRef {
            kind: kind.to_string(),
            id,
        }
    }
}

/// One audit entry as it is hashed and stored. Text fields hold what the database holds, so
/// a row that was edited to something no [`Action`] names still verifies (and fails) like any
/// other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch, UTC.
    pub at: i64,
    /// The staff user who acted; `None` for customers and the system.
    pub actor_id: Option<i64>,
    /// The actor's role at the time (`agent`, …), or `customer` / `system`.
    pub actor_role: Option<String>,
    pub action: String,
    pub outcome: String,
    pub customer_id: Option<i64>,
    pub object: Option<ObjectRef>,
    /// A short, non-sensitive note: the revealed field's name, a stated reason, a role change.
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Every customer a list read showed (ascending, without repeats), so that "who looked at
    /// customer X" finds one entry per listing; empty for entries about one customer or none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub customers: Vec<i64>,
}

/// Longest stored text field, in bytes; longer values are cut (on a character boundary).
pub const MAX_FIELD: usize = 512;

/// Most customers one entry lists; above the largest list the gateway shows at once (a
/// staff socket's welcome: up to 1,000 assigned and 200 queued tickets).
pub const MAX_CUSTOMERS: usize = 4096;

impl Entry {
    /// A new entry of this action and outcome at `at`; set the other fields as needed.
    pub fn new(at: i64, action: Action, outcome: Outcome) -> Entry {
        Entry {
            at,
            actor_id: None,
            actor_role: None,
            action: action.as_str().to_string(),
            outcome: outcome.as_str().to_string(),
            customer_id: None,
            object: None,
            detail: None,
            ip: None,
            user_agent: None,
            request_id: None,
            customers: Vec::new(),
        }
    }

    /// Cuts every free-text field to [`MAX_FIELD`] bytes.
    pub fn bounded(mut self) -> Entry {
        for f in [
            &mut self.actor_role,
            &mut self.detail,
            &mut self.ip,
            &mut self.user_agent,
            &mut self.request_id,
        ]
        .into_iter()
        .flatten()
        {
            cut(f, MAX_FIELD);
        }
        self.customers.sort_unstable();
        self.customers.dedup();
        self.customers.truncate(MAX_CUSTOMERS);
        self
    }

    /// The bytes that are hashed: a version tag, then each field in a fixed order, integers as
    /// 8 big-endian bytes, text as a 4-byte length and UTF-8, absent values as a single 0 byte
    /// (present ones are preceded by 1). The sequence number is part of it, so an entry cannot
    /// be moved to another place in the log. An entry listing customers is encoded as v2: the
    /// same fields, then the count and each id; entries without keep the v1 bytes, so logs
    /// written before v2 verify unchanged.
    pub fn canonical(&self, seq: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 8 * self.customers.len());
        if self.customers.is_empty() {
            out.extend_from_slice(b"deskgate-audit-v1\0");
        } else {
            out.extend_from_slice(b"deskgate-audit-v2\0");
        }
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&self.at.to_be_bytes());
        put_int(&mut out, self.actor_id);
        put_text(&mut out, self.actor_role.as_deref());
        put_text(&mut out, Some(&self.action));
        put_text(&mut out, Some(&self.outcome));
        put_int(&mut out, self.customer_id);
        match &self.object {
            None => out.push(0),
            Some(o) => {
                out.push(1);
                put_text(&mut out, Some(&o.kind));
                out.extend_from_slice(&o.id.to_be_bytes());
            }
        }
        put_text(&mut out, self.detail.as_deref());
        put_text(&mut out, self.ip.as_deref());
        put_text(&mut out, self.user_agent.as_deref());
        put_text(&mut out, self.request_id.as_deref());
        if !self.customers.is_empty() {
            let n = u32::try_from(self.customers.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&n.to_be_bytes());
            for c in &self.customers {
                out.extend_from_slice(&c.to_be_bytes());
            }
        }
        out
    }

    /// This entry's link in the chain, at position `seq` after `prev`.
    pub fn chain_hash(&self, seq: i64, prev: &ChainHash) -> ChainHash {
        let mut h = Sha256::new();
        h.update(self.canonical(seq));
        h.update(prev);
        h.finalize().into()
    }
}

fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn put_int(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

fn put_text(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// An entry as stored: its place in the log and its chain hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: i64,
    pub entry: Entry,
    pub hash: ChainHash,
}

/// A signed statement that the chain's entry `seq` has hash `hash`, and that it follows the
/// checkpoint whose digest is `prev`: checkpoints form a chain of their own, so one removed
/// from the middle breaks the next one's link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: ChainHash,
    /// When it was signed, milliseconds since the epoch.
    pub at: i64,
    /// Which key signed it ([`key_id`]).
    pub key_id: String,
    /// [`Checkpoint::digest`] of the checkpoint before it ([`GENESIS`] for the first);
    /// `None` for checkpoints signed before checkpoints were chained (format v1).
    pub prev: Option<ChainHash>,
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// The signed bytes: v2 with the previous checkpoint's digest, v1 (legacy) without.
    fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(128);
        match &self.prev {
            None => m.extend_from_slice(b"deskgate-audit-checkpoint-v1\0"),
            Some(_) => m.extend_from_slice(b"deskgate-audit-checkpoint-v2\0"),
        }
        m.extend_from_slice(&self.seq.to_be_bytes());
        m.extend_from_slice(&self.hash);
        m.extend_from_slice(&self.at.to_be_bytes());
        if let Some(prev) = &self.prev {
            m.extend_from_slice(prev);
        }
        m
    }

    /// Whether `key` signed this checkpoint.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&self.message(), &sig).is_ok()
    }

    /// What the next checkpoint names as its `prev`: SHA-256 of the signed bytes.
    pub fn digest(&self) -> ChainHash {
        let mut h = Sha256::new();
        h.update(b"deskgate-audit-checkpoint-digest\0");
        h.update(self.message());
        h.finalize().into()
    }

    /// One line of the checkpoint log: JSON, hashes and signature in hex.
    pub fn to_line(&self) -> String {
        let line = LogLine {
            seq: self.seq,
            hash: hex::encode(self.hash),
            at: self.at,
            key_id: self.key_id.clone(),
            prev: self.prev.map(hex::encode),
            signature: hex::encode(self.signature),
        };
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Reads a line written by [`Checkpoint::to_line`].
    pub fn from_line(text: &str) -> Option<Checkpoint> {
        let line: LogLine = serde_json::from_str(text).ok()?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&line.hash, &mut hash).ok()?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&line.signature, &mut signature).ok()?;
        let prev = match line.prev {
            None => None,
            Some(p) => {
                let mut prev = [0u8; 32];
                hex::decode_to_slice(&p, &mut prev).ok()?;
                Some(prev)
            }
        };
        Some(Checkpoint {
            seq: line.seq,
            hash,
            at: line.at,
            key_id: line.key_id,
            prev,
            signature,
        })
    }
}

#[derive(Serialize, serde::Deserialize)]
struct LogLine {
    seq: i64,
    hash: String,
    at: i64,
    key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prev: Option<String>,
    signature: String,
}

/// A short name of a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read checkpoint key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create checkpoint key {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("checkpoint key {path} is not 64 hex digits (an Ed25519 seed)")]
    Malformed { path: String },
}

/// The Ed25519 key that signs checkpoints. It prints as `***`; its seed is wiped on drop.
pub struct CheckpointKey {
    signing: SigningKey,
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CheckpointKey(***)")
    }
}

impl CheckpointKey {
    /// A fresh random key.
    pub fn generate() -> CheckpointKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        CheckpointKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// Reads a key file: the 32-byte seed as 64 hex digits (surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<CheckpointKey, KeyError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        Self::from_hex(text.trim()).ok_or_else(|| KeyError::Malformed {
            path: path.display().to_string(),
        })
    }

    fn from_hex(text: &str) -> Option<CheckpointKey> {
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, seed.as_mut()).ok()?;
        Some(CheckpointKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// Loads the key at `path`, or creates it there (mode 0600, parent directories 0700) when
    /// there is none; the flag says it was created.
    pub fn load_or_create(path: &Path) -> Result<(CheckpointKey, bool), KeyError> {
        match Self::load(path) {
            Ok(k) => return Ok((k, false)),
            Err(KeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(e) => return Err(e),
        }
        let key = Self::generate();
        let create = |source| KeyError::Create {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            create_private_dir(dir).map_err(create)?;
        }
        let mut file = private_file(path).map_err(create)?;
        let text = Zeroizing::new(hex::encode(key.signing.to_bytes()));
        file.write_all(text.as_bytes()).map_err(create)?;
        file.write_all(b"\n").map_err(create)?;
        file.sync_all().map_err(create)?;
        Ok((key, true))
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn id(&self) -> String {
        key_id(&self.verifying_key())
    }

    /// Signs the head of the chain: entry `seq` has hash `hash`, after the checkpoint whose
    /// digest is `prev` ([`GENESIS`] for the first).
    pub fn sign(&self, seq: i64, hash: ChainHash, at: i64, prev: ChainHash) -> Checkpoint {
        let mut c = Checkpoint {
            seq,
            hash,
            at,
            key_id: self.id(),
            prev: Some(prev),
            signature: [0u8; 64],
        };
        c.signature = self.signing.sign(&c.message()).to_bytes();
        c
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// The first thing wrong with a log, naming the entry (or checkpoint) where it shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// Entries are numbered 1, 2, 3, … without gaps; this one is missing (deleted), or a row
    /// with another number stands in its place (inserted, reordered).
    #[error("entry {expected}: missing (found entry {found} in its place)")]
    Missing { expected: i64, found: i64 },
    /// The entry's contents or its position do not produce the hash stored with it (edited,
    /// moved, inserted), or it does not follow the hash before it (one before it was removed).
    #[error("entry {seq}: hash does not match its contents and the entry before it")]
    Hash { seq: i64 },
    /// A checkpoint was not signed by the expected key.
    #[error("checkpoint at entry {seq}: signature does not verify with key {key_id}")]
    Signature { seq: i64, key_id: String },
    /// The chain at a signed checkpoint differs from what was signed: some entry from `since`
    /// (the first after the previous good checkpoint) to `seq` was changed and the chain
    /// recomputed over it.
    #[error("entry {since}: the chain from here to entry {seq} differs from the checkpoint signed at entry {seq}")]
    Checkpoint { since: i64, seq: i64 },
    /// A checkpoint covers entries that are no longer there: the end of the log was cut off.
    #[error(
        "entry {seq}: missing (the log ends at entry {last}, a checkpoint covers entry {seq})"
    )]
    Truncated { seq: i64, last: i64 },
    /// A checkpoint does not name the one before it: a checkpoint between them was removed,
    /// or the chain of checkpoints was started again.
    #[error("checkpoint at entry {seq}: does not follow the checkpoint at entry {after} (a checkpoint between them was removed)")]
    Unchained { seq: i64, after: i64 },
    /// The database and the checkpoint log hold different checkpoints for one entry.
    #[error("checkpoint at entry {seq}: differs between the database and the checkpoint log")]
    Mismatch { seq: i64 },
    /// The checkpoint log has a checkpoint the database lacks: checkpoints were deleted.
    #[error("checkpoint at entry {seq}: in the checkpoint log but missing from the database (checkpoints were deleted)")]
    Deleted { seq: i64 },
    /// The database has a chained checkpoint the checkpoint log lacks: the log was cut,
    /// replaced, or is not the one this gateway writes.
    #[error("checkpoint at entry {seq}: in the database but missing from the checkpoint log (the log was cut or is another one)")]
    NotLogged { seq: i64 },
    /// Entries past the last checkpoint that the gateway would have signed by now.
    #[error("entries {first}-{last}: not covered by a signed checkpoint ({count} entries, the oldest {age_secs}s old; the gateway signs within {max_age_secs}s and every {max_entries} entries): added after its last checkpoint by a process that could not sign, or written to the database directly")]
    Unsigned {
        first: i64,
        last: i64,
        count: i64,
        age_secs: i64,
        max_age_secs: i64,
        max_entries: i64,
    },
}

impl Broken {
    /// The first bad entry, as `deskgate audit verify` names it.
    pub fn entry(&self) -> i64 {
        match self {
            Broken::Missing { expected, .. } => *expected,
            Broken::Checkpoint { since, .. } => *since,
            Broken::Unsigned { first, .. } => *first,
            Broken::Hash { seq }
            | Broken::Signature { seq, .. }
            | Broken::Truncated { seq, .. }
            | Broken::Unchained { seq, .. }
            | Broken::Mismatch { seq }
            | Broken::Deleted { seq }
            | Broken::NotLogged { seq } => *seq,
        }
    }
}

/// What a successful verification covered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Entries checked.
    pub entries: i64,
    /// Signed checkpoints checked.
    pub checkpoints: usize,
    /// The last entry covered by a signed checkpoint; entries after it are protected by the
    /// chain only until the next checkpoint.
    pub last_checkpoint: Option<i64>,
    /// Entries after the last checkpoint (within the freshness bound).
    pub unsigned: i64,
}

/// How stale the unsigned end of a log may be: the gateway signs every `max_entries`
/// entries and within `max_age_ms` of any entry, so more or older unsigned entries did not
/// come from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// The verifier's time, milliseconds since the epoch.
    pub now: i64,
    pub max_age_ms: i64,
    pub max_entries: i64,
}

/// The checkpoints to verify against: those in the database joined with those of the
/// checkpoint log kept outside it. Deleting checkpoints from the database then no longer
/// lets a rewritten log pass: the log still holds them.
#[derive(Clone, Debug, Default)]
pub struct Anchors {
    checkpoints: Vec<Checkpoint>,
    /// In the log, not in the database.
    deleted: Vec<i64>,
    /// Chained (v2) checkpoints in the database, not in the log.
    not_logged: Vec<i64>,
}

impl Anchors {
    /// The database's checkpoints alone (no checkpoint log to cross-check).
    pub fn database_only(db: Vec<Checkpoint>) -> Anchors {
        Anchors {
            checkpoints: db,
            ..Default::default()
        }
    }

    /// Joins the database's checkpoints with the log's; the same entry signed differently in
    /// the two is an error.
    pub fn join(db: Vec<Checkpoint>, log: Vec<Checkpoint>) -> Result<Anchors, Broken> {
        use std::collections::BTreeMap;
        let mut by_seq: BTreeMap<i64, Checkpoint> = BTreeMap::new();
        let mut in_log = std::collections::BTreeSet::new();
        for c in log {
            in_log.insert(c.seq);
            if let Some(old) = by_seq.get(&c.seq) {
                if *old != c {
                    return Err(Broken::Mismatch { seq: c.seq });
                }
            }
            by_seq.insert(c.seq, c);
        }
        let mut in_db = std::collections::BTreeSet::new();
        let mut not_logged = Vec::new();
        for c in db {
            in_db.insert(c.seq);
            match by_seq.get(&c.seq) {
                Some(old) if *old != c => return Err(Broken::Mismatch { seq: c.seq }),
                Some(_) => {}
                None => {
                    // Legacy checkpoints predate the log.
                    if c.prev.is_some() {
                        not_logged.push(c.seq);
                    }
                    by_seq.insert(c.seq, c);
                }
            }
        }
        let deleted = in_log.difference(&in_db).copied().collect();
        Ok(Anchors {
            checkpoints: by_seq.into_values().collect(),
            deleted,
            not_logged,
        })
    }
}

/// Checks a log one record at a time, in the order of their sequence numbers, against the
/// signed checkpoints. Memory stays constant whatever the length of the log.
pub struct Verifier {
    /// Checkpoints not yet reached, by ascending `seq`.
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    /// The last entry a signed checkpoint vouched for.
    vouched: i64,
    prev: ChainHash,
    last: i64,
    deleted: Vec<i64>,
    not_logged: Vec<i64>,
    /// The last checkpoint's entry, and the entries after it seen so far.
    final_checkpoint: i64,
    unsigned: i64,
    oldest_unsigned: Option<i64>,
}

impl Verifier {
    /// Checks every checkpoint's signature and the chain of checkpoints first: a forged or
    /// removed checkpoint is reported before any entry is read.
    pub fn new(key: &VerifyingKey, checkpoints: Vec<Checkpoint>) -> Result<Self, Broken> {
        Self::with_anchors(key, Anchors::database_only(checkpoints))
    }

    pub fn with_anchors(key: &VerifyingKey, anchors: Anchors) -> Result<Self, Broken> {
        let mut checkpoints = anchors.checkpoints;
        checkpoints.sort_by_key(|c| c.seq);
        for c in &checkpoints {
            if !c.signed_by(key) {
                return Err(Broken::Signature {
                    seq: c.seq,
                    key_id: key_id(key),
                });
            }
        }
        let mut before: Option<&Checkpoint> = None;
        for c in &checkpoints {
            if let Some(prev) = &c.prev {
                let expected = before.map_or(GENESIS, Checkpoint::digest);
                if *prev != expected {
                    return Err(Broken::Unchained {
                        seq: c.seq,
                        after: before.map_or(0, |b| b.seq),
                    });
                }
            }
            before = Some(c);
        }
        let final_checkpoint = checkpoints.last().map_or(0, |c| c.seq);
        Ok(Verifier {
            checkpoints,
            next_checkpoint: 0,
            vouched: 0,
            prev: GENESIS,
            last: 0,
            deleted: anchors.deleted,
            not_logged: anchors.not_logged,
            final_checkpoint,
            unsigned: 0,
            oldest_unsigned: None,
        })
    }

    /// The next record of the log.
    pub fn feed(&mut self, r: &Record) -> Result<(), Broken> {
        let expected = self.last + 1;
        if r.seq != expected {
            return Err(Broken::Missing {
                expected,
                found: r.seq,
            });
        }
        let hash = r.entry.chain_hash(r.seq, &self.prev);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&hash[..], &r.hash[..])) {
            return Err(Broken::Hash { seq: r.seq });
        }
        while let Some(c) = self.checkpoints.get(self.next_checkpoint) {
            if c.seq > r.seq {
                break;
            }
            // c.seq == r.seq: earlier ones were matched on their own entries.
            if c.seq == r.seq {
                if c.hash != hash {
                    return Err(Broken::Checkpoint {
                        since: self.vouched + 1,
                        seq: r.seq,
                    });
                }
                self.vouched = r.seq;
            }
            self.next_checkpoint += 1;
        }
        if r.seq > self.final_checkpoint {
            self.unsigned += 1;
            self.oldest_unsigned = Some(
                self.oldest_unsigned
                    .map_or(r.entry.at, |o| o.min(r.entry.at)),
            );
        }
        self.prev = hash;
        self.last = r.seq;
        Ok(())
    }

    /// Ends the check: every checkpoint must have been reached, the database must hold every
    /// checkpoint of the log and the log every chained one of the database, and, with a
    /// `freshness` bound, the unsigned end must be one the gateway could still be about to
    /// sign.
    pub fn finish(self, freshness: Option<Freshness>) -> Result<Verified, Broken> {
        if self.checkpoints.get(self.next_checkpoint).is_some() {
            return Err(Broken::Truncated {
                seq: self.last + 1,
                last: self.last,
            });
        }
        if let Some(seq) = self.deleted.first() {
            return Err(Broken::Deleted { seq: *seq });
        }
        if let Some(seq) = self.not_logged.first() {
            return Err(Broken::NotLogged { seq: *seq });
        }
        if let (Some(f), Some(oldest)) = (freshness, self.oldest_unsigned) {
            let age = f.now.saturating_sub(oldest);
            if self.unsigned > f.max_entries || age > f.max_age_ms {
                return Err(Broken::Unsigned {
                    first: self.final_checkpoint + 1,
                    last: self.last,
                    count: self.unsigned,
                    age_secs: age / 1000,
                    max_age_secs: f.max_age_ms / 1000,
                    max_entries: f.max_entries,
                });
            }
        }
        Ok(Verified {
            entries: self.last,
            checkpoints: self.checkpoints.len(),
            last_checkpoint: self.checkpoints.last().map(|c| c.seq),
            unsigned: self.unsigned,
        })
    }
}

/// Checks a whole log held in memory (tests, small exports), without a freshness bound.
pub fn verify(
    records: &[Record],
    checkpoints: Vec<Checkpoint>,
    key: &VerifyingKey,
) -> Result<Verified, Broken> {
    let mut v = Verifier::new(key, checkpoints)?;
    for r in records {
        v.feed(r)?;
    }
    v.finish(None)
}

/// The append-only file every signed checkpoint is also written to, outside the database
/// (beside the checkpoint key by default): one JSON line per checkpoint. Someone who can
/// rewrite the database cannot make its checkpoints disappear from here.
#[derive(Clone, Debug)]
pub struct CheckpointLog {
    path: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot write the checkpoint log {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read the checkpoint log {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("checkpoint log {path}, line {line}: not a checkpoint")]
    Malformed { path: String, line: usize },
}

impl CheckpointLog {
    pub fn new(path: impl Into<std::path::PathBuf>) -> CheckpointLog {
        CheckpointLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one checkpoint and syncs it to disk. The file is opened for appending only
    /// (mode 0600 when created), so an earlier line is never rewritten by the gateway.
    pub fn append(&self, c: &Checkpoint) -> Result<(), LogError> {
        let fail = |source| LogError::Write {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir).map_err(fail)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&self.path).map_err(fail)?;
        // One write per line: appends of several processes never interleave within a line.
        let mut line = c.to_line();
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(fail)?;
        file.sync_data().map_err(fail)
    }

    /// Checks that the file can be opened for appending (at start-up, before anything is
    /// signed), without writing to it.
    pub fn check_writable(&self) -> Result<(), LogError> {
        let fail = |source| LogError::Write {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            create_private_dir(dir).map_err(fail)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        opts.open(&self.path).map(|_| ()).map_err(fail)
    }

    /// Every checkpoint in the file; `None` when there is no file. A torn last line (a crash
    /// in the middle of an append) is ignored; any other bad line is an error.
    pub fn read(&self) -> Result<Option<Vec<Checkpoint>>, LogError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LogError::Read {
                    path: self.path.display().to_string(),
                    source,
                })
            }
        };
        let complete = text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match Checkpoint::from_line(line) {
                Some(c) => out.push(c),
                None if i + 1 == lines.len() && !complete => {}
                None => {
                    return Err(LogError::Malformed {
                        path: self.path.display().to_string(),
                        line: i + 1,
                    })
                }
            }
        }
        Ok(Some(out))
    }
}

/// Parses a public key written as 64 hex digits.
pub fn parse_verifying_key(text: &str) -> Option<VerifyingKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: i64) -> Entry {
        let mut e = Entry::new(1_800_000_000_000 + i, Action::TicketRead, Outcome::Allowed);
        e.actor_id = Some(7);
        e.actor_role = Some("agent".into());
        e.object = Some(ObjectRef::new("ticket", i));
        e
    }

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let e = entry(seq);
                let hash = e.chain_hash(seq, &prev);
                prev = hash;
                Record {
                    seq,
                    entry: e,
                    hash,
                }
            })
            .collect()
    }

    /// Signs a chain of checkpoints at these entries of `log`.
    fn signed(key: &CheckpointKey, log: &[Record], at: &[i64]) -> Vec<Checkpoint> {
        let mut prev = GENESIS;
        at.iter()
            .map(|&seq| {
                let c = key.sign(seq, log[(seq - 1) as usize].hash, seq, prev);
                prev = c.digest();
                c
            })
            .collect()
    }

    fn rechain(records: &mut [Record]) {
        let mut prev = GENESIS;
        for r in records {
            r.hash = r.entry.chain_hash(r.seq, &prev);
            prev = r.hash;
        }
    }

    #[test]
    fn an_untouched_log_verifies() {
        let key = CheckpointKey::generate();
        let log = chain(10);
        let cps = signed(&key, &log, &[5, 10]);
        let v = verify(&log, cps, &key.verifying_key()).unwrap();
        assert_eq!(v.entries, 10);
        assert_eq!(v.checkpoints, 2);
        assert_eq!(v.last_checkpoint, Some(10));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let key = CheckpointKey::generate();
        let mut log = chain(6);
        log[3].entry.actor_id = Some(8);
        let err = verify(&log, vec![], &key.verifying_key()).unwrap_err();
        assert_eq!(err, Broken::Hash { seq: 4 });
    }

    #[test]
    fn a_rewritten_chain_is_caught_by_the_signed_checkpoint() {
        let key = CheckpointKey::generate();
        let mut log = chain(6);
        let cps = signed(&key, &log, &[2, 6]);
        log[2].entry.outcome = "denied".into();
        rechain(&mut log);
        let err = verify(&log, cps, &key.verifying_key()).unwrap_err();
        assert_eq!(err, Broken::Checkpoint { since: 3, seq: 6 });
        assert_eq!(err.entry(), 3);
    }

    #[test]
    fn deletion_reordering_and_insertion_are_named() {
        let vk = CheckpointKey::generate().verifying_key();
        let mut deleted = chain(6);
        deleted.remove(2);
        assert_eq!(
            verify(&deleted, vec![], &vk).unwrap_err(),
            Broken::Missing {
                expected: 3,
                found: 4
            }
        );
        // Swapping two entries' places (their numbers move with the rows).
        let mut swapped = chain(6);
        let (a, b) = (swapped[1].entry.clone(), swapped[2].entry.clone());
        swapped[1].entry = b;
        swapped[2].entry = a;
        assert_eq!(
            verify(&swapped, vec![], &vk).unwrap_err(),
            Broken::Hash { seq: 2 }
        );
        // An entry slipped in, later ones renumbered.
        let mut inserted = chain(6);
        let mut forged = entry(99);
        forged.action = Action::Login.as_str().into();
        inserted.insert(
            3,
            Record {
                seq: 4,
                entry: forged,
                hash: [1; 32],
            },
        );
        for (i, r) in inserted.iter_mut().enumerate().skip(4) {
            r.seq = i as i64 + 1;
        }
        assert_eq!(
            verify(&inserted, vec![], &vk).unwrap_err(),
            Broken::Hash { seq: 4 }
        );
    }

    #[test]
    fn a_cut_off_end_is_caught_when_a_checkpoint_covers_it() {
        let key = CheckpointKey::generate();
        let mut log = chain(8);
        let cps = signed(&key, &log, &[8]);
        log.truncate(6);
        let err = verify(&log, cps, &key.verifying_key()).unwrap_err();
        assert_eq!(err, Broken::Truncated { seq: 7, last: 6 });
        assert_eq!(err.entry(), 7);
    }

    #[test]
    fn a_checkpoint_checked_with_another_key_fails() {
        let key = CheckpointKey::generate();
        let other = CheckpointKey::generate();
        let log = chain(3);
        let cps = signed(&key, &log, &[3]);
        let err = verify(&log, cps, &other.verifying_key()).unwrap_err();
        assert!(matches!(err, Broken::Signature { seq: 3, .. }), "{err}");
    }

    #[test]
    fn every_field_is_in_the_canonical_encoding() {
        let base = entry(1);
        let h = base.chain_hash(1, &GENESIS);
        type Change = Box<dyn Fn(&mut Entry)>;
        let variants: Vec<Change> = vec![
            Box::new(|e| e.at += 1),
            Box::new(|e| e.actor_id = None),
            Box::new(|e| e.actor_role = Some("admin".into())),
            Box::new(|e| e.action = "login".into()),
            Box::new(|e| e.outcome = "denied".into()),
            Box::new(|e| e.customer_id = Some(1)),
            Box::new(|e| e.object = Some(ObjectRef::new("ticket", 2))),
            Box::new(|e| e.object = Some(ObjectRef::new("grant", 1))),
            Box::new(|e| e.detail = Some(String::new())),
            Box::new(|e| e.ip = Some("127.0.0.1".into())),
            Box::new(|e| e.user_agent = Some("x".into())),
            Box::new(|e| e.request_id = Some("r".into())),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut e = base.clone();
            change(&mut e);
            assert_ne!(e.chain_hash(1, &GENESIS), h, "field change {i} not hashed");
        }
        assert_ne!(base.chain_hash(2, &GENESIS), h, "position not hashed");
        // Length prefixes keep adjacent fields from trading bytes.
        let mut a = base.clone();
        a.ip = Some("ab".into());
        a.user_agent = Some("c".into());
        let mut b = base.clone();
        b.ip = Some("a".into());
        b.user_agent = Some("bc".into());
        assert_ne!(a.canonical(1), b.canonical(1));
    }

    #[test]
    fn a_checkpoint_removed_from_the_middle_breaks_the_next_ones_link() {
        let key = CheckpointKey::generate();
        let log = chain(9);
        let mut cps = signed(&key, &log, &[3, 6, 9]);
        cps.remove(1);
        let err = verify(&log, cps, &key.verifying_key()).unwrap_err();
        assert_eq!(err, Broken::Unchained { seq: 9, after: 3 });
    }

    #[test]
    fn checkpoints_deleted_from_the_database_are_found_in_the_log() {
        let key = CheckpointKey::generate();
        let mut log = chain(8);
        let cps = signed(&key, &log, &[4, 8]);
        // The database keeps none; the chain is recomputed over an edited entry.
        log[5].entry.outcome = "denied".into();
        rechain(&mut log);
        let anchors = Anchors::join(vec![], cps.clone()).unwrap();
        let mut v = Verifier::with_anchors(&key.verifying_key(), anchors).unwrap();
        let err = log.iter().try_for_each(|r| v.feed(r)).unwrap_err();
        assert_eq!(err, Broken::Checkpoint { since: 5, seq: 8 });
        // Untouched entries, checkpoints gone from the database: the deletion is named.
        let log = chain(8);
        let cps = signed(&key, &log, &[4, 8]);
        let anchors = Anchors::join(vec![cps[0].clone()], cps.clone()).unwrap();
        let mut v = Verifier::with_anchors(&key.verifying_key(), anchors).unwrap();
        log.iter().try_for_each(|r| v.feed(r)).unwrap();
        assert_eq!(v.finish(None).unwrap_err(), Broken::Deleted { seq: 8 });
        // A database checkpoint the log does not have.
        let anchors = Anchors::join(cps.clone(), vec![cps[0].clone()]).unwrap();
        let mut v = Verifier::with_anchors(&key.verifying_key(), anchors).unwrap();
        log.iter().try_for_each(|r| v.feed(r)).unwrap();
        assert_eq!(v.finish(None).unwrap_err(), Broken::NotLogged { seq: 8 });
        // The same entry signed twice, differently.
        let other = key.sign(8, log[7].hash, 99, cps[0].digest());
        assert_eq!(
            Anchors::join(vec![other], cps).unwrap_err(),
            Broken::Mismatch { seq: 8 }
        );
    }

    #[test]
    fn an_old_unsigned_end_fails_the_freshness_bound() {
        let key = CheckpointKey::generate();
        let log = chain(10);
        let cps = signed(&key, &log, &[6]);
        let fresh = |now, max_entries| {
            let mut v = Verifier::new(&key.verifying_key(), cps.clone()).unwrap();
            log.iter().try_for_each(|r| v.feed(r)).unwrap();
            v.finish(Some(Freshness {
                now,
                max_age_ms: 60_000,
                max_entries,
            }))
        };
        let oldest = log[6].entry.at;
        assert_eq!(fresh(oldest + 60_000, 100).unwrap().unsigned, 4);
        let err = fresh(oldest + 60_001, 100).unwrap_err();
        assert!(
            matches!(
                err,
                Broken::Unsigned {
                    first: 7,
                    last: 10,
                    count: 4,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.entry(), 7);
        assert!(
            fresh(oldest, 3).is_err(),
            "more unsigned entries than the gateway leaves"
        );
    }

    #[test]
    fn checkpoints_survive_the_log_file_and_legacy_ones_still_verify() {
        let key = CheckpointKey::generate();
        let log = chain(4);
        let cps = signed(&key, &log, &[2, 4]);
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointLog::new(dir.path().join("keys/checkpoints.jsonl"));
        assert!(file.read().unwrap().is_none());
        for c in &cps {
            file.append(c).unwrap();
        }
        assert_eq!(file.read().unwrap().unwrap(), cps);
        // A line torn by a crash at the end is ignored; one in the middle is not.
        let mut text = std::fs::read_to_string(file.path()).unwrap();
        text.push_str("{\"seq\":5,\"ha");
        std::fs::write(file.path(), &text).unwrap();
        assert_eq!(file.read().unwrap().unwrap().len(), 2);
        std::fs::write(file.path(), format!("garbage\n{text}\n")).unwrap();
        assert!(matches!(
            file.read(),
            Err(LogError::Malformed { line: 1, .. })
        ));

        // A checkpoint signed before checkpoints were chained (v1) verifies and anchors the
        // first chained one.
        let mut legacy = Checkpoint {
            seq: 2,
            hash: log[1].hash,
            at: 1,
            key_id: key.id(),
            prev: None,
            signature: [0; 64],
        };
        legacy.signature = key.signing.sign(&legacy.message()).to_bytes();
        let next = key.sign(4, log[3].hash, 2, legacy.digest());
        verify(&log, vec![legacy, next], &key.verifying_key()).unwrap();
    }

    #[test]
    fn listed_customers_are_hashed_and_an_entry_without_keeps_the_v1_bytes() {
        let base = entry(1);
        assert!(base.canonical(1).starts_with(b"deskgate-audit-v1\0"));
        let mut listing = base.clone();
        listing.customers = vec![9, 3, 3];
        let listing = listing.bounded();
        assert_eq!(listing.customers, vec![3, 9]);
        assert!(listing.canonical(1).starts_with(b"deskgate-audit-v2\0"));
        let mut other = listing.clone();
        other.customers = vec![3, 8];
        assert_ne!(
            listing.chain_hash(1, &GENESIS),
            other.chain_hash(1, &GENESIS)
        );
        assert_ne!(
            listing.chain_hash(1, &GENESIS),
            base.chain_hash(1, &GENESIS)
        );
    }

    #[test]
    fn key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit-checkpoint.key");
        let (k1, created) = CheckpointKey::load_or_create(&path).unwrap();
        assert!(created);
        let (k2, created) = CheckpointKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(k1.verifying_key(), k2.verifying_key());
        assert_eq!(format!("{k1:?}"), "CheckpointKey(***)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            CheckpointKey::load(&path),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        let mut e = entry(1);
        e.user_agent = Some("é".repeat(400));
        let e = e.bounded();
        let ua = e.user_agent.unwrap();
        assert!(ua.len() <= MAX_FIELD);
        assert!(ua.chars().all(|c| c == 'é'));
    }
}
