"""wait_event: a wait with a timeout that never loses a cancel (python/cpython#86296)."""

from __future__ import annotations

import asyncio

from jobline.waiting import wait_event


async def test_it_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0.01) is True


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
