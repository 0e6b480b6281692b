"""gunicorn's configuration for the API: `gunicorn -c python:jobline.gunicorn_conf 'jobline.app:create_app()'`.

A module of the package, so a project that installs jobline runs the API under gunicorn
without a checkout; the repository's deploy/gunicorn.conf.py is this module.

Uvicorn workers (the `uvicorn-worker` package; `uvicorn.workers` is deprecated). Bind,
worker count and graceful timeout come from jobline's settings (JOBLINE_API_HOST,
JOBLINE_API_PORT, JOBLINE_API_WORKERS, JOBLINE_GRACEFUL_TIMEOUT_SECONDS, or `.env`).

Prometheus: the workers share PROMETHEUS_MULTIPROC_DIR (default var/prometheus/api),
emptied when gunicorn starts, so /metrics on any worker answers for all of them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from jobline.config import get_settings
from jobline.logging import configure, dict_config

# What gunicorn reads, and what deploy/gunicorn.conf.py takes with `import *`.
__all__ = [
    "accesslog",
    "bind",
    "child_exit",
    "graceful_timeout",
    "keepalive",
    "logconfig_dict",
    "on_starting",
    "post_worker_init",
    "proc_name",
    "worker_class",
    "workers",
]

_settings = get_settings()

bind = f"{_settings.api_host}:{_settings.api_port}"
workers = _settings.api_workers
worker_class = "uvicorn_worker.UvicornWorker"
# A stopping worker keeps serving its open SSE streams this long; streams end with their
# job, and clients reconnect with Last-Event-ID to another worker.
graceful_timeout = _settings.graceful_timeout_seconds
# uvicorn-worker passes it on as uvicorn's timeout_keep_alive: an idle connection is closed.
keepalive = _settings.uvicorn_keep_alive_seconds
# Requests are recorded by the audit log; gunicorn's own access log would duplicate them.
accesslog = None
# One format for gunicorn's lines and the app's: JOBLINE_LOG_FORMAT, request ids included.
logconfig_dict = dict_config(_settings.log_format, _settings.log_level)
proc_name = "jobline-api"

# Set here, in the master, before any worker imports prometheus_client.
_metrics_dir = Path(
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str((_settings.var_dir / "prometheus" / "api").resolve())
    )
)


def on_starting(server: Any) -> None:
    """Start from an empty metrics directory: files of a previous run would be summed in."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    _metrics_dir.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker: Any) -> None:
    """Our log format (and request ids) in every worker; uvicorn-worker set up its own."""
    configure(_settings.log_format, _settings.log_level)


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges (open SSE streams) must not be counted any more."""
    from jobline.metrics import mark_process_dead

    mark_process_dead(worker.pid)
