//! Per-frame cost of what the gateway does for each 20 ms of a recorded call.
//!
//! `cargo bench -p deskgate --bench voice`
//!
//! - `ulaw`: decoding one 160-byte μ-law frame from the provider and encoding one back.
//! - `resample`: one frame 16 → 8 kHz (the agent's leg) and 8 → 16 kHz (to the agent).
//! - `record`: one stereo 8 kHz frame into the recording, sealed in 32 KiB segments, the
//!   sealing and file writes included (amortised over a 10 s call).

#![allow(clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deskgate::voice::media::{self, Rate, Resampler};
use deskgate::voice::recording::Writer;
use std::hint::black_box;

fn tone(hz: f32, rate: f32, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate).sin()) as i16)
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("voice");
    g.throughput(Throughput::Elements(1));
    let pcm8 = tone(440.0, 8000.0, 160);
    let law = media::pcm_to_ulaw(&pcm8);
    g.bench_function("ulaw_frame_in_and_out", |b| {
        b.iter(|| {
            let p = media::ulaw_to_pcm(black_box(&law));
            black_box(media::pcm_to_ulaw(&p))
        })
    });
    let pcm16 = tone(1000.0, 16000.0, 320);
    let (mut down, mut up) = (Resampler::default(), Resampler::default());
    g.bench_function("resample_frame_both_ways", |b| {
        b.iter(|| {
            let d = down.down(black_box(&pcm16));
            black_box(up.up(&d))
        })
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let key = recorder::DataKey::generate();
    let mut id = 0;
    g.bench_function("record_10s_call_per_frame", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                id += 1;
                let n = left.min(500);
                let mut w = Writer::create(dir.path(), id, Rate::Hz8000, &key).expect("writer");
                let t = std::time::Instant::now();
                for _ in 0..n {
                    w.push(Some(&pcm8), Some(&pcm8)).expect("push");
                }
                w.finish().expect("finish");
                total += t.elapsed();
                left -= n;
                let _ = std::fs::remove_file(deskgate::voice::recording::path(dir.path(), id));
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
