"""The event loop the gRPC services run on.

uvloop where it is installed (every Linux/macOS install: it is a dependency), the
standard asyncio loop otherwise. grpc.aio only needs `add_reader` from the loop (its
completion-queue poller wakes the loop through a socket), which uvloop provides; the
benchmark measured ~8 % less CPU per webhook across PersonaService and
DispatcherService with it (see the README's Performance section)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # Windows: uvloop does not exist there
        return asyncio.run(main)
    return uvloop.run(main)
