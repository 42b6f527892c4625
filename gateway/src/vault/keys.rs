//! `deskgate keys`: the keyring's versions and what they wrap, rotation, re-wrapping and
//! retirement. Every command works beside a running gateway: rotation rewrites the keyring
//! file atomically (the server re-reads it), re-wrapping updates `data_keys` in small
//! transactions, and nothing sealed is touched.

use super::{Vault, VaultError};
use crate::clock::Timestamp;
use crate::store::sqlite::SqliteStore;
use crate::store::StoreError;
use recorder::{KeyVersion, Keyring};

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "keyring version {version} still wraps {count} data key(s) ({owners}); run `deskgate keys rewrap` first"
    )]
    InUse {
        version: u32,
        count: i64,
        owners: String,
    },
}

impl From<recorder::Error> for KeysError {
    fn from(e: recorder::Error) -> Self {
        KeysError::Vault(VaultError::Crypto(e))
    }
}

/// One line per version: its number, whether it is current, when it was added and how many
/// data keys it wraps.
pub async fn status(store: &SqliteStore, vault: &Vault) -> Result<String, KeysError> {
    let ring = vault.keyring();
    let counts = store.data_keys_by_version().await?;
    let mut out = format!("keyring: {}\n", vault.keyring_path().display());
    for kek in ring.versions() {
        let n = counts
            .iter()
            .find(|(v, _)| *v == kek.version)
            .map_or(0, |(_, n)| *n);
        let added = Timestamp(kek.created_at.saturating_mul(1000)).rfc3339();
        let current = if kek.version == ring.current() {
            "  current"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<5} added {added}  wraps {n} data key(s){current}\n",
            kek.version.to_string()
        ));
    }
    for (v, n) in &counts {
        if !ring.contains(*v) {
            out.push_str(&format!(
                "{v:<5} MISSING from the keyring: {n} data key(s) cannot be opened\n"
            ));
        }
    }
    Ok(out)
}

/// Adds a keyring version used for new data keys from now on (the running gateway re-reads
/// the file within a minute, or at once when it meets the new version).
pub fn rotate(vault: &Vault, now: Timestamp) -> Result<KeyVersion, KeysError> {
    let mut ring = Keyring::load(vault.keyring_path())?;
    let version = ring.rotate(now.millis() / 1000);
    ring.save()?;
    vault.reload()?;
    tracing::info!(target: "deskgate::security", %version, "keyring rotated");
    Ok(version)
}

/// Re-wraps every data key to the current version; returns how many moved.
pub async fn rewrap(store: &SqliteStore, vault: &Vault) -> Result<u64, KeysError> {
    vault.reload()?;
    let moved = store.rewrap_data_keys().await?;
    tracing::info!(target: "deskgate::security", moved, version = %vault.keyring().current(), "data keys re-wrapped");
    Ok(moved)
}

/// Deletes a version from the keyring, refused while any data key is wrapped by it.
pub async fn retire(
    store: &SqliteStore,
    vault: &Vault,
    version: KeyVersion,
) -> Result<(), KeysError> {
    let count = store
        .data_keys_by_version()
        .await?
        .into_iter()
        .find(|(v, _)| *v == version)
        .map_or(0, |(_, n)| n);
    if count > 0 {
        let mut owners = store.data_key_owners(version, 5).await?.join(", ");
        if count > 5 {
            owners.push_str(", …");
        }
        return Err(KeysError::InUse {
            version: version.0,
            count,
            owners,
        });
    }
    let mut ring = Keyring::load(vault.keyring_path())?;
    ring.retire(version)?;
    ring.save()?;
    vault.reload()?;
    tracing::info!(target: "deskgate::security", %version, "keyring version retired");
    Ok(())
}
