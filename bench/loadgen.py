"""The load generator: a separate process (`python -m bench.loadgen`) so its CPU
shows up apart from the services'. It reads one JSON job per stdin line and answers
each with one `RESULT {...}` line on stdout.

HTTP jobs (signed webhooks to the gateway or the floor):
  sequential  one call at a time; latency from just before the write
  open        fixed-rate schedule that never waits for answers; latency from the
              *intended* send time, so a stall shows up in every request it delays
              (no coordinated omission); `send_lag` says how late the generator itself was
  closed      `concurrency` callers, each sending its next call when the last one answered
  burst       `count` calls written at once on pre-opened connections
gRPC jobs: closed loop of GetPersona or grpc.health.v1 Check with `concurrency` callers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from time import perf_counter
from typing import Any

import httpx

from services.common import event_loop

from .grpc_load import GrpcJob
from .http_client import HttpPool
from .procstats import peak_rss_mb
from .stats import summarize_ms
from .webhooks import Target, WebhookFactory


class Outcomes:
    """Latencies of good answers plus counts of everything else."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        # Open loop only: from the actual write, to tell the generator's own lateness apart.
        self.service_latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.defaults = 0

    def record(self, status: int, body: bytes, latency: float, service_latency: float | None = None) -> None:
        if status != 200:
            self.errors[f"http_{status}"] += 1
            return
        try:
            answer = json.loads(body)
        except ValueError:
            self.errors["bad_json"] += 1
            return
        if answer.get("status") != "dispatched":
            self.errors[f"status_{answer.get('status')}"] += 1
            return
        if answer.get("already_existed"):
            # Every simulated call is new: an existing dispatch means ids collided.
            self.errors["already_existed"] += 1
            return
        self.sources[str(answer.get("persona_source", "?"))] += 1
        if answer.get("default_reason"):
            self.defaults += 1
        self.latencies.append(latency)
        if service_latency is not None:
            self.service_latencies.append(service_latency)

    def failed(self, exc: BaseException) -> None:
        self.errors[f"exception_{type(exc).__name__}"] += 1

    def result(self, wall: float, **extra: Any) -> dict[str, Any]:
        done = len(self.latencies) + sum(self.errors.values())
        return {
            "latency_ms": summarize_ms(self.latencies),
            "ok": len(self.latencies),
            "errors": dict(self.errors),
            "error_count": sum(self.errors.values()),
            "persona_sources": dict(self.sources),
            "default_personas": self.defaults,
            "wall_s": round(wall, 3),
            "rate_per_s": round(done / wall, 1) if wall > 0 else None,
            **({"latency_from_send_ms": summarize_ms(self.service_latencies)} if self.service_latencies else {}),
            **extra,
        }


async def _send(
    pool: HttpPool,
    raw: bytes,
    started: float,
    out: Outcomes,
    *,
    open_loop: bool = False,
) -> None:
    sent = perf_counter()
    try:
        response = await pool.send(raw)
    except Exception as exc:  # noqa: BLE001 — every failure is a data point
        out.failed(exc)
        return
    now = perf_counter()
    out.record(response.status, response.body, now - started, now - sent if open_loop else None)


def _numbers(numbers: list[str], n: int) -> list[str]:
    return [numbers[i % len(numbers)] for i in range(n)]


class LiveKitRooms:
    """Puts rooms into the LiveKit stand-in (its control API): a caller is in the room before
    LiveKit sends the join, and the stand-in, like LiveKit, holds no room nobody created."""

    def __init__(self, origin: str | None) -> None:
        self._origin = origin

    async def create(self, names: list[str]) -> None:
        if self._origin is None or not names:
            return
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.post(f"{self._origin}/_standin/rooms", json={"names": names})
            response.raise_for_status()


class HttpJob:
    """Signing, the calls' rooms and warm-up happen in `prepare`, outside the measured window; `run` sends."""

    def __init__(self, job: dict[str, Any]) -> None:
        self._job = job
        self._target = Target.from_url(job["url"])
        self._factory = WebhookFactory(self._target, job["api_key"], job["api_secret"], tag=job["tag"])
        self._rooms = LiveKitRooms(job.get("livekit_control"))
        self._pool = HttpPool(self._target.host, self._target.port, limit=int(job.get("max_connections", 256)))
        self._requests: list[bytes] = []

    async def prepare(self) -> dict[str, Any]:
        job, mode = self._job, self._job["mode"]
        numbers = job["numbers"]
        warm = self._factory.batch(_numbers(job.get("warmup_numbers") or numbers, int(job.get("warmup", 0))))
        await self._rooms.create(self._factory.take_rooms())
        for raw in warm:
            await self._pool.send(raw)  # connections, persona cache, LiveKit sessions: all warm
        if mode == "open":
            count = int(float(job["rate"]) * float(job["duration"]))
        elif mode == "closed":
            # Enough for the expected rate; more are signed on the fly only if the mesh outruns it.
            count = int(float(job.get("expected_rate", 1000)) * float(job["duration"]) * 1.5) + int(job["concurrency"])
        else:
            count = int(job["count"])
        self._requests = self._factory.batch(_numbers(numbers, count))
        await self._rooms.create(self._factory.take_rooms())
        if mode in ("burst", "closed"):
            await self._pool.warm(count if mode == "burst" else int(job["concurrency"]))
        return {"prepared": len(self._requests), "warmup_sent": len(warm)}

    async def run(self) -> dict[str, Any]:
        job, mode = self._job, self._job["mode"]
        try:
            if mode == "sequential":
                return await _sequential(self._pool, self._requests)
            if mode == "open":
                return await _open_loop(self._pool, self._requests, float(job["rate"]))
            if mode == "closed":
                return await _closed_loop(self._pool, self._factory, self._rooms, self._requests, job)
            if mode == "burst":
                return await _burst(self._pool, self._requests)
            raise ValueError(f"unknown mode {mode!r}")
        finally:
            self._pool.close()


async def _sequential(pool: HttpPool, requests: list[bytes]) -> dict[str, Any]:
    out = Outcomes()
    began = perf_counter()
    for raw in requests:
        await _send(pool, raw, perf_counter(), out)
    return out.result(perf_counter() - began)


async def _open_loop(pool: HttpPool, requests: list[bytes], rate: float) -> dict[str, Any]:
    """The schedule is kept by a pacing thread, not by asyncio.sleep: the selector's
    timeout has millisecond granularity, which made sends late by a sizeable part of a
    warm call's latency and counted that lag against the mesh. time.sleep() wakes far
    sooner and costs no CPU while waiting; each send is then handed to the event loop,
    which writes it."""
    loop = asyncio.get_running_loop()
    out = Outcomes()
    lags: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    began = perf_counter() + 0.01

    def fire(raw: bytes, intended: float) -> None:
        lags.append(max(0.0, perf_counter() - intended))
        tasks.append(asyncio.create_task(_send(pool, raw, intended, out, open_loop=True)))

    def pace() -> None:
        for i, raw in enumerate(requests):
            intended = began + i / rate
            delay = intended - perf_counter()
            if delay > 0:
                time.sleep(delay)
            loop.call_soon_threadsafe(fire, raw, intended)

    # to_thread's own completion is queued after the last fire(): every task exists by then.
    await asyncio.to_thread(pace)
    await asyncio.gather(*tasks)
    return out.result(perf_counter() - began, target_rate_per_s=rate, send_lag_ms=summarize_ms(lags))


async def _closed_loop(
    pool: HttpPool,
    factory: WebhookFactory,
    rooms: LiveKitRooms,
    requests: list[bytes],
    job: dict[str, Any],
) -> dict[str, Any]:
    concurrency = int(job["concurrency"])
    number = job["numbers"][0]
    signed_inline = 0
    out = Outcomes()
    began = perf_counter()
    stop_at = began + float(job["duration"])

    async def caller() -> None:
        nonlocal signed_inline
        while perf_counter() < stop_at:
            if requests:
                raw = requests.pop()
            else:
                signed_inline += 1  # reported: this call's signing and room are inside the window
                raw = factory.request(number)
                await rooms.create(factory.take_rooms())
            await _send(pool, raw, perf_counter(), out)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return out.result(perf_counter() - began, concurrency=concurrency, signed_inline=signed_inline)


async def _burst(pool: HttpPool, requests: list[bytes]) -> dict[str, Any]:
    out = Outcomes()
    began = perf_counter()
    await asyncio.gather(*(_send(pool, raw, began, out) for raw in requests))
    return out.result(perf_counter() - began)


class ProbeJob:
    """Sequential GETs of one URL: how long a stand-in takes beyond the latency it was told
    to inject (its asyncio timer overshoot), so the cold path can be reported net of it."""

    def __init__(self, job: dict[str, Any]) -> None:
        self._job = job
        self._target = Target.from_url(job["url"])
        self._pool = HttpPool(self._target.host, self._target.port, limit=1)
        path = job["path"]
        self._raw = f"GET {path} HTTP/1.1\r\nHost: {self._target.host}:{self._target.port}\r\n\r\n".encode()

    async def prepare(self) -> dict[str, Any]:
        await self._pool.send(self._raw)
        return {"prepared": int(self._job["count"]), "warmup_sent": 1}

    async def run(self) -> dict[str, Any]:
        latencies = []
        try:
            for _ in range(int(self._job["count"])):
                started = perf_counter()
                response = await self._pool.send(self._raw)
                latencies.append(perf_counter() - started)
                if response.status != 200:
                    raise RuntimeError(f"probe answered {response.status}")
                await asyncio.sleep(0.002)  # a caller's pace, not back to back
        finally:
            self._pool.close()
        return {"latency_ms": summarize_ms(latencies), "ok": len(latencies), "error_count": 0, "errors": {}}


def make_job(job: dict[str, Any]) -> HttpJob | GrpcJob | ProbeJob:
    if job["kind"] == "http":
        return HttpJob(job)
    if job["kind"] == "probe":
        return ProbeJob(job)
    if job["kind"] == "grpc":
        return GrpcJob(job)
    raise ValueError(f"unknown job kind {job['kind']!r}")


async def main() -> None:
    """Protocol: `{"op": "prepare", ...job}` then `{"op": "run"}`, one RESULT line each."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY loadgen", flush=True)
    prepared: HttpJob | GrpcJob | ProbeJob | None = None
    while line := await reader.readline():
        if not line.strip():
            continue
        started = time.perf_counter()
        try:
            message = json.loads(line)
            if message["op"] == "prepare":
                prepared = make_job(message)
                result = await prepared.prepare()
            elif message["op"] == "run" and prepared is not None:
                job, prepared = prepared, None
                result = await job.run()
            else:
                raise ValueError(f"unexpected message {message.get('op')!r}")
        except Exception as exc:  # noqa: BLE001 — reported to the orchestrator, which decides
            result = {"failed": f"{type(exc).__name__}: {exc}"}
        result["loadgen_peak_rss_mb"] = peak_rss_mb(os.getpid())
        result["step_s"] = round(time.perf_counter() - started, 3)
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    # The services' loop: the client side of a bare gRPC hop (7p) then costs what the gateway's does.
    event_loop.run(main())
