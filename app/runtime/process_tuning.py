"""Settings of the long-running processes themselves (gunicorn's workers, the RQ worker)."""

from __future__ import annotations

import ctypes
import os

from sqlalchemy.pool import QueuePool

from app.extensions import db
from app.payments.validation import PaymentCreateSchema
from app.psp.factory import configured_modes, get_provider

# glibc's <malloc.h>: mallopt's parameter for the most arenas malloc may create.
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc's malloc arenas before the process starts its threads.

    glibc gives each thread that allocates an arena of its own, up to 8 per core, and memory
    freed in an arena stays there: 16 request threads end up holding 16 partly empty heaps.
    With 2 arenas a web worker ended a webhook burst ~8 MB smaller (issue 7, docs/performance.md).
    An operator's own MALLOC_ARENA_MAX wins; without glibc's mallopt this does nothing.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, arenas)


def compile_templates(app) -> int:
    """Compile every Jinja template of `app` now, before its process takes requests.

    Jinja compiles a template on its first render in each process: with 8 web workers the first
    visit of a large page (the dashboard's payment page) in each one paid ~150 ms for it, enough
    to show in the page's p95. Returns how many templates were compiled.
    """
    env = app.jinja_env
    names = env.list_templates(extensions=["html"])
    for name in names:
        env.get_template(name)
    return len(names)


# A body every validator of the create schema runs on (and accepts).
_WARM_UP_PAYMENT = {
    "merchant_reference": "warm-up",
    "amount": 100,
    "currency": "EUR",
    "customer_email": "shopper@example.com",
    "success_url": "https://shop.example/ok",
    "cancel_url": "https://shop.example/cart",
}


def warm_request_handling(app) -> None:
    """Do now what this process's first requests would otherwise each do at once.

    - the create schema's validators: marshmallow compiles its URL pattern (a character class
      of every Unicode letter: ~60 ms of CPU) on first use in a process. After a start, the
      first requests of 8 threads in each of 8 web workers all missed it together and each
      compiled it: py-spy put a tenth of the web's CPU in the bench's create scenario there;
    - the PSP adapters (one per configured mode), built on first use, and the Stripe SDK
      modules they import lazily (4% of the same profile: imports under the first requests'
      contention).
    """
    PaymentCreateSchema().load(_WARM_UP_PAYMENT)
    with app.app_context():
        for livemode in configured_modes(app):
            get_provider(livemode=livemode)


def open_db_connections(app, count: int) -> int:
    """Open up to `count` database connections into the pool now; returns how many opened.

    Each request thread's first transaction otherwise opens its connection in the request, and
    PyMySQL's TLS negotiation costs ~33 ms of CPU per connection on the test machine: with 8
    threads in each of 8 workers, the first requests after a start paid for 64 of them. Never
    raises: a database that is down at start only means the requests open their own later.
    """
    with app.app_context():
        engine = db.engine
        if not isinstance(engine.pool, QueuePool):  # SQLite's demo pools: nothing to gain
            return 0
        count = min(count, engine.pool.size())
        opened = []
        try:
            for _ in range(count):
                opened.append(engine.connect())
        except Exception as exc:  # noqa: BLE001 (the requests retry when they need one)
            app.logger.warning("database connections not opened ahead: %s", exc)
        finally:
            for connection in opened:
                connection.close()  # back into the pool, still open
    return len(opened)
