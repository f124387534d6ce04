"""The CRM source: `GET <base>/<number>` over a pooled httpx client, retried with
tenacity (exponential backoff + jitter, transport errors / 5xx / 429 only) and never
past the caller's deadline. Bodies are streamed and capped (MAX_BODY_BYTES)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from google.protobuf.message import Error as ProtobufError
from tenacity import RetryCallState

from friday.persona.v1.persona_pb2 import Persona
from services.common.retry import MIN_ATTEMPT_SECONDS, call_with_retries
from services.persona.answers import answer_from_json
from services.persona.numbers import CrmNumberFormat, DialedNumber
from services.persona.sources import SourceAnswer, SourceUnavailable

logger = logging.getLogger(__name__)

# A persona is a few KiB; a bigger answer is a CRM bug (or an attack), never worth the memory.
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class CrmSettings:
    base_url: str
    number_format: CrmNumberFormat = CrmNumberFormat.NATIONAL
    attempt_timeout_seconds: float = 1.5
    max_attempts: int = 3
    backoff_initial_seconds: float = 0.05
    backoff_max_seconds: float = 0.5
    max_connections: int = 50
    max_body_bytes: int = MAX_BODY_BYTES  # decoded bytes; over it = malformed answer, not retried


class _BodyTooLarge(Exception):
    pass


class _Retryable(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable)


class CrmPersonaSource:
    cacheable = True

    def __init__(
        self,
        settings: CrmSettings,
        *,
        observe_latency: Callable[[str, float], None] | None = None,
        count_error: Callable[[str], None] | None = None,
        count_retry: Callable[[], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._base = settings.base_url.rstrip("/")
        self._observe_latency = observe_latency or (lambda outcome, seconds: None)
        self._count_error = count_error or (lambda kind: None)
        self._count_retry = count_retry or (lambda: None)
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=settings.max_connections, max_keepalive_connections=20),
            timeout=httpx.Timeout(settings.attempt_timeout_seconds),
            headers={"Accept": "application/json", "User-Agent": "friday-persona-service"},
            transport=transport,
        )

    def default_persona(self) -> Persona | None:
        return None

    async def fetch(self, number: DialedNumber, deadline: float) -> SourceAnswer | None:
        loop = asyncio.get_running_loop()
        url = f"{self._base}/{number.crm_segment(self.settings.number_format)}"

        try:
            return await call_with_retries(
                lambda: self._attempt(url, number, deadline - loop.time()),
                deadline,
                max_attempts=self.settings.max_attempts,
                initial_backoff=self.settings.backoff_initial_seconds,
                max_backoff=self.settings.backoff_max_seconds,
                retry_if=_is_retryable,
                before_sleep=self._before_retry_sleep,
            )
        except _Retryable as exc:
            raise SourceUnavailable(exc.kind, f"CRM failed for {number.e164}: {exc}") from exc

    def _before_retry_sleep(self, state: RetryCallState) -> None:
        self._count_retry()

    async def _attempt(self, url: str, number: DialedNumber, remaining: float) -> SourceAnswer | None:
        if remaining < MIN_ATTEMPT_SECONDS:
            self._count_error("deadline")
            raise SourceUnavailable("deadline", f"no time left to ask the CRM for {number.e164}")
        timeout = min(self.settings.attempt_timeout_seconds, remaining)
        start = time.perf_counter()
        try:
            # httpx's timeout is per socket operation; this bounds the whole attempt (a CRM
            # dripping its body byte by byte) so the next attempt still gets its turn.
            async with asyncio.timeout(timeout):
                status, body = await self._get(url, timeout)
        except (httpx.TimeoutException, TimeoutError) as exc:
            self._observe_latency("timeout", time.perf_counter() - start)
            self._count_error("timeout")
            raise _Retryable("timeout", f"timed out after {timeout:.3f}s") from exc
        except httpx.HTTPError as exc:
            # Not only connection trouble: a body httpx cannot decode (bad gzip →
            # DecodingError), too many redirects... all mean "this CRM answer is unusable
            # right now", and another attempt may get a good one.
            self._observe_latency("transport", time.perf_counter() - start)
            self._count_error("transport")
            raise _Retryable("transport", f"{type(exc).__name__}: {exc}") from exc
        except _BodyTooLarge as exc:
            self._observe_latency("too_large", time.perf_counter() - start)
            self._count_error("malformed")
            logger.warning(
                "CRM answer for %s is over %d bytes; not reading it", number.e164, self.settings.max_body_bytes
            )
            raise SourceUnavailable("malformed", f"CRM answer for {number.e164} is too large: {exc}") from exc
        self._observe_latency(str(status), time.perf_counter() - start)
        if status == 404:
            return None
        if status == 429 or 500 <= status <= 599:
            kind = "http_429" if status == 429 else "http_5xx"
            self._count_error(kind)
            raise _Retryable(kind, f"HTTP {status}")
        if status != 200:
            self._count_error("http_4xx" if 400 <= status < 500 else "http_other")
            logger.warning("CRM answered HTTP %d for %s; not retrying", status, number.e164)
            raise SourceUnavailable("http_4xx", f"CRM answered HTTP {status} for {number.e164}")
        try:
            return answer_from_json(json.loads(body))
        # JSONDecodeError and MalformedPersona are ValueErrors; absurd nesting ends in
        # RecursionError (json or protobuf); protobuf may refuse a value with its own Error.
        except (ValueError, RecursionError, ProtobufError) as exc:
            self._count_error("malformed")
            logger.warning("CRM sent a malformed persona for %s: %s", number.e164, exc)
            raise SourceUnavailable("malformed", f"CRM sent a malformed persona for {number.e164}: {exc}") from exc

    async def _get(self, url: str, timeout: float) -> tuple[int, bytes]:
        """Status and (for a 200) the body, streamed so that no more than
        `max_body_bytes` of it is ever held (counted after decompression)."""
        cap = self.settings.max_body_bytes
        async with self._client.stream("GET", url, timeout=timeout) as response:
            status = response.status_code
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap and "content-encoding" not in response.headers:
                if status != 200:
                    return status, b""  # a failure's body is never used; closing drops it
                raise _BodyTooLarge(f"Content-Length {declared}")
            # Read even a failure's (small) body, so the connection can go back to the pool.
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    if status != 200:
                        return status, b""
                    raise _BodyTooLarge(f"more than {cap} bytes")
                chunks.append(chunk)
            return status, b"".join(chunks)

    async def probe(self) -> bool:
        """Reachable = any HTTP answer below 500 from the base URL."""
        try:
            response = await self._client.get(self._base, timeout=self.settings.attempt_timeout_seconds)
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    async def aclose(self) -> None:
        await self._client.aclose()
