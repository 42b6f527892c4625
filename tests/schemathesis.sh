#!/usr/bin/env bash
# schemathesis against /api/openapi.json of a running gateway: no 5xx, every response as the
# document says. Starts `deskgate serve` on a fresh data dir with an admin, logs in, and runs
# every operation except those that would end the test's own session (logout, changing or
# deactivating users, resetting second factors), which are covered by the e2e suite.
#   tests/schemathesis.sh [EXAMPLES]   (default 30 per operation)
# Any failure fails the script (and tests/run.sh). The seed is random and printed at the end;
# SCHEMATHESIS_SEED=<seed> replays a run.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${1:-30}
PORT=${SCHEMATHESIS_PORT:-18611}
VENV=target/schemathesis-venv
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
# --workspace: the library as the test run built it (`-p deskgate` alone has other features).
cargo build --quiet --workspace --bin deskgate
BIN=target/debug/deskgate

DATA=$(mktemp -d "${TMPDIR:-/tmp}/deskgate-st.XXXXXX")
PASSWORD='schemathesis horse battery'
printf '%s' "$PASSWORD" | "$BIN" user add --data "$DATA" --username admin --role admin \
  --password-stdin >/dev/null
"$BIN" serve --data "$DATA" --listen "127.0.0.1:$PORT" --rate-limits false --log warn \
  >"$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.1
done
# Admins need a second factor: enrol TOTP with the first (enrolment-only) session, then log
# in with a code.
TOKEN=$(python3 - "http://127.0.0.1:$PORT" "$PASSWORD" <<'PY'
import base64, hashlib, hmac, json, struct, sys, time, urllib.request, urllib.parse
base, password = sys.argv[1], sys.argv[2]
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json",
                 **({"authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
def totp(uri, at):
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    secret = base64.b32decode(q["secret"][0] + "=" * (-len(q["secret"][0]) % 8))
    algo = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}[
        q.get("algorithm", ["SHA1"])[0]]
    digits, period = int(q.get("digits", ["6"])[0]), int(q.get("period", ["30"])[0])
    mac = hmac.new(secret, struct.pack(">Q", int(at) // period), algo).digest()
    n = struct.unpack(">I", mac[(mac[-1] & 15):(mac[-1] & 15) + 4])[0] & 0x7FFFFFFF
    return str(n % 10 ** digits).zfill(digits)
first = call("POST", "/api/session", {"username": "admin", "password": password})["token"]
uri = call("POST", "/api/me/mfa/totp", {}, first)["otpauth_uri"]
codes = call("POST", "/api/me/mfa/totp/confirm", {"code": totp(uri, time.time())}, first)
# The confirming code's step is spent: log in with a recovery code rather than wait for the
# next step.
print(call("POST", "/api/session", {"username": "admin", "password": password,
                                    "otp": codes["recovery_codes"][0]})["token"])
PY
)

"$VENV/bin/st" run "http://127.0.0.1:$PORT/api/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$EXAMPLES" \
  ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"} \
  --exclude-path /api/session \
  --exclude-path-regex '^/api/users/\{id\}' \
  --exclude-path /api/me/mfa/totp
