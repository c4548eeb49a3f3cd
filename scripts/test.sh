#!/usr/bin/env bash
# The full test suite, from a fresh machine: installs what is missing, makes sure MariaDB and
# Redis answer (starting them if needed, and stopping afterwards what it started), then runs
# pytest against them, the Stripe emulator and Chromium. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
started=$(scripts/services.sh ensure)
cleanup() { [ -z "$started" ] || scripts/services.sh stop $started; }
trap cleanup EXIT

export PAYBRIDGE_TEST_DATABASE=${PAYBRIDGE_TEST_DATABASE:-paybridge_test}
export PAYBRIDGE_TEST_REDIS_DB=${PAYBRIDGE_TEST_REDIS_DB:-15}
export NO_PROXY=127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}
.venv/bin/pytest "$@"
