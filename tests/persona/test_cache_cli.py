"""Cache backends on their own, the persona-file source, grpcurl against the real
service, and the `friday persona` CLI as a process (serve, get, SIGTERM)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import redis.asyncio as redis

from friday.persona.v1.persona_pb2 import Persona, PersonaSource
from services.common.redis_client import redis_client
from services.grpc_runtime import ServerConfig
from services.persona.cache_entry import CacheEntry, CacheUnavailable
from services.persona.config import CacheConfig, PersonaConfig
from services.persona.memory_cache import MemoryCache
from services.persona.redis_cache import RedisCache
from services.persona.server import build_server
from services.testing.crm import CrmStandIn
from tests.grpc_runtime.test_metrics_errors import http_get, sample
from tests.grpc_runtime.test_server import _grpcurl
from tests.persona.conftest import ACME, REDIS_URL, StartPersona, fast_config

FRIDAY = str(Path(sys.executable).with_name("friday"))


async def test_memory_cache_ttl_and_lru() -> None:
    now = [0.0]
    cache = MemoryCache(max_entries=2, clock=lambda: now[0])
    entry = CacheEntry(Persona(persona_id="a"), fetched_at=1.0)
    await cache.set("a", entry, keep_seconds=10)
    await cache.set("b", entry, keep_seconds=10)
    assert await cache.get("a") == entry  # touch a: b becomes least recently used
    await cache.set("c", entry, keep_seconds=10)
    assert await cache.get("b") is None and await cache.get("a") is not None and len(cache) == 2
    now[0] = 10.0
    assert await cache.get("a") is None  # expired


async def test_redis_cache_round_trip_and_expiry(redis_prefix: str) -> None:
    cache = RedisCache(redis_client(REDIS_URL), key_prefix=redis_prefix)
    try:
        persona = Persona(persona_id="p", display_name="P", personality="x")
        await cache.set("+1", CacheEntry(persona, fetched_at=123.5), keep_seconds=60)
        await cache.set("+2", CacheEntry(None, fetched_at=124.0), keep_seconds=0.05)
        got = await cache.get("+1")
        assert got is not None and got.answer == persona and got.fetched_at == 123.5
        negative = await cache.get("+2")
        assert negative is not None and negative.negative
        await asyncio.sleep(0.2)
        assert await cache.get("+2") is None  # Redis expired it
        assert await cache.delete("+1") and not await cache.delete("+1")
    finally:
        await cache.aclose()


@pytest.mark.parametrize(
    "fields",
    [
        {"persona": b"not a protobuf", "fetched_at": b"123.5"},  # DecodeError, not a ValueError
        {"persona": b"\x0a\xff", "fetched_at": b"123.5"},  # truncated field
        {"fetched_at": b"yesterday"},
    ],
)
async def test_a_corrupt_redis_entry_is_a_miss_and_counted(redis_prefix: str, fields: dict[str, bytes]) -> None:
    corrupt: list[str] = []
    cache = RedisCache(redis_client(REDIS_URL), key_prefix=redis_prefix, on_corrupt=corrupt.append)
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        await raw.hset(redis_prefix + "+1", mapping=fields)
        assert await cache.get("+1") is None
        assert await cache.get("+1") is None
        assert corrupt == ["+1"]  # dropped on the first read: counted once
        assert not await raw.exists(redis_prefix + "+1")
        # the next fetch overwrites it with a good entry
        persona = Persona(persona_id="p", personality="x")
        await cache.set("+1", CacheEntry(persona, fetched_at=1.0), keep_seconds=60)
        got = await cache.get("+1")
        assert got is not None and got.answer == persona and corrupt == ["+1"]
    finally:
        await raw.aclose()
        await cache.aclose()


async def test_a_corrupt_redis_entry_is_fetched_again_from_the_crm(
    crm: CrmStandIn, start_persona: StartPersona, redis_prefix: str
) -> None:
    crm.set_persona("8655701159", ACME)
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        await raw.hset(redis_prefix + "+918655701159", mapping={"persona": b"garbage", "fetched_at": b"1e12"})
    finally:
        await raw.aclose()
    config = fast_config(crm, cache=CacheConfig(redis_url=REDIS_URL, redis_key_prefix=redis_prefix))
    running = await start_persona(config, metrics=True)
    reply = await running.client.get_persona("+918655701159")
    assert reply.source == PersonaSource.PERSONA_SOURCE_CRM and reply.persona.persona_id == "acme"
    assert (await running.client.get_persona("+918655701159")).source == PersonaSource.PERSONA_SOURCE_CACHE
    assert crm.requests_for("8655701159") == 1
    assert running.server.metrics_port is not None
    _, metrics = await http_get(running.server.metrics_port)
    assert sample(metrics, "persona_cache_corrupt_entries_total") == 1


async def test_unreachable_redis_raises_cache_unavailable() -> None:
    cache = RedisCache(redis_client("redis://127.0.0.1:1/0"), key_prefix="x:")
    try:
        with pytest.raises(CacheUnavailable):
            await cache.get("+1")
    finally:
        await cache.aclose()


async def test_persona_file_source(start_persona: StartPersona, tmp_path: Path) -> None:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps({"default": {**ACME, "persona_id": "file-default"}, "personas": {"08655701159": ACME}}))
    running = await start_persona(PersonaConfig(persona_file=str(path)))
    reply = await running.client.get_persona("+918655701159")
    assert reply.source == PersonaSource.PERSONA_SOURCE_STATIC_FILE and reply.persona.persona_id == "acme"
    fallback = await running.client.get_persona("+14155550100", allow_default=True)
    assert (fallback.source, fallback.persona.persona_id) == (PersonaSource.PERSONA_SOURCE_DEFAULT, "file-default")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await running.client.get_persona("+14155550100")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_embedded_example_is_the_default_source(start_persona: StartPersona) -> None:
    running = await start_persona(PersonaConfig())
    reply = await running.client.get_persona("8655701159")
    assert reply.source == PersonaSource.PERSONA_SOURCE_STATIC_FILE and reply.persona.persona_id == "xeny-reception"


async def test_grpcurl_against_persona_service(crm: CrmStandIn, start_persona: StartPersona) -> None:
    crm.set_persona("8655701159", ACME)
    running = await start_persona(fast_config(crm))
    address = running.server.address
    listed = await _grpcurl("-plaintext", address, "list")
    described = await _grpcurl("-plaintext", address, "describe", "friday.persona.v1.PersonaService")
    called = await _grpcurl(
        "-plaintext",
        "-d",
        '{"dialed_number": "+918655701159"}',
        address,
        "friday.persona.v1.PersonaService/GetPersona",
    )
    assert "friday.persona.v1.PersonaService" in listed.split()
    assert "rpc GetPersona" in described and "rpc InvalidatePersona" in described
    reply = json.loads(called)
    assert reply["source"] == "PERSONA_SOURCE_CRM"
    assert reply["persona"].get("displayName", reply["persona"].get("display_name")) == "Maya from Acme"


async def test_cli_serve_get_and_sigterm(crm: CrmStandIn) -> None:
    crm.set_persona("8655701159", ACME)
    env = {
        **os.environ,
        "PERSONA_API_BASE": crm.base_url,
        "PERSONA_HOST": "127.0.0.1",
        "PERSONA_PORT": "0",
        "PERSONA_METRICS_PORT": "0",
        "PERSONA_CRM_PROBE_INTERVAL": "0",
    }
    env.pop("REDIS_URL", None)
    serve = await asyncio.create_subprocess_exec(
        FRIDAY, "persona", "serve", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert serve.stderr is not None
        port = None
        while port is None:
            line = (await asyncio.wait_for(serve.stderr.readline(), 20)).decode()
            assert line, "serve exited before listening"
            if match := re.search(r"listening on 127\.0\.0\.1:(\d+)", line):
                port = match.group(1)
        get = await asyncio.create_subprocess_exec(
            FRIDAY, "persona", "get", "08655701159", "--target", f"127.0.0.1:{port}",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(get.communicate(), 30)
        assert get.returncode == 0, err.decode()
        printed = json.loads(out)
        assert printed["source"] == "PERSONA_SOURCE_CRM" and printed["persona"]["persona_id"] == "acme"

        bad = await asyncio.create_subprocess_exec(
            FRIDAY, "persona", "get", "../../admin", "--target", f"127.0.0.1:{port}", "--trace-id", "EV_cli_trace",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, bad_err = await asyncio.wait_for(bad.communicate(), 30)
        assert bad.returncode == 2
        assert json.loads(bad_err)["error"]["reason"] == "INVALID_PHONE_NUMBER"

        serve.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(serve.stderr.read(), 20)
        assert await asyncio.wait_for(serve.wait(), 20) == 0
        assert b"signal received" in rest and b"persona stopped" in rest
        # The service's own log line about the call carries the caller's trace id (log filter, not by hand).
        refused = [line for line in rest.decode().splitlines() if "INVALID_ARGUMENT" in line and "GetPersona" in line]
        assert refused and all(" trace=EV_cli_trace " in line for line in refused), rest.decode()
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()


async def _friday(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        FRIDAY, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_invalidate_needs_the_admin_token_and_the_cli_sends_it(crm: CrmStandIn) -> None:
    crm.set_persona("8655701159", ACME)
    read_token, admin_token = "read-token-0123456789", "admin-token-0123456789"
    server = build_server(
        fast_config(crm), ServerConfig(host="127.0.0.1", port=0, auth_token=read_token, admin_token=admin_token)
    )
    await server.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")}
        env |= {"PERSONA_TARGET": server.address, "PERSONA_TOKEN": read_token}
        code, out, _ = await _friday("persona", "get", "+918655701159", env=env)
        assert code == 0 and json.loads(out)["source"] == "PERSONA_SOURCE_CRM"
        # The ordinary token (what the gateway holds) cannot drop cached personas ...
        code, _, err = await _friday("persona", "invalidate", "+918655701159", env=env)
        assert code == 1 and json.loads(err)["error"]["reason"] == "INVALID_TOKEN"
        # ... the admin token can: from PERSONA_ADMIN_TOKEN, or --token.
        code, out, err = await _friday(
            "persona", "invalidate", "+918655701159", env=env | {"PERSONA_ADMIN_TOKEN": admin_token}
        )
        assert code == 0, err
        dropped = json.loads(out)
        assert dropped.pop("version").startswith("sha256:")  # fetched again at once
        assert dropped == {
            "normalized_number": "+918655701159", "removed": True, "source_cacheable": True, "refetched": True
        }  # fmt: skip
        assert err == ""
        code, out, err = await _friday("persona", "invalidate", "+14155550100", "--token", admin_token, env=env)
        assert code == 0, err
        assert json.loads(out)["removed"] is False and json.loads(out)["refetched"] is True
        # says why nothing was removed, and what the CRM says now
        assert "no cached persona for +14155550100 to drop" in err and "the CRM has no persona for it" in err
        # and `get` keeps using the ordinary token while both are set
        code, _, err = await _friday("persona", "get", "+918655701159", env=env | {"PERSONA_ADMIN_TOKEN": admin_token})
        assert code == 0, err
    finally:
        await server.stop(grace=0)
