"""Read deadlines for the gateway's HTTP connections: what uvicorn lacks.

uvicorn closes an idle keep-alive connection (`timeout_keep_alive`) but starts that
timer only after a response. A connection that never sends a byte, or sends a request
head or body one byte at a time, holds its socket, its parser and its buffers for as long
as the peer likes: an unauthenticated peer can hold thousands (slowloris). Nor can
uvicorn bound a request's read time from the app: the app sees a request only once its
head is complete, and an ASGI deadline on the body would not cover the head.

So this is uvicorn's h11 protocol (h11 because it is the one uvicorn protocol that caps
the head's size, `h11_max_incomplete_event_size`; httptools buffers any header) with two
deadlines, read from h11's own view of the peer:
- while the peer owes a request head (connection open, or the previous response sent),
  it has `header_timeout` to complete it;
- once the head is in and the peer owes the body, it has `body_timeout` to finish it.
A peer that misses one is disconnected without an answer. LiveKit writes each webhook
in one go, so only a broken or hostile peer gets here; a sender that was merely slow
sees a transport error, which LiveKit retries. A request the app is working on (the
peer owes nothing) has no read deadline: the call budget bounds it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)


class ReadDeadlineProtocol(H11Protocol):
    """uvicorn's H11Protocol, closing peers that take too long to send a request.
    Subclass per server with `with_deadlines`, as uvicorn builds protocols from a class."""

    header_timeout_seconds: ClassVar[float] = 10.0
    body_timeout_seconds: ClassVar[float] = 10.0

    _deadline: asyncio.TimerHandle | None = None
    # What the running deadline waits for: "head", "body" or None (nothing owed).
    _awaiting: str | None = None

    @classmethod
    def with_deadlines(cls, header_timeout_seconds: float, body_timeout_seconds: float) -> type[ReadDeadlineProtocol]:
        return type(
            cls.__name__,
            (cls,),
            {"header_timeout_seconds": header_timeout_seconds, "body_timeout_seconds": body_timeout_seconds},
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow_peer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_peer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_peer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _follow_peer(self) -> None:
        """(Re)arm the deadline for what the peer owes now, as h11 sees it."""
        if self.transport.is_closing():
            self._cancel_deadline()
            return
        state = self.conn.their_state
        awaiting = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if awaiting == self._awaiting:
            return
        self._cancel_deadline()
        self._awaiting = awaiting
        if awaiting is not None:
            timeout = self.header_timeout_seconds if awaiting == "head" else self.body_timeout_seconds
            self._deadline = self.loop.call_later(timeout, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._awaiting = None, None

    def _deadline_passed(self) -> None:
        awaiting = self._awaiting
        timeout = self.header_timeout_seconds if awaiting == "head" else self.body_timeout_seconds
        self._deadline, self._awaiting = None, None
        if self.transport.is_closing():
            return
        # DEBUG: a flood of hostile peers must not become a flood of log lines.
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        logger.debug("closing connection from %s: request %s not received within %.1fs", client, awaiting, timeout)
        self.transport.close()
