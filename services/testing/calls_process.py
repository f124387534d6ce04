"""CallHistoryService as a real process (`friday calls serve`), as `friday up` runs it: the
mesh's call path and the recording of its calls then share no event loop, so recording a
hundred calls at once does not slow the lookups and dispatches being measured.

    proc = CallsProcess(env={"CALLS_DATABASE_URL": "sqlite:///…/calls.sqlite3"})
    await proc.start()      # on a free port, serving once its database is migrated
    proc.target             # "127.0.0.1:PORT"
    await proc.stop()       # SIGTERM: drains, then exits
"""

from __future__ import annotations

from .dispatcher_process import ServiceProcess


class CallsProcess(ServiceProcess):
    SUBCOMMAND = ("calls", "serve")
    OWN_SETTINGS = ("CALLS_", "CALL_EVENTS_")
    name = "call history process"
