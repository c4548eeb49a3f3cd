#!/usr/bin/env bash
# Install everything PayBridge needs on a fresh machine: a virtualenv with the locked Python
# packages (requirements-dev.txt, hashes checked) and PayBridge and its emulator themselves, and
# Debian's Chromium and nginx for the browser and production-stack tests. Safe to run again: it
# skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Again only when the lock or a package's declaration changed.
stamp=.venv/.requirements.sha256
want=$(cat requirements-dev.txt pyproject.toml stripe_emulator/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # Exactly the locked versions, every one checked against its hashes (the lock lists every
  # package beneath the ones pyproject.toml names, setuptools included).
  .venv/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r requirements-dev.txt
  # Then PayBridge and the Stripe emulator themselves, editable (the source tree is what runs),
  # built by the locked setuptools rather than one fetched unchecked.
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    -e . -e ./stripe_emulator
  echo "$want" > "$stamp"
fi

# Browser tests drive Debian's Chromium (Playwright's own download cannot work offline).
if [ "${SKIP_CHROMIUM:-0}" != "1" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: installing Debian's chromium for the browser tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: /usr/bin/chromium missing; run as root or: sudo apt-get install -y chromium" >&2
    exit 1
  fi
fi

# The slow-client test runs the production recipe: gunicorn behind Debian's nginx
# (deploy/nginx/paybridge.conf), started by the test itself on a free port.
if [ "${SKIP_NGINX:-0}" != "1" ] && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: installing Debian's nginx for the production-stack tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
  else
    echo "setup: /usr/sbin/nginx missing; run as root or: sudo apt-get install -y nginx" >&2
    exit 1
  fi
fi
