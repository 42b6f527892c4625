//! The recorder's error type. Messages name what went wrong without ever carrying key
//! material or plaintext.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("keyring file {path}: {source}")]
    KeyringIo {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("keyring is malformed: {0}")]
    KeyringFormat(String),

    #[error("keyring file {0} already exists")]
    KeyringExists(PathBuf),

    #[error("keyring has no version {0}")]
    UnknownVersion(u32),

    #[error("keyring version {0} is the current version and cannot be retired; rotate first")]
    RetireCurrent(u32),

    #[error(
        "a wrapped data key failed to unwrap (wrong keyring version, wrong owner or tampered)"
    )]
    Unwrap,

    #[error("a sealed record failed to open (wrong key, wrong record identity or tampered)")]
    Open,

    #[error("sealed data is malformed: {0}")]
    Malformed(&'static str),

    #[error("stream segment {index} failed to open (tampered, reordered, truncated or spliced)")]
    Segment { index: u64 },

    #[error("stream is truncated: {0}")]
    Truncated(&'static str),

    #[error("stream segment size {0} is out of range")]
    SegmentSize(usize),

    #[error("stream is too long for its nonce counter")]
    StreamTooLong,

    #[error("encryption failed")]
    Encrypt,

    #[error("stream i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
