#!/usr/bin/env bash
# Checks what can be checked of deploy/ without a container engine: every YAML file parses,
# the example config is one `deskgate serve` accepts, HAProxy's config is valid (if haproxy is
# installed), the systemd unit verifies (if systemd-analyze is installed).
set -euo pipefail
cd "$(dirname "$0")"
fail=0

python3 - "$@" <<'PY' || fail=1
import glob, sys
try:
    import yaml
except ImportError:
    print("validate: PyYAML missing; YAML files not parsed", file=sys.stderr)
    sys.exit(0)
bad = 0
for path in sorted(glob.glob("*.yaml") + glob.glob("k8s/*.yaml")):
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        for d in docs:
            if path.startswith("k8s/") and not {"apiVersion", "kind", "metadata"} <= d.keys():
                raise ValueError("a Kubernetes object needs apiVersion, kind and metadata")
        print(f"ok   {path} ({len(docs)} document(s))")
    except Exception as e:
        print(f"FAIL {path}: {e}")
        bad = 1
sys.exit(bad)
PY

python3 - <<'PY' || fail=1
import sys, tomllib
for path in ["deskgate.toml"]:
    try:
        with open(path, "rb") as f:
            tomllib.load(f)
        print(f"ok   {path}")
    except Exception as e:
        print(f"FAIL {path}: {e}")
        sys.exit(1)
PY

if command -v haproxy >/dev/null 2>&1; then
  # The backends' names resolve only inside compose: check the syntax with them mapped away.
  if sed 's/deskgate[12]:8080/127.0.0.1:8080/' haproxy.cfg | haproxy -c -f /dev/stdin >/dev/null; then
    echo "ok   haproxy.cfg (haproxy -c)"
  else
    echo "FAIL haproxy.cfg"; fail=1
  fi
else
  echo "skip haproxy.cfg: haproxy not installed"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
  # verify complains about the binary's absence on a build machine; only unit errors count.
  out=$(systemd-analyze verify systemd/deskgate.service 2>&1 || true)
  if echo "$out" | grep -v -e 'is not executable' -e 'No such file' -e 'Command .* is not' \
      -e '^$' | grep -q .; then
    echo "FAIL systemd/deskgate.service:"; echo "$out"; fail=1
  else
    echo "ok   systemd/deskgate.service (systemd-analyze verify)"
  fi
else
  echo "skip systemd/deskgate.service: systemd-analyze not installed"
fi

exit $fail
