"""What counts as an error in the logs of a hostile-input or fault run."""

from __future__ import annotations

import logging

import pytest

# grpcio's known, harmless multi-event-loop notice (grpc/grpc#25364, #42357): pytest gives
# each test its own loop, and grpc.aio's shared poller socket wakes the old loops too, which
# log a BlockingIOError from PollerCompletionQueue._handle_events. Not ours, not a failure.
_GRPCIO_POLLER_NOISE = "PollerCompletionQueue._handle_events"


def error_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    """ERROR (or worse) log records and anything carrying a traceback: each one is a failure."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if (r.levelno >= logging.ERROR or r.exc_info is not None) and _GRPCIO_POLLER_NOISE not in r.getMessage()
    ]
