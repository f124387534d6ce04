"""What a service tells the process that launched it (`friday up`): the addresses it
really bound once it listens, or why it could not.

The launcher hands each child the write end of a pipe (its descriptor number in
FRIDAY_LAUNCH_REPORT_FD) and reads one JSON line from the other end. Only the child
it started holds that pipe, so a report proves which process is listening — a health
probe on the port alone could be answered by another mesh already bound there.
Run by hand (no FRIDAY_LAUNCH_REPORT_FD), a service reports nothing."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.env import ConfigError, Environment

REPORT_FD_ENV = "FRIDAY_LAUNCH_REPORT_FD"


@dataclass(frozen=True)
class LaunchReport:
    """One child's report. `listening` maps an endpoint's role ("grpc", "metrics",
    "http") to the `host:port` the child bound; `error` says why it could not listen."""

    listening: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None

    def encode(self) -> bytes:
        return (json.dumps({"listening": dict(self.listening), "error": self.error}) + "\n").encode()

    @classmethod
    def decode(cls, line: bytes) -> LaunchReport | None:
        """None for anything that is not a report (a child that died mid-write)."""
        try:
            raw = json.loads(line)
            listening = {str(k): str(v) for k, v in raw["listening"].items()}
            error = raw["error"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return cls(listening, None if error is None else str(error))


class LaunchReporter:
    """The child's end: `send(report)` once; later sends do nothing."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LaunchReporter:
        env = Environment(environ)
        if env.optional(REPORT_FD_ENV) is None:
            return cls(None)
        fd = env.integer(REPORT_FD_ENV, -1)
        if fd < 0:
            raise ConfigError(f"{REPORT_FD_ENV}={fd} is not a file descriptor")
        return cls(fd)

    def send(self, report: LaunchReport) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # A launcher that is gone waits for no report. Closed at once, so nothing this
        # process starts later inherits the pipe and keeps it open.
        with contextlib.suppress(OSError):
            os.write(fd, report.encode())
        with contextlib.suppress(OSError):
            os.close(fd)
