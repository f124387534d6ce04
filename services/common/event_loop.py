"""How our services run their event loop.

`run()`: uvloop where it is installed (every Linux/macOS install: it is a dependency),
the standard asyncio loop otherwise. grpc.aio only needs `add_reader` from the loop
(its completion-queue poller wakes the loop through a socket), which uvloop provides;
the benchmark measured ~8 % less CPU per webhook across PersonaService and
DispatcherService with it (see the README's Performance section).

`freeze_startup_heap()`: everything imported and built at start-up (grpc, protobuf,
phonenumbers' metadata, ...) lives as long as the process, yet each full garbage
collection walks all of it: 20-40 ms with the loop stopped in each of our services,
in the middle of somebody's call. Frozen, it is left out of collections: the
benchmark's worst of 1,000-1,500 sequential calls went from 23-40 ms to 10-13 ms, and
GC CPU per call stayed ~1 µs. Cyclic garbage made later is still collected."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def freeze_startup_heap() -> None:
    gc.collect()  # what start-up already left behind goes now, not frozen forever
    gc.freeze()


def run(main: Coroutine[Any, Any, T]) -> T:
    freeze_startup_heap()
    try:
        import uvloop
    except ImportError:  # Windows: uvloop does not exist there
        return asyncio.run(main)
    return uvloop.run(main)
