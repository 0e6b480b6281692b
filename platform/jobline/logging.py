"""Log lines that follow a job: the request id and job id on every line, text or JSON.

One request id per API request (from a well-formed `X-Request-ID`, else generated) is
kept in a context variable, written into the job's `submitted` event and the Celery
message headers, and set again on the worker while it runs the job, so
`grep <request id>` finds the request, the job's events and the worker's lines.
`JOBLINE_LOG_FORMAT=json` prints one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
# The Celery message header carrying it (headers are plain strings).
REQUEST_ID_MESSAGE_HEADER = "jobline_request_id"
# A caller's id is kept only when it is short and harmless in a log line or a header.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")

request_id_var: ContextVar[str | None] = ContextVar("jobline_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("jobline_job_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s job=%(job_id)s] %(message)s"
# LogRecord attributes that are not extra fields a caller passed.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def new_request_id(offered: str | None = None) -> str:
    """The caller's id when it is safe to echo, otherwise a fresh one."""
    if offered and _SAFE_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()


class ContextFilter(logging.Filter):
    """Puts the current request id and job id on every record (`-` when there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        if not hasattr(record, "job_id"):
            record.job_id = job_id_var.get() or "-"
        return True


# Tortoise logs each query with its parameters at DEBUG: a login name (often a mistyped
# password), password hashes, payloads. The query stays in the line, its values do not.
SQL_LOGGER = "tortoise.db_client"
SQL_VALUES_HIDDEN = "[parameters hidden]"


class HideSqlParameters(logging.Filter):
    """Drops the values from Tortoise's `"%s: %s", query, values` debug lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "%s: %s" and isinstance(record.args, tuple) and len(record.args) == 2:
            record.args = (record.args[0], SQL_VALUES_HIDDEN)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        for key in ("request_id", "job_id"):
            if out.get(key) == "-":
                out[key] = None
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


# Servers that configure their own loggers: their lines go to the root handler instead.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")


def dict_config(log_format: str = "text", level: str = "INFO") -> dict[str, Any]:
    """The same setup as `configure()`, as a dictConfig (gunicorn's `logconfig_dict`)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}, "sql": {"()": HideSqlParameters}},
        "formatters": {"jobline": {"()": formatter, "log_format": log_format}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "jobline",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            **{
                name: {"handlers": [], "propagate": True, "level": level.upper()}
                for name in SERVER_LOGGERS
            },
            SQL_LOGGER: {"filters": ["sql"]},
        },
    }


def configure(log_format: str = "text", level: str = "INFO") -> None:
    """Send every log line to stderr in the chosen format, with the ids filled in.

    The filter sits on the handler, not a logger, so records of every library that
    propagate to the root (uvicorn, gunicorn, celery) get the ids too.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    sql = logging.getLogger(SQL_LOGGER)
    if not any(isinstance(f, HideSqlParameters) for f in sql.filters):
        sql.addFilter(HideSqlParameters())
    # uvicorn's own handlers would print its lines a second time, in its format.
    for name in SERVER_LOGGERS:
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
