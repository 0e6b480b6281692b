"""queueing/green.py: which process is patched, and interrupting a job's greenlet.

The patched cases run in a child interpreter: patching this test process would change
every other test in it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from jobline.queueing import green

CHILD_TIMEOUT = 60


def run_patched(pool: str, body: str) -> str:
    """`body` in a fresh interpreter patched as `jobline worker --pool=POOL` patches it."""
    script = green._PATCH[pool] + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_unpatched_process_has_no_greenlet_to_interrupt() -> None:
    assert green.patched() is None
    assert green.current_greenlet() is None


def test_a_green_pool_needs_its_library_installed() -> None:
    assert green.available("gevent") and green.available("eventlet")
    assert not green.available("no_such_green_library")


@pytest.mark.parametrize("pool", sorted(green.GREEN_POOLS))
def test_the_bootstrap_patches_before_jobline_is_imported(pool: str) -> None:
    out = run_patched(
        pool,
        """
        from jobline.queueing import green
        print(green.patched())
        print(green.current_greenlet() is None)  # the main greenlet: never interrupted
        """,
    )
    assert out.split() == [pool, "True"]


@pytest.mark.parametrize("pool", sorted(green.GREEN_POOLS))
def test_a_waiting_greenlet_is_interrupted_unless_it_moved_on(pool: str) -> None:
    out = run_patched(
        pool,
        """
        import threading, time
        from jobline.errors import JobCancelled
        from jobline.queueing import green

        outcome = {}

        def job(name):
            outcome[name + "-self"] = green.current_greenlet() is not None
            try:
                time.sleep(30)
                outcome[name] = "slept"
            except JobCancelled:
                outcome[name] = "interrupted"

        def run(name, still, wait):
            ready = threading.Event()
            target = {}
            def body():
                target["g"] = green.current_greenlet()
                ready.set()
                job(name)
            t = threading.Thread(target=body, daemon=True)
            t.start()
            ready.wait()
            green.interrupt(target["g"], JobCancelled(), still=lambda: still)
            t.join(wait)
            print(name, outcome.get(name, "still sleeping"), outcome[name + "-self"])

        run("wanted", True, 20)  # ends as soon as it is interrupted
        run("moved-on", False, 0.5)  # would be interrupted at once too, if it were
        """,
    )
    assert out.splitlines() == ["wanted interrupted True", "moved-on still sleeping True"]
