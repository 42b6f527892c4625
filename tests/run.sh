#!/usr/bin/env bash
# The whole test suite. Installs what the tests need that a fresh machine lacks, then runs
# every test of the workspace against real servers on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each part says when it ends, in seconds from the start, so a slow part shows in the log.
mark() { echo "tests/run.sh: $1 done at ${SECONDS} s" >&2; }

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest from crates.io" >&2
  cargo install cargo-nextest --locked
fi

# The browser tests (tests/e2e/browser.rs) drive Debian's Chromium through playwright-core;
# playwright never downloads a browser of its own.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The voice tests make the caller's audio with sox.
command -v sox >/dev/null 2>&1 || missing+=(sox)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} with apt" >&2
  apt-get update && apt-get install -y "${missing[@]}"
fi
if ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  echo "the browser tests need Node.js 20 or newer (playwright-core); this is $(node --version)" >&2
  exit 1
fi
lock=web-widget/node_modules/.package-lock.json
if [ ! -f "$lock" ] || [ web-widget/package-lock.json -nt "$lock" ]; then
  echo "installing the web-widget's npm packages" >&2
  (cd web-widget && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
# The step-up tests send code emails to a real SMTP server: aiosmtpd from PyPI, in a venv, at
# the version the tests were written against (implicit TLS, AUTH and the authenticator API).
AIOSMTPD_VERSION=1.4.6
if [ -z "${DESKGATE_TEST_PYTHON:-}" ] && ! target/smtp-venv/bin/python -c \
    "import sys, aiosmtpd; sys.exit(aiosmtpd.__version__ != '$AIOSMTPD_VERSION')" >/dev/null 2>&1; then
  echo "installing aiosmtpd $AIOSMTPD_VERSION from PyPI into target/smtp-venv" >&2
  python3 -m venv target/smtp-venv
  target/smtp-venv/bin/pip install --quiet "aiosmtpd==$AIOSMTPD_VERSION"
fi

# The voice tests' Twilio peer (tests/support/voice/twilio_peer.py) speaks WebSocket with
# websockets from PyPI, in a venv of its own; its tones are computed in Python (no sox needed).
WEBSOCKETS_VERSION=17.4
if [ -z "${DESKGATE_VOICE_PYTHON:-}" ] && ! target/voice-venv/bin/python -c \
    "import sys, websockets; sys.exit(websockets.__version__ != '$WEBSOCKETS_VERSION')" >/dev/null 2>&1; then
  echo "installing websockets $WEBSOCKETS_VERSION from PyPI into target/voice-venv" >&2
  python3 -m venv target/voice-venv
  target/voice-venv/bin/pip install --quiet "websockets==$WEBSOCKETS_VERSION"
fi
# Supply chain (deny.toml): cargo-deny, at a pinned version, into target/ (about a minute: an
# unoptimised build without its optional features, which the check does not need). Without
# network the RustSec advisory database cannot be fetched: then licences, bans and sources only,
# and the run says so. `cargo metadata` reads the crates of every platform from the registry.
# It goes to a tools directory outside the checkout (DESKGATE_TOOLS, by default
# ~/.cache/deskgate-tools), so another clone on the same machine does not build it again.
CARGO_DENY_VERSION=0.20.2
TOOLS=${DESKGATE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/deskgate-tools}
DENY=$TOOLS/cargo-deny-$CARGO_DENY_VERSION/bin/cargo-deny
if ! "$DENY" --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
  echo "installing cargo-deny $CARGO_DENY_VERSION from crates.io into ${DENY%/bin/*}" >&2
  cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --debug \
    --no-default-features --root "${DENY%/bin/*}" --quiet
fi
if "$DENY" fetch db >/dev/null 2>&1; then
  "$DENY" check
else
  echo "cannot fetch the RustSec advisory database (offline?): advisories NOT checked" >&2
  "$DENY" check licenses bans sources
fi
mark "set-up and supply chain"

cargo nextest run --workspace --no-fail-fast
mark "the workspace's tests"

# The end-to-end tests again on PostgreSQL (a database per test on 127.0.0.1:5432, dropped
# after), less those that open or tamper with the SQLite file itself, the browser tests (the
# pages, over the same API), and the cluster and two-writer tests, which run on PostgreSQL
# already.
sqlite_only='test(a_canary_sent_through_the_chat_is_nowhere_on_disk)
  | test(an_attached_canary_is_nowhere_on_disk) | test(an_altered_or_cut_file_is_refused_not_served)
  | test(a_sealed_body_moved_to_another_row_does_not_open)
  | test(values_stored_in_clear_before_the_vault_are_sealed_at_start)
  | test(totp_seeds_are_sealed_with_the_keyring_and_resealed_at_start)
  | test(codes_are_never_at_rest_or_in_the_logs_in_clear)
  | test(/^vault::retention_shreds_/) | test(key_rewrapped_by_the_cli) | test(rotate_rewrap_and_retire)
  | test(an_encrypted_export_opens_with_the_keyring_only)
  | test(/^audit::(a_cut_off_end|a_deleted_entry|a_rewritten_log|an_edited_entry|an_inserted_entry|an_old_unsigned_entry|checkpoints_deleted|reordered_entries|who_looked_at|verify_opens_the_data_dir)/)
  | test(/^mfa::(a_supervisor_logs_in_with_password_and_totp|a_burst_of_parallel_logins_|a_hundred_consecutive_failures_|a_recovery_code_clears_)/)
  | test(a_locked_store_gives_unavailable_and_no_ack_and_the_retry_lands_once)
  | test(the_chain_status_agrees_with_the_cli_and_names_a_tampered_entry)'
# `--workspace` with a package filter, not `-p deskgate-tests`: the same features as the run
# above, so nothing is built again.
DESKGATE_TEST_DATABASE=postgres cargo nextest run --workspace --no-fail-fast -E "package(deskgate-tests) \
  & ((not test(/^(browser|cluster|writers)::/) - ($sqlite_only)) \
     | test(writers::appends_batched_together_are_numbered_sealed_and_deduplicated_as_one_at_a_time))"
mark "the tests on PostgreSQL"

# Step-up once more with its challenges and daily counts in Redis (a redis-server of each
# test's own, as several nodes would share one), on PostgreSQL.
DESKGATE_TEST_DATABASE=postgres DESKGATE_TEST_REDIS=1 cargo nextest run --workspace \
  --no-fail-fast -E "package(deskgate-tests) & (test(/^stepup::/) - ($sqlite_only))"
mark "step-up on Redis"

# schemathesis against /api/openapi.json of a running `deskgate serve`: no 5xx, every status,
# content type and body as the document says (under a minute; tests/schemathesis.sh).
bash tests/schemathesis.sh
mark "schemathesis"

# The fuzz targets of gateway/fuzz, each for a bounded time from its seed corpus (a dev build
# then FUZZ_SECONDS, default 10, per target; docs/security.md says what it costs).
bash tests/fuzz.sh
mark "fuzzing"

# deploy/: YAML, the example config, HAProxy and the systemd unit, as far as they can be
# checked without a container engine.
bash deploy/validate.sh
mark "deploy/"
