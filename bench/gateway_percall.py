"""The gateway's own work per webhook (`python -m bench.percall gateway`): the gateway
runs in this process, on uvicorn exactly as `friday gateway serve` runs it and with the
settings `friday up` gives it, while everything else is a process of its own and is not
counted: CRM and LiveKit stand-ins, PersonaService, DispatcherService, CallHistoryService
(which the gateway reports every call to, as in the bench) and the load generator, which
signs the webhooks before it sends them and sends them one at a time over keep-alive.

    valgrind --tool=callgrind python -m bench.percall gateway --calls 0|300
        # (instructions at 300 − at 0) / 300 = instructions per webhook
    ... gateway --no-call-history --calls 0|300   # the same without the call reporter

Every webhook is a new call to the bench's warm number (a persona cache hit), answered
`dispatched`; the run fails otherwise. After the last answer the gateway's call reporter
is given time to send what it queued, so its share is counted in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

from starlette.applications import Starlette

from bench.mesh import API_KEY, API_SECRET, LoadGenerator, running_mesh
from bench.personas import WARM_NUMBER, _persona_body, crm_segment
from bench.webhooks import WEBHOOK_PATH
from services.common.tracing import configure_logging
from services.webhook_gateway.call_reporter import CallReporter
from services.webhook_gateway.config import GatewayConfig, HttpServerConfig
from services.webhook_gateway.server import build_server

WARMUP_WEBHOOKS = 100
LOG_LEVEL = "WARNING"  # the bench's
# How long the call reporter may take to send what the last webhooks queued.
_REPORTER_DRAIN_SECONDS = 60.0
_POLL_SECONDS = 0.05


@contextlib.asynccontextmanager
async def gateway_under_load(calls: int, *, report_calls: bool = True) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """The mesh up, the gateway warm and `calls` webhooks signed: yields `send()`,
    which sends them and returns once every one was dispatched and reported.
    `report_calls=False`: the gateway without CALLS_TARGET (no call reporter), to
    tell the reporter's share apart."""
    with tempfile.TemporaryDirectory(prefix="percall-gateway-") as tmp:
        personas = Path(tmp) / "crm-personas.json"
        personas.write_text(json.dumps({crm_segment(WARM_NUMBER): _persona_body(0)}))
        async with running_mesh(
            personas, log_level=LOG_LEVEL, calls_database=Path(tmp) / "calls.sqlite3", gateway=False
        ) as mesh:
            (planned,) = mesh.not_started
            configure_logging(LOG_LEVEL)
            env = (
                planned.child.env
                if report_calls
                else {k: v for k, v in planned.child.env.items() if k != "CALLS_TARGET"}
            )
            server = build_server(GatewayConfig.from_env(env), HttpServerConfig.from_env(env))
            generator = await LoadGenerator.start()
            try:
                async with server:
                    # The app uvicorn serves was handed to it as an object: the gateway's own.
                    app = cast(Starlette, server._uvicorn.config.app)
                    reporter: CallReporter | None = app.state.gateway.calls
                    job = {
                        "kind": "http", "url": server.url + WEBHOOK_PATH, "mode": "sequential",
                        "numbers": [WARM_NUMBER], "api_key": API_KEY, "api_secret": API_SECRET,
                        "tag": uuid.uuid4().hex[:8], "livekit_control": mesh.livekit.origin,
                        "count": calls, "warmup": WARMUP_WEBHOOKS,
                    }  # fmt: skip
                    # Signing, the calls' rooms and the warm-up.
                    await generator.run({"op": "prepare", **job})
                    await _reported(reporter)

                    async def send() -> None:
                        result = await generator.run({"op": "run"})
                        if result["ok"] != calls:
                            raise RuntimeError(f"{result['ok']} of {calls} webhooks dispatched: {result['errors']}")
                        await _reported(reporter)

                    yield send
            finally:
                await generator.close()


async def _reported(reporter: CallReporter | None) -> None:
    """Until the call reporter's queue is empty, and a moment for its last sends."""
    for _ in range(int(_REPORTER_DRAIN_SECONDS / _POLL_SECONDS)):
        if reporter is None or not reporter.pending:
            break
        await asyncio.sleep(_POLL_SECONDS)
    await asyncio.sleep(0.2)
