"""Caller-supplied text made safe to log, in one place.

Webhook event ids, room names, numbers, trace ids and job metadata all come from
outside: a signed webhook body or a gRPC request may carry newlines, ANSI escapes or
megabytes. Written into a log as they are, a newline forges a second log line (an
access-log line that never happened) and an escape sequence rewrites an operator's
terminal. So every log record a Friday process writes passes through
`LogSafetyFilter`, which renders each caller-controlled part of the record —
the message's arguments, the trace id, `extra` fields — through `loggable`:

- control and format characters (C0, C1, DEL, line/paragraph separators, bidi
  overrides, lone surrogates) become visible escapes (`\\n`, `\\x1b`, `\\u202e`), so one record is
  always one line and reads the same in a terminal as in a file;
- the result is cut at a bound with a marker saying how much was left out.

A traceback is many lines by nature, and an exception's message may quote a
request: its lines are escaped the same way and indented, so none of them can pass
for a record of its own (every record starts at the line's first column).

Backslashes are left as they are: the output is already free of control characters.
A record is made safe once, however many handlers see it.

Trace ids also travel as gRPC metadata, which must be printable ASCII: `safe_trace_id`
is `loggable` with non-ASCII escaped too and a tighter bound, and is what both the
metadata and the logs carry.
"""

from __future__ import annotations

import logging
import sys
import unicodedata
from collections.abc import Mapping
from contextvars import ContextVar
from numbers import Number
from typing import Any

# Long enough for any id, number or persona name; short enough that a megabyte of
# hostile text costs one short line.
MAX_LOGGED_CHARS = 256
# A trace id is a LiveKit event id (`EV_` + 12 characters) in practice.
MAX_TRACE_ID_CHARS = 128
NO_TRACE_ID = "-"

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Unicode categories that draw nothing, move the cursor or cannot be written out:
# control, format (bidi overrides, zero-width characters), surrogates, private use,
# unassigned, line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escaped_char(ch: str, *, ascii_only: bool) -> str:
    code = ord(ch)
    if " " <= ch <= "~":
        return ch
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if code < 0x80 or (code <= 0xFF and unicodedata.category(ch) == "Cc"):
        return f"\\x{code:02x}"
    if ascii_only or unicodedata.category(ch) in _UNSAFE_CATEGORIES:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return ch


def _escape(value: str, limit: int, *, ascii_only: bool) -> str:
    if len(value) <= limit and (value.isascii() and value.isprintable()):
        return value  # the common case: nothing to do
    out: list[str] = []
    length = 0
    for index, ch in enumerate(value):
        piece = _escaped_char(ch, ascii_only=ascii_only)
        if length + len(piece) > limit:
            return "".join(out) + f"...(+{len(value) - index} chars)"
        out.append(piece)
        length += len(piece)
    return "".join(out)


def loggable(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """`value` as text for a log line: one line, no control characters, at most
    `limit` characters plus a truncation marker."""
    return _escape(value if isinstance(value, str) else str(value), limit, ascii_only=False)


def safe_trace_id(trace_id: str) -> str:
    """`trace_id` as printable ASCII of at most MAX_TRACE_ID_CHARS (plus marker), fit for
    gRPC metadata and log lines alike; "-" when nothing is left."""
    safe = _escape(trace_id.strip(), MAX_TRACE_ID_CHARS, ascii_only=True)
    return safe or NO_TRACE_ID


# Set on a record once it is safe; a leading underscore keeps it out of the `extra`
# fields formatters print.
_SAFE_MARK = "_friday_log_safe"
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "trace_id", _SAFE_MARK}
TRACEBACK_INDENT = "    "
_TRACEBACK_FORMATTER = logging.Formatter()


def _indented_block(text: str) -> str:
    return "\n".join(TRACEBACK_INDENT + _escape(line, sys.maxsize, ascii_only=False) for line in text.splitlines())


def _safe_arg(arg: Any) -> Any:
    # Numbers keep their type so `%d` and `%.1f` still format; everything else (strings,
    # exceptions whose text quotes a request, objects) is rendered and escaped now.
    if arg is None or isinstance(arg, (bool, Number)):
        return arg
    return loggable(arg)


class LogSafetyFilter(logging.Filter):
    """Makes a record safe to render: its arguments, `extra` fields and trace id escaped
    and bounded, the message itself escaped (never cut: it is ours), a traceback
    escaped and indented. Stamps
    `record.trace_id` from the current call's trace id when the record has none, so
    formats can always name it (when given the context variable that holds it). Never
    drops a record."""

    def __init__(self, current_trace_id: ContextVar[str] | None = None) -> None:
        super().__init__()
        self._current_trace_id = current_trace_id

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SAFE_MARK, False):
            return True
        if isinstance(record.msg, str):
            record.msg = _escape(record.msg, sys.maxsize, ascii_only=False)
        if isinstance(record.args, Mapping):
            record.args = {key: _safe_arg(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_safe_arg(arg) for arg in record.args)
        trace_id = getattr(record, "trace_id", None)
        if trace_id is None and self._current_trace_id is not None:
            trace_id = self._current_trace_id.get()
        if trace_id is not None:
            record.trace_id = safe_trace_id(str(trace_id))
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, key, loggable(value))
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the safe form is what they print.
            record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _indented_block(record.exc_text)
        if record.stack_info:
            record.stack_info = _indented_block(record.stack_info)
        setattr(record, _SAFE_MARK, True)
        return True


def protect_handlers(logger: logging.Logger) -> None:
    """Add a LogSafetyFilter to each of `logger`'s handlers that lacks one: for processes
    whose logging someone else sets up (livekit-agents' CLI in the agent's worker)."""
    for handler in logger.handlers:
        if not any(isinstance(f, LogSafetyFilter) for f in handler.filters):
            handler.addFilter(LogSafetyFilter())
