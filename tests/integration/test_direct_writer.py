"""The worker's direct path (jobs/direct.py): JobStore's read and compare-and-set append on
a plain pymysql connection, against MariaDB, checked against what JobStore itself stores."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pymysql
import pytest

from jobline.dialects import MySQL, dialect_for_url
from jobline.errors import InvalidTransition
from jobline.jobs.direct import DirectWriter
from jobline.jobs.events import EventType
from jobline.jobs.states import JobState
from jobline.jobs.store import Appended, JobStore, Step
from tests.integration.backends import open_backend

pytestmark = pytest.mark.integration

E = EventType


class Committed:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, int]] = []

    def committed(self, event: Any, owner_id: uuid.UUID | None, row_id: int) -> None:
        self.seen.append((event, row_id))


@pytest.fixture(scope="module", params=["mariadb"])
async def url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async with open_backend(request, tmp_path_factory, "direct") as settings:
        yield settings.database_url


MYSQL = MySQL()


def mysql_connector(url: str) -> Any:
    return dialect_for_url(url).sync_connector(url)


def connector(url: str) -> Any:
    connect = mysql_connector(url)
    assert connect is not None
    return connect


def test_a_url_with_options_or_not_mysql_gets_no_direct_path() -> None:
    # Options are Tortoise's to read (TLS, a socket...): the worker keeps the store's path.
    assert mysql_connector("mysql://u:p@db:3306/jobs?ssl=true") is None
    assert mysql_connector("sqlite:///tmp/jobline.sqlite3") is None
    assert mysql_connector("mysql://u:p%40ss@db:3306/jobs") is not None


async def queued_job(store: JobStore, owner: str | None = None) -> Any:
    """A job queued for `owner` (a new one by default): its view."""
    job_id = uuid.uuid4()
    data = {"type": "music.transcode", "queue": "music", "payload": {"n": "é"}, "priority": 0}
    await store.submit(job_id=job_id, data={**data, "owner_id": owner or str(uuid.uuid4())})
    return (await store.append(job_id, E.QUEUED, {"task_id": "t"})).view


async def test_it_reads_a_job_as_the_store_does(url: str) -> None:
    store = JobStore()
    direct = DirectWriter(connector(url), store, MYSQL)
    view = await queued_job(store)
    assert direct.get(view.id) == await store.get(view.id)
    assert direct.get(uuid.uuid4()) is None


async def test_it_appends_on_the_view_read_and_tells_the_listener(url: str) -> None:
    listener = Committed()
    store = JobStore(listener=listener)
    direct = DirectWriter(connector(url), store, MYSQL)
    view = await queued_job(store)
    listener.seen.clear()
    done = direct.append_expected(
        view, [Step(E.STARTED, {"worker": "w"}), Step(E.SUCCEEDED, {"result": [1, "ü"]})], 1
    )
    assert done is not None
    stored = await store.get(view.id)
    assert stored == done[-1].view
    assert (stored.state, stored.last_seq, stored.result) == (JobState.SUCCEEDED, 4, [1, "ü"])
    events = await store.all_events(view.id)
    assert [e.type for e in events] == [E.SUBMITTED, E.QUEUED, E.STARTED, E.SUCCEEDED]
    assert events[2:] == [d.event for d in done]
    # The ids the notices carry are the rows' own.
    conn = connector(url)()
    with conn.cursor() as cur:
        for event, row_id in listener.seen:
            cur.execute("SELECT job_id, seq FROM job_events WHERE id = %s", (row_id,))
            assert cur.fetchone() == (str(view.id), event.seq)
    conn.close()


class CountingConnection:
    """A pymysql connection counting the requests sent to the server (round trips)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.requests = 0
        send = conn._execute_command

        def counted(command: int, sql: Any) -> Any:
            self.requests += 1
            return send(command, sql)

        conn._execute_command = counted


async def test_started_and_the_outcome_take_one_round_trip_after_the_read(url: str) -> None:
    """BEGIN, the UPDATE, the INSERT conditional on it and COMMIT in one request, not 4;
    when the row moved on, that one request writes nothing."""
    store = JobStore()
    opened: list[CountingConnection] = []

    def connect() -> Any:
        opened.append(CountingConnection(connector(url)()))
        return opened[-1].conn

    direct = DirectWriter(connect, store, MYSQL)
    direct._consecutive = True  # as learnt by the first write of the connection
    view = await queued_job(store)
    assert direct.get(view.id) == view
    assert opened[0].requests == 1
    done = direct.append_expected(view, [Step(E.STARTED, {}), Step(E.SUCCEEDED, {})], 1)
    assert done is not None and opened[0].requests == 2
    assert (await store.get(view.id)).state is JobState.SUCCEEDED
    assert [e.seq for e in await store.all_events(view.id)] == [1, 2, 3, 4]

    moved = await queued_job(store)
    await store.append(moved.id, E.CANCELLED, {})  # after the worker read it
    before = opened[0].requests
    assert direct.append_expected(moved, [Step(E.STARTED, {}), Step(E.SUCCEEDED, {})], 1) is None
    assert opened[0].requests - before == 1
    assert [e.type for e in await store.all_events(moved.id)] == [
        E.SUBMITTED,
        E.QUEUED,
        E.CANCELLED,
    ]
    assert (await store.get(moved.id)).state is JobState.CANCELLED
    assert len(opened) == 1


async def test_a_failed_insert_undoes_the_update_with_it(url: str) -> None:
    """The INSERT and COMMIT travel together: when the INSERT fails, nothing is committed."""
    store = JobStore()
    direct = DirectWriter(connector(url), store, MYSQL)
    view = await queued_job(store)
    # A row at the seq the write will take, without the job's own row moving: the INSERT
    # meets the unique (job_id, seq) after the compare-and-set succeeded.
    conn = connector(url)()
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO job_events (job_id, seq, type, attempt, data, at, owner_id)"
            " SELECT job_id, seq + 2, type, attempt, data, at, owner_id FROM job_events"
            " WHERE job_id = %s AND seq = 1",
            (str(view.id),),
        )
    conn.close()
    with pytest.raises(pymysql.err.IntegrityError):
        direct.append_expected(view, [Step(E.STARTED, {}), Step(E.SUCCEEDED, {})], 1)
    assert await store.get(view.id) == view  # the UPDATE was rolled back with the INSERT
    assert direct.get(view.id) == view  # and the connection still serves


async def test_a_row_that_moved_on_is_left_to_the_store(url: str) -> None:
    store = JobStore()
    direct = DirectWriter(connector(url), store, MYSQL)
    view = await queued_job(store)
    await store.append(view.id, E.CANCELLED, {})  # after the worker read it
    assert direct.append_expected(view, [Step(E.STARTED, {}), Step(E.SUCCEEDED, {})], 1) is None
    assert [e.type for e in await store.all_events(view.id)][-1] is E.CANCELLED
    # A step that needs a look at earlier events is left to the store too.
    fresh = await queued_job(store)
    assert direct.append_expected(fresh, [Step(E.QUEUED, {})], 1) is None
    assert (await store.get(fresh.id)).last_seq == 2


async def test_a_refusal_rolls_everything_back_and_the_connection_stays_usable(url: str) -> None:
    store = JobStore()
    direct = DirectWriter(connector(url), store, MYSQL)
    view = await queued_job(store)

    def refuse(index: int, _: Appended) -> None:
        if index == 1:
            raise InvalidTransition("refused")

    with pytest.raises(InvalidTransition):
        direct.append_expected(view, [Step(E.STARTED, {}), Step(E.SUCCEEDED, {})], 1, refuse)
    assert await store.get(view.id) == view
    assert direct.append_expected(view, [Step(E.STARTED, {})], 1) is not None
    assert (await store.get(view.id)).state is JobState.RUNNING


async def test_a_lost_connection_raises_and_the_next_call_reconnects(url: str) -> None:
    store = JobStore()
    direct = DirectWriter(connector(url), store, MYSQL)
    view = await queued_job(store)
    assert direct.get(view.id) is not None
    victim = direct._local.conn
    killer = connector(url)()
    with killer.cursor() as cur:
        cur.execute("KILL %s", (victim.thread_id(),))
    killer.close()
    with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
        direct.get(view.id)
    assert direct.get(view.id) == view  # a new connection


async def test_fair_share_slots_go_to_one_connection_at_a_time_and_die_with_it(url: str) -> None:
    """queueing/fairness.py: an owner's `cap` slots in a domain are server-wide named locks."""
    from jobline.queueing.fairness import slot_select

    store = JobStore()
    owner = str(uuid.uuid4())
    jobs = [(await queued_job(store, owner)).id for _ in range(4)]
    stranger = (await queued_job(store)).id  # another owner
    writers = [DirectWriter(connector(url), store, MYSQL) for _ in range(4)]
    select = slot_select(MYSQL, 2)  # a cap of 2
    (view, a), (_, b) = (writers[i].get_with_slot(jobs[i], select) for i in range(2))
    assert view is not None and view.id == jobs[0]
    assert a is not None and b is not None and a != b
    # Both held: a third connection gets the job but no slot; another owner is not held back.
    found, none = writers[2].get_with_slot(jobs[2], select)
    assert found is not None and none is None
    _, theirs = writers[2].get_with_slot(stranger, select)
    assert theirs is not None
    writers[2].release_slot(theirs)
    # A released slot goes to the next asker.
    writers[0].release_slot(a)
    assert writers[3].get_with_slot(jobs[3], select)[1] == a
    # A connection that closes (its worker died) frees its slot with it.
    writers[1]._drop()
    assert writers[2].get_with_slot(jobs[2], select)[1] == b
    for writer in writers:
        writer._drop()


async def test_a_slot_goes_back_with_the_outcome_commit_in_the_same_request(url: str) -> None:
    """queueing/fairness.py: the outcome's request carries RELEASE_LOCK; release_slot() then
    sends nothing."""
    from jobline.queueing.fairness import slot_select

    store = JobStore()
    owner = str(uuid.uuid4())
    jobs = [await queued_job(store, owner) for _ in range(2)]
    opened: list[CountingConnection] = []

    def connect() -> Any:
        opened.append(CountingConnection(connector(url)()))
        return opened[-1].conn

    direct, other = DirectWriter(connect, store, MYSQL), DirectWriter(connector(url), store, MYSQL)
    direct._consecutive = True  # as learnt by the first write of the connection
    select = slot_select(MYSQL, 1)  # a cap of 1
    view, slot = direct.get_with_slot(jobs[0].id, select)
    assert view == jobs[0] and slot is not None
    assert view is not None
    assert other.get_with_slot(jobs[1].id, select)[1] is None  # held
    direct.release_with_commit(slot)
    before = opened[0].requests
    assert direct.append_expected(view, [Step(E.STARTED, {}), Step(E.SUCCEEDED, {})], 1)
    assert opened[0].requests - before == 1  # BEGIN, UPDATE, INSERT, COMMIT, RELEASE
    taken = other.get_with_slot(jobs[1].id, select)[1]
    assert taken == slot  # free again
    other.release_slot(taken)
    direct.release_slot(slot)
    assert opened[0].requests - before == 1  # nothing more to send
    # The row moved on: nothing is written, and the slot goes back with that request all
    # the same (the run it held is over; the store's path records the outcome next).
    _, again = direct.get_with_slot(jobs[1].id, select)
    assert again == slot
    direct.release_with_commit(again)
    await store.append(jobs[1].id, E.CANCELLED, {})
    before = opened[0].requests
    assert direct.append_expected(jobs[1], [Step(E.STARTED, {})], 1) is None  # it moved on
    direct.release_slot(again)
    assert opened[0].requests - before == 1
    assert [e.type for e in await store.all_events(jobs[1].id)][-1] is E.CANCELLED
    assert other.get_with_slot(jobs[1].id, select)[1] == slot
    for writer in (direct, other):
        writer._drop()
