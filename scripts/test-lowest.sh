#!/usr/bin/env bash
# Prove pyproject.toml's dependency floors: install the lowest version it allows of every direct dependency
# (uv's --resolution lowest-direct) into .venv-lowest and run the test suite there. Extra arguments go to pytest.
#
# Not run here: ruff and mypy (tools whose rule sets change between versions; scripts/test.sh runs them on the
# current versions), the Chromium tests (tests/test_dashboard_browser.py, tests/test_dashboard_auth_browser.py,
# tests/api/test_pages_browser.py, tests/api/test_dashboard_trs_browser.py, tests/api/test_multiplex_browser.py:
# they check pages in Debian's Chromium, whose version moves with Debian, not with
# our floors, and Playwright 1.45 evaluates wait conditions with eval(), which the pages' CSP forbids; the API they
# drive is covered by tests/api) and tests/test_demo.py
# (the same Stack as tests/test_stack.py and tests/test_readme_commands.py, which do run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv-lowest"
STAMP="$VENV/.kiwoom-cache-lowest"
WANT="$(cat pyproject.toml scripts/test-lowest.sh | sha256sum | cut -d" " -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  # A fresh venv each time: a leftover newer version would hide a false floor. --compile-bytecode, as pip
  # does: otherwise, with PYTHONDONTWRITEBYTECODE set, every replica and publisher process recompiles.
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  LOG="$VENV/install.log"
  echo "setting up .venv-lowest (uv pip install --resolution lowest-direct -e '.[publisher,api,test]') ..." >&2
  if ! { "$VENV/bin/python" -m pip install -q uv &&
         "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --resolution lowest-direct --compile-bytecode \
           -e "$ROOT[publisher,api,test]"; } >"$LOG" 2>&1; then
    grep -v '^WARNING: Location' "$LOG" >&2
    echo "setup failed; full log in $LOG" >&2
    exit 1
  fi
  echo "$WANT" > "$STAMP"
fi
echo "lowest direct versions:" >&2
"$VENV/bin/uv" pip list --python "$VENV/bin/python" 2>/dev/null |
  grep -iE '^(redis|pydantic-settings|fastapi|uvicorn|httptools|uvloop|sse-starlette|prometheus-client|websockets|pyqt5|fakeredis|pytest-asyncio|pytest) ' >&2
export QT_QPA_PLATFORM=offscreen
"$VENV/bin/python" -m pytest -p no:cacheprovider --ignore=tests/test_dashboard_browser.py \
  --ignore=tests/test_dashboard_auth_browser.py --ignore=tests/api/test_pages_browser.py \
  --ignore=tests/api/test_dashboard_trs_browser.py --ignore=tests/api/test_multiplex_browser.py \
  --ignore=tests/test_demo.py "$@"
