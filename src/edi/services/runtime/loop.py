"""The event loop a backbone process runs on: uvloop where it is installed (Linux and macOS), asyncio's own
elsewhere. The services spend much of their time in the loop itself (futures, callbacks, socket writes to the
broker), which uvloop does in C."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # Windows: uvloop is not built there
        return asyncio.run(main)
    return uvloop.run(main)


def freeze_startup_objects() -> None:
    """Put what start-up allocated (compiled schemas, code lists, models, clients: ~150,000 objects) out of the
    garbage collector's reach. Its full collections otherwise walk all of them, holding the event loop ~100 ms
    each time (measured on the Backbone with Kafka and PostgreSQL), which is every request's and record's p99.
    For a process's entry point, once started (`edi run`, `edi up`): frozen objects are never collected, so a
    process that starts backbones again and again (a test run) must not call it."""
    gc.collect()  # what is garbage already should not be kept for ever
    gc.freeze()
