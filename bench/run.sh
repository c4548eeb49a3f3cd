#!/usr/bin/env bash
# PayBridge benchmark (issue 7): bench/run.sh [--quick] [--only create,webhooks,...] [...]
# Starts and stops everything it needs (database pb_bench, Redis db 12, emulator, gunicorn with
# the Procfile's worker model, RQ worker, notification receiver); prints a table and writes JSON
# to bench/results/<stamp>/results.json (and bench/results/latest.json).
# The orchestrator runs in its own venv (bench/.venv); the app's processes in the app's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "bench: set up the app first (scripts/setup.sh)" >&2; exit 2; }
if [ ! -x bench/.venv/bin/python ]; then
  .venv/bin/python -m venv bench/.venv
fi
if ! bench/.venv/bin/python -c "import aiohttp, pymysql, redis, requests" 2>/dev/null; then
  bench/.venv/bin/pip install -q -r bench/requirements-bench.txt
fi
started=$(bash scripts/services.sh ensure)
trap 'if [ -n "$started" ]; then bash scripts/services.sh stop $started; fi' EXIT
bench/.venv/bin/python -m bench "$@"
