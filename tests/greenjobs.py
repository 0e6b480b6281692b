"""Job functions of the gevent pool tests (tests/green_queues.yaml)."""

from __future__ import annotations

import threading
import time

from pydantic import BaseModel, Field

from jobline import JobContext, job

# Under gevent's patching these are greenlet-aware: a waiting job yields to the others.
_barriers: dict[str, threading.Barrier] = {}
_barriers_lock = threading.Lock()


class RendezvousRequest(BaseModel):
    group: str = Field(min_length=1, max_length=100)
    parties: int = Field(ge=1, le=1000)
    timeout_seconds: float = Field(120, gt=0, le=600)


@job(payload=RendezvousRequest)
def rendezvous(ctx: JobContext, req: RendezvousRequest) -> dict[str, object]:
    """Returns once `parties` jobs of `group` wait here together: only a pool that runs
    them all at once, each blocking wait yielding to the others, lets them meet."""
    with _barriers_lock:
        barrier = _barriers.setdefault(req.group, threading.Barrier(req.parties))
    ctx.progress(50, "waiting for the others")
    barrier.wait(req.timeout_seconds)  # BrokenBarrierError (the job fails) if they never meet
    return {"group": req.group, "parties": req.parties}


class StubbornRequest(BaseModel):
    seconds: float = Field(60, ge=0, le=600)
    step_seconds: float = Field(0.05, gt=0, le=10)


@job(payload=StubbornRequest)
def stubborn(ctx: JobContext, req: StubbornRequest) -> dict[str, object]:
    """Sleeps in steps and never looks at its cancel flag."""
    deadline = time.monotonic() + req.seconds
    while time.monotonic() < deadline:
        time.sleep(req.step_seconds)
    return {"slept": req.seconds}
