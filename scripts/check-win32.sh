#!/usr/bin/env bash
# Check that every publisher dependency (base + the `publisher` extra, from pyproject.toml) resolves to
# win32 wheels or pure-Python wheels for CPython 3.11: Kiwoom's OCX is 32-bit, so is the publisher's Python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
mapfile -t REQS < <("$PY" - "$ROOT/pyproject.toml" <<'PYEOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["publisher"]:
    print(req)
PYEOF
)
DEST="$(mktemp -d)"
trap 'rm -rf "$DEST"' EXIT
echo "resolving for win32 / CPython 3.11: ${REQS[*]}"
"$PY" -m pip download -q --only-binary=:all: --platform win32 --python-version 3.11 --implementation cp \
  -d "$DEST" "${REQS[@]}" 2>&1 | grep -v '^WARNING: Location' || true
# pip exits non-zero when something has no wheel; the grep above hides its status, so verify the files.
n=0
for whl in "$DEST"/*.whl; do
  [ -e "$whl" ] || { echo "no wheels downloaded" >&2; exit 1; }
  name="$(basename "$whl")"
  case "$name" in
    *-none-any.whl|*-win32.whl) echo "  ok  $name"; n=$((n+1)) ;;
    *) echo "  BAD $name (not win32 nor pure Python)" >&2; exit 1 ;;
  esac
done
for req in "${REQS[@]}"; do
  base="$(echo "$req" | sed -E 's/[<>=!~\[ ].*//' | tr 'A-Z-' 'a-z_')"
  ls "$DEST" | tr 'A-Z-' 'a-z_' | grep -q "^${base}_[0-9]" || { echo "missing a wheel for $req" >&2; exit 1; }
done
echo "win32 check passed: $n wheels"
