"""Caller-supplied text in log records: one line, no escape sequences, bounded."""

from __future__ import annotations

import io
import logging

from services.common import tracing
from services.common.log_safety import (
    MAX_LOGGED_CHARS,
    MAX_TRACE_ID_CHARS,
    LogSafetyFilter,
    loggable,
    protect_handlers,
    safe_trace_id,
)

FORGED = "call-1\n2026-01-01 00:00:00,000 INFO friday.grpc.access grpc method=/x code=OK\x1b[2J\x1b[31m"


def test_control_characters_become_visible_escapes() -> None:
    assert loggable(FORGED) == (
        "call-1\\n2026-01-01 00:00:00,000 INFO friday.grpc.access grpc method=/x code=OK\\x1b[2J\\x1b[31m"
    )
    assert loggable("a\r\tb\x00\x7f\x85") == "a\\r\\tb\\x00\\x7f\\x85"
    # Line and paragraph separators, bidi overrides: invisible or line-breaking in a viewer.
    assert loggable("x\u2028y\u2029z\u202eok") == "x\\u2028y\\u2029z\\u202eok"
    # A lone surrogate would make the log stream's encoder fail on the whole record.
    assert loggable("a\ud800b") == "a\\ud800b"


def test_printable_text_passes_unchanged_whatever_its_script() -> None:
    for text in ("+14155550100", "EV_8Fgzt2S9kq", "call-_+1415_abc", "Asha from Xeny नमस्ते", "é ü"):
        assert loggable(text) == text


def test_long_values_are_cut_with_a_marker() -> None:
    text = loggable("x" * 10_000)
    assert text == "x" * MAX_LOGGED_CHARS + "...(+9744 chars)"
    assert len(loggable("\n" * 1000)) < MAX_LOGGED_CHARS + 20


def test_escaping_twice_changes_nothing() -> None:
    once = loggable(FORGED)
    assert loggable(once) == once


def test_trace_ids_are_printable_ascii_fit_for_grpc_metadata() -> None:
    assert safe_trace_id("EV_1") == "EV_1"
    assert safe_trace_id("EV_1\n\x1b[2Jé") == "EV_1\\n\\x1b[2J\\u00e9"
    assert safe_trace_id("   ") == "-"
    long = safe_trace_id("E" * 1000)
    assert long.isascii() and long.isprintable() and long.startswith("E" * MAX_TRACE_ID_CHARS + "...")


def _render(logger_args: tuple[object, ...], msg: str = "room %s: %s", **extra: object) -> str:
    out = io.StringIO()
    handler = tracing.log_handler(out)
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, msg, logger_args, None)
    record.__dict__.update(extra)
    handler.handle(record)
    return out.getvalue()


def test_the_service_handler_escapes_arguments_extras_and_the_trace_id() -> None:
    token = tracing.current_trace_id.set("EV_1\nFORGED INFO line")
    try:
        rendered = _render((FORGED, ValueError("bad\nvalue")), "room %s: %s", room=FORGED)
        rendered_numbers = _render((3, 2.5), "took %d tries, %.1f s")
    finally:
        tracing.current_trace_id.reset(token)
    assert rendered.count("\n") == 1 and "\x1b" not in rendered
    assert "trace=EV_1\\nFORGED INFO line " in rendered
    assert "room call-1\\n2026-01-01" in rendered and "bad\\nvalue" in rendered
    assert rendered_numbers.endswith("took 3 tries, 2.5 s\n")


def test_an_extra_field_is_escaped_for_formatters_that_print_it() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "job setup read", (), None)
    record.room = FORGED
    LogSafetyFilter().filter(record)
    assert record.room == loggable(FORGED)
    assert not hasattr(record, "trace_id")  # without a trace variable, nothing is stamped


def test_protect_handlers_adds_the_filter_once() -> None:
    logger = logging.getLogger("tests.log_safety.protect")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    try:
        protect_handlers(logger)
        protect_handlers(logger)
        assert sum(isinstance(f, LogSafetyFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)


def test_a_traceback_quoting_a_request_cannot_start_a_line_of_its_own() -> None:
    out = io.StringIO()
    handler = tracing.log_handler(out)
    logger = logging.getLogger("tests.log_safety.traceback")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError(f"bad room {FORGED}")
        except ValueError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    first, *rest = out.getvalue().splitlines()
    assert first.endswith("lookup failed")
    assert rest and all(line.startswith("    ") for line in rest), rest
    # The message's forged line is still there to read, indented under its record, escaped.
    assert rest[-2:] == ["    ValueError: bad room call-1", "    " + loggable(FORGED).split("\\n", 1)[1]]
    assert "\x1b" not in out.getvalue()


def test_a_record_is_made_safe_once_however_many_handlers_see_it() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "room %s", ("a\nb",), None)
    record.exc_text = "Traceback\nValueError: x"
    first, second = LogSafetyFilter(), LogSafetyFilter()
    first.filter(record)
    second.filter(record)
    assert record.getMessage() == "room a\\nb"
    assert record.exc_text == "    Traceback\n    ValueError: x"
