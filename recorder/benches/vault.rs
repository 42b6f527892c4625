//! Throughput of the vault's constructions: sealing and opening chat-sized records, and
//! streaming encryption at 64 KiB segments. Compare with `openssl speed -evp aes-256-gcm`
//! (docs/performance.md, "Vault").

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use recorder::stream::{open_all, seal_all, DEFAULT_SEGMENT};
use recorder::{open, seal, DataKey, Keyring, Owner, RecordId, RecordKind};
use std::hint::black_box;

fn records(c: &mut Criterion) {
    let key = DataKey::generate();
    let owner = Owner::conversation(42);
    let mut g = c.benchmark_group("record");
    for size in [64usize, 256, 1024, 4096] {
        let plain = vec![b'a'; size];
        let id = RecordId::new(&owner, 17, RecordKind::MESSAGE_BODY);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("seal", size), &plain, |b, p| {
            b.iter(|| seal(&key, &id, black_box(p)))
        });
        let sealed = seal(&key, &id, &plain).unwrap_or_default();
        g.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, s| {
            b.iter(|| open(&key, &id, black_box(s)))
        });
    }
    g.finish();
}

fn unwrap(c: &mut Criterion) {
    let ring = Keyring::generate(0);
    let owner = Owner::conversation(42);
    let Ok((_, wrapped)) = ring.new_data_key(&owner) else {
        return;
    };
    c.bench_function("data_key/unwrap", |b| {
        b.iter(|| ring.unwrap(&owner, black_box(&wrapped)))
    });
}

fn streaming(c: &mut Criterion) {
    let key = DataKey::generate();
    let owner = Owner::recording(7);
    let id = RecordId::new(&owner, 0, RecordKind::RECORDING);
    let size = 16 * 1024 * 1024;
    let plain = vec![7u8; size];
    let mut g = c.benchmark_group("stream_64k");
    g.throughput(Throughput::Bytes(size as u64));
    g.sample_size(20);
    g.bench_function("seal_16MiB", |b| {
        b.iter(|| seal_all(&key, &id, DEFAULT_SEGMENT, black_box(&plain)))
    });
    let sealed = seal_all(&key, &id, DEFAULT_SEGMENT, &plain).unwrap_or_default();
    g.bench_function("open_16MiB", |b| {
        b.iter(|| open_all(&key, &id, black_box(&sealed)))
    });
    g.finish();
}

criterion_group!(benches, records, unwrap, streaming);
criterion_main!(benches);
