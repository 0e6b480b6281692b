"""A worker's logs and metrics: the request id on its lines, /metrics from its processes.

Importing this module does not import prometheus-client: `prepare_metrics_dir()` must set
PROMETHEUS_MULTIPROC_DIR before anything creates a metric, so that the prefork children
write their values where the worker's /metrics reads them.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from celery import Task, signals

from jobline import logging as joblog
from jobline.config import Settings

log = logging.getLogger("jobline.worker")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir(settings: Settings, domain: str) -> Path | None:
    """Give this worker (and its children) a fresh multiprocess dir, when it serves metrics.

    A worker never shares the API's dir: each /metrics must count only its own processes.
    """
    if settings.worker_metrics_port is None:
        os.environ.pop(MULTIPROC_ENV, None)
        return None
    folder = (settings.var_dir / "prometheus" / f"worker-{domain}-{os.getpid()}").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def install(settings: Settings) -> None:
    """Connect the worker's logging and metrics to Celery's signals (once per process)."""

    def setup_logging(**_: Any) -> None:
        # Connected, so Celery leaves the root logger to us: one format for every line.
        joblog.configure(settings.log_format, settings.log_level)

    def bind(task: Task | None = None, **_: Any) -> None:
        if task is None:
            return
        request = task.request
        joblog.request_id_var.set(request.get(joblog.REQUEST_ID_MESSAGE_HEADER))
        kwargs = request.kwargs or {}
        joblog.job_id_var.set(kwargs.get("job_id") if isinstance(kwargs, dict) else None)

    def unbind(**_: Any) -> None:
        joblog.request_id_var.set(None)
        joblog.job_id_var.set(None)

    def serve_metrics(**_: Any) -> None:
        if settings.worker_metrics_port is None:
            return
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(
            settings.worker_metrics_port, settings.worker_metrics_host, registry=registry
        )
        log.info(
            "worker metrics on http://%s:%s/metrics",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )

    # weak=False: these closures have no other reference and must live as long as the worker.
    signals.setup_logging.connect(setup_logging, weak=False)
    signals.task_prerun.connect(bind, weak=False)
    signals.task_postrun.connect(unbind, weak=False)
    signals.worker_ready.connect(serve_metrics, weak=False)
