//! `deskgate serve`'s flags and config file: the same clap definition and the same
//! `Config::load` path (merge, then validate) never panic on any flags and any file text; a
//! config that loads holds the limits `validate` promises.
//!
//! Input: flags, one per line, then a NUL byte, then the TOML file (no NUL: the file only).
//! An input that names a file (`*_file` keys, `--*-file` flags) is skipped: loading reads
//! those files, and a path such as `/dev/zero` would only measure the disk.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run config -- -max_total_time=60` (from `gateway/`)

#![no_main]

use clap::{Args, Command, FromArgMatches};
use deskgate::config::{Config, ServeArgs};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("file") {
        return;
    }
    let (flags, file) = match text.split_once('\0') {
        Some((flags, file)) => (flags.lines().collect::<Vec<_>>(), file),
        None => (Vec::new(), text),
    };
    let command = ServeArgs::augment_args(Command::new("serve").no_binary_name(true));
    let Ok(matches) = command.try_get_matches_from(flags) else {
        return;
    };
    let Ok(mut args) = ServeArgs::from_arg_matches(&matches) else {
        return;
    };
    // The text stands for the file; nothing is read from a path the input names.
    args.config = Some("fuzz.toml".into());
    match Config::load_text(&args, file) {
        Ok(c) => {
            assert!(c.ws.max_frame_bytes >= 1024);
            assert!(c.ws.rate_per_sec >= 1 && c.ws.rate_burst >= 1);
            assert!(c.ws.outbound_queue >= 8);
            assert!(c.limits.max_connections_per_ip >= 1);
            assert!(c.grants.default_duration <= c.grants.max_duration);
            assert!(c.grants.pending_ttl >= Duration::from_secs(60));
            assert!(c.audit.checkpoint_every >= 1);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
