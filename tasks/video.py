"""Video jobs: thumbnails and uploads to a CDN that sometimes times out."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from jobline import JobContext, TransientError, job


class ThumbnailRequest(BaseModel):
    source: str = Field(min_length=1, max_length=1024)
    at_seconds: list[float] = Field(default_factory=lambda: [1.0, 5.0, 10.0], max_length=100)
    step_seconds: float = Field(0.02, ge=0, le=10)


@job(payload=ThumbnailRequest)
def thumbnail(ctx: JobContext, req: ThumbnailRequest) -> dict[str, object]:
    """Extracts one frame per timestamp, reporting progress for each."""
    frames = []
    for i, at in enumerate(req.at_seconds, start=1):
        ctx.raise_if_cancelled()
        time.sleep(req.step_seconds)
        frames.append(f"{req.source}@{at:g}s.jpg")
        ctx.progress(i * 100 / len(req.at_seconds), f"frame {i}/{len(req.at_seconds)}")
    return {"frames": frames}


class PublishRequest(BaseModel):
    source: str = Field(min_length=1, max_length=1024)
    cdn: str = "edge-eu"
    # The CDN times out on this many attempts before it accepts the upload (a test knob).
    flaky_attempts: int = Field(0, ge=0, le=10)


@job(payload=PublishRequest)
def publish(ctx: JobContext, req: PublishRequest) -> dict[str, object]:
    """Retries on a transient error: a CDN timeout is raised as TransientError."""
    ctx.progress(50, f"uploading to {req.cdn}")
    if ctx.attempt <= req.flaky_attempts:
        raise TransientError(f"{req.cdn} timed out on attempt {ctx.attempt}")
    return {"url": f"https://{req.cdn}.example/{req.source}", "attempts": ctx.attempt}
