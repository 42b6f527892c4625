//! The vault as the gateway uses it: the keyring (from `--keyring-file` /
//! `DESKGATE_KEYRING_FILE`, or `keyring.json` in the data dir, created on first run), a bounded
//! cache of unwrapped data keys, and sealing of message bodies and customer fields. The store
//! calls it so that nothing a customer typed reaches the database in clear; the cryptography
//! itself is the `recorder` crate's.
//!
//! Rotation while running: `deskgate keys rotate` rewrites the keyring file; the server notices
//! the change (one `stat`) before it wraps the next data key, re-reads it on its sweep (every
//! minute), and whenever it meets a wrapped key of a version it does not know, so new data
//! keys use the new version at once, without a restart.

pub mod keys;
pub mod outbox;

use crate::clock::Timestamp;
use recorder::{DataKey, KeyVersion, Keyring, Owner, RecordId, RecordKind, WrappedKey};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub use recorder::Owner as KeyOwner;

/// Unwrapped data keys kept in memory at most; one per live conversation or customer.
const CACHE_KEYS: usize = 16_384;

/// Kinds of sealed record the gateway writes (the associated data names them).
pub const MESSAGE_BODY: RecordKind = RecordKind::MESSAGE_BODY;
pub const MESSAGE_AUTHOR: RecordKind = RecordKind::new("message.author");
pub const NOTE_BODY: RecordKind = RecordKind::new("note.body");
pub const TICKET_SUBJECT: RecordKind = RecordKind::new("ticket.subject");
pub const CUSTOMER_NAME: RecordKind = RecordKind::CUSTOMER_NAME;
pub const CUSTOMER_EMAIL: RecordKind = RecordKind::CUSTOMER_EMAIL;
pub const CUSTOMER_PHONE: RecordKind = RecordKind::CUSTOMER_PHONE;
pub const CUSTOMER_EXTERNAL_ID: RecordKind = RecordKind::CUSTOMER_EXTERNAL_ID;
/// A file's content, sealed as a STREAM (its identity: conversation, attachment id, kind).
pub const ATTACHMENT: RecordKind = RecordKind::ATTACHMENT;
/// Segment size of sealed attachments: one segment is read from the database and opened at a
/// time when a file is downloaded.
pub const ATTACHMENT_SEGMENT: usize = recorder::stream::DEFAULT_SEGMENT;
/// The risk phrase a ticket's first message matched: it says what the customer wrote.
pub const STEP_UP_FLAG: RecordKind = RecordKind::new("verification.flag");

/// What a reader sees in place of a record whose data key retention destroyed.
pub const SHREDDED: &str = "[deleted under the retention policy]";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Crypto(#[from] recorder::Error),
    /// The data key of this owner was destroyed by retention (or never existed).
    #[error("no data key for {0}")]
    NoKey(String),
}

/// Whether `path` lies inside the directory `dir` (both resolved when they exist).
fn inside(dir: &Path, path: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    path.starts_with(dir)
}

/// Warns at start-up when the keyring lives inside the data dir (the default): a copy of the
/// data dir, a backup or a volume snapshot, then holds the keys that open it. The checkpoint
/// and verification keys are named too when they are there.
pub fn warn_if_keys_in_data_dir(config: &crate::config::Config) {
    let keyring = config
        .keyring_file
        .clone()
        .unwrap_or_else(|| default_keyring_path(&config.data));
    if !inside(&config.data, &keyring) {
        return;
    }
    let mut others = Vec::new();
    let audit = crate::audit::key_path(config);
    if inside(&config.data, &audit) {
        others.push(audit.display().to_string());
    }
    let verify = config
        .verification
        .key_file
        .clone()
        .unwrap_or_else(|| config.data.join("keys").join("verify.key"));
    if inside(&config.data, &verify) {
        others.push(verify.display().to_string());
    }
    let also = if others.is_empty() {
        String::new()
    } else {
        format!(" (so are {})", others.join(" and "))
    };
    eprintln!(
        "WARNING: the keyring {} is inside the data dir {}{also}: a copy of the data dir (a backup, \
         a volume snapshot) can decrypt everything in it. In production keep the keys outside it: \
         --keyring-file, --audit-key-file and DESKGATE_VERIFY_KEY_FILE from a secret manager \
         (docs/security.md, threat model).",
        keyring.display(),
        config.data.display()
    );
    tracing::warn!(target: "deskgate::security", keyring = %keyring.display(), data = %config.data.display(),
        "the keyring is inside the data dir: a copy of the data dir can decrypt it");
}

/// The keyring file the gateway uses for `data`, unless one is configured.
pub fn default_keyring_path(data: &Path) -> PathBuf {
    data.join("keyring.json")
}

pub struct Vault {
    ring: RwLock<Arc<Keyring>>,
    path: PathBuf,
    /// What the keyring file looked like when it was read, so a rotation by
    /// `deskgate keys rotate` is noticed before the next data key is wrapped.
    seen: Mutex<Option<FileStamp>>,
    cache: Mutex<KeyCache>,
}

/// Size, modification time and inode of a file: enough to notice it was rewritten (`rotate`
/// renames a new file over the old one) with one `stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        })
    }
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("path", &self.path).finish()
    }
}

impl Vault {
    /// Opens the keyring at `configured`, which must exist, or else the default one under
    /// `data`, created (mode 0600, with a warning) when there is none yet.
    pub fn open(
        data: &Path,
        configured: Option<&Path>,
        now: Timestamp,
    ) -> Result<Vault, VaultError> {
        let ring = match configured {
            Some(path) => Keyring::load(path)?,
            None => {
                let path = default_keyring_path(data);
                let (ring, opened) = Keyring::load_or_create(&path, now.millis() / 1000)?;
                if opened == recorder::Opened::Created {
                    eprintln!(
                        "WARNING: created a new keyring at {}. Back it up apart from the database: \
                         without it nothing stored can be decrypted. In production give \
                         --keyring-file (DESKGATE_KEYRING_FILE) from a secret manager.",
                        path.display()
                    );
                }
                ring
            }
        };
        Ok(Vault::with_keyring(ring))
    }

    /// Opens the keyring at `configured`, or the default one under `data`; either must exist
    /// (commands that work on a data dir never make up a keyring).
    pub fn open_existing(data: &Path, configured: Option<&Path>) -> Result<Vault, VaultError> {
        let path = configured
            .map(Path::to_path_buf)
            .unwrap_or_else(|| default_keyring_path(data));
        Ok(Vault::with_keyring(Keyring::load(&path)?))
    }

    /// A vault over a ring already loaded (from a file: `rotate` and `reload` use its path).
    pub fn with_keyring(ring: Keyring) -> Vault {
        let path = ring.path().map(Path::to_path_buf).unwrap_or_default();
        Vault {
            ring: RwLock::new(Arc::new(ring)),
            seen: Mutex::new(FileStamp::of(&path)),
            path,
            cache: Mutex::new(KeyCache::default()),
        }
    }

    pub fn keyring(&self) -> Arc<Keyring> {
        match self.ring.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn keyring_path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the keyring file if it changed since it was read (one `stat`).
    pub fn reload_if_changed(&self) -> Result<Option<KeyVersion>, VaultError> {
        if self.path.as_os_str().is_empty() {
            return Ok(None);
        }
        let now = FileStamp::of(&self.path);
        let seen = self.seen.lock().ok().and_then(|s| *s);
        if now.is_some() && now == seen {
            return Ok(None);
        }
        self.reload()
    }

    /// Re-reads the keyring file; returns the current version if it changed.
    pub fn reload(&self) -> Result<Option<KeyVersion>, VaultError> {
        if self.path.as_os_str().is_empty() {
            return Ok(None);
        }
        let stamp = FileStamp::of(&self.path);
        let fresh = Keyring::load(&self.path)?;
        if let Ok(mut seen) = self.seen.lock() {
            *seen = stamp;
        }
        let before = self.keyring();
        let changed = fresh.current() != before.current()
            || fresh.versions().count() != before.versions().count();
        if !changed {
            return Ok(None);
        }
        let current = fresh.current();
        match self.ring.write() {
            Ok(mut w) => *w = Arc::new(fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(fresh),
        }
        tracing::info!(target: "deskgate::security", version = %current, "keyring reloaded");
        Ok(Some(current))
    }

    /// A new data key for `owner` and its wrapped form, to store in the same transaction as
    /// the owner's row.
    pub fn new_key(&self, owner: &Owner) -> Result<(Arc<DataKey>, WrappedKey), VaultError> {
        // A keyring rotated by the CLI is used for this key already: `retire` may run right
        // after `rotate` and `rewrap`, and a key wrapped by the old version would be lost.
        if let Err(e) = self.reload_if_changed() {
            tracing::warn!(target: "deskgate::security", error = %e, "cannot re-read the keyring; wrapping with the one in memory");
        }
        let (key, wrapped) = self.keyring().new_data_key(owner)?;
        let key = Arc::new(key);
        self.cache_put(owner, key.clone());
        Ok((key, wrapped))
    }

    /// The unwrapped data key of `owner`, from the cache or by unwrapping `wrapped` (the row's
    /// `data_keys` entry; `None` once retention destroyed it).
    pub fn data_key(
        &self,
        owner: &Owner,
        wrapped: Option<WrappedKey>,
    ) -> Result<Arc<DataKey>, VaultError> {
        if let Some(k) = self.cache_get(owner) {
            return Ok(k);
        }
        let wrapped = wrapped.ok_or_else(|| VaultError::NoKey(owner.to_string()))?;
        let key = match self.keyring().unwrap(owner, &wrapped) {
            Err(recorder::Error::UnknownVersion(_)) => {
                // Rotated by the CLI while we run: read the file again, once.
                self.reload()?;
                self.keyring().unwrap(owner, &wrapped)?
            }
            other => other?,
        };
        let key = Arc::new(key);
        self.cache_put(owner, key.clone());
        Ok(key)
    }

    /// Drops a destroyed key from memory too.
    pub fn forget(&self, owner: &Owner) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(owner);
        }
    }

    pub fn seal(
        &self,
        key: &DataKey,
        owner: &Owner,
        seq: i64,
        kind: RecordKind,
        text: &str,
    ) -> Result<Vec<u8>, VaultError> {
        let id = RecordId::new(owner, seq_u64(seq), kind);
        Ok(recorder::seal_str(key, &id, text)?)
    }

    pub fn open_text(
        &self,
        key: &DataKey,
        owner: &Owner,
        seq: i64,
        kind: RecordKind,
        sealed: &[u8],
    ) -> Result<String, VaultError> {
        let id = RecordId::new(owner, seq_u64(seq), kind);
        Ok(recorder::open_string(key, &id, sealed)?)
    }

    /// Seals a long object (an attachment) as a STREAM of [`ATTACHMENT_SEGMENT`]-byte
    /// segments with the record `id` of `owner` bound into every segment.
    pub fn seal_stream(
        &self,
        key: &DataKey,
        owner: &Owner,
        id: i64,
        kind: RecordKind,
        plain: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let rid = RecordId::new(owner, seq_u64(id), kind);
        Ok(recorder::stream::seal_all(
            key,
            &rid,
            ATTACHMENT_SEGMENT,
            plain,
        )?)
    }

    /// Keyed blind index of a value already normalised by the caller.
    pub fn blind_index(&self, field: &str, normalised: &str) -> Vec<u8> {
        recorder::blind::blind_index(&self.keyring(), field, normalised).to_vec()
    }

    /// The MAC by which a node vouches for a request it relays to another node.
    pub fn node_mac(&self, parts: &[&str]) -> [u8; 32] {
        recorder::blind::node_mac(&self.keyring(), parts)
    }

    fn cache_get(&self, owner: &Owner) -> Option<Arc<DataKey>> {
        self.cache.lock().ok()?.map.get(owner).cloned()
    }

    fn cache_put(&self, owner: &Owner, key: Arc<DataKey>) {
        if let Ok(mut c) = self.cache.lock() {
            c.insert(owner.clone(), key);
        }
    }
}

fn seq_u64(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// A wrapped key as a row holds it: version and bytes, both NULL once destroyed.
pub fn wrapped(version: Option<i64>, bytes: Option<Vec<u8>>) -> Option<WrappedKey> {
    let version = u32::try_from(version?).ok()?;
    Some(WrappedKey {
        version: KeyVersion(version),
        bytes: bytes?,
    })
}

/// Unwrapped keys in insertion order; the oldest leave first when it is full.
#[derive(Default)]
struct KeyCache {
    map: HashMap<Owner, Arc<DataKey>>,
    order: VecDeque<Owner>,
}

impl KeyCache {
    fn insert(&mut self, owner: Owner, key: Arc<DataKey>) {
        if self.map.insert(owner.clone(), key).is_none() {
            self.order.push_back(owner);
        }
        while self.map.len() > CACHE_KEYS {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, owner: &Owner) {
        if self.map.remove(owner).is_some() {
            self.order.retain(|o| o != owner);
        }
    }
}

/// Normal form of an email for the blind index: trimmed, lower-case.
pub fn normal_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_and_forgets_destroyed_keys() {
        let mut c = KeyCache::default();
        for i in 0..CACHE_KEYS + 10 {
            c.insert(Owner::conversation(i), Arc::new(DataKey::generate()));
        }
        assert_eq!(c.map.len(), CACHE_KEYS);
        assert!(!c.map.contains_key(&Owner::conversation(0)));
        let last = Owner::conversation(CACHE_KEYS + 9);
        c.remove(&last);
        assert!(!c.map.contains_key(&last));
    }
}
