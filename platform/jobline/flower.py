"""`jobline flower`: Flower on the configured broker, behind basic auth.

Flower serves `/metrics` and `/healthcheck` without asking for credentials; here both
require the same basic auth as every other page (a Prometheus job scraping Flower sends
`basic_auth`). Flower also binds to 127.0.0.1 unless JOBLINE_FLOWER_HOST says otherwise.
Credentials reach Flower through its environment, never its command line (`ps` shows that).
"""

from __future__ import annotations

import os

from jobline.config import Settings, management_api
from jobline.errors import ConfigError

DEFAULT_VHOST = "/"


def broker_api(settings: Settings) -> str | None:
    """RabbitMQ's management API for Flower's broker tab: configured, or from the broker URL."""
    return management_api(settings)


def check_auth(settings: Settings) -> str | None:
    """The `user:password` Flower requires; refused when missing in production or malformed."""
    auth = settings.flower_basic_auth
    if not auth:
        if settings.env == "production":
            raise ConfigError(
                "Flower refuses to start in production without JOBLINE_FLOWER_BASIC_AUTH=user:password"
            )
        return None
    for pair in auth.split(","):
        user, sep, password = pair.partition(":")
        if not (user and sep and password):
            raise ConfigError("JOBLINE_FLOWER_BASIC_AUTH must be user:password[,user:password]")
    return auth


def protect_unauthenticated_views() -> None:
    """Make Flower's /metrics and /healthcheck ask for the same credentials as its pages."""
    from flower.views.monitor import Healthcheck, Metrics
    from tornado.web import authenticated

    for view in (Metrics, Healthcheck):
        if not getattr(view.get, "_jobline_protected", False):
            guarded = authenticated(view.get)
            guarded._jobline_protected = True  # type: ignore[attr-defined]
            view.get = guarded  # type: ignore[method-assign]


def run(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve Flower in this process until it is stopped."""
    auth = check_auth(settings)
    # Flower's own metrics live in the default registry; the API's multiprocess dir would
    # hide them.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if auth:
        os.environ["FLOWER_BASIC_AUTH"] = auth
    api = broker_api(settings)
    if api:
        os.environ["FLOWER_BROKER_API"] = api
    protect_unauthenticated_views()

    from jobline.jobs.spec import load_queues
    from jobline.queueing.app import create_celery

    celery = create_celery(settings, load_queues(settings.queues_file, check_imports=False))
    celery.start(flower_argv(settings, host, port))


def flower_argv(settings: Settings, host: str | None = None, port: int | None = None) -> list[str]:
    """Flower's command line (credentials go through its environment, never here)."""
    argv = [
        "flower",
        f"--address={host or settings.flower_host}",
        f"--port={port or settings.flower_port}",
        # Flower would otherwise switch every worker's task events on every few seconds,
        # overriding queues.yaml's `task_events` (off by default: see queueing/app.py).
        # Its worker view needs none: heartbeats and inspect replies.
        "--enable_events=False",
    ]
    if settings.flower_purge_offline_seconds is not None:
        argv.append(f"--purge_offline_workers={settings.flower_purge_offline_seconds}")
    return argv
