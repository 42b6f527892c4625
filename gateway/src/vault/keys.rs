//! `deskgate keys`: the keyring's versions and what they wrap, rotation, re-wrapping and
//! retirement. Every command works beside a running gateway: rotation rewrites the keyring
//! file atomically (the server re-reads it), re-wrapping updates `data_keys` in small
//! transactions, and nothing sealed is touched.

use super::{Vault, VaultError};
use crate::clock::Timestamp;
use crate::store::KeyAdmin;
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
    /// The newest version is so recent that a running gateway may not have read it yet and
    /// could still wrap a new key with the version being retired.
    #[error(
        "keyring version {current} was added {age_secs}s ago; a running gateway may still wrap new keys with v{version} until it has read the new keyring (at most {wait_secs}s): retire again in {left_secs}s, or give --force if no gateway runs on this keyring"
    )]
    TooSoon {
        version: u32,
        current: KeyVersion,
        age_secs: i64,
        wait_secs: i64,
        left_secs: i64,
    },
}

/// How long after a rotation `retire` waits: two sweeps of the gateway, each of which
/// re-reads the keyring.
pub fn retire_after() -> std::time::Duration {
    crate::server::SWEEP * 2
}

impl From<recorder::Error> for KeysError {
    fn from(e: recorder::Error) -> Self {
        KeysError::Vault(VaultError::Crypto(e))
    }
}

/// One line per version: its number, whether it is current, when it was added and how many
/// data keys it wraps.
pub async fn status(store: &dyn KeyAdmin, vault: &Vault) -> Result<String, KeysError> {
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

/// Adds a keyring version used for new data keys from now on (a running gateway notices the
/// new file before it wraps its next data key).
pub fn rotate(vault: &Vault, now: Timestamp) -> Result<KeyVersion, KeysError> {
    let mut ring = Keyring::load(vault.keyring_path())?;
    let version = ring.rotate(now.millis() / 1000);
    ring.save()?;
    vault.reload()?;
    tracing::info!(target: "deskgate::security", %version, "keyring rotated");
    Ok(version)
}

/// Re-wraps every data key to the current version; returns how many moved.
pub async fn rewrap(store: &dyn KeyAdmin, vault: &Vault) -> Result<u64, KeysError> {
    vault.reload()?;
    let moved = store.rewrap_data_keys().await?;
    tracing::info!(target: "deskgate::security", moved, version = %vault.keyring().current(), "data keys re-wrapped");
    Ok(moved)
}

/// Deletes a version from the keyring, refused while any data key is wrapped by it, and,
/// unless `force`, while the newer current version is younger than [`retire_after`].
pub async fn retire(
    store: &dyn KeyAdmin,
    vault: &Vault,
    version: KeyVersion,
    now: Timestamp,
    force: bool,
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
    let current_ring = vault.keyring();
    if !force && version != current_ring.current() {
        if let Some(current) = current_ring
            .versions()
            .find(|k| k.version == current_ring.current())
        {
            let age_secs = (now.millis() / 1000).saturating_sub(current.created_at);
            let wait_secs = i64::try_from(retire_after().as_secs()).unwrap_or(i64::MAX);
            if age_secs < wait_secs {
                return Err(KeysError::TooSoon {
                    version: version.0,
                    current: current_ring.current(),
                    age_secs,
                    wait_secs,
                    left_secs: wait_secs - age_secs,
                });
            }
        }
    }
    let mut ring = Keyring::load(vault.keyring_path())?;
    ring.retire(version)?;
    ring.save()?;
    vault.reload()?;
    tracing::info!(target: "deskgate::security", %version, "keyring version retired");
    Ok(())
}
