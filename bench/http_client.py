"""A deliberately small HTTP/1.1 keep-alive client for the load generator.

The load generator shares two cores with everything it measures, so every
microsecond it spends is stolen from the gateway. Requests are pre-built bytes;
the client writes them and reads one `Content-Length` response per request on a
pooled keep-alive connection, with far less CPU per request than httpx or aiohttp
spend. It understands exactly what Starlette/uvicorn answer (status line,
headers, Content-Length body) and nothing else.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass

# uvicorn closes keep-alive connections idle for 5 s (timeout_keep_alive); a request
# written on one it is closing fails. Like any HTTP client, do not reuse them that late.
MAX_IDLE_SECONDS = 4.0


class ProtocolError(Exception):
    pass


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


class HttpConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.reusable = True
        self.idle_since = time.monotonic()

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        # asyncio sets TCP_NODELAY on TCP transports: small requests leave at once.
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, raw_request: bytes) -> Response:
        self._writer.write(raw_request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.reusable = False
        if length is None:
            self.reusable = False
            raise ProtocolError("response without Content-Length")
        body = await self._reader.readexactly(length)
        self.idle_since = time.monotonic()
        return Response(status, body)

    def close(self) -> None:
        self.reusable = False
        self._writer.close()


class HttpPool:
    """Up to `limit` keep-alive connections to one origin; callers beyond that wait
    for a free connection (the wait counts in their latency)."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self._host = host
        self._port = port
        self._limit = limit
        self._idle: list[HttpConnection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[HttpConnection]] = collections.deque()

    async def warm(self, n: int) -> None:
        """Open `n` connections before timing starts (a burst should not measure TCP handshakes)."""
        n = min(n, self._limit) - self._open
        if n <= 0:
            return
        self._open += n
        conns = await asyncio.gather(*(HttpConnection.open(self._host, self._port) for _ in range(n)))
        self._idle.extend(conns)

    async def send(self, raw_request: bytes) -> Response:
        conn = await self._acquire()
        try:
            response = await conn.send(raw_request)
        except BaseException:
            conn.close()
            self._release(conn)
            raise
        self._release(conn)
        return response

    async def _acquire(self) -> HttpConnection:
        while self._idle:
            conn = self._idle.pop()
            if time.monotonic() - conn.idle_since < MAX_IDLE_SECONDS:
                return conn
            conn.close()
            self._open -= 1
        if self._open < self._limit:
            self._open += 1
            try:
                return await HttpConnection.open(self._host, self._port)
            except BaseException:
                self._open -= 1
                raise
        waiter: asyncio.Future[HttpConnection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    def _release(self, conn: HttpConnection) -> None:
        if not conn.reusable:
            self._open -= 1
            if self._waiters:
                # The waiter gets a fresh connection in place of the broken one.
                self._open += 1
                asyncio.ensure_future(self._hand_new(self._waiters.popleft()))
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def _hand_new(self, waiter: asyncio.Future[HttpConnection]) -> None:
        try:
            conn = await HttpConnection.open(self._host, self._port)
        except Exception as exc:  # noqa: BLE001 — handed to the waiting request, which records it
            self._open -= 1
            if not waiter.done():
                waiter.set_exception(exc)
            return
        if waiter.done():
            self._release(conn)
        else:
            waiter.set_result(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def post_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The exact bytes of one HTTP/1.1 POST."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
