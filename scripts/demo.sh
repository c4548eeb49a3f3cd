#!/usr/bin/env bash
# The whole PayBridge demo on one machine, offline: set up, migrate the embedded SQLite database,
# seed the demo shop, then run the Stripe emulator, the web app and (with Redis) the worker.
# Ctrl-C stops everything this script started.
#
#   scripts/demo.sh            # shop on http://127.0.0.1:5000/
#
# Ports: WEB_PORT (5000) and EMULATOR_PORT (12111). Everything else comes from app/config.py's
# development defaults; the database is instance/paybridge.sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

WEB_PORT=${WEB_PORT:-5000}
EMULATOR_PORT=${EMULATOR_PORT:-12111}
WEBHOOK_SECRET=whsec_paybridge_demo_secret # DevelopmentConfig's STRIPE_WEBHOOK_SECRET
export PAYBRIDGE_ENV=development
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:$WEB_PORT}
export STRIPE_API_BASE=${STRIPE_API_BASE:-http://127.0.0.1:$EMULATOR_PORT}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
LOG_DIR="$ROOT/instance/logs"

say() { printf '\033[1m%s\033[0m\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_http() { # url, name, pid: until it answers 2xx, or the process died, or 30 s passed
  for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then break; fi
    sleep 0.25
  done
  echo "demo: $2 did not come up at $1; its log: $LOG_DIR/$2.log" >&2
  tail -n 20 "$LOG_DIR/$2.log" >&2 || true
  return 1
}

for port in "$WEB_PORT" "$EMULATOR_PORT"; do
  if port_open "$port"; then
    echo "demo: port $port is already in use (another demo running?). Stop it, or set WEB_PORT / EMULATOR_PORT." >&2
    exit 1
  fi
done

say "1/4 Setting up (virtualenv, packages, Chromium for the tests)…"
SKIP_CHROMIUM=${SKIP_CHROMIUM:-1} scripts/setup.sh
PY="$ROOT/.venv/bin/python"
FLASK="$ROOT/.venv/bin/flask --app wsgi"
mkdir -p instance "$LOG_DIR"

# One SECRET_KEY for every process and restart, so shoppers' sessions survive both.
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s instance/demo_secret_key ] || "$PY" -c "import secrets; print(secrets.token_hex(32))" > instance/demo_secret_key
  chmod 600 instance/demo_secret_key
  SECRET_KEY=$(cat instance/demo_secret_key)
  export SECRET_KEY
fi

# Redis carries the job queues; without it, jobs run inside the web process instead.
if "$PY" - <<'EOF' 2>/dev/null
import os, redis
redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1).ping()
EOF
then
  HAVE_REDIS=1
else
  HAVE_REDIS=0
  export RQ_INLINE_FALLBACK=1
  export RATELIMIT_STORAGE_URI=memory://
fi

say "2/4 Migrating the database (instance/paybridge.sqlite3)…"
unset DATABASE_URL
$FLASK db upgrade 2>&1 | grep -v "Context impl\|Will assume" || true
$FLASK db current 2>/dev/null | grep -q "(head)" || { echo "demo: the migration did not reach head" >&2; exit 1; }

say "3/4 Seeding the demo shop…"
$FLASK seed-demo

PIDS=()
stop_all() {
  trap - INT TERM EXIT
  if [ ${#PIDS[@]} -gt 0 ]; then
    echo
    say "Stopping the demo…"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

say "4/4 Starting the Stripe emulator, the web app and the worker…"
"$PY" -m stripe_emulator --host 127.0.0.1 --port "$EMULATOR_PORT" \
  --db instance/emulator.sqlite3 \
  --webhook-url "$PUBLIC_BASE_URL/webhooks/stripe" --webhook-secret "$WEBHOOK_SECRET" \
  --webhook-retry-schedule 5,30,120 \
  >"$LOG_DIR/emulator.log" 2>&1 &
PIDS+=($!)
wait_http "$STRIPE_API_BASE/_emulator/health" emulator "${PIDS[-1]}"

"$ROOT/.venv/bin/gunicorn" wsgi:app --bind "127.0.0.1:$WEB_PORT" \
  --workers 2 --threads 8 --worker-class gthread --timeout 60 \
  >"$LOG_DIR/web.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$WEB_PORT/healthz" web "${PIDS[-1]}"

if [ "$HAVE_REDIS" = 1 ]; then
  "$PY" worker.py >"$LOG_DIR/worker.log" 2>&1 &
  PIDS+=($!)
  WORKER_NOTE="worker running (RQ on $REDIS_URL)"
else
  # No queues: jobs run inside the process that makes them, and this process runs the periodic
  # ones (reconciliation, idempotency purge) on their schedule, and delivers notifications.
  "$PY" worker.py --without-redis >"$LOG_DIR/worker.log" 2>&1 &
  PIDS+=($!)
  WORKER_NOTE="Redis is not answering on $REDIS_URL: jobs run in-process (RQ_INLINE_FALLBACK=1), periodic jobs in worker.py --without-redis"
fi

cat <<EOF

  PayBridge demo is running.

  Shop          $PUBLIC_BASE_URL/
                 sign up, buy a print, pay with 4242 4242 4242 4242 (any expiry/CVC);
                 4000 0000 0000 0002 is declined
  Dashboard     $PUBLIC_BASE_URL/dashboard/
                 merchant@example.com / demo-password   (the shop's merchant)
                 operator@example.com / operator-password (sees every merchant)
  Emulator      $STRIPE_API_BASE/   (the local stand-in for Stripe)
  API docs      $PUBLIC_BASE_URL/api/v1/docs   (OpenAPI: $PUBLIC_BASE_URL/api/v1/openapi.json)

  $WORKER_NOTE
  Logs in instance/logs/. Press Ctrl-C to stop.

EOF

# Stop as soon as any of them dies, so a crash is not mistaken for a running demo.
set +e
wait -n "${PIDS[@]}"
status=$?
echo "demo: a process stopped (exit $status); see instance/logs/. Stopping the rest." >&2
exit "$status"
