"""Job types of the payload tests (tests/payload_queues.yaml): one strict by default, one that
keeps unknown fields and one that drops them, each opting out as the README says."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jobline import JobContext, job


class Size(BaseModel):
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class ResizeRequest(BaseModel):
    """No `extra` of its own: the platform's default, unknown fields refused."""

    source: str
    size: Size


class TagRequest(BaseModel):
    """Opts out: unknown fields are kept (and reach the job)."""

    model_config = ConfigDict(extra="allow")

    source: str


class LegacyRequest(BaseModel):
    """Opts out: unknown fields are dropped, as pydantic does by default."""

    model_config = ConfigDict(extra="ignore")

    source: str


@job(payload=ResizeRequest)
def resize(ctx: JobContext, req: ResizeRequest) -> dict[str, int]:
    """The area of the requested size."""
    return {"area": req.size.width * req.size.height}


@job(payload=TagRequest)
def tag(ctx: JobContext, req: TagRequest) -> dict[str, object]:
    """Every field it was given, the undeclared ones too."""
    return req.model_dump()


@job(payload=LegacyRequest)
def legacy(ctx: JobContext, req: LegacyRequest) -> dict[str, object]:
    """Only the declared fields."""
    return req.model_dump()
