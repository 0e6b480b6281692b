"""What job code sees: the `@job` decorator and the `JobContext` passed to every job."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from pydantic import BaseModel

from jobline.errors import JobCancelled

# The error code of a job whose payload its model refuses when the worker reads it.
INVALID_PAYLOAD = "INVALID_PAYLOAD"
# Job types that only workers import (`task_name:` in queues.yaml) register themselves here.
TASK_REGISTRY: dict[str, JobFunction] = {}


@dataclass(frozen=True)
class JobFunction:
    """A job function with its payload model; calling it calls the function."""

    fn: Callable[..., Any]
    payload: type[BaseModel] | None
    task_name: str | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def parse(self, payload: dict[str, Any]) -> Any:
        """The payload as the job receives it: validated by its model (pydantic's
        ValidationError when refused), or the dict itself when it declares none."""
        return self.payload.model_validate(payload) if self.payload is not None else payload


def job(
    payload: type[BaseModel] | None = None, *, name: str | None = None
) -> Callable[[Callable[..., Any]], JobFunction]:
    """Declare a job function; `name` registers it for a `task_name:` job type."""

    def decorate(fn: Callable[..., Any]) -> JobFunction:
        function = JobFunction(fn=fn, payload=payload, task_name=name)
        if name is not None:
            TASK_REGISTRY[name] = function
        return function

    return decorate


class Reporter(Protocol):
    """The worker side of a context: where progress goes and where cancellation comes from."""

    def progress(self, percent: int, message: str | None) -> None: ...

    def cancel_requested(self) -> bool: ...


class JobContext:
    """Passed to every job: its identity, progress reporting and cooperative cancellation."""

    def __init__(self, job_id: UUID, job_type: str, attempt: int, reporter: Reporter) -> None:
        self.job_id = job_id
        self.job_type = job_type
        self.attempt = attempt
        self._reporter = reporter

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress (0-100) and a message; never blocks, latest wins when chatty."""
        self._reporter.progress(max(0, min(100, round(percent))), message)

    @property
    def cancelled(self) -> bool:
        return self._reporter.cancel_requested()

    def raise_if_cancelled(self) -> None:
        """Stop here if someone asked to cancel this job."""
        if self._reporter.cancel_requested():
            raise JobCancelled()
