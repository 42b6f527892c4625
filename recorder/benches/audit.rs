//! Cost of the audit log's integrity: hashing one entry into the chain, signing a checkpoint,
//! and verifying a log (per entry).
//!
//! Run: `cargo bench -p recorder --bench audit`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use recorder::audit::{Action, CheckpointKey, Entry, ObjectRef, Outcome, Record, GENESIS};
use std::hint::black_box;

fn entry(i: i64) -> Entry {
    let mut e = Entry::new(1_800_000_000_000 + i, Action::TicketRead, Outcome::Allowed);
    e.actor_id = Some(42);
    e.actor_role = Some("agent".into());
    e.customer_id = Some(i % 1000);
    e.object = Some(ObjectRef::new("ticket", i));
    e.detail = Some("messages".into());
    e.ip = Some("203.0.113.7".into());
    e.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36".into());
    e.request_id = Some("b3JkZXItNDQxMQ".into());
    e
}

fn log(n: i64) -> Vec<Record> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|seq| {
            let e = entry(seq);
            let hash = e.chain_hash(seq, &prev);
            prev = hash;
            Record {
                seq,
                entry: e,
                hash,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let e = entry(1);
    c.bench_function("chain_hash (one entry)", |b| {
        b.iter(|| black_box(&e).chain_hash(black_box(1), &GENESIS))
    });
    let key = CheckpointKey::generate();
    c.bench_function("sign checkpoint", |b| {
        b.iter(|| key.sign(black_box(100), [7u8; 32], 1, GENESIS))
    });

    const N: i64 = 10_000;
    let records = log(N);
    let cps = vec![key.sign(N, records[(N - 1) as usize].hash, 1, GENESIS)];
    let vk = key.verifying_key();
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("10k entries, 1 checkpoint", |b| {
        b.iter_batched(
            || cps.clone(),
            |cps| recorder::audit::verify(&records, cps, &vk).map(|v| v.entries),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
