"""CLI: ``python -m stripe_emulator --port 12111 [...]`` (see README.md)."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading

from werkzeug.serving import make_server

from .api import EmulatorApp
from .emulator import Config, Emulator


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="python -m stripe_emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    p.add_argument("--public-url", help="base URL of the hosted page (default http://HOST:PORT)")
    p.add_argument("--db", dest="db_path", help="SQLite file; a restart keeps the state")
    p.add_argument("--webhook-url", action="append", default=[], help="test mode's events")
    p.add_argument("--webhook-secret", action="append", default=[])
    p.add_argument("--live-webhook-url", action="append", default=[], help="live mode's events")
    p.add_argument("--live-webhook-secret", action="append", default=[])
    p.add_argument(
        "--webhook-retry-schedule",
        default="60,300,1800",
        help="seconds between delivery attempts, comma separated",
    )
    p.add_argument("--webhook-timeout", type=float, default=10.0)
    p.add_argument(
        "--async-delay",
        type=float,
        default=5.0,
        help="seconds before a delayed (SEPA) payment settles; 0 = only via /_emulator/.../settle",
    )
    p.add_argument(
        "--refund-delay",
        type=float,
        default=0.0,
        help="seconds a refund stays pending before it succeeds; 0 = succeeded at creation",
    )
    p.add_argument("--latency-ms", type=float, default=0.0, help="mean response latency")
    p.add_argument("--latency-p99-ms", type=float, default=0.0)
    p.add_argument("--expiry-check-interval", type=float, default=1.0)
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    for flag, urls, secrets in (
        ("--webhook", a.webhook_url, a.webhook_secret),
        ("--live-webhook", a.live_webhook_url, a.live_webhook_secret),
    ):
        if len(urls) != len(secrets):
            p.error(f"{flag}-url and {flag}-secret must be given in pairs")
        if not all(secret.startswith("whsec_") for secret in secrets):
            p.error(f"{flag}-secret must start with whsec_")
    try:
        schedule = [float(s) for s in a.webhook_retry_schedule.split(",") if s.strip()]
    except ValueError:
        p.error("--webhook-retry-schedule must be comma separated numbers")
    logging.basicConfig(
        level=a.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return Config(
        host=a.host,
        port=a.port,
        public_url=a.public_url.rstrip("/") if a.public_url else None,
        db_path=a.db_path,
        webhooks=list(zip(a.webhook_url, a.webhook_secret, strict=True)),
        live_webhooks=list(zip(a.live_webhook_url, a.live_webhook_secret, strict=True)),
        retry_schedule=schedule,
        async_delay=a.async_delay,
        latency_mean_ms=a.latency_ms,
        latency_p99_ms=a.latency_p99_ms,
        expiry_check_interval=a.expiry_check_interval,
        webhook_timeout=a.webhook_timeout,
        refund_delay=a.refund_delay,
    )


FREEZE_EVERY_S = 10.0


def freeze_survivors() -> None:
    """Take every object that outlived the young generations out of the cyclic GC's reach.

    The emulator keeps every object of a run in memory (600-800 MB after a full benchmark), and
    each full collection walks all of them holding the GIL: ~0.6 s per 800 MB, a pause that
    every PSP call in flight waits for (the soak's one 770 ms p99 window). Its records are
    acyclic JSON trees, freed by reference counting when deleted or reset, so the cyclic
    collector has nothing to find in them; young cycles are collected first.
    """
    gc.collect(1)
    gc.freeze()


def _keep_freezing(stop: threading.Event) -> None:
    while not stop.wait(FREEZE_EVERY_S):
        freeze_survivors()


def _exit(*_) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    app = EmulatorApp.__new__(EmulatorApp)  # bound to the emulator once the port is known
    server = make_server(config.host, config.port, app, threaded=True)
    config.port = server.server_port
    emu = Emulator(config)
    app.__init__(emu)
    emu.start()
    stop_freezing = threading.Event()
    threading.Thread(
        target=_keep_freezing, args=(stop_freezing,), name="gc-freeze", daemon=True
    ).start()
    # werkzeug logs every request at INFO; keep the emulator's own logs readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _exit)
    print(f"stripe-emulator listening on http://{config.host}:{config.port}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stop_freezing.set()
        emu.stop()
        server.server_close()


if __name__ == "__main__":
    main()
