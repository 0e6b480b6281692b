"""Music jobs: transcode a track, fingerprint it, validate a master."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, Field

from jobline import JobContext, job

CODECS = {"ogg", "mp3", "flac", "aac"}


class TranscodeRequest(BaseModel):
    source: str = Field(min_length=1, max_length=1024, examples=["song.wav"])
    codec: str = "ogg"
    bitrate_kbps: int = Field(128, ge=32, le=320)
    chunks: int = Field(10, ge=1, le=1000)
    step_seconds: float = Field(0.02, ge=0, le=10)


@job(payload=TranscodeRequest)
def transcode(ctx: JobContext, req: TranscodeRequest) -> dict[str, object]:
    """A CPU-style job: reports progress per chunk and stops when cancelled."""
    for i in range(req.chunks):
        ctx.raise_if_cancelled()
        time.sleep(req.step_seconds)
        ctx.progress((i + 1) * 100 / req.chunks, f"chunk {i + 1}/{req.chunks}")
    return {"output": f"{req.source}.{req.codec}", "bitrate_kbps": req.bitrate_kbps}


class FingerprintRequest(BaseModel):
    source: str = Field(min_length=1, max_length=1024)
    step_seconds: float = Field(0.02, ge=0, le=10)


@job(payload=FingerprintRequest)
async def fingerprint(ctx: JobContext, req: FingerprintRequest) -> dict[str, object]:
    """An async job: I/O-style waits on the worker's event loop."""
    for pct in (25, 50, 75, 100):
        await asyncio.sleep(req.step_seconds)
        ctx.progress(pct, f"hashed {pct}%")
    return {"fingerprint": f"fp-{abs(hash(req.source)) % 10**8:08d}"}


class ValidateMasterRequest(BaseModel):
    source: str = Field(min_length=1, max_length=1024)
    sample_rate_hz: int = 44_100


class UnsupportedMaster(ValueError):
    """The master file cannot be used."""


@job(payload=ValidateMasterRequest)
def validate_master(ctx: JobContext, req: ValidateMasterRequest) -> dict[str, object]:
    """Fails on bad input: a master must be lossless at 44.1 kHz or more."""
    ctx.progress(10, "reading header")
    if not req.source.endswith((".wav", ".flac")):
        raise UnsupportedMaster(f"{req.source} is not a lossless master (.wav or .flac)")
    if req.sample_rate_hz < 44_100:
        raise UnsupportedMaster(f"sample rate {req.sample_rate_hz} Hz is below 44100 Hz")
    return {"ok": True}


class ChattyRequest(BaseModel):
    calls: int = Field(5000, ge=1, le=1_000_000)
    seconds: float = Field(1.0, ge=0, le=600)


# How many progress calls share one sleep: a tight loop, not a sleep per call.
CHATTY_CALLS_PER_SLEEP = 100


@job(payload=ChattyRequest)
def chatty(ctx: JobContext, req: ChattyRequest) -> dict[str, object]:
    """Calls ctx.progress `calls` times over `seconds`: coalescing must keep the writes few."""
    pause = req.seconds * CHATTY_CALLS_PER_SLEEP / req.calls
    for i in range(req.calls):
        ctx.progress((i + 1) * 100 / req.calls, f"call {i + 1}/{req.calls}")
        if (i + 1) % CHATTY_CALLS_PER_SLEEP == 0:
            time.sleep(pause)
    return {"calls": req.calls}
