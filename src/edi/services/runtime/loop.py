"""The event loop a backbone process runs on: uvloop where it is installed (Linux and macOS), asyncio's own
elsewhere. The services spend much of their time in the loop itself (futures, callbacks, socket writes to the
broker), which uvloop does in C."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # Windows: uvloop is not built there
        return asyncio.run(main)
    return uvloop.run(main)
