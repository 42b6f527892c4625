#!/usr/bin/env bash
# The fuzz targets of gateway/fuzz (cargo-fuzz, libFuzzer), each for a bounded time from its
# committed seed corpus. Fails on the first crash and says how to reproduce it.
#
#   tests/fuzz.sh                 every target, FUZZ_SECONDS (default 10) each
#   tests/fuzz.sh twilio pcm      only those
#
# Only a stable toolchain is needed: cargo-fuzz's nightly flags are allowed with
# RUSTC_BOOTSTRAP=1. The build is the dev profile (debug assertions and overflow checks on)
# without a sanitizer: the targets are safe Rust, and an optimised or ASan build of the
# gateway's dependencies takes longer than the whole step may.
set -euo pipefail
cd "$(dirname "$0")/../gateway"

export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
seconds="${FUZZ_SECONDS:-10}"
# The same flags for build and run, or `cargo fuzz run` builds again.
flags=(--dev --sanitizer none)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build "${flags[@]}"

failed=()
for t in "${targets[@]}"; do
  seeds="fuzz/corpus/$t"
  # New inputs go to the first corpus dir, which is not committed; the seeds stay as they are.
  generated="fuzz/corpus-generated/$t"
  mkdir -p "$generated"
  echo "fuzzing $t for ${seconds}s" >&2
  if ! cargo fuzz run "${flags[@]}" "$t" "$generated" "$seeds" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"fuzz/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 40 "fuzz/$t.log" >&2
    echo >&2
    echo "fuzz target $t failed; the crashing input is in gateway/fuzz/artifacts/$t/." >&2
    echo "reproduce: cd gateway && RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} $t fuzz/artifacts/$t/<file>" >&2
    echo "minimise:  cd gateway && RUSTC_BOOTSTRAP=1 cargo fuzz tmin ${flags[*]} $t fuzz/artifacts/$t/<file>" >&2
  else
    grep -E '^stat::number_of_executed_units|^Done' "fuzz/$t.log" | tr '\n' ' ' >&2 || true
    echo >&2
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}" >&2
  exit 1
fi
