"""Settings every `gunicorn wsgi:app` started from the repository root reads (gunicorn loads
./gunicorn.conf.py by itself): request size and time limits, Prometheus counters summed over
all worker processes, and glibc's malloc arenas capped for the threaded workers, and each
worker's templates and request validators compiled and its database connections opened before
its first request (app/runtime/process_tuning.py), and in production Stripe's setup checked
(app/runtime/stripe_check.py). The app is imported only inside the hooks, once
PROMETHEUS_MULTIPROC_DIR is set: its metrics are created when it is imported.

Each worker process counts in memory of its own, so without this a scrape of /metrics shows the
one worker that happened to answer it. prometheus-client's multiprocess mode keeps each process's
values in files of a shared directory and sums them at scrape time (app/metrics.py). The
directory must be empty when the master starts: unless PROMETHEUS_MULTIPROC_DIR names one (then
emptying it is the operator's job), each master gets a fresh one of its own.
"""

import os
import shutil
import tempfile

# Request limits, the same as nginx's in deploy/nginx/paybridge.conf (which refuses first in
# production): a request line or header of up to 8 KiB, 100 headers; the body's 1 MiB is the
# app's MAX_CONTENT_LENGTH. A worker silent this long is restarted (a gthread worker's main
# loop, not one slow request: a create waiting for Stripe keeps its thread, not the loop).
# An idle keep-alive connection is closed after `keepalive` seconds. gunicorn has no limit on
# how long a client may take to send its headers or body: that is nginx's job in front
# (client_header_timeout, client_body_timeout), which is why production needs it.
# No access log of gunicorn's own (its default, kept): the app writes one line per request that
# knows the route, the request id and the merchant, in LOG_FORMAT's shape (app/logging_setup.py);
# gunicorn's would be a second line per request, in another shape, knowing none of them.
accesslog = None
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
timeout = 60
keepalive = 5
# gunicorn 25.1+ opens a control socket for `gunicornc` by default, in $XDG_RUNTIME_DIR or
# $HOME/.gunicorn/ (it creates that directory): PayBridge does not use it, and under the systemd
# units (ProtectSystem=strict, ProtectHome=yes) it could only fail with a warning at each start.
control_socket_disable = True

_made_here = None


def on_starting(server):
    global _made_here
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _made_here = tempfile.mkdtemp(prefix="paybridge-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _made_here  # inherited by every worker
    from app.runtime.process_tuning import limit_malloc_arenas  # imports the app: after the above

    limit_malloc_arenas()  # in the master, so every forked worker inherits it
    from app.config import load_config
    from app.logging_setup import format_server_lines

    # From here on (gunicorn's "Starting gunicorn" line comes before this hook); its workers
    # inherit it.
    format_server_lines(server.log.error_log, load_config().LOG_FORMAT)


def post_worker_init(worker):
    from app.runtime.process_tuning import (
        compile_templates,
        open_db_connections,
        warm_request_handling,
    )
    from app.runtime.stripe_check import check_stripe_in_background

    # Before this worker's first requests, not during them.
    compile_templates(worker.wsgi)
    warm_request_handling(worker.wsgi)
    open_db_connections(worker.wsgi, worker.cfg.threads)
    # Production: is Stripe set up as PayBridge needs it? (/readyz's "stripe", ERROR lines)
    check_stripe_in_background(worker.wsgi)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # its live gauges stop counting


def on_exit(server):
    if _made_here:
        shutil.rmtree(_made_here, ignore_errors=True)
