#!/usr/bin/env bash
# Make sure MariaDB (127.0.0.1:3306) and Redis (127.0.0.1:6379) answer — both, or those named
# (`services.sh ensure redis`); start whichever does not, with the machine's own start commands.
# Prints the names of the services it started, so the caller can stop exactly those afterwards
# (`services.sh stop NAME…`).
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  return 1
}

start_mariadb() {
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || { echo "services: MariaDB is not installed (apt-get install mariadb-server)" >&2; return 1; }
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port 3306 || { echo "services: MariaDB did not come up on 127.0.0.1:3306" >&2; return 1; }
}

start_redis() {
  command -v redis-server >/dev/null || { echo "services: Redis is not installed (apt-get install redis-server)" >&2; return 1; }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 || { echo "services: Redis did not come up on 127.0.0.1:6379" >&2; return 1; }
}

case "${1:-ensure}" in
  ensure)
    shift
    wanted=" ${*:-mariadb redis} "
    # Nothing the caller has not heard of may stay running: if Redis fails after MariaDB was
    # started here, stop MariaDB again before failing (the caller's trap never saw its name).
    started=""
    if [[ $wanted == *" mariadb "* ]] && ! port_open 3306; then
      start_mariadb >&2; started=mariadb; echo mariadb
    fi
    if [[ $wanted == *" redis "* ]] && ! port_open 6379; then
      if ! start_redis >&2; then
        [ -z "$started" ] || "$0" stop $started
        exit 1
      fi
      echo redis
    fi
    ;;
  stop)
    shift
    for name in "$@"; do
      case "$name" in
        mariadb) start-stop-daemon --stop --oknodo --exec /usr/sbin/mariadbd --retry 30 >/dev/null ;;
        redis) redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || true ;;
      esac
    done
    ;;
esac
