//! The verification key: 32 random bytes from which the code-hashing key and the seed-sealing
//! key are derived. Read from `[verification] key_file` / `DESKGATE_VERIFY_KEY_FILE`, or
//! created on first run as `<data>/keys/verify.key` (mode 0600) with a warning.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use std::path::Path;
use verify::CodeKey;

pub struct Keys {
    code: CodeKey,
    seal: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(master)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(label);
    m.finalize().into_bytes().into()
}

impl Keys {
    pub fn from_master(master: [u8; 32]) -> Keys {
        let keys = Keys {
            code: CodeKey::new(derive(&master, b"deskgate-verify-code")),
            seal: SecretBox::new(Box::new(derive(&master, b"deskgate-verify-seal"))),
        };
        let mut master = master;
        zeroize::Zeroize::zeroize(&mut master);
        keys
    }

    pub fn code(&self) -> &CodeKey {
        &self.code
    }

    pub fn seal_key(&self) -> &[u8; 32] {
        self.seal.expose_secret()
    }

    /// Loads the key from `explicit`, or from `<data>/keys/verify.key`, creating that one if
    /// it does not exist yet.
    pub fn load(explicit: Option<&Path>, data: &Path) -> anyhow::Result<Keys> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = data.join("keys").join("verify.key");
                if !p.exists() {
                    create(&p)?;
                    tracing::warn!(path = %p.display(),
                        "created a new verification key; back it up, or TOTP seeds and pending codes are lost with it");
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read verification key {}: {e}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .map_err(|_| anyhow::anyhow!("verification key {} is not hex", path.display()))?;
        let master: [u8; 32] = bytes.try_into().map_err(|_| {
            anyhow::anyhow!(
                "verification key {} must be 32 bytes (64 hex digits)",
                path.display()
            )
        })?;
        Ok(Keys::from_master(master))
    }
}

fn create(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    std::io::Write::write_all(&mut f, hex::encode(key).as_bytes())?;
    zeroize::Zeroize::zeroize(&mut key);
    Ok(())
}
