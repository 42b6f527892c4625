//! A call's recording as it is written: dual-channel PCM16 (customer left, agent right), one
//! 20 ms stereo frame per tick of the call's clock, sealed with the vault's STREAM in
//! segments as each fills, so at most one segment of clear audio is ever in memory and none
//! reaches the disk. Beside the stream, a [`Manifest`] (sealed by the caller) lists every
//! segment's hash, the channel layout, the pause intervals and, once the call ends, a final
//! entry; [`export`] checks the file against it and turns it into a WAV only then.
//!
//! File: `<data>/recordings/<id>.dgs`, a `recorder::stream` object whose identity is
//! `recording:<id>`, seq 0, kind `recording`.

use super::media::Rate;
use recorder::stream::{StreamOpener, StreamSealer, HEADER_LEN, TAG_LEN};
use recorder::{DataKey, Owner, RecordId, RecordKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// Plaintext bytes per sealed segment: 2 s of 8 kHz stereo, 1 s at 16 kHz.
pub const SEGMENT: usize = 32 * 1024;
/// Record kind of the sealed manifest.
pub const MANIFEST_KIND: RecordKind = RecordKind::new("recording.manifest");
/// The layout every recording has.
pub const CHANNELS: [&str; 2] = ["customer", "agent"];

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("recording vault: {0}")]
    Vault(#[from] recorder::Error),
    /// The file does not match its manifest: cut off, altered, or the call never finished.
    #[error("recording fails its check: {0}")]
    Integrity(String),
}

pub fn path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("{id}.dgs"))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SegmentEntry {
    pub index: u64,
    /// SHA-256 of the sealed segment as it is on disk (ciphertext and tag).
    pub sha256: String,
}

/// A pause of the recording, in frames of the call's clock (end exclusive).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PauseEntry {
    pub start_frame: u64,
    pub end_frame: Option<u64>,
    /// `user:<id>` or `api:<id>`.
    pub by: String,
    /// `user:<id>`, `api:<id>`, `auto` (the maximum pause ran out) or `end` (the call ended).
    pub resumed_by: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FinalEntry {
    pub segments: u64,
    pub frames: u64,
    /// Bytes of PCM the stream holds.
    pub bytes: u64,
    /// SHA-256 of the whole sealed file.
    pub file_sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub version: u32,
    pub recording: i64,
    pub rate: u32,
    pub channels: Vec<String>,
    pub sample_format: String,
    pub frame_ms: u32,
    pub segment_size: usize,
    pub header_sha256: String,
    pub segments: Vec<SegmentEntry>,
    pub pauses: Vec<PauseEntry>,
    #[serde(rename = "final")]
    pub final_entry: Option<FinalEntry>,
}

fn hex_sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn identity(owner: &Owner) -> RecordId<'_> {
    RecordId::new(owner, 0, RecordKind::RECORDING)
}

/// Writes one recording. Not async: each call is a few hundred bytes into memory, and a
/// `SEGMENT`-sized sealed write every second or two.
pub struct Writer {
    file: File,
    sealer: Option<StreamSealer>,
    plain: Zeroizing<Vec<u8>>,
    file_hash: Sha256,
    frame_samples: usize,
    pcm_bytes: u64,
    pub manifest: Manifest,
    frames: u64,
}

impl Writer {
    /// Creates `<dir>/<id>.dgs` (refusing to overwrite) and writes the stream header.
    pub fn create(
        dir: &Path,
        id: i64,
        rate: Rate,
        key: &DataKey,
    ) -> Result<Writer, RecordingError> {
        std::fs::create_dir_all(dir)?;
        let owner = Owner::recording(id);
        let sealer = StreamSealer::new(key, &identity(&owner), SEGMENT)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path(dir, id))?;
        file.write_all(sealer.header())?;
        let mut file_hash = Sha256::new();
        file_hash.update(sealer.header());
        let manifest = Manifest {
            version: 1,
            recording: id,
            rate: rate.hz(),
            channels: CHANNELS.iter().map(|c| c.to_string()).collect(),
            sample_format: "s16le interleaved".into(),
            frame_ms: super::media::FRAME_MS,
            segment_size: SEGMENT,
            header_sha256: hex_sha(sealer.header()),
            segments: Vec::new(),
            pauses: Vec::new(),
            final_entry: None,
        };
        Ok(Writer {
            file,
            sealer: Some(sealer),
            plain: Zeroizing::new(Vec::with_capacity(SEGMENT + recorder::stream::TAG_LEN)),
            file_hash,
            frame_samples: rate.frame_samples(),
            pcm_bytes: 0,
            manifest,
            frames: 0,
        })
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Appends one stereo frame; a missing or short channel is filled with silence. Returns
    /// true when a segment was sealed and written (the manifest changed).
    ///
    /// The clear buffer never grows past one segment and its tag, so it is never reallocated:
    /// a reallocation would free a copy of clear audio that nothing wipes. A full segment is
    /// sealed in place (its clear bytes become ciphertext) only once more audio follows it, since
    /// the last segment of the stream must be sealed as last and may be exactly full.
    pub fn push(
        &mut self,
        customer: Option<&[i16]>,
        agent: Option<&[i16]>,
    ) -> Result<bool, RecordingError> {
        let at = |c: Option<&[i16]>, i: usize| c.and_then(|c| c.get(i)).copied().unwrap_or(0);
        let mut sealed_one = false;
        for i in 0..self.frame_samples {
            if self.plain.len() == SEGMENT {
                let mut seg = std::mem::take(&mut self.plain);
                self.seal_segment(&mut seg, false)?;
                // Ciphertext now, wiped anyway; the allocation is kept for the next segment.
                seg.zeroize();
                seg.clear();
                self.plain = seg;
                sealed_one = true;
            }
            self.plain.extend_from_slice(&at(customer, i).to_le_bytes());
            self.plain.extend_from_slice(&at(agent, i).to_le_bytes());
        }
        self.frames += 1;
        self.pcm_bytes += (self.frame_samples * 4) as u64;
        Ok(sealed_one)
    }

    fn seal_segment(
        &mut self,
        seg: &mut Zeroizing<Vec<u8>>,
        last: bool,
    ) -> Result<(), RecordingError> {
        let index = self.manifest.segments.len() as u64;
        let done = || RecordingError::Integrity("recording already finished".into());
        let buf: &mut Vec<u8> = seg;
        if last {
            self.sealer.take().ok_or_else(done)?.finish_in_place(buf)?;
        } else {
            self.sealer.as_mut().ok_or_else(done)?.seal_in_place(buf)?;
        }
        self.file.write_all(buf)?;
        self.file_hash.update(&buf[..]);
        self.manifest.segments.push(SegmentEntry {
            index,
            sha256: hex_sha(buf),
        });
        Ok(())
    }

    pub fn pause(&mut self, by: String) {
        self.manifest.pauses.push(PauseEntry {
            start_frame: self.frames,
            end_frame: None,
            by,
            resumed_by: None,
        });
    }

    pub fn resume(&mut self, by: String) {
        if let Some(p) = self.manifest.pauses.last_mut() {
            if p.end_frame.is_none() {
                p.end_frame = Some(self.frames);
                p.resumed_by = Some(by);
            }
        }
    }

    /// Seals the last segment, syncs the file, and writes the final entry.
    pub fn finish(&mut self) -> Result<Manifest, RecordingError> {
        if self.sealer.is_none() {
            return Err(RecordingError::Integrity(
                "recording already finished".into(),
            ));
        }
        self.resume("end".into());
        let mut last = std::mem::take(&mut self.plain);
        self.seal_segment(&mut last, true)?;
        self.file.sync_all()?;
        let hash = std::mem::take(&mut self.file_hash).finalize();
        self.manifest.final_entry = Some(FinalEntry {
            segments: self.manifest.segments.len() as u64,
            frames: self.frames,
            bytes: self.pcm_bytes,
            file_sha256: hex::encode(hash),
        });
        Ok(self.manifest.clone())
    }
}

/// Checks the sealed file against its manifest without opening anything: the final entry is
/// there, the header and every segment hash match, and nothing follows the last segment.
pub fn check(file: &Path, manifest: &Manifest) -> Result<(), RecordingError> {
    let bad = |m: &str| RecordingError::Integrity(m.to_string());
    let fin = manifest
        .final_entry
        .as_ref()
        .ok_or_else(|| bad("the recording has no final entry: the call never finished"))?;
    if fin.segments != manifest.segments.len() as u64 {
        return Err(bad("the manifest's segment list and final entry disagree"));
    }
    let mut f = File::open(file)?;
    let mut header = [0u8; HEADER_LEN];
    f.read_exact(&mut header)
        .map_err(|_| bad("the file is shorter than its header"))?;
    if hex_sha(&header) != manifest.header_sha256 {
        return Err(bad("the stream header was altered"));
    }
    let mut whole = Sha256::new();
    whole.update(header);
    let full = manifest.segment_size + TAG_LEN;
    let mut buf = vec![0u8; full];
    for seg in &manifest.segments {
        let is_last = seg.index + 1 == fin.segments;
        let n = read_up_to(&mut f, &mut buf)?;
        if n == 0 || (!is_last && n < full) {
            return Err(RecordingError::Integrity(format!(
                "the file is cut off at segment {}",
                seg.index
            )));
        }
        let got = if is_last { &buf[..n] } else { &buf[..full] };
        if hex_sha(got) != seg.sha256 {
            return Err(RecordingError::Integrity(format!(
                "segment {} was altered",
                seg.index
            )));
        }
        whole.update(got);
    }
    let mut extra = [0u8; 1];
    if f.read(&mut extra)? != 0 {
        return Err(bad("data follows the last segment"));
    }
    if hex::encode(whole.finalize()) != fin.file_sha256 {
        return Err(bad("the file's hash differs from the final entry"));
    }
    Ok(())
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The 44-byte WAV header of a recording's export: PCM16, two channels.
pub fn wav_header(rate: u32, data_bytes: u64) -> Vec<u8> {
    let data = u32::try_from(data_bytes).unwrap_or(u32::MAX - 36);
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 4).to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data.to_le_bytes());
    h
}

/// Checks the file against its manifest, then opens it segment by segment, handing each
/// chunk of the WAV (header first) to `out`; stops at the first error, which `out` never
/// sees as audio.
pub fn export(
    file: &Path,
    manifest: &Manifest,
    key: &DataKey,
    mut out: impl FnMut(Vec<u8>) -> bool,
) -> Result<(), RecordingError> {
    check(file, manifest)?;
    let fin = manifest
        .final_entry
        .as_ref()
        .ok_or_else(|| RecordingError::Integrity("no final entry".into()))?;
    let owner = Owner::recording(manifest.recording);
    let id = identity(&owner);
    let mut f = File::open(file)?;
    let mut header = [0u8; HEADER_LEN];
    f.read_exact(&mut header)?;
    let opener = StreamOpener::new(key, &id, &header)?;
    if !out(wav_header(manifest.rate, fin.bytes)) {
        return Ok(());
    }
    let full = opener.segment_size() + TAG_LEN;
    for i in 0..fin.segments {
        let mut buf = vec![0u8; full];
        let n = read_up_to(&mut f, &mut buf)?;
        buf.truncate(n);
        opener.open_in_place(i, i + 1 == fin.segments, &mut buf)?;
        if !out(buf) {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16, n: usize) -> Vec<i16> {
        vec![v; n]
    }

    fn record(dir: &Path, key: &DataKey, frames: u64) -> Manifest {
        let mut w = Writer::create(dir, 1, Rate::Hz8000, key).unwrap();
        for i in 0..frames {
            if i == 10 {
                w.pause("user:1".into());
            }
            if i == 20 {
                w.resume("user:1".into());
            }
            let c = frame(1000, 160);
            let a = frame(-2000, 160);
            // The agent leg is missing for one frame: silence fills it.
            let agent = (i != 5).then_some(a.as_slice());
            w.push(Some(&c), agent).unwrap();
        }
        w.finish().unwrap()
    }

    fn exported(dir: &Path, m: &Manifest, key: &DataKey) -> Result<Vec<u8>, RecordingError> {
        let mut wav = Vec::new();
        export(&path(dir, 1), m, key, |c| {
            wav.extend_from_slice(&c);
            true
        })?;
        Ok(wav)
    }

    /// The clear buffer keeps the one allocation it was made with, at both rates: a
    /// reallocation would leave a copy of clear audio behind in freed memory.
    #[test]
    fn the_clear_buffer_is_never_reallocated() {
        for (rate, samples) in [(Rate::Hz8000, 160), (Rate::Hz16000, 320)] {
            let dir = tempfile::tempdir().unwrap();
            let key = DataKey::generate();
            let mut w = Writer::create(dir.path(), 1, rate, &key).unwrap();
            let at = w.plain.as_ptr();
            let capacity = w.plain.capacity();
            let mut sealed = 0;
            for _ in 0..500 {
                let f = frame(1234, samples);
                sealed += usize::from(w.push(Some(&f), Some(&f)).unwrap());
                assert!(w.plain.len() <= SEGMENT);
                assert_eq!((w.plain.as_ptr(), w.plain.capacity()), (at, capacity));
            }
            assert!(sealed >= 500 * samples * 4 / SEGMENT - 1, "{sealed}");
            let m = w.finish().unwrap();
            assert_eq!(
                m.final_entry.unwrap().segments as usize,
                (500 * samples * 4).div_ceil(SEGMENT)
            );
        }
    }

    #[test]
    fn a_recording_exports_as_stereo_wav_with_gaps_silent() {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate();
        // 300 frames: 192 000 bytes, six segments, the last one partly full.
        let m = record(dir.path(), &key, 300);
        let fin = m.final_entry.clone().unwrap();
        assert_eq!(fin.frames, 300);
        assert_eq!(fin.bytes, 300 * 160 * 4);
        assert_eq!(fin.segments, (fin.bytes as usize).div_ceil(SEGMENT) as u64);
        assert_eq!(m.pauses[0].start_frame, 10);
        assert_eq!(m.pauses[0].end_frame, Some(20));
        let wav = exported(dir.path(), &m, &key).unwrap();
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(wav.len(), 44 + fin.bytes as usize);
        let s: Vec<i16> = wav[44..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!((s[0], s[1]), (1000, -2000));
        let f5 = 5 * 160 * 2;
        assert_eq!((s[f5], s[f5 + 1]), (1000, 0));
        // No clear sample on disk: the constant 1000 (0xE8 0x03) never appears twice in a row.
        let disk = std::fs::read(path(dir.path(), 1)).unwrap();
        assert!(!disk
            .windows(8)
            .any(|w| w == [0xE8, 0x03, 0x30, 0xF8, 0xE8, 0x03, 0x30, 0xF8]));
    }

    #[test]
    fn an_exact_multiple_of_the_segment_still_ends_with_a_last_segment() {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate();
        // 51.2 frames per segment at 8 kHz: 256 frames = 5 segments exactly.
        let m = record(dir.path(), &key, 256);
        assert_eq!(m.final_entry.as_ref().unwrap().segments, 5);
        assert!(exported(dir.path(), &m, &key).is_ok());
    }

    #[test]
    fn truncation_alteration_and_an_unfinished_call_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::generate();
        let m = record(dir.path(), &key, 300);
        let p = path(dir.path(), 1);
        let good = std::fs::read(&p).unwrap();

        // Cut at a segment boundary and anywhere else.
        for cut in [
            good.len() - 1,
            HEADER_LEN + SEGMENT + TAG_LEN,
            HEADER_LEN + 5,
        ] {
            std::fs::write(&p, &good[..cut]).unwrap();
            let e = exported(dir.path(), &m, &key).unwrap_err();
            assert!(matches!(e, RecordingError::Integrity(_)), "cut {cut}: {e}");
        }
        // One flipped byte.
        let mut bad = good.clone();
        bad[HEADER_LEN + 100] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        assert!(matches!(
            exported(dir.path(), &m, &key),
            Err(RecordingError::Integrity(_))
        ));
        // A truncated file with a manifest edited to match still fails: the stream's last
        // segment flag is inside the encryption.
        let cut = HEADER_LEN + 2 * (SEGMENT + TAG_LEN);
        std::fs::write(&p, &good[..cut]).unwrap();
        let mut forged = m.clone();
        forged.segments.truncate(2);
        let fin = forged.final_entry.as_mut().unwrap();
        fin.segments = 2;
        fin.file_sha256 = hex_sha(&good[..cut]);
        assert!(matches!(
            exported(dir.path(), &forged, &key),
            Err(RecordingError::Vault(_))
        ));
        // A manifest without its final entry: the call never finished.
        std::fs::write(&p, &good).unwrap();
        let mut open = m.clone();
        open.final_entry = None;
        assert!(exported(dir.path(), &open, &key).is_err());
        assert!(exported(dir.path(), &m, &key).is_ok());
        // The wrong key opens nothing.
        assert!(exported(dir.path(), &m, &DataKey::generate()).is_err());
    }
}
