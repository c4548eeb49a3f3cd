#!/usr/bin/env bash
# PayBridge benchmark (issue 7): bench/run.sh [--quick] [--only create,webhooks,...] [...]
# Starts and stops everything it needs (database pb_bench, Redis db 12, emulator, gunicorn with
# the Procfile's worker model, RQ worker, notification receiver); prints a table and writes JSON
# to bench/results/<stamp>/results.json (and bench/results/latest.json).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import aiohttp" 2>/dev/null; then
  .venv/bin/pip install -q -r bench/requirements-bench.txt
fi
started=$(bash scripts/services.sh ensure)
trap 'if [ -n "$started" ]; then bash scripts/services.sh stop $started; fi' EXIT
.venv/bin/python -m bench "$@"
