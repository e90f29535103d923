#!/usr/bin/env bash
# What bench/run.py needs besides the project's .venv: Debian's nginx with the nchan module, redis-server, wrk
# and gcc (for the C loader), then the `bench` extra (matplotlib, granian) in .venv. Safe to re-run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
PKGS="nginx-light libnginx-mod-nchan redis-server wrk gcc libc6-dev util-linux"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# shellcheck disable=SC1091
. "$ROOT/scripts/setup.sh"
python -c "import matplotlib, granian" 2>/dev/null || python -m pip install -q -e "$ROOT[api,bench]"
