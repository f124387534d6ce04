"""Runs the planned services: starts them all and waits until each is ready, keeps
them running — a service that exits on its own is restarted with a growing delay
(services.launcher.restarts), each restart one line on the console — and stops
them, gateway first, on request or when one crashes too often."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Sequence

from services.launcher.readiness import wait_until
from services.launcher.restarts import CrashHistory, RestartPolicy, describe_exit
from services.launcher.service import Service

STOP_GRACE_SECONDS = 10.0
# Gateway first so no webhook arrives at a half-stopped mesh, then the services it calls.
STOP_ORDER = {"gateway": 0, "agent": 1, "dispatcher": 2, "calls": 2, "persona": 3}
_STOPPED = "stop requested"
# What every `friday` command exits with when a setting cannot work (ConfigError): the
# same settings would be refused again, so such an exit is not restarted.
SETTINGS_REFUSED_EXIT_CODE = 2


def say(line: str) -> None:
    print(f"friday up: {line}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(
        self,
        services: Sequence[Service],
        policy: RestartPolicy,
        *,
        ready_timeout: float,
        stop_requested: asyncio.Event,
    ) -> None:
        self._services = list(services)
        self._policy = policy
        self._ready_timeout = ready_timeout
        self._stop_requested = stop_requested

    async def start_all(self) -> bool:
        """True once every service is ready; False (having said why) if one is not, or
        a stop was requested meanwhile."""
        for service in self._services:
            await service.child.start()
        for service in self._services:
            why = await self._become_ready(service)
            if why == _STOPPED:
                return False
            if why is not None:
                say(why)
                return False
        return True

    async def supervise(self) -> int:
        """Runs until a stop is requested (0) or a service crashed too often (1)."""
        keepers = [asyncio.ensure_future(self._keep_running(service)) for service in self._services]
        stopped = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({stopped, *keepers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopped, *keepers):
                task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        if self._stop_requested.is_set():
            print("friday up: stopping", flush=True)
            return 0
        return 1

    async def stop_all(self) -> None:
        for rank in sorted(set(STOP_ORDER.values())):
            group = [s for s in self._services if STOP_ORDER.get(s.kind, 0) == rank]
            await asyncio.gather(*(s.child.stop(STOP_GRACE_SECONDS) for s in group))

    async def _keep_running(self, service: Service) -> None:
        """Returns only when the service crashed more often than the policy allows."""
        child, policy = service.child, self._policy
        history = CrashHistory(policy)
        while True:
            code = await child.wait()
            if code == SETTINGS_REFUSED_EXIT_CODE:
                say(
                    f"{child.name} refused its settings (exit code {code}); restarting cannot help, "
                    "stopping the mesh" + _last_output(service)
                )
                return
            delay = history.record_crash()
            crashes = history.crashes_in_window
            if delay is None:
                say(
                    f"{child.name} {describe_exit(code)}: {crashes} crashes within {policy.window_seconds:g}s, "
                    f"more than --max-restarts {policy.max_restarts}; giving up and stopping the mesh"
                    + _last_output(service)
                )
                return
            say(f"{child.name} {describe_exit(code)}; restart {crashes} of {policy.max_restarts} in {delay:g}s")
            await asyncio.sleep(delay)
            await child.start()
            why = await self._become_ready(service)
            if why == _STOPPED:
                return
            if why is None:
                say(f"{child.name} is back (pid {child.pid})")
            else:
                say(why)
                await child.stop(STOP_GRACE_SECONDS)  # not ready in time: counts as a crash

    async def _become_ready(self, service: Service) -> str | None:
        """None once the service is ready; else why not (`_STOPPED` for a stop request)."""
        ready = asyncio.ensure_future(self._reported_and_serving(service))
        died = asyncio.ensure_future(service.child.wait())
        stopped = asyncio.ensure_future(self._stop_requested.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, died, stopped}, timeout=self._ready_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (ready, died, stopped):
                task.cancel()
        if stopped in done:
            return _STOPPED
        if ready in done:
            return ready.result()
        if died in done:
            return self._died_before_ready(service)
        return f"{service.child.name} was not ready after {self._ready_timeout:g}s"

    async def _reported_and_serving(self, service: Service) -> str | None:
        if service.ready_check is None:
            return None
        report = await service.child.report()
        if report is None:  # it exited before it could listen
            await service.child.wait()
            return self._died_before_ready(service)
        if report.error is not None:
            return f"{service.child.name} could not start: {report.error}"
        service.endpoints = dict(report.listening)
        await wait_until(functools.partial(service.ready_check, report))
        return None

    @staticmethod
    def _died_before_ready(service: Service) -> str:
        code = service.child.returncode
        exit_text = describe_exit(code) if code is not None else "exited"
        return f"{service.child.name} {exit_text} before it was ready" + _last_output(service)


def _last_output(service: Service) -> str:
    lines = service.child.last_lines()[-8:]
    return "; its last output:\n" + ("\n".join(f"    {line}" for line in lines) or "    (no output)")
