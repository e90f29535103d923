#!/usr/bin/env bash
# The one benchmark command: set up (apt packages, .venv with the bench extra), then run the whole comparison.
# Arguments go to bench/run.py, e.g. `bash bench/run.sh --ns 1000,4000`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$ROOT/bench/setup.sh"
exec python "$ROOT/bench/run.py" "$@"
