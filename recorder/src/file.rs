//! Sealed files: a long object written out of the database (an audit export, a code email in
//! the outbox) as one self-contained file, opened later with the keyring alone.
//!
//! Layout: `"DGF1" ‖ kind (u8 length, name) ‖ owner (u16 length, name) ‖ keyring version
//! (u32 BE) ‖ wrapped data key (60 bytes) ‖ STREAM` ([`crate::stream`], 64 KiB segments). The
//! data key is fresh for every file and wrapped by the keyring's current version; the kind and
//! owner are bound into the wrapping and into the stream's key, so a header edited to claim
//! another file's identity fails to open, and truncation, reordering and splicing of segments
//! are detected as in every STREAM.
//!
//! The file names the keyring version that wrapped its key: keep that version (or a copy of
//! the keyring that has it) as long as the file is kept.

use crate::envelope::{Owner, WrappedKey, WRAPPED_LEN};
use crate::error::{Error, Result};
use crate::keyring::{KeyVersion, Keyring};
use crate::seal::{RecordId, RecordKind};
use crate::stream::{StreamOpener, StreamSealer, DEFAULT_SEGMENT, HEADER_LEN, TAG_LEN};
use std::io::{Read, Write};

const MAGIC: &[u8; 4] = b"DGF1";

/// Writes a sealed file segment by segment; call [`SealedFileWriter::finish`] at the end (a
/// file left unfinished fails to open: its last segment is missing).
pub struct SealedFileWriter<W: Write> {
    out: W,
    sealer: Option<StreamSealer>,
    buf: Vec<u8>,
    segment: usize,
}

impl<W: Write> SealedFileWriter<W> {
    /// Starts a sealed file of `kind` for a new owner `owner` (e.g. `export:<random id>`),
    /// writing its header to `out`.
    pub fn create(ring: &Keyring, kind: RecordKind, owner: &Owner, mut out: W) -> Result<Self> {
        let (key, wrapped) = ring.new_data_key(owner)?;
        let id = RecordId::new(owner, 0, kind);
        let sealer = StreamSealer::new(&key, &id, DEFAULT_SEGMENT)?;
        let kind_name = kind.as_str().as_bytes();
        let owner_name = owner.as_str().as_bytes();
        let kind_len =
            u8::try_from(kind_name.len()).map_err(|_| Error::Malformed("kind too long"))?;
        let owner_len =
            u16::try_from(owner_name.len()).map_err(|_| Error::Malformed("owner too long"))?;
        out.write_all(MAGIC)?;
        out.write_all(&[kind_len])?;
        out.write_all(kind_name)?;
        out.write_all(&owner_len.to_be_bytes())?;
        out.write_all(owner_name)?;
        out.write_all(&wrapped.version.0.to_be_bytes())?;
        out.write_all(&wrapped.bytes)?;
        out.write_all(sealer.header())?;
        Ok(SealedFileWriter {
            out,
            segment: sealer.segment_size(),
            sealer: Some(sealer),
            buf: Vec::with_capacity(DEFAULT_SEGMENT + TAG_LEN),
        })
    }

    /// Seals the last segment and flushes; returns the writer.
    pub fn finish(mut self) -> Result<W> {
        let sealer = self.sealer.take().ok_or(Error::Encrypt)?;
        let mut last = std::mem::take(&mut self.buf);
        sealer.finish_in_place(&mut last)?;
        self.out.write_all(&last)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for SealedFileWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            // A full buffer is sealed only once more data comes: the last segment must be
            // sealed as last, even when it is full.
            if self.buf.len() == self.segment {
                let sealer = self
                    .sealer
                    .as_mut()
                    .ok_or_else(|| std::io::Error::other("sealed file already finished"))?;
                sealer
                    .seal_in_place(&mut self.buf)
                    .map_err(std::io::Error::other)?;
                self.out.write_all(&self.buf)?;
                self.buf.clear();
            }
            let take = (self.segment - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// What a sealed file says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedFileInfo {
    pub kind: String,
    pub owner: String,
    pub version: KeyVersion,
}

fn read_exact_or<R: Read>(input: &mut R, buf: &mut [u8], what: &'static str) -> Result<()> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::Truncated(what),
        _ => Error::Io(e),
    })
}

/// Opens a sealed file of one of the `kinds` expected, writing the plaintext to `out` one
/// segment at a time; nothing of a segment is written before it is authenticated.
pub fn open_sealed_file<R: Read, W: Write>(
    ring: &Keyring,
    kinds: &[RecordKind],
    mut input: R,
    mut out: W,
) -> Result<SealedFileInfo> {
    let mut magic = [0u8; 4];
    read_exact_or(&mut input, &mut magic, "not a sealed file")?;
    if &magic != MAGIC {
        return Err(Error::Malformed("not a sealed file"));
    }
    let mut len = [0u8; 1];
    read_exact_or(&mut input, &mut len, "header cut short")?;
    let mut kind = vec![0u8; usize::from(len[0])];
    read_exact_or(&mut input, &mut kind, "header cut short")?;
    let kind = kinds
        .iter()
        .copied()
        .find(|k| k.as_str().as_bytes() == kind.as_slice())
        .ok_or(Error::Malformed("a sealed file of an unexpected kind"))?;
    let mut len = [0u8; 2];
    read_exact_or(&mut input, &mut len, "header cut short")?;
    let mut owner = vec![0u8; usize::from(u16::from_be_bytes(len))];
    read_exact_or(&mut input, &mut owner, "header cut short")?;
    let owner = String::from_utf8(owner).map_err(|_| Error::Malformed("owner is not text"))?;
    let (owner_kind, owner_id) = owner
        .split_once(':')
        .ok_or(Error::Malformed("owner is malformed"))?;
    let owner_ref = Owner::new(owner_kind, owner_id);
    let mut version = [0u8; 4];
    read_exact_or(&mut input, &mut version, "header cut short")?;
    let version = KeyVersion(u32::from_be_bytes(version));
    let mut bytes = vec![0u8; WRAPPED_LEN];
    read_exact_or(&mut input, &mut bytes, "header cut short")?;
    let key = ring.unwrap(&owner_ref, &WrappedKey { version, bytes })?;
    let id = RecordId::new(&owner_ref, 0, kind);
    let mut header = [0u8; HEADER_LEN];
    read_exact_or(&mut input, &mut header, "shorter than the stream header")?;
    let opener = StreamOpener::new(&key, &id, &header)?;
    let full = opener.segment_size() + TAG_LEN;
    // One segment is held back until the next is read, to know which one is the last.
    let mut current = read_up_to(&mut input, full)?;
    let mut index = 0u64;
    loop {
        let next = if current.len() == full {
            read_up_to(&mut input, full)?
        } else {
            Vec::new()
        };
        let last = next.is_empty();
        let mut seg = current;
        opener.open_in_place(index, last, &mut seg)?;
        out.write_all(&seg)?;
        if last {
            break;
        }
        current = next;
        index += 1;
    }
    out.flush()?;
    Ok(SealedFileInfo {
        kind: kind.as_str().to_string(),
        owner,
        version,
    })
}

/// Reads up to `n` bytes (fewer only at the end of the input).
fn read_up_to<R: Read>(input: &mut R, n: usize) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    input.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: RecordKind = RecordKind::EXPORT;

    fn sealed(ring: &Keyring, plain: &[u8]) -> Vec<u8> {
        let mut w =
            SealedFileWriter::create(ring, KIND, &Owner::new("export", "t1"), Vec::new()).unwrap();
        // Written in odd pieces, as a JSON-lines writer would.
        for chunk in plain.chunks(7_777) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    fn open(ring: &Keyring, file: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        open_sealed_file(ring, &[KIND], file, &mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_segment_boundaries_and_names_itself() {
        let ring = Keyring::generate(0);
        for len in [
            0,
            1,
            DEFAULT_SEGMENT - 1,
            DEFAULT_SEGMENT,
            DEFAULT_SEGMENT + 1,
            3 * DEFAULT_SEGMENT,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let file = sealed(&ring, &plain);
            assert_eq!(open(&ring, &file).unwrap(), plain, "len {len}");
        }
        let file = sealed(&ring, b"hello");
        let mut out = Vec::new();
        let info = open_sealed_file(&ring, &[KIND], file.as_slice(), &mut out).unwrap();
        assert_eq!(info.owner, "export:t1");
        assert_eq!(info.kind, "export");
        assert_eq!(info.version, KeyVersion(1));
    }

    #[test]
    fn tampering_truncation_another_keyring_and_another_kind_fail() {
        let ring = Keyring::generate(0);
        let plain = vec![b'x'; 2 * DEFAULT_SEGMENT + 10];
        let file = sealed(&ring, &plain);
        assert!(
            !file.windows(64).any(|w| w == &plain[..64]),
            "no plaintext in the file"
        );
        let mut edited = file.clone();
        let at = edited.len() - 20;
        edited[at] ^= 1;
        assert!(open(&ring, &edited).is_err());
        // Cut at a segment boundary: the new last segment was not sealed as last.
        let header = file.len() - plain.len() - 3 * TAG_LEN;
        let cut = &file[..header + DEFAULT_SEGMENT + TAG_LEN];
        assert!(open(&ring, cut).is_err());
        assert!(open(&Keyring::generate(0), &file).is_err());
        let mut out = Vec::new();
        assert!(
            open_sealed_file(&ring, &[RecordKind::RECORDING], file.as_slice(), &mut out).is_err()
        );
        assert!(open(&ring, b"plain text").is_err());
    }
}
