"""The API process's garbage collector: what start-up made is frozen, young objects are
collected less often.

What start-up made lives as long as the process: frozen, the collector's full passes no
longer walk it (8% of the request path's CPU in-process, bench/README.md). A process
holding a thousand streams keeps some 400k objects alive, and fanning an event out to them
leaves many short-lived objects in flight: with CPython's default thresholds that runs a
full collection every few seconds, each a pause of hundreds of milliseconds for every
follower (bench/sse_fanout), hence JOBLINE_API_GC_THRESHOLDS.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_after_startup(thresholds: tuple[int, int, int] | None) -> Iterator[None]:
    """Freeze every object alive now (after a collection) until the block ends, and collect
    with `thresholds` meanwhile (None: CPython's own)."""
    gc.collect()
    gc.freeze()
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.unfreeze()
