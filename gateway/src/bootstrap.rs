//! First run: while no staff account exists, a one-time secret lets the operator create the
//! first admin (`POST /api/bootstrap`). It is printed once at start-up and stored only as a
//! digest; each start replaces it, and using it deletes it.

use crate::auth::token::{self, Kind};
use crate::store::{Store, StoreResult};
use secrecy::SecretString;

const SETTING: &str = "bootstrap_secret_digest";

/// Issues a fresh bootstrap secret if there is no user yet.
pub async fn prepare(store: &dyn Store) -> StoreResult<Option<SecretString>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let (secret, digest) = token::issue(Kind::Bootstrap);
    store.put_setting(SETTING, &digest).await?;
    Ok(Some(secret))
}

/// Consumes the bootstrap secret; true exactly once for the right secret.
pub async fn redeem(store: &dyn Store, presented: &str) -> StoreResult<bool> {
    let digest = token::digest(presented);
    store.take_setting(SETTING, &digest).await
}
