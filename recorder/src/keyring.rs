//! The keyring: versioned key-encryption keys (KEKs) that wrap every data key, and the key
//! of the blind index. It lives in one file (JSON, mode 0600) outside the database, so a copy
//! of the database alone decrypts nothing. Rotation adds a version; new data keys are wrapped
//! by the newest; old versions stay until nothing uses them and are then retired (deleted).

use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The file's format tag; a file with another tag is refused rather than guessed at.
const FORMAT: &str = "deskgate-keyring-v1";

/// A keyring version. Every wrapped data key records the version that wrapped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyVersion(pub u32);

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A 256-bit secret that zeroes its memory on drop and prints as `***`.
pub struct Key256(SecretBox<[u8; 32]>);

impl Key256 {
    pub fn random() -> Key256 {
        let mut bytes = Box::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        Key256(SecretBox::new(bytes))
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Key256> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Key256(SecretBox::new(Box::new(array))))
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Key256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One key-encryption key of the ring.
#[derive(Debug)]
pub struct Kek {
    pub version: KeyVersion,
    /// Unix seconds when the version was added; shown by `keys status`.
    pub created_at: i64,
    pub(crate) key: Key256,
}

/// The versioned key-encryption keys and the blind-index key.
pub struct Keyring {
    keks: BTreeMap<KeyVersion, Kek>,
    current: KeyVersion,
    /// HMAC key of the blind index; never rotated, because every stored index depends on it.
    index_key: Key256,
    /// Where the ring was read from, so `rotate` and `retire` can write it back.
    path: Option<PathBuf>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.keks.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What [`Keyring::load_or_create`] did, so the caller can warn loudly on a new ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    Existing,
    Created,
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    format: String,
    current: u32,
    index_key: String,
    keys: Vec<FileKey>,
}

impl FileFormat {
    /// The base64 strings hold key material: zero them before they are freed.
    fn wipe(&mut self) {
        use zeroize::Zeroize;
        self.index_key.zeroize();
        for k in &mut self.keys {
            k.key.zeroize();
        }
    }
}

#[derive(Serialize, Deserialize)]
struct FileKey {
    version: u32,
    created_at: i64,
    key: String,
}

impl Keyring {
    /// A fresh ring with version 1, not yet tied to a file.
    pub fn generate(now_unix: i64) -> Keyring {
        let v1 = KeyVersion(1);
        let mut keks = BTreeMap::new();
        keks.insert(
            v1,
            Kek {
                version: v1,
                created_at: now_unix,
                key: Key256::random(),
            },
        );
        Keyring {
            keks,
            current: v1,
            index_key: Key256::random(),
            path: None,
        }
    }

    /// Reads the ring at `path`, or creates it (mode 0600) when there is no file yet.
    pub fn load_or_create(path: &Path, now_unix: i64) -> Result<(Keyring, Opened)> {
        match Keyring::load(path) {
            Ok(ring) => Ok((ring, Opened::Existing)),
            Err(Error::KeyringIo { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let mut ring = Keyring::generate(now_unix);
                ring.path = Some(path.to_path_buf());
                ring.write_new(path)?;
                tracing::warn!(
                    target: "deskgate::security",
                    path = %path.display(),
                    "created a new keyring: back this file up apart from the database; without it nothing stored can be decrypted"
                );
                Ok((ring, Opened::Created))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the ring at `path` (a file of its own or one mounted from a secret manager).
    pub fn load(path: &Path) -> Result<Keyring> {
        let io = |source| Error::KeyringIo {
            path: path.to_path_buf(),
            source,
        };
        let bytes = Zeroizing::new(std::fs::read(path).map_err(io)?);
        warn_if_open_to_others(path);
        let mut ring = Keyring::parse(&bytes)?;
        ring.path = Some(path.to_path_buf());
        Ok(ring)
    }

    /// Parses the JSON form of a ring.
    pub fn parse(bytes: &[u8]) -> Result<Keyring> {
        let mut file: FileFormat = serde_json::from_slice(bytes)
            .map_err(|e| Error::KeyringFormat(format!("not a keyring file ({})", classify(&e))))?;
        let ring = Keyring::from_file(&file);
        file.wipe();
        ring
    }

    fn from_file(file: &FileFormat) -> Result<Keyring> {
        if file.format != FORMAT {
            return Err(Error::KeyringFormat(format!(
                "format is {:?}, expected {FORMAT:?}",
                file.format
            )));
        }
        let index_key = decode_key(&file.index_key, "index_key")?;
        let mut keks = BTreeMap::new();
        for k in &file.keys {
            let version = KeyVersion(k.version);
            let kek = Kek {
                version,
                created_at: k.created_at,
                key: decode_key(&k.key, "key")?,
            };
            if keks.insert(version, kek).is_some() {
                return Err(Error::KeyringFormat(format!(
                    "version {} appears twice",
                    k.version
                )));
            }
        }
        let current = KeyVersion(file.current);
        if !keks.contains_key(&current) {
            return Err(Error::KeyringFormat(format!(
                "current version {} has no key",
                file.current
            )));
        }
        Ok(Keyring {
            keks,
            current,
            index_key,
            path: None,
        })
    }

    /// The JSON form of the ring, in a buffer that is zeroed on drop.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let mut file = FileFormat {
            format: FORMAT.to_owned(),
            current: self.current.0,
            index_key: B64.encode(self.index_key.expose()),
            keys: self
                .keks
                .values()
                .map(|k| FileKey {
                    version: k.version.0,
                    created_at: k.created_at,
                    key: B64.encode(k.key.expose()),
                })
                .collect(),
        };
        let mut json = Zeroizing::new(serde_json::to_vec_pretty(&file).unwrap_or_default());
        json.push(b'\n');
        file.wipe();
        json
    }

    /// The version that wraps new data keys.
    pub fn current(&self) -> KeyVersion {
        self.current
    }

    /// Every version in the ring, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = &Kek> {
        self.keks.values()
    }

    pub fn contains(&self, version: KeyVersion) -> bool {
        self.keks.contains_key(&version)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub(crate) fn kek(&self, version: KeyVersion) -> Result<&Kek> {
        self.keks
            .get(&version)
            .ok_or(Error::UnknownVersion(version.0))
    }

    pub(crate) fn index_key(&self) -> &Key256 {
        &self.index_key
    }

    /// Adds a new version and makes it current. Existing data keys stay wrapped by their
    /// version until [`crate::envelope::rewrap`] moves them.
    pub fn rotate(&mut self, now_unix: i64) -> KeyVersion {
        let next = KeyVersion(self.keks.keys().last().map_or(1, |v| v.0 + 1));
        self.keks.insert(
            next,
            Kek {
                version: next,
                created_at: now_unix,
                key: Key256::random(),
            },
        );
        self.current = next;
        next
    }

    /// Deletes a version. The caller checks first that no wrapped key still uses it.
    pub fn retire(&mut self, version: KeyVersion) -> Result<()> {
        if version == self.current {
            return Err(Error::RetireCurrent(version.0));
        }
        self.keks
            .remove(&version)
            .map(|_| ())
            .ok_or(Error::UnknownVersion(version.0))
    }

    /// Writes the ring back to the file it was read from: a new file (mode 0600) renamed over
    /// the old one, so a crash leaves either the old ring or the new one, never half of each.
    pub fn save(&self) -> Result<()> {
        let Some(path) = self.path.as_deref() else {
            return Err(Error::KeyringFormat(
                "this keyring has no file to save to".into(),
            ));
        };
        let io = |source| Error::KeyringIo {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        self.write_new(&tmp)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Writes the ring to a file that must not exist yet (`keys init --out`, first run).
    pub fn write_new(&self, path: &Path) -> Result<()> {
        let io = |source| Error::KeyringIo {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                Error::KeyringExists(path.to_path_buf())
            } else {
                io(source)
            }
        })?;
        file.write_all(&self.to_json()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }
}

/// The kind of a JSON error without its excerpt of the input (which could be a key).
fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "missing or mistyped field",
        serde_json::error::Category::Eof => "cut short",
    }
}

fn decode_key(text: &str, field: &str) -> Result<Key256> {
    let bytes = Zeroizing::new(
        B64.decode(text)
            .map_err(|_| Error::KeyringFormat(format!("{field} is not base64")))?,
    );
    Key256::from_slice(&bytes)
        .ok_or_else(|| Error::KeyringFormat(format!("{field} is not 32 bytes")))
}

/// A ring mounted from a secret manager may legitimately be 0440; anything readable by
/// everyone is worth a warning, not a refusal.
fn warn_if_open_to_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                tracing::warn!(
                    target: "deskgate::security",
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the keyring file is readable by other users; chmod 600 it"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_creates_a_private_file_and_the_second_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let (ring, opened) = Keyring::load_or_create(&path, 100).unwrap();
        assert_eq!(opened, Opened::Created);
        assert_eq!(ring.current(), KeyVersion(1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (again, opened) = Keyring::load_or_create(&path, 200).unwrap();
        assert_eq!(opened, Opened::Existing);
        assert_eq!(
            again.kek(KeyVersion(1)).unwrap().key.expose(),
            ring.kek(KeyVersion(1)).unwrap().key.expose()
        );
        assert_eq!(again.index_key().expose(), ring.index_key().expose());
    }

    #[test]
    fn rotate_and_retire_survive_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let (mut ring, _) = Keyring::load_or_create(&path, 1).unwrap();
        assert_eq!(ring.rotate(2), KeyVersion(2));
        assert!(matches!(
            ring.retire(KeyVersion(2)),
            Err(Error::RetireCurrent(2))
        ));
        ring.retire(KeyVersion(1)).unwrap();
        assert!(matches!(
            ring.retire(KeyVersion(7)),
            Err(Error::UnknownVersion(7))
        ));
        ring.save().unwrap();
        let back = Keyring::load(&path).unwrap();
        assert_eq!(back.current(), KeyVersion(2));
        assert_eq!(
            back.versions().map(|k| k.version).collect::<Vec<_>>(),
            vec![KeyVersion(2)]
        );
        // A third version after a retirement never reuses a number.
        let mut back = back;
        assert_eq!(back.rotate(3), KeyVersion(3));
    }

    #[test]
    fn a_malformed_file_is_refused_with_a_reason_and_no_key_material() {
        for (bytes, needle) in [
            (&b"not json"[..], "not a keyring"),
            (br#"{"format":"other","current":1,"index_key":"","keys":[]}"#, "format"),
            (
                br#"{"format":"deskgate-keyring-v1","current":2,"index_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","keys":[]}"#,
                "current version 2",
            ),
            (
                br#"{"format":"deskgate-keyring-v1","current":1,"index_key":"AAAA","keys":[]}"#,
                "32 bytes",
            ),
        ] {
            let err = Keyring::parse(bytes).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn keys_print_as_stars() {
        let ring = Keyring::generate(0);
        let shown = format!("{ring:?} {:?}", ring.kek(KeyVersion(1)).unwrap());
        assert!(shown.contains("***"));
        let b64 = B64.encode(ring.kek(KeyVersion(1)).unwrap().key.expose());
        assert!(!shown.contains(&b64));
    }

    #[test]
    fn an_existing_file_is_never_overwritten_by_write_new() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        Keyring::generate(0).write_new(&path).unwrap();
        assert!(matches!(
            Keyring::generate(0).write_new(&path),
            Err(Error::KeyringExists(_))
        ));
    }
}
