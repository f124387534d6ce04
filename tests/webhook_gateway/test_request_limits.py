"""What the gateway refuses from the request head alone, before reading a byte of the
body, on a raw socket (an HTTP client would send the body first): a missing, malformed
or forged token is 401, a declared body over the cap 413, an unfinished head past the
header cap 400, and each closes the connection so the rest is never read. The deadlines
and the memory they protect are tested under a flood in tests/hostile/test_connection_flood.py;
here, that the head deadline restarts after each response on a keep-alive connection."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from services.testing.livekit_webhooks import event_body, sign, sip_participant_joined
from services.testing.mesh import WEBHOOK_KEY, WEBHOOK_PATH, WEBHOOK_SECRET, Mesh
from services.webhook_gateway.config import HttpServerConfig
from services.webhook_gateway.server import GatewayServer
from tests.webhook_gateway.conftest import DIALED, OPTIONS

# Far past anything the gateway needs to answer: a server waiting for the body never does.
NO_ANSWER_SECONDS = 30.0


async def _exchange(mesh: Mesh, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send `head` (and `body`), then read until the server closes: (status, whole answer)."""
    host, port = mesh.gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        async with asyncio.timeout(NO_ANSWER_SECONDS):
            answer = await reader.read()  # to EOF: the server must close
    finally:
        writer.close()
    return int(answer[9:12]), answer


def _head(headers: dict[str, str]) -> str:
    lines = [f"POST {WEBHOOK_PATH} HTTP/1.1", "Host: gateway", *(f"{k}: {v}" for k, v in headers.items())]
    return "\r\n".join(lines) + "\r\n\r\n"


def _segment(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def _signed() -> dict[str, str]:
    """Headers of a webhook LiveKit signed just now (its token is valid for 5 minutes)."""
    body = event_body(sip_participant_joined(room="call-limits", dialed_number=DIALED))
    return sign(body, WEBHOOK_KEY, WEBHOOK_SECRET)


TOKENS = {
    "missing": None,
    "not a JWT": "not-a-jwt",
    "too long": "a" * 5000 + ".b.c",
    "alg none": f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment({'iss': WEBHOOK_KEY})}.",
    "not HS256": f"{_segment({'alg': 'RS256'})}.{_segment({'iss': WEBHOOK_KEY})}.c2ln",
    "forged": sign(b"{}", WEBHOOK_KEY, "a-secret-that-is-not-the-webhook-secret")["Authorization"],
}


@pytest.mark.parametrize("token", TOKENS.values(), ids=TOKENS.keys())
async def test_a_bad_token_is_401_before_the_body_and_closes(mesh: Mesh, token: str | None) -> None:
    headers = {"Content-Type": "application/webhook+json", "Content-Length": "1000"}
    if token is not None:
        headers["Authorization"] = token
    status, _ = await _exchange(mesh, _head(headers))  # the 1000 bytes never come
    assert status == 401


async def test_a_declared_body_over_the_cap_is_413_before_the_body_and_closes(mesh: Mesh) -> None:
    assert OPTIONS.gateway_max_body_bytes is not None
    headers = {**_signed(), "Content-Length": str(OPTIONS.gateway_max_body_bytes + 1)}
    status, answer = await _exchange(mesh, _head(headers))
    assert status == 413
    assert b"connection: close" in answer.lower()


async def test_an_unfinished_head_over_the_header_cap_is_400_and_closes(mesh: Mesh) -> None:
    # (h11 bounds what it holds while a head is incomplete; a whole head that arrives in
    # one read is parsed, and costs no more than that read.)
    unfinished = _head(_signed()).removesuffix("\r\n") + "X-Pad: " + "a" * (2 * HttpServerConfig.max_header_bytes)
    status, _ = await _exchange(mesh, unfinished)
    assert status == 400
    assert mesh.livekit.all_dispatches() == []


async def test_a_keep_alive_connection_owes_each_next_head_in_time(mesh: Mesh) -> None:
    """The head deadline starts again after every response, not only at connect."""
    short = HttpServerConfig(host="127.0.0.1", port=0, header_timeout_seconds=0.5, keep_alive_seconds=60)
    async with GatewayServer(mesh.gateway_config, short) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
            await writer.drain()
            assert (await reader.readuntil(b'{"status":"ok"}')).startswith(b"HTTP/1.1 200")
            writer.write(b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1\r\nHo")  # and no more
            await writer.drain()
            async with asyncio.timeout(NO_ANSWER_SECONDS):
                assert await reader.read() == b""  # closed, without an answer
        finally:
            writer.close()
