//! The outbox without an SMTP server, sealed: each code email is written to
//! `<data>/outbox/<time>-<id>.eml.sealed` as a sealed file (`recorder::file`), so neither the
//! customer's address nor the code is on disk in clear. A developer reads one with
//! `deskgate vault open --data DIR FILE`.

use super::Vault;
use recorder::file::{open_sealed_file, SealedFileWriter};
use recorder::{Owner, RecordKind};
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use verify::mail::{Mail, MailError};

/// Writes code emails as sealed files into a directory.
pub struct SealedOutbox {
    dir: PathBuf,
    vault: Arc<Vault>,
}

impl std::fmt::Debug for SealedOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sealed outbox {}", self.dir.display())
    }
}

impl SealedOutbox {
    pub fn new(dir: PathBuf, vault: Arc<Vault>) -> SealedOutbox {
        SealedOutbox { dir, vault }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Seals one email into a new file (mode 0600).
    pub async fn send(&self, mail: &Mail) -> Result<PathBuf, MailError> {
        let text = zeroize::Zeroizing::new(format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\n\r\n{}\r\n",
            mail.from,
            mail.to,
            mail.subject,
            mail.body.expose_secret()
        ));
        let dir = self.dir.clone();
        let vault = self.vault.clone();
        tokio::task::spawn_blocking(move || write_sealed(&dir, &vault, text.as_bytes()))
            .await
            .map_err(|e| MailError::Outbox(e.to_string()))?
    }
}

fn write_sealed(dir: &Path, vault: &Vault, text: &[u8]) -> Result<PathBuf, MailError> {
    let fail = |e: &dyn std::fmt::Display| MailError::Outbox(e.to_string());
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let mut id = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let id = hex::encode(id);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let path = dir.join(format!("{millis}-{id}.eml.sealed"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts.open(&path).map_err(|e| fail(&e))?;
    let ring = vault.keyring();
    let owner = Owner::new("outbox", &id);
    let mut w = SealedFileWriter::create(&ring, RecordKind::OUTBOX_MAIL, &owner, file)
        .map_err(|e| fail(&e))?;
    w.write_all(text).map_err(|e| fail(&e))?;
    let file = w.finish().map_err(|e| fail(&e))?;
    file.sync_all().map_err(|e| fail(&e))?;
    Ok(path)
}

/// Kinds of sealed file `deskgate vault open` reads.
pub const OPENABLE: [RecordKind; 2] = [RecordKind::EXPORT, RecordKind::OUTBOX_MAIL];

/// Opens a sealed file (an outbox mail, an encrypted export) into `out`.
pub fn open_file(
    vault: &Vault,
    path: &Path,
    out: impl Write,
) -> Result<recorder::file::SealedFileInfo, super::VaultError> {
    let file = std::fs::File::open(path).map_err(recorder::Error::Io)?;
    Ok(open_sealed_file(
        &vault.keyring(),
        &OPENABLE,
        std::io::BufReader::new(file),
        out,
    )?)
}
