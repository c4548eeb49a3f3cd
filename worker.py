"""Entry point of the worker process: `python worker.py --help` (app/runtime/worker.py)."""

from app.runtime.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
