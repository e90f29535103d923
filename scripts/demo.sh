#!/usr/bin/env bash
# Set up (if needed) and run the local demo: Redis, the publisher on the simulated Kiwoom control
# and, when available, the API. Ctrl-C stops everything; Redis data stays in .demo/redis.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. scripts/setup.sh
exec python scripts/demo.py "$@"
