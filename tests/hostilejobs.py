"""Job functions of the hardening tests (tests/hostile_queues.yaml): jobs that try to bloat
their events with huge progress messages, results and errors, and one that echoes its payload."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from jobline import JobContext, job


class Size(BaseModel):
    chars: int = Field(ge=0, le=10_000_000)


@job(payload=Size)
def big_progress(ctx: JobContext, req: Size) -> dict[str, object]:
    """One progress report whose message is `chars` long."""
    ctx.progress(50, "p" * req.chars)
    return {"reported": req.chars}


@job(payload=Size)
def big_result(ctx: JobContext, req: Size) -> dict[str, object]:
    """A result of about `chars` bytes."""
    return {"blob": "r" * req.chars}


class Depth(BaseModel):
    levels: int = Field(ge=0, le=10_000)


@job(payload=Depth)
def deep_result(ctx: JobContext, req: Depth) -> Any:
    """A result nested `levels` deep: [[[...]]]."""
    value: Any = []
    for _ in range(req.levels - 1):
        value = [value]
    return value


class HugeError(ValueError):
    """A failure with a very long message."""


@job(payload=Size)
def big_error(ctx: JobContext, req: Size) -> None:
    """Fails with an exception whose message is `chars` long."""
    raise HugeError("e" * req.chars)


@job()
def echo(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Returns its payload and reports its `note` as a progress message."""
    note = payload.get("note")
    ctx.progress(50, note if isinstance(note, str) else None)
    return payload
