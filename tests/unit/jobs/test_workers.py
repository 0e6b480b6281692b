"""What ends the attempt of a job whose worker is gone (jobs/workers.py `ending`), and how
a task id tells its attempt: decisions, tested without a database."""

from __future__ import annotations

import uuid

from jobline.jobs import workers
from jobline.jobs.events import EventType
from jobline.jobs.outbox import attempt_of_task, task_id_for
from jobline.jobs.workers import Orphan

E = EventType
JOB = uuid.UUID("00000000-0000-4000-8000-000000000001")


def orphan(attempt: int = 1, cancel_requested: bool = False) -> Orphan:
    return Orphan(JOB, "music.transcode", attempt, "music@host:42", cancel_requested)


def test_a_first_loss_requeues_the_job_naming_its_next_message() -> None:
    (step,) = workers.ending(orphan(), losses=1, max_worker_losses=3, reason=workers.SILENT)
    assert step.type is E.WORKER_LOST
    assert step.data == {
        "worker": "music@host:42",
        "reason": workers.SILENT,
        "task_id": task_id_for(JOB, 2),
    }


def test_the_next_message_is_that_of_the_attempt_after_the_lost_one() -> None:
    (step,) = workers.ending(orphan(attempt=4), losses=2, max_worker_losses=3, reason="r")
    assert step.data is not None and step.data["task_id"] == f"{JOB}.5"


def test_the_loss_that_reaches_max_worker_losses_fails_the_job() -> None:
    lost, failed = workers.ending(orphan(2), losses=3, max_worker_losses=3, reason="r")
    assert lost.type is E.WORKER_LOST and lost.data is not None and "task_id" not in lost.data
    assert failed.type is E.FAILED and failed.data is not None
    assert failed.data["error"]["code"] == "WORKER_LOST"
    assert failed.data["error"]["message"] == "the job's worker died 3 times"


def test_a_job_asked_to_stop_is_cancelled_not_retried() -> None:
    (step,) = workers.ending(orphan(cancel_requested=True), 1, 3, workers.STOPPED)
    assert step.type is E.CANCELLED
    assert step.data == {
        "reason": f"cancelled by request; {workers.STOPPED}",
        "worker": "music@host:42",
    }


def test_a_job_asked_to_stop_is_cancelled_even_past_its_losses() -> None:
    (step,) = workers.ending(orphan(cancel_requested=True), 9, 3, workers.STOPPED)
    assert step.type is E.CANCELLED


def test_a_task_id_tells_its_attempt() -> None:
    assert [attempt_of_task(task_id_for(JOB, n)) for n in (1, 2, 17)] == [1, 2, 17]
    assert attempt_of_task("not-one-of-ours") == 1
    assert attempt_of_task("x.y") == 1
