"""How our services run their event loop.

`run()`: uvloop where it is installed (every Linux/macOS install: it is a dependency),
the standard asyncio loop otherwise. grpc.aio only needs `add_reader` from the loop
(its completion-queue poller wakes the loop through a socket), which uvloop provides;
PersonaService and DispatcherService spend less CPU per webhook on it (measured in the
bench; see README Performance).

`freeze_startup_heap()`: everything imported and built at start-up (grpc, protobuf,
phonenumbers' metadata, ...) lives as long as the process, yet each full garbage
collection walks all of it, stopping the loop in each of our services in the
middle of somebody's call. Frozen, it is left out of collections: the worst
sequential call got much faster and GC CPU per call did not grow (measured in the
bench; see README Performance). Cyclic garbage made later is still collected."""

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
