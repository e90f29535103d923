#!/usr/bin/env bash
# Set up (if needed) and run every check: ruff, mypy, then the whole pytest suite (real redis-server, uvicorn,
# Qt offscreen). Extra arguments go to pytest, e.g. `scripts/test.sh -k writer`. The last line names what was
# skipped for want of a system tool (chromium, nginx) and the command that installs it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
ruff check .
mypy
KIWOOM_TEST_SKIPS="$(mktemp)"
export KIWOOM_TEST_SKIPS
trap 'rm -f "$KIWOOM_TEST_SKIPS"' EXIT
status=0
python -m pytest "$@" || status=$?
cat "$KIWOOM_TEST_SKIPS"
exit "$status"
