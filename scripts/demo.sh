#!/usr/bin/env bash
# The whole PayBridge demo on one machine, offline: set up, migrate the embedded SQLite database,
# connect the demo shop to PayBridge as a merchant, then run the Stripe emulator, PayBridge's web
# app and worker, and the shop as its own process. Ctrl-C stops everything this script started.
#
#   scripts/demo.sh            # shop on http://127.0.0.1:5001/, PayBridge on :5000
#
# Ports: WEB_PORT (5000), SHOP_PORT (5001) and EMULATOR_PORT (12111). Everything else comes from
# app/config.py's development defaults; PayBridge's database is instance/paybridge.sqlite3. The
# shop (demo_shop/) keeps its own store and settings: instance/demo_shop.sqlite3 and
# instance/demo_shop.json (its API key and its two notification endpoints' secrets, written
# once by its `init`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

WEB_PORT=${WEB_PORT:-5000}
SHOP_PORT=${SHOP_PORT:-5001}
EMULATOR_PORT=${EMULATOR_PORT:-12111}
WEBHOOK_SECRET=whsec_paybridge_demo_secret # DevelopmentConfig's STRIPE_TEST_WEBHOOK_SECRET
export PAYBRIDGE_ENV=development
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:$WEB_PORT}
export STRIPE_API_BASE=${STRIPE_API_BASE:-http://127.0.0.1:$EMULATOR_PORT}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export NO_PROXY=127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY} # every process talks to 127.0.0.1 only
SHOP_URL=http://127.0.0.1:$SHOP_PORT
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

for port in "$WEB_PORT" "$SHOP_PORT" "$EMULATOR_PORT"; do
  if port_open "$port"; then
    echo "demo: port $port is already in use (another demo running?). Stop it, or set WEB_PORT / SHOP_PORT / EMULATOR_PORT." >&2
    exit 1
  fi
done

say "1/4 Setting up (virtualenv, packages)…"
SKIP_CHROMIUM=${SKIP_CHROMIUM:-1} scripts/setup.sh
PY="$ROOT/.venv/bin/python"
FLASK="$ROOT/.venv/bin/flask --app wsgi"
SHOP="$PY -m demo_shop"
mkdir -p instance "$LOG_DIR"

# One SECRET_KEY for every process and restart, so shoppers' sessions survive both.
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s instance/demo_secret_key ] || "$PY" -c "import secrets; print(secrets.token_hex(32))" > instance/demo_secret_key
  chmod 600 instance/demo_secret_key
  SECRET_KEY=$(cat instance/demo_secret_key)
  export SECRET_KEY
fi

# Redis carries the periodic jobs' queues (reconciliation) and the rate limits: the machine's
# own Redis is started if it is not running (and stopped again at the end). Without one the
# demo still runs: notifications need only the database; the periodic jobs wait for Redis.
REDIS_STARTED=""
if [ "$REDIS_URL" = "redis://127.0.0.1:6379/0" ]; then
  REDIS_STARTED=$(scripts/services.sh ensure redis 2>"$LOG_DIR/redis-start.log") || true
fi
if "$PY" -c 'import os, redis; redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1).ping()' 2>/dev/null; then
  HAVE_REDIS=1
else
  HAVE_REDIS=0
  export RATELIMIT_STORAGE_URI=memory://
fi

say "2/4 Migrating the database (instance/paybridge.sqlite3)…"
unset DATABASE_URL
$FLASK db upgrade 2>&1 | grep -v "Context impl\|Will assume" || true
$FLASK db current 2>/dev/null | grep -q "(head)" || { echo "demo: the migration did not reach head" >&2; exit 1; }

PIDS=()
stop_all() {
  trap - INT TERM EXIT
  if [ ${#PIDS[@]} -gt 0 ]; then
    echo
    say "Stopping the demo…"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
  [ -z "$REDIS_STARTED" ] || scripts/services.sh stop $REDIS_STARTED
}
trap stop_all EXIT
trap 'exit 130' INT TERM

say "3/4 Starting the Stripe emulator and PayBridge (web app, worker)…"
# --webhook-url is test mode's endpoint: the demo runs in test mode (sk_test_emulator).
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

"$PY" worker.py >"$LOG_DIR/worker.log" 2>&1 &
PIDS+=($!)
if [ "$HAVE_REDIS" = 1 ]; then
  WORKER_NOTE="worker running: notifications, and the periodic jobs on RQ ($REDIS_URL)"
else
  WORKER_NOTE="Redis is not answering on $REDIS_URL: the worker delivers notifications; the periodic jobs (reconciliation) wait for Redis (flask recon run works meanwhile)"
fi

say "4/4 Connecting the demo shop to PayBridge, and starting it…"
# The shop is a merchant of PayBridge like any other, set up with PayBridge's operator CLI. Its
# API key is shown once, so it goes straight into the shop's own `init`, which then creates the
# shop's two notification endpoints through PayBridge's API (hence after the web app is up)
# and keeps their secrets; the next run finds the shop connected and creates nothing.
demo_login() { # EMAIL PASSWORD [users create options]: a dashboard login, kept if it exists
  local email=$1 password=$2 out
  shift 2
  if out=$(PAYBRIDGE_USER_PASSWORD=$password $FLASK users create "$email" "$@" 2>&1); then
    echo "$out"
  elif grep -q "exists already" <<<"$out"; then
    echo "Dashboard user $email exists already (password unchanged)."
  else
    echo "$out" >&2
    return 1
  fi
}
merchant_id=$($SHOP merchant-id 2>/dev/null || true)
if [ -n "$merchant_id" ] && $FLASK merchants keys list "$merchant_id" >/dev/null 2>&1; then
  echo "The shop is PayBridge merchant $merchant_id already."
  SHOP_PAYBRIDGE_URL="$PUBLIC_BASE_URL" SHOP_PUBLIC_URL="$SHOP_URL" $SHOP init
else
  # A test key (pbk_test_…): the demo runs in test mode, on the emulator's test keys only.
  # init creates the shop's two notification endpoints (orders, refunds) through the API.
  $FLASK merchants create "PayBridge Demo Shop" --json \
    | SHOP_PAYBRIDGE_URL="$PUBLIC_BASE_URL" SHOP_PUBLIC_URL="$SHOP_URL" $SHOP init --paybridge-credentials -
  merchant_id=$($SHOP merchant-id)
  demo_login merchant@example.com demo-password --merchant-id "$merchant_id"
  demo_login operator@example.com operator-password --operator
fi

# The shop: its own process, one of it (its login limits and SQLite store are per process).
SHOP_PAYBRIDGE_URL="$PUBLIC_BASE_URL" SHOP_PUBLIC_URL="$SHOP_URL" \
  $SHOP run --host 127.0.0.1 --port "$SHOP_PORT" >"$LOG_DIR/shop.log" 2>&1 &
PIDS+=($!)
wait_http "$SHOP_URL/" shop "${PIDS[-1]}"

cat <<EOF

  PayBridge demo is running.

  Shop          $SHOP_URL/
                 the demo shop (demo_shop/), a client app of PayBridge in its own process:
                 sign up, buy a print, pay with 4242 4242 4242 4242 (any expiry/CVC);
                 4000 0000 0000 0002 is declined
  PayBridge     $PUBLIC_BASE_URL/   (the dashboard; the API under /api/v1)
  Dashboard     $PUBLIC_BASE_URL/dashboard/
                 merchant@example.com / demo-password   (the shop's merchant, id $merchant_id)
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
