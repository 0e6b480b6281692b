"""RabbitMQ's consumer_timeout, derived from queues.yaml.

Workers ack a message only once its job's outcome is stored (acks_late), so RabbitMQ must
let a consumer hold an unacked delivery for as long as the longest job may run: past
`consumer_timeout` (30 minutes by default in 3.10) it closes the worker's channel and the
job is delivered again while it still runs. jobline keeps no long ETA messages in the
broker (delayed jobs and retries wait in the outbox), so the longest `time_limit` plus a
margin is enough.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from jobline.config import PROJECT_ROOT
from jobline.jobs.spec import Queues

CONF_PATH = Path("deploy") / "rabbitmq" / "rabbitmq.conf"
# The checkout's own, which deploy/local/services gives the test and dev RabbitMQ.
RABBITMQ_CONF = PROJECT_ROOT / CONF_PATH
# deploy/local/services takes this over the file's value.
ENV_OVERRIDE = "JOBLINE_CONSUMER_TIMEOUT_MS"
MS_PER_SECOND = 1000
_LINE = re.compile(r"^consumer_timeout[ \t]*=[ \t]*(\d+)[ \t]*$", re.MULTILINE)


def wanted_ms(queues: Queues, margin_seconds: int) -> int:
    """The consumer_timeout (ms) that queues.yaml needs."""
    return (queues.longest_time_limit + margin_seconds) * MS_PER_SECOND


def conf_path() -> Path:
    """The rabbitmq.conf check-config reads and writes.

    The working directory's deploy/rabbitmq/rabbitmq.conf when it has one, else the
    checkout's; a project that installed jobline (no checkout) gets its own, created by
    --write-consumer-timeout.
    """
    if CONF_PATH.exists() or not RABBITMQ_CONF.exists():
        return CONF_PATH
    return RABBITMQ_CONF


def read_ms(path: Path | None = None) -> int | None:
    """The consumer_timeout set in a rabbitmq.conf, or None when it sets none."""
    path = path or conf_path()
    try:
        found = _LINE.search(path.read_text())
    except OSError:
        return None
    return int(found.group(1)) if found else None


def write_ms(value: int, path: Path | None = None) -> bool:
    """Set consumer_timeout in a rabbitmq.conf (created when missing); True when it changed."""
    path = path or conf_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    line = f"consumer_timeout = {value}"
    if _LINE.search(text):
        new = _LINE.sub(line, text)
    else:
        new = f"{text.rstrip(chr(10))}\n{line}\n" if text.strip() else f"{line}\n"
    if new == text:
        return False
    path.write_text(new)
    return True


@dataclass(frozen=True)
class Check:
    """What check-config reports about consumer_timeout."""

    wanted: int
    configured: int | None
    source: str

    @property
    def problem(self) -> str | None:
        if self.configured is None:
            return f"{self.source} sets no consumer_timeout; queues.yaml needs {self.wanted} ms"
        if self.configured == self.wanted:
            return None
        risk = (
            "jobs that run long are cut off and delivered twice"
            if self.configured < self.wanted
            else "a stuck consumer is noticed late"
        )
        return (
            f"consumer_timeout is {self.configured} ms in {self.source}, but queues.yaml "
            f"(longest time_limit + margin) needs {self.wanted} ms: {risk}"
        )


def check(queues: Queues, margin_seconds: int, path: Path | None = None) -> Check:
    """Compare the configured consumer_timeout (env override, else the file) with queues.yaml's."""
    override = os.environ.get(ENV_OVERRIDE)
    if override is not None and override.strip().isdigit():
        return Check(wanted_ms(queues, margin_seconds), int(override), ENV_OVERRIDE)
    path = path or conf_path()
    return Check(wanted_ms(queues, margin_seconds), read_ms(path), str(path))
