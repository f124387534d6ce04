"""500 hostile connections against a real gateway process: its memory stays under a
stated bound, every idle or dribbling connection is closed by the server's read
deadlines, and a real webhook LiveKit sends meanwhile is still dispatched, once, within
LiveKit's retry schedule (README, "What a hostile client gets").

The gateway runs as its own process (`services.testing.gateway_process`) so its RSS is
its own; PersonaService, DispatcherService and the stand-ins run in the test's mesh. The
peak is the kernel's high-water mark (VmHWM, reset after warm-up through clear_refs),
not a sample that could miss it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from services.chaos.redelivery import MAX_ATTEMPTS, WebhookSender
from services.testing.livekit_webhooks import event_body, sign, sip_participant_joined
from services.testing.mesh import WEBHOOK_KEY, WEBHOOK_PATH, WEBHOOK_SECRET, Mesh
from services.testing.process import StandInProcess, standin_process
from tests.webhook_gateway.conftest import DIALED

MIB = 1024 * 1024
# Short deadlines so the test does not wait out the production 10 s; what is checked is
# that the server closes, not how fast.
HEADER_TIMEOUT_SECONDS = 2.0
BODY_TIMEOUT_SECONDS = 2.0
# How long any hostile connection may stay open before the test calls it held forever:
# far past the deadlines above, so a busy machine cannot turn a pass into a failure.
HELD_FOREVER_SECONDS = 60.0
# The gateway's RSS may grow at most this much over its warmed-up baseline at the worst
# moment of the attack (README: baseline, bound and the measured peak). Before the limits,
# the same attack added several hundred MB.
RSS_GROWTH_BOUND_MB = 100
FORGED_SECRET = "not-the-webhook-secret-but-32-bytes-or-more"


@dataclass
class Peer:
    kind: str
    closed_by_server: bool = False
    status: int | None = None  # the answer's status, when one came back
    seconds_open: float = 0.0


@dataclass
class Attack:
    host: str
    port: int
    connections: int
    peers: list[Peer] = field(default_factory=list)
    all_open: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, kind: str, talk: object) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        opened = asyncio.get_running_loop().time()
        peer = Peer(kind)
        self.peers.append(peer)
        if len(self.peers) == self.connections:
            self.all_open.set()
        # Reading runs beside the talking: it sees the server's answer and its close.
        reading = asyncio.ensure_future(_read_until_closed(reader, peer))
        talking = asyncio.ensure_future(talk(writer))  # type: ignore[operator]
        try:
            async with asyncio.timeout(HELD_FOREVER_SECONDS):
                await reading
        except TimeoutError:
            pass  # held open: `closed_by_server` stays False
        finally:
            peer.seconds_open = asyncio.get_running_loop().time() - opened
            for task in (reading, talking):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
            writer.transport.abort()


async def _read_until_closed(reader: asyncio.StreamReader, peer: Peer) -> None:
    answer = b""
    try:
        while chunk := await reader.read(65536):
            answer += chunk
    except OSError:
        pass  # a reset: the server closed with our bytes unread
    peer.closed_by_server = True
    if answer.startswith(b"HTTP/1.1 "):
        peer.status = int(answer[9:12])


def _head(headers: dict[str, str]) -> bytes:
    lines = [f"POST {WEBHOOK_PATH} HTTP/1.1", "Host: gateway", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _send_quietly(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


def _full_body(headers: dict[str, str]):  # type: ignore[no-untyped-def]
    body = b'{"event":"participant_joined","pad":"' + b"x" * (MIB - 40) + b'"}'

    async def talk(writer: asyncio.StreamWriter) -> None:
        await _send_quietly(writer, _head({**headers, "Content-Length": str(len(body))}))
        for start in range(0, len(body), 64 * 1024):
            await _send_quietly(writer, body[start : start + 64 * 1024])
        await asyncio.Event().wait()  # keep the connection; the server decides when it ends

    return talk


async def _huge_header(writer: asyncio.StreamWriter) -> None:
    """8 MiB of one header, never finished."""
    await _send_quietly(writer, f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: gateway\r\nX-Pad: ".encode())
    for _ in range(8 * 16):
        await _send_quietly(writer, b"a" * (64 * 1024))
    await asyncio.Event().wait()


async def _idle(writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


async def _drip(writer: asyncio.StreamWriter, data: bytes) -> None:
    for i in range(len(data)):
        await _send_quietly(writer, data[i : i + 1])
        await asyncio.sleep(0.2)
    await asyncio.Event().wait()


def _slow_body(headers: dict[str, str]):  # type: ignore[no-untyped-def]
    """A head that passes every header check (a token LiveKit really signed, replayed),
    then a body one byte at a time."""

    async def talk(writer: asyncio.StreamWriter) -> None:
        await _send_quietly(writer, _head({**headers, "Content-Length": str(512 * 1024)}))
        await _drip(writer, b"x" * 512 * 1024)

    return talk


async def _slow_head(writer: asyncio.StreamWriter) -> None:
    await _drip(writer, _head({"Content-Type": "application/webhook+json", "Content-Length": "2"}))


def _rss_mb(pid: int, field_name: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field_name} in /proc/{pid}/status")


def _reset_peak_rss(pid: int) -> None:
    """VmHWM := VmRSS from here on (proc(5), clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@contextlib.contextmanager
def gateway_process(mesh: Mesh, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInProcess]:
    config = mesh.gateway_config
    for name, value in {
        "LIVEKIT_WEBHOOK_API_KEY": config.webhook_api_key,
        "LIVEKIT_WEBHOOK_API_SECRET": config.webhook_api_secret,
        "PERSONA_TARGET": config.persona_target,
        "DISPATCHER_TARGET": config.dispatcher_target,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS),
        "GATEWAY_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_SECONDS),
        "LOG_LEVEL": "ERROR",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with standin_process("services.testing.gateway_process") as gateway:
        yield gateway


async def test_500_hostile_connections_leave_memory_bounded_and_a_real_call_dispatched(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    with gateway_process(mesh, monkeypatch) as gateway:
        pid = gateway.process.pid
        url = gateway.origin + WEBHOOK_PATH
        async with httpx.AsyncClient(timeout=30) as http:
            sender = WebhookSender(http, url, WEBHOOK_KEY, WEBHOOK_SECRET)
            try:
                # Warm up: one real call through every code path the attack touches.
                mesh.livekit.create_room("call-warm")
                warm = await sender.queue(sip_participant_joined(room="call-warm", dialed_number=DIALED))
                assert warm.delivered, warm.answers
                baseline_mb = _rss_mb(pid, "VmRSS")
                _reset_peak_rss(pid)

                replayed = event_body(sip_participant_joined(room="call-x", dialed_number=DIALED))
                signed = sign(replayed, WEBHOOK_KEY, WEBHOOK_SECRET)
                forged = sign(b"{}", WEBHOOK_KEY, FORGED_SECRET)
                plan = (
                    [("body, no token", _full_body({"Content-Type": "application/webhook+json"}))] * 150
                    + [("body, forged token", _full_body(forged))] * 150
                    + [("huge header", _huge_header)] * 20
                    + [("idle", _idle)] * 100
                    + [("slow body", _slow_body(signed))] * 50
                    + [("slow head", _slow_head)] * 30
                )
                host, port = gateway.origin.removeprefix("http://").split(":")
                attack = Attack(host, int(port), connections=len(plan))
                assert attack.connections == 500
                hostile = [asyncio.ensure_future(attack.run(kind, talk)) for kind, talk in plan]
                await attack.all_open.wait()

                mesh.livekit.create_room("call-during-attack")
                real = await sender.queue(sip_participant_joined(room="call-during-attack", dialed_number=DIALED))

                await asyncio.gather(*hostile)
                peak_mb = _rss_mb(pid, "VmHWM")
            finally:
                await sender.aclose()

    print(f"gateway RSS: baseline {baseline_mb:.0f} MB, peak during the attack {peak_mb:.0f} MB")
    assert real.delivered and real.attempts <= MAX_ATTEMPTS, real.answers
    assert len(mesh.livekit.dispatches("call-during-attack")) == 1
    held = [p for p in attack.peers if not p.closed_by_server]
    assert held == [], f"{len(held)} connections held open, e.g. {held[:3]}"
    answered = {(p.kind, p.status) for p in attack.peers if p.status is not None}
    assert all(400 <= status < 500 for _, status in answered), answered
    assert peak_mb - baseline_mb < RSS_GROWTH_BOUND_MB, (baseline_mb, peak_mb)
