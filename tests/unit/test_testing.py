"""jobline.testing: a job run in a unit test ends as it would on a worker.

The context a job gets is the real JobContext over a Recorder, which stands where the
worker's progress reporter stands: these tests pin that the two plug into the same seam,
and that payloads, progress, cancellation, failures and results are sorted as
the worker sorts them (queueing/outcome.py).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from pydantic import BaseModel, Field

from jobline import JobContext, TransientError, job
from jobline.jobs.context import Reporter
from jobline.queueing import outcome
from jobline.queueing.progress import ProgressReporter
from jobline.testing import JobCancelled, Outcome, Progress, Recorder, arun_job, run_job


class Request(BaseModel):
    source: str = Field(min_length=1)
    chunks: int = Field(4, ge=1, le=100)


@job(payload=Request)
def chunked(ctx: JobContext, req: Request) -> dict[str, Any]:
    for i in range(req.chunks):
        ctx.raise_if_cancelled()
        ctx.progress((i + 1) * 100 / req.chunks, f"chunk {i + 1}/{req.chunks}")
    return {"output": f"{req.source}.ogg", "parts": (req.chunks, "chunks")}


@job(payload=Request)
async def chunked_async(ctx: JobContext, req: Request) -> dict[str, Any]:
    for i in range(req.chunks):
        await asyncio.sleep(0)
        ctx.raise_if_cancelled()
        ctx.progress((i + 1) * 100 / req.chunks)
    return {"output": req.source, "attempt": ctx.attempt, "type": ctx.job_type}


def test_the_recording_context_is_the_workers_job_context() -> None:
    ctx = Recorder().context("music.transcode", attempt=2)
    assert type(ctx) is JobContext
    assert (ctx.job_type, ctx.attempt) == ("music.transcode", 2)


def test_the_recorder_fills_the_same_seam_as_the_workers_reporter() -> None:
    seam = {name for name in dir(Reporter) if not name.startswith("_")}
    assert seam == {"progress", "cancel_requested"}
    for name in seam:
        ours = inspect.signature(getattr(Recorder, name))
        theirs = inspect.signature(getattr(ProgressReporter, name))
        assert ours == theirs, (name, ours, theirs)


def test_cancellation_raises_the_error_the_worker_catches() -> None:
    recorder = Recorder()
    ctx = recorder.context()
    ctx.raise_if_cancelled()  # nothing asked yet
    assert not ctx.cancelled
    recorder.cancel()
    assert ctx.cancelled
    with pytest.raises(JobCancelled) as raised:
        chunked(ctx, Request(source="a"))
    assert JobCancelled in outcome.CANCELLATIONS
    assert isinstance(raised.value, JobCancelled)


def test_a_sync_job_succeeds_with_its_progress_recorded() -> None:
    outcome = run_job(chunked, {"source": "song.wav", "chunks": 3})
    assert outcome.state == "succeeded", outcome
    # Stored as JSON values, as in the succeeded event: the tuple is a list.
    assert outcome.result == {"output": "song.wav.ogg", "parts": [3, "chunks"]}
    # Rounded as the context rounds for the worker.
    assert outcome.progress == [
        Progress(33, "chunk 1/3"),
        Progress(67, "chunk 2/3"),
        Progress(100, "chunk 3/3"),
    ]
    assert outcome.error is None and outcome.exception is None


def test_cancel_after_stops_the_job_mid_way() -> None:
    outcome = run_job(chunked, {"source": "a", "chunks": 10}, cancel_after=2)
    assert outcome.state == "cancelled"
    assert len(outcome.progress) == 2
    assert isinstance(outcome.exception, JobCancelled)


def test_an_async_job_runs_on_a_loop_of_its_own() -> None:
    outcome = run_job(chunked_async, {"source": "a", "chunks": 2}, job_type="x.y", attempt=3)
    assert outcome.state == "succeeded", outcome
    assert outcome.result == {"output": "a", "attempt": 3, "type": "x.y"}
    assert outcome.progress == [Progress(50, None), Progress(100, None)]
    cancelled = run_job(chunked_async, {"source": "a", "chunks": 5}, cancel_after=1)
    assert (cancelled.state, len(cancelled.progress)) == ("cancelled", 1)


async def test_from_an_async_test_both_kinds_run() -> None:
    awaited = await arun_job(chunked_async, {"source": "a", "chunks": 2})
    assert awaited.state == "succeeded" and len(awaited.progress) == 2
    sync = await arun_job(chunked, {"source": "a", "chunks": 2})
    assert sync.state == "succeeded" and sync.result["output"] == "a.ogg"
    # run_job itself, called on a running loop, runs the coroutine on another thread's loop.
    nested = run_job(chunked_async, {"source": "b", "chunks": 1})
    assert nested.state == "succeeded" and nested.result["output"] == "b"


def test_a_payload_the_model_refuses_fails_as_on_a_worker() -> None:
    outcome = run_job(chunked, {"source": "", "chunks": 0})
    assert outcome.state == "failed" and outcome.progress == []
    assert outcome.error is not None
    assert outcome.error["code"] == "INVALID_PAYLOAD"
    assert outcome.error["type"] == "ValidationError"
    assert "source" in outcome.error["message"] and "chunks" in outcome.error["message"]


def test_defaults_of_the_model_fill_the_payload() -> None:
    outcome = run_job(chunked, {"source": "a"})
    assert len(outcome.progress) == Request.model_fields["chunks"].default


def test_a_raising_job_fails_with_the_workers_error_object() -> None:
    @job()
    def broken(ctx: JobContext, payload: dict[str, Any]) -> None:
        raise ValueError(f"bad input {payload['n']}")

    outcome = run_job(broken, {"n": 7})
    assert outcome.state == "failed"
    assert outcome.error == {"type": "ValueError", "message": "bad input 7"}
    assert isinstance(outcome.exception, ValueError)


def test_a_transient_error_is_failed_here_and_kept_for_the_test() -> None:
    @job()
    def flaky(ctx: JobContext, payload: dict[str, Any]) -> None:
        raise TransientError("try again")

    outcome = run_job(flaky)
    assert outcome.state == "failed" and isinstance(outcome.exception, TransientError)


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("result", "code"),
    [("x" * 70_000, "RESULT_TOO_LARGE"), (nested(40), "RESULT_TOO_DEEP")],
)
def test_a_result_the_store_would_refuse_fails_the_run(result: Any, code: str) -> None:
    @job()
    def returns(ctx: JobContext, payload: dict[str, Any]) -> Any:
        return result

    outcome = run_job(returns)
    assert outcome.state == "failed"
    assert outcome.error is not None and outcome.error["code"] == code


def test_a_result_that_is_not_json_fails_the_run() -> None:
    @job()
    def returns_an_object(ctx: JobContext, payload: dict[str, Any]) -> Any:
        return object()

    outcome = run_job(returns_an_object)
    assert outcome.state == "failed" and outcome.exception is not None


def test_a_payload_goes_through_json_as_through_the_broker() -> None:
    @job()
    def echo(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        return {"seen": payload}

    assert run_job(echo, {"pair": (1, 2)}).result == {"seen": {"pair": [1, 2]}}
    with pytest.raises(TypeError):
        run_job(echo, {"not json": object()})


def test_progress_messages_are_cut_as_the_worker_cuts_them() -> None:
    @job()
    def chatty(ctx: JobContext, payload: dict[str, Any]) -> None:
        ctx.progress(150, "m" * 5000)
        ctx.progress(-3)

    outcome: Outcome = run_job(chatty)
    first, second = outcome.progress
    assert first.percent == 100 and first.message is not None
    assert len(first.message) <= 1000 and "[cut:" in first.message
    assert second == Progress(0, None)
