"""Job functions the fault tests run (tests/chaos_queues.yaml): steady, stubborn, flaky, overrun."""

from __future__ import annotations

import asyncio
import time

from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, Field

from jobline import JobContext, TransientError, job


class Steps(BaseModel):
    steps: int = Field(10, ge=1, le=100_000)
    step_seconds: float = Field(0.05, ge=0, le=60)
    # The job raises TransientError on this many attempts before it succeeds.
    flaky_attempts: int = Field(0, ge=0, le=10)
    # ...at once, before its first step: within the worker's late-started window.
    flaky_at_once: bool = False


@job(payload=Steps)
def steady(ctx: JobContext, req: Steps) -> dict[str, object]:
    """Reports progress per step and stops when cancelled."""
    if req.flaky_at_once and ctx.attempt <= req.flaky_attempts:
        raise TransientError(f"flaky at once on attempt {ctx.attempt}")
    for i in range(req.steps):
        ctx.raise_if_cancelled()
        time.sleep(req.step_seconds)
        ctx.progress((i + 1) * 100 / req.steps, f"step {i + 1}/{req.steps}")
    if ctx.attempt <= req.flaky_attempts:
        raise TransientError(f"flaky on attempt {ctx.attempt}")
    return {"steps": req.steps, "attempt": ctx.attempt}


@job(payload=Steps)
async def steady_async(ctx: JobContext, req: Steps) -> dict[str, object]:
    """The async twin of steady; never checks for cancellation itself."""
    for i in range(req.steps):
        await asyncio.sleep(req.step_seconds)
        ctx.progress((i + 1) * 100 / req.steps)
    return {"steps": req.steps}


@job(payload=Steps)
def stubborn(ctx: JobContext, req: Steps) -> dict[str, object]:
    """Ignores cancellation: never calls raise_if_cancelled()."""
    for i in range(req.steps):
        time.sleep(req.step_seconds)
        ctx.progress((i + 1) * 100 / req.steps)
    return {"steps": req.steps}


@job(payload=Steps)
def overrun(ctx: JobContext, req: Steps) -> dict[str, object]:
    """Ignores its soft time limit too, so only the hard limit stops it."""
    for _ in range(req.steps):
        try:
            time.sleep(req.step_seconds)
        except SoftTimeLimitExceeded:
            continue
    return {"steps": req.steps}


@job(payload=Steps)
def timeouts(ctx: JobContext, req: Steps) -> dict[str, object]:
    """Raises builtins.TimeoutError (not TransientError) on its first flaky_attempts attempts:
    retried only where the job type lists it in retry_for."""
    ctx.progress(50, f"attempt {ctx.attempt}")
    if ctx.attempt <= req.flaky_attempts:
        raise TimeoutError(f"timed out on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}
