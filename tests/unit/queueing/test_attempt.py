"""Attempt: what it holds must go when the attempt ends, without the garbage collector."""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from jobline.config import get_settings
from jobline.jobs.spec import BUILTIN_POLICY, JobType, JobTypeSpec, ResolvedPolicy
from jobline.queueing.attempt import Attempt

JOB_TYPE = JobType(
    "demo.kind",
    "demo",
    "demo",
    JobTypeSpec(task_name="demo.kind"),
    ResolvedPolicy(**BUILTIN_POLICY),
)


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_an_attempt_and_its_reporter_are_freed_by_reference_counting(collector_off: None) -> None:
    # A cycle between the attempt and its progress reporter cost the worker ~5% CPU per job
    # (bench/worker_body.py): every attempt then waited for a collection to be freed.
    loop = asyncio.new_event_loop()
    try:
        rt = SimpleNamespace(settings=get_settings(), loop=loop)
        view = SimpleNamespace(id=uuid.uuid4(), attempt=1)  # what an Attempt reads of the job
        attempt = Attempt(rt, JOB_TYPE, view, None)  # type: ignore[arg-type]
        ctx = attempt.context()
        gone = weakref.ref(attempt), weakref.ref(attempt.reporter), weakref.ref(attempt.watch)
        del attempt, ctx
        assert [ref() for ref in gone] == [None, None, None]
    finally:
        loop.close()
