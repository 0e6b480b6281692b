"""video.render: implemented only on render workers; the API knows it by name (send_task)."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from jobline import JobContext, job


class RenderRequest(BaseModel):
    project: str = Field(min_length=1, max_length=1024)
    frames: int = Field(24, ge=1, le=100_000)
    step_seconds: float = Field(0.001, ge=0, le=10)


@job(payload=RenderRequest, name="video.render")
def render(ctx: JobContext, req: RenderRequest) -> dict[str, object]:
    """Renders frames in batches of ten, reporting progress per batch."""
    for done in range(0, req.frames, 10):
        ctx.raise_if_cancelled()
        time.sleep(req.step_seconds * min(10, req.frames - done))
        ctx.progress(
            min(req.frames, done + 10) * 100 / req.frames,
            f"rendered {min(req.frames, done + 10)} frames",
        )
    return {"output": f"{req.project}.mp4", "frames": req.frames}
