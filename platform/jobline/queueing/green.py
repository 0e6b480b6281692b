"""Green pools (gevent, eventlet): a worker whose jobs are greenlets in one process.

Celery's green pools only work once the process is monkey-patched, and Celery patches
only when it is started as the `celery` command: `app.worker_main()`, which `jobline
worker` uses, never does. Unpatched, the consumer blocks its thread on the broker socket,
the hub never runs, and every job stays `queued`. So a `jobline worker` with a green pool
runs itself again in a fresh interpreter that patches everything first, before any module
has created a lock, a socket or a thread.

Patched, the worker runtime needs no special case: its event-loop "thread" is a greenlet,
the loop's selector is a patched one (it yields to the hub while it waits), and a job
greenlet waiting on `run_coroutine_threadsafe(...).result()` waits on a patched lock. One
thing follows from sharing one OS thread: asyncio's "running loop" is per OS thread, so a
sync job cannot start an event loop of its own (`asyncio.run` inside it fails); such a job
is written `async def` and awaited on the worker's loop.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

GEVENT = "gevent"
EVENTLET = "eventlet"
# Pools that need the process patched before anything else is imported.
GREEN_POOLS = frozenset({GEVENT, EVENTLET})

# Run by the fresh interpreter: patch, then the same `jobline ...` command line.
_PATCH = {
    GEVENT: "from gevent import monkey\nmonkey.patch_all()\n",
    # Warnings printed while patching would break the one-line errors of `jobline worker`:
    # eventlet's own deprecation notice (the README says eventlet is deprecated upstream),
    # and what the libraries it imports say on import, which changes with their releases
    # (dnspython's DSA module warns six lines under cryptography 51). They concern those
    # libraries, not the user's command, so the patch step alone is silenced.
    EVENTLET: (
        "import warnings\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    import eventlet\n"
        "    eventlet.monkey_patch()\n"
    ),
}
_RUN = "import sys\nsys.argv = sys.argv[1:]\nfrom jobline.cli import app\nsys.exit(app())\n"


def patched() -> str | None:
    """Which library has monkey-patched this process (its threads are greenlets), if any."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return GEVENT
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None and patcher.is_monkey_patched("thread"):
        return EVENTLET
    return None


def available(pool: str) -> bool:
    """Whether the library a green pool needs is installed (the extra of its name)."""
    # Not imported here: eventlet warns of its deprecation on import, and the patched
    # process will import it anyway.
    return importlib.util.find_spec(pool) is not None


def current_greenlet() -> Any | None:
    """The greenlet running the caller in a patched process, None elsewhere.

    None for the main greenlet too: interrupting it would stop the whole worker.
    """
    if patched() is None:
        return None
    import greenlet

    current = greenlet.getcurrent()
    return None if current.parent is None else current


def interrupt(target: Any, exc: BaseException, still: Callable[[], bool]) -> None:
    """Raise `exc` in `target` where it next waits (a sleep, a socket, a lock).

    Delivered by the hub, after the caller has yielded; `still()` is asked then, so the
    greenlet is not interrupted once it has moved on (its job has ended meanwhile).
    """

    def deliver() -> None:
        if still() and not target.dead:
            target.throw(exc)

    if patched() == GEVENT:
        import gevent

        gevent.get_hub().loop.run_callback(deliver)
    else:
        from eventlet import hubs

        hubs.get_hub().schedule_call_global(0, deliver)


def rerun_patched(pool: str) -> NoReturn:
    """Replace this process by the same command line, in an interpreter patched first.

    The process keeps its id (a supervisor or a test still holds the right one).
    """
    os.execv(sys.executable, [sys.executable, "-c", _PATCH[pool] + _RUN, *sys.argv])
