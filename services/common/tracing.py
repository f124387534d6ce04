"""How a call's trace id travels: as gRPC metadata between Friday services, and
into every log line of the call (through a context variable and a log filter,
so code deep in the call path never has to pass it along by hand). The same filter
makes every record safe to write (services.common.log_safety): trace ids and the
other values callers send are escaped there, once, for every logger."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import IO

from services.common.env import Environment
from services.common.log_safety import LogSafetyFilter

# gRPC metadata keys must be lowercase.
TRACE_ID_METADATA_KEY = "x-friday-trace-id"

# The gateway uses the LiveKit event id (`EV_...`) as the trace id: it is unique per event
# and survives redelivery, so a retried webhook's trace joins its first attempt's.
current_trace_id: ContextVar[str] = ContextVar("friday_trace_id", default="-")


class TraceIdLogFilter(LogSafetyFilter):
    """Stamps `record.trace_id` with the trace id of the call being handled, and makes
    the record safe to write (LogSafetyFilter)."""

    def __init__(self) -> None:
        super().__init__(current_trace_id)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s trace=%(trace_id)s %(message)s"
# The names logging knows (CRITICAL, ERROR, WARNING, INFO, DEBUG, and their aliases).
LOG_LEVELS = tuple(logging.getLevelNamesMapping())
DEFAULT_LOG_LEVEL = "INFO"


def log_level_from_env(environ: Mapping[str, str] | None = None) -> str:
    """LOG_LEVEL, the one log level setting of every Friday service."""
    return Environment(environ).choice("LOG_LEVEL", DEFAULT_LOG_LEVEL, LOG_LEVELS)


def log_handler(stream: IO[str] | None = None) -> logging.Handler:
    """The handler every Friday service logs through (stderr by default): one line per
    record, trace id included, caller-supplied text escaped."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(TraceIdLogFilter())
    return handler


def configure_logging(level: str = DEFAULT_LOG_LEVEL) -> None:
    """Process-wide logging for a Friday service: every logger's records go through
    `log_handler`."""
    handler = log_handler()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; the CRM client's own logs and metrics say what matters.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
