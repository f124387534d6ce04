"""Which of gRPC core's I/O engines our processes run on.

grpcio 1.85 polls sockets on EventEngine threads by default; grpc.aio then hands every
completion to its own poller thread, which wakes the event loop: two thread hand-offs per
event. With the EventEngine client and listener experiments off, gRPC core falls back to
its long-standing epoll engine, where grpc.aio's poller thread polls the sockets itself.
That made a unary call faster and cut the mesh's CPU per webhook (measured in the bench;
see README Performance).

gRPC core reads GRPC_EXPERIMENTS once, when grpc is first imported, so this must run
before anything imports grpc. An operator's own GRPC_EXPERIMENTS (even an empty one,
which means "gRPC's defaults") always wins."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

ENV_VAR = "GRPC_EXPERIMENTS"
LEGACY_EPOLL = "-event_engine_client,-event_engine_listener"


def prefer_legacy_epoll(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set GRPC_EXPERIMENTS to LEGACY_EPOLL unless it is set already. Returns whether the
    engine grpc runs on in this process follows `environ` (False once grpc is imported:
    the setting then only reaches child processes)."""
    environ.setdefault(ENV_VAR, LEGACY_EPOLL)
    return "grpc" not in sys.modules
