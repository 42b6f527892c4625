//! Streaming-encryption throughput by CPU time, to set beside `openssl speed -evp aes-256-gcm`
//! (which reports CPU time too) on a machine shared with other work, where wall time mostly
//! measures the neighbours. Seals then opens 1 GiB in 64 KiB segments (16 MiB at a time) and
//! prints MB/s of user + system CPU time for each.
//!
//! cargo run --release -p recorder --example stream_cpu

use recorder::stream::{open_all, seal_all, DEFAULT_SEGMENT};
use recorder::{DataKey, Owner, RecordId, RecordKind};
use std::hint::black_box;

fn cpu_seconds() -> f64 {
    // utime and stime of this process, in clock ticks (USER_HZ, 100 on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let key = DataKey::generate();
    let owner = Owner::recording(1);
    let id = RecordId::new(&owner, 0, RecordKind::RECORDING);
    let chunk = vec![7u8; 16 * 1024 * 1024];
    let rounds = 64; // 1 GiB
    let total = (chunk.len() * rounds) as f64;

    let start = cpu_seconds();
    let mut sealed = Vec::new();
    for _ in 0..rounds {
        sealed = black_box(seal_all(&key, &id, DEFAULT_SEGMENT, &chunk).unwrap_or_default());
    }
    let seal_cpu = cpu_seconds() - start;

    let start = cpu_seconds();
    for _ in 0..rounds {
        black_box(open_all(&key, &id, &sealed).map(|p| p.len()).unwrap_or(0));
    }
    let open_cpu = cpu_seconds() - start;

    println!(
        "seal: {:.0} MB/s of CPU time ({seal_cpu:.2} s for 1 GiB)",
        total / seal_cpu / 1e6
    );
    println!(
        "open: {:.0} MB/s of CPU time ({open_cpu:.2} s for 1 GiB)",
        total / open_cpu / 1e6
    );
}
