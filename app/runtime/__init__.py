"""The long-running processes themselves: the worker (`worker.py`: the notification pump, RQ
workers and the cron scheduler) and the settings of web and worker processes (`process_tuning`,
read by `gunicorn.conf.py`)."""
