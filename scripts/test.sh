#!/usr/bin/env bash
# Set up (if needed) and run every check: ruff, mypy, then the whole pytest suite (real redis-server, uvicorn,
# Qt offscreen). Extra arguments go to pytest, e.g. `scripts/test.sh -k writer`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
ruff check .
mypy
python -m pytest "$@"
