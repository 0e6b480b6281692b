"""wait_event: a wait with a timeout that never loses a cancel (python/cpython#86296)."""

from __future__ import annotations

import asyncio

from jobline.waiting import wait_event


async def test_it_returns_at_the_timeout_or_at_once_when_the_event_is_set() -> None:
    event = asyncio.Event()
    await wait_event(event, 0.01)  # not set: the timeout ends the wait, without an error
    assert not event.is_set()
    event.set()
    waiting = asyncio.ensure_future(wait_event(event, 60))
    done, _ = await asyncio.wait({waiting}, timeout=5)
    assert waiting in done, "a set event does not wait for the timeout"


async def test_a_cancel_that_arrives_as_the_event_is_set_stops_a_loop_around_it() -> None:
    # asyncio.wait_for on Python 3.11 returns here as if nothing had been cancelled, and the
    # loop waits again for ever: the hang of an API's shutdown that this module exists for.
    event = asyncio.Event()
    rounds = 0

    async def wait_in_a_loop() -> None:
        nonlocal rounds
        while True:
            await wait_event(event, 60)
            event.clear()
            rounds += 1

    task = asyncio.create_task(wait_in_a_loop())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done and task.cancelled()
    assert rounds == 0
