"""RQ worker entry point: `python worker.py` (jobs arrive with the outcomes issue)."""

from app import create_app
from app.tasks import QUEUE_NAMES, get_queue


def main() -> None:
    from rq import Worker

    app = create_app()
    with app.app_context():
        queues = [get_queue(name) for name in QUEUE_NAMES]
        Worker(queues, connection=queues[0].connection).work()


if __name__ == "__main__":
    main()
