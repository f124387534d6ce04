"""LiveKit's webhook delivery, as livekit/protocol's notifier does it: the same bytes
and headers re-sent after 1, 2, 4 and 8 s (5 attempts in all) on a transport error,
a 429 or a 5xx other than 501. A 4xx is never retried; a 2xx ends the delivery."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

BACKOFF_SECONDS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
# LiveKit's HTTP client gives up on a silent receiver; the gateway answers within its budget.
ATTEMPT_TIMEOUT_SECONDS = 10.0


def is_retried(status: int | None) -> bool:
    """None = transport failure (no status came back)."""
    if status is None:
        return True
    return status == 429 or (status >= 500 and status != 501)


@dataclass
class Delivery:
    """What happened to one webhook: every attempt's status (None = transport error)."""

    started: float  # time.monotonic() of the first attempt
    statuses: list[int | None] = field(default_factory=list)
    answers: list[dict] = field(default_factory=list)
    finished: float | None = None  # monotonic time of the 2xx, if any

    @property
    def delivered(self) -> bool:
        return self.finished is not None

    @property
    def attempts(self) -> int:
        return len(self.statuses)

    @property
    def seconds_to_2xx(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    @property
    def final_status(self) -> int | None:
        return self.statuses[-1] if self.statuses else None


async def deliver(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    backoff: tuple[float, ...] = BACKOFF_SECONDS,
) -> Delivery:
    delivery = Delivery(started=time.monotonic())
    for attempt in range(len(backoff) + 1):
        if attempt:
            await asyncio.sleep(backoff[attempt - 1])
        status: int | None
        try:
            response = await http.post(url, content=body, headers=headers, timeout=ATTEMPT_TIMEOUT_SECONDS)
            status = response.status_code
            try:
                answer = response.json()
            except ValueError:
                answer = {"raw": response.text[:200]}
            delivery.answers.append(answer if isinstance(answer, dict) else {"raw": answer})
        except httpx.HTTPError as exc:
            status = None
            delivery.answers.append({"transport_error": f"{type(exc).__name__}: {exc}"})
        delivery.statuses.append(status)
        if status is not None and 200 <= status < 300:
            delivery.finished = time.monotonic()
            return delivery
        if not is_retried(status):
            return delivery
    return delivery
