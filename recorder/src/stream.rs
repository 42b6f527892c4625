//! Streaming encryption for long objects (recordings, exports): the STREAM construction of
//! Tink's streaming AEAD and age. The object is cut into fixed-size segments, each sealed with
//! AES-256-GCM under a key derived for this one stream; segment `i`'s nonce is
//! `prefix(7) ‖ i (u32, big-endian) ‖ last (1 byte)`. A reordered segment fails (wrong
//! counter), a dropped tail fails (the new last segment was not sealed as last), a segment
//! from another stream fails (another key), and any one segment can be read alone.
//!
//! Layout: `header ‖ segment 0 ‖ … ‖ segment n-1`, where the header is
//! `"DGS1" ‖ segment size (u32 BE) ‖ salt (16) ‖ nonce prefix (7)` and authenticated with every
//! segment; every segment but the last holds exactly `segment size` bytes of plaintext plus a
//! 16-byte tag. Only an empty object has an empty (last) segment.

use crate::envelope::DataKey;
use crate::error::{Error, Result};
use crate::seal::RecordId;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use std::io::{Read, Seek, SeekFrom};
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"DGS1";
const SALT_LEN: usize = 16;
const PREFIX_LEN: usize = 7;
/// Bytes of the stream header.
pub const HEADER_LEN: usize = 4 + 4 + SALT_LEN + PREFIX_LEN;
/// Bytes each segment adds to its plaintext.
pub const TAG_LEN: usize = 16;
/// The segment size the vault uses for recordings and exports.
pub const DEFAULT_SEGMENT: usize = 64 * 1024;
const MIN_SEGMENT: usize = 16;
const MAX_SEGMENT: usize = 16 * 1024 * 1024;

fn check_segment_size(size: usize) -> Result<()> {
    if (MIN_SEGMENT..=MAX_SEGMENT).contains(&size) {
        Ok(())
    } else {
        Err(Error::SegmentSize(size))
    }
}

/// The per-stream key: HKDF-SHA256 of the data key with the stream's salt, bound to the
/// object's identity, so two streams under one data key never share a key or nonce space.
fn stream_cipher(key: &DataKey, id: &RecordId<'_>, salt: &[u8]) -> Result<Aes256Gcm> {
    let hk = Hkdf::<Sha256>::new(Some(salt), key.expose());
    let mut info = b"deskgate/stream/v1".to_vec();
    info.extend_from_slice(&id.aad());
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand(&info, okm.as_mut()).map_err(|_| Error::Encrypt)?;
    Ok(Aes256Gcm::new((&*okm).into()))
}

fn nonce(prefix: &[u8; PREFIX_LEN], index: u64, last: bool) -> Result<[u8; 12]> {
    let counter = u32::try_from(index).map_err(|_| Error::StreamTooLong)?;
    let mut n = [0u8; 12];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Ok(n)
}

/// Seals one stream, segment by segment.
pub struct StreamSealer {
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    prefix: [u8; PREFIX_LEN],
    segment: usize,
    next: u64,
}

impl StreamSealer {
    pub fn new(key: &DataKey, id: &RecordId<'_>, segment: usize) -> Result<StreamSealer> {
        check_segment_size(segment)?;
        let seg32 = u32::try_from(segment).map_err(|_| Error::SegmentSize(segment))?;
        let mut salt = [0u8; SALT_LEN];
        let mut prefix = [0u8; PREFIX_LEN];
        rand::thread_rng().fill_bytes(&mut salt);
        rand::thread_rng().fill_bytes(&mut prefix);
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(MAGIC);
        header[4..8].copy_from_slice(&seg32.to_be_bytes());
        header[8..8 + SALT_LEN].copy_from_slice(&salt);
        header[8 + SALT_LEN..].copy_from_slice(&prefix);
        Ok(StreamSealer {
            cipher: stream_cipher(key, id, &salt)?,
            header,
            prefix,
            segment,
            next: 0,
        })
    }

    /// Written once, before the first segment.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    pub fn segment_size(&self) -> usize {
        self.segment
    }

    /// Seals a segment that is not the last, in place: `buf` holds exactly one segment of
    /// plaintext and gets the tag appended.
    pub fn seal_in_place(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        if buf.len() != self.segment {
            return Err(Error::SegmentSize(buf.len()));
        }
        self.seal_segment(buf, false)
    }

    /// Seals the last segment (`0..=segment` bytes; empty only if it is also the first).
    pub fn finish_in_place(mut self, buf: &mut Vec<u8>) -> Result<()> {
        if buf.len() > self.segment || (buf.is_empty() && self.next > 0) {
            return Err(Error::SegmentSize(buf.len()));
        }
        self.seal_segment(buf, true)
    }

    fn seal_segment(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<()> {
        let tag = self.seal_slice(buf, last)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    fn seal_slice(&mut self, buf: &mut [u8], last: bool) -> Result<Tag> {
        let n = nonce(&self.prefix, self.next, last)?;
        let tag = self
            .cipher
            .encrypt_inout_detached(&Nonce::from(n), &self.header, buf.into())
            .map_err(|_| Error::Encrypt)?;
        self.next += 1;
        Ok(tag)
    }
}

/// Opens segments of one stream, in any order.
pub struct StreamOpener {
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    prefix: [u8; PREFIX_LEN],
    segment: usize,
}

impl StreamOpener {
    /// Reads the header; fails if it is not a stream header or names a bad segment size.
    pub fn new(key: &DataKey, id: &RecordId<'_>, header: &[u8]) -> Result<StreamOpener> {
        let header: [u8; HEADER_LEN] = header
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(Error::Truncated("shorter than the stream header"))?;
        if &header[..4] != MAGIC {
            return Err(Error::Malformed("not a sealed stream"));
        }
        let mut seg = [0u8; 4];
        seg.copy_from_slice(&header[4..8]);
        let segment = usize::try_from(u32::from_be_bytes(seg)).unwrap_or(usize::MAX);
        check_segment_size(segment)?;
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&header[8 + SALT_LEN..]);
        Ok(StreamOpener {
            cipher: stream_cipher(key, id, &header[8..8 + SALT_LEN])?,
            header,
            prefix,
            segment,
        })
    }

    pub fn segment_size(&self) -> usize {
        self.segment
    }

    /// How many segments a stream of `total` bytes (header included) has; a length no
    /// stream can have is reported as truncation.
    pub fn segment_count(&self, total: u64) -> Result<u64> {
        let body = total
            .checked_sub(HEADER_LEN as u64)
            .ok_or(Error::Truncated("shorter than the stream header"))?;
        let full = (self.segment + TAG_LEN) as u64;
        if body < TAG_LEN as u64 {
            return Err(Error::Truncated("no last segment"));
        }
        let n = body.div_ceil(full);
        let last = body - (n - 1) * full;
        if last < TAG_LEN as u64 || (n > 1 && last == TAG_LEN as u64) {
            return Err(Error::Truncated("last segment is cut short"));
        }
        Ok(n)
    }

    /// Byte offset of segment `index` in the stream.
    pub fn segment_offset(&self, index: u64) -> u64 {
        HEADER_LEN as u64 + index * (self.segment + TAG_LEN) as u64
    }

    /// Opens segment `index` in place: `buf` holds its ciphertext and tag, and is left with
    /// the plaintext. `last` says whether the caller's stream ends with it.
    pub fn open_in_place(&self, index: u64, last: bool, buf: &mut Vec<u8>) -> Result<()> {
        let fail = || Error::Segment { index };
        if buf.len() < TAG_LEN || buf.len() > self.segment + TAG_LEN {
            return Err(fail());
        }
        if !last && buf.len() != self.segment + TAG_LEN {
            return Err(fail());
        }
        let split = buf.len() - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buf[split..]);
        buf.truncate(split);
        self.open_slice(index, last, buf, &tag)
    }

    fn open_slice(&self, index: u64, last: bool, buf: &mut [u8], tag: &[u8]) -> Result<()> {
        let fail = || Error::Segment { index };
        if tag.len() != TAG_LEN || (!last && buf.len() != self.segment) {
            return Err(fail());
        }
        let n = nonce(&self.prefix, index, last)?;
        self.cipher
            .decrypt_inout_detached(
                &Nonce::from(n),
                &self.header,
                buf.into(),
                &Tag::try_from(tag).map_err(|_| fail())?,
            )
            .map_err(|_| fail())
    }
}

/// Seals a whole object held in memory.
pub fn seal_all(key: &DataKey, id: &RecordId<'_>, segment: usize, plain: &[u8]) -> Result<Vec<u8>> {
    let mut sealer = StreamSealer::new(key, id, segment)?;
    let n = plain.len().div_ceil(segment).max(1);
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + n * TAG_LEN);
    out.extend_from_slice(sealer.header());
    for (i, chunk) in plain.chunks(segment).enumerate() {
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = sealer.seal_slice(&mut out[start..], i + 1 == n)?;
        out.extend_from_slice(&tag);
    }
    if plain.is_empty() {
        let tag = sealer.seal_slice(&mut [], true)?;
        out.extend_from_slice(&tag);
    }
    Ok(out)
}

/// Opens a whole object held in memory; any tampering, truncation or reordering fails it.
pub fn open_all(key: &DataKey, id: &RecordId<'_>, sealed: &[u8]) -> Result<Vec<u8>> {
    let opener = StreamOpener::new(key, id, sealed)?;
    let n = opener.segment_count(sealed.len() as u64)?;
    let mut out = Vec::with_capacity(sealed.len());
    for (i, seg) in sealed[HEADER_LEN..]
        .chunks(opener.segment + TAG_LEN)
        .enumerate()
    {
        let index = i as u64;
        let (body, tag) = seg.split_at(seg.len() - TAG_LEN);
        let start = out.len();
        out.extend_from_slice(body);
        opener.open_slice(index, index + 1 == n, &mut out[start..], tag)?;
    }
    Ok(out)
}

/// Reads and opens one segment of a sealed stream from a file (or anything seekable) without
/// reading the rest: the header, then the segment at its offset.
pub fn read_segment<R: Read + Seek>(
    key: &DataKey,
    id: &RecordId<'_>,
    source: &mut R,
    index: u64,
) -> Result<Vec<u8>> {
    let total = source.seek(SeekFrom::End(0))?;
    source.seek(SeekFrom::Start(0))?;
    let mut header = [0u8; HEADER_LEN];
    source
        .read_exact(&mut header)
        .map_err(|_| Error::Truncated("shorter than the stream header"))?;
    let opener = StreamOpener::new(key, id, &header)?;
    let n = opener.segment_count(total)?;
    if index >= n {
        return Err(Error::Segment { index });
    }
    let start = opener.segment_offset(index);
    let len = (total - start).min((opener.segment + TAG_LEN) as u64);
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| Error::StreamTooLong)?];
    source.seek(SeekFrom::Start(start))?;
    source.read_exact(&mut buf)?;
    opener.open_in_place(index, index + 1 == n, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Owner;
    use crate::seal::RecordKind;
    use std::io::Cursor;

    const SEG: usize = 64;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn setup() -> (DataKey, Owner) {
        (DataKey::generate(), Owner::recording(1))
    }

    #[test]
    fn round_trips_at_every_boundary() {
        let (key, o) = setup();
        let id = RecordId::new(&o, 0, RecordKind::RECORDING);
        for len in [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 5] {
            let plain = data(len);
            let sealed = seal_all(&key, &id, SEG, &plain).unwrap();
            let segs = len.div_ceil(SEG).max(1);
            assert_eq!(sealed.len(), HEADER_LEN + len + segs * TAG_LEN, "len {len}");
            assert_eq!(open_all(&key, &id, &sealed).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn dropping_the_tail_is_detected() {
        let (key, o) = setup();
        let id = RecordId::new(&o, 0, RecordKind::RECORDING);
        let sealed = seal_all(&key, &id, SEG, &data(4 * SEG)).unwrap();
        // Whole segments dropped: the new last one was not sealed as last.
        for keep in 1..4 {
            let cut = HEADER_LEN + keep * (SEG + TAG_LEN);
            assert!(open_all(&key, &id, &sealed[..cut]).is_err(), "kept {keep}");
        }
        // Any shorter length at all.
        for cut in 0..sealed.len() {
            assert!(open_all(&key, &id, &sealed[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn an_exact_multiple_cannot_be_cut_to_look_complete() {
        let (key, o) = setup();
        let id = RecordId::new(&o, 0, RecordKind::RECORDING);
        let sealed = seal_all(&key, &id, SEG, &data(2 * SEG)).unwrap();
        let cut = &sealed[..HEADER_LEN + SEG + TAG_LEN];
        assert!(matches!(
            open_all(&key, &id, cut),
            Err(Error::Segment { index: 0 })
        ));
    }

    #[test]
    fn reordered_segments_are_detected() {
        let (key, o) = setup();
        let id = RecordId::new(&o, 0, RecordKind::RECORDING);
        let mut sealed = seal_all(&key, &id, SEG, &data(3 * SEG + 10)).unwrap();
        let s = SEG + TAG_LEN;
        let (a, b) = (HEADER_LEN, HEADER_LEN + s);
        let first: Vec<u8> = sealed[a..a + s].to_vec();
        let second: Vec<u8> = sealed[b..b + s].to_vec();
        sealed[a..a + s].copy_from_slice(&second);
        sealed[b..b + s].copy_from_slice(&first);
        assert!(matches!(
            open_all(&key, &id, &sealed),
            Err(Error::Segment { index: 0 })
        ));
    }

    #[test]
    fn a_segment_spliced_from_another_stream_is_detected() {
        let (key, o) = setup();
        let id = RecordId::new(&o, 0, RecordKind::RECORDING);
        let plain = data(3 * SEG);
        let one = seal_all(&key, &id, SEG, &plain).unwrap();
        let two = seal_all(&key, &id, SEG, &plain).unwrap();
        let s = SEG + TAG_LEN;
        let at = HEADER_LEN + s;
        let mut spliced = one.clone();
        spliced[at..at + s].copy_from_slice(&two[at..at + s]);
        assert!(matches!(
            open_all(&key, &id, &spliced),
            Err(Error::Segment { index: 1 })
        ));
        // A whole stream under another identity or another key fails too.
        let other = Owner::recording(2);
        let elsewhere = RecordId::new(&other, 0, RecordKind::RECORDING);
        assert!(open_all(&key, &elsewhere, &one).is_err());
        assert!(open_all(&DataKey::generate(), &id, &one).is_err());
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let (key, o) = setup();
        let id = RecordId::new(&o, 0, RecordKind::RECORDING);
        let sealed = seal_all(&key, &id, SEG, &data(2 * SEG + 3)).unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(open_all(&key, &id, &bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn one_segment_reads_alone_from_a_seekable_source() {
        let (key, o) = setup();
        let id = RecordId::new(&o, 0, RecordKind::RECORDING);
        let plain = data(5 * SEG + 7);
        let sealed = seal_all(&key, &id, SEG, &plain).unwrap();
        for (i, expect) in plain.chunks(SEG).enumerate() {
            let got = read_segment(&key, &id, &mut Cursor::new(&sealed), i as u64).unwrap();
            assert_eq!(got, expect, "segment {i}");
        }
        assert!(matches!(
            read_segment(&key, &id, &mut Cursor::new(&sealed), 6),
            Err(Error::Segment { index: 6 })
        ));
        // Random access still detects a cut tail: segment 4 read as if it were last.
        let cut = &sealed[..HEADER_LEN + 5 * (SEG + TAG_LEN)];
        assert!(read_segment(&key, &id, &mut Cursor::new(cut), 4).is_err());
    }

    #[test]
    fn the_sealer_refuses_wrong_segment_sizes() {
        let (key, o) = setup();
        let id = RecordId::new(&o, 0, RecordKind::RECORDING);
        assert!(matches!(
            StreamSealer::new(&key, &id, 1),
            Err(Error::SegmentSize(1))
        ));
        let mut s = StreamSealer::new(&key, &id, SEG).unwrap();
        let mut short = vec![0u8; SEG - 1];
        assert!(s.seal_in_place(&mut short).is_err());
        let mut full = vec![0u8; SEG];
        s.seal_in_place(&mut full).unwrap();
        let mut empty = Vec::new();
        assert!(s.finish_in_place(&mut empty).is_err());
    }
}
