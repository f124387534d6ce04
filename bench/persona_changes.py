"""`python -m bench.persona_changes`: how long a persona change takes to reach
WatchPersonas subscribers on two PersonaService replicas.

Two `friday persona serve` processes share the real Redis (127.0.0.1:6379 unless
`--redis-url`) and a CRM stand-in; one subscriber watches the number on each
replica. Each round changes the persona in the CRM and calls NotifyPersonaChanges
on replica A, then waits for the change on both subscribers. Per round:

- notify → A: from sending the notification to the change arriving on A's stream
  (the refetch from the CRM, the XADD, A's reader and A's stream);
- notify → B: the same on the other replica (B's own stream reader);
- published → B: from the moment A saw the change (`changed_at`) to its arrival on
  B: the cross-replica part alone.

Figures are this machine's, side by side in one run; compare them only with each
other (the README's Performance section says why).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
import uuid
from pathlib import Path

import grpc

from bench.stats import fmt, summarize_ms
from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from services.common.redis_client import redis_client
from services.persona.client import PersonaClient
from services.testing.crm import CrmStandIn

NUMBER = "+918655701159"
NATIONAL = "8655701159"
FRIDAY = str(Path(sys.executable).with_name("friday"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _replica(crm: CrmStandIn, redis_url: str, prefix: str) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    env = {
        **os.environ,
        "PERSONA_API_BASE": crm.base_url,
        "PERSONA_PORT": str(port),
        "PERSONA_METRICS_PORT": "0",
        "REDIS_URL": redis_url,
        "PERSONA_REDIS_PREFIX": prefix,
        "PERSONA_CRM_PROBE_INTERVAL": "0",
        "LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(FRIDAY, "persona", "serve", env=env)
    target = f"127.0.0.1:{port}"
    for _ in range(600):
        try:
            async with PersonaClient(target, timeout=1) as client:
                await client.get_persona(NUMBER)
            return process, target
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"replica on {target} never answered")


async def _watch(target: str, arrivals: dict[str, dict[str, float]], ready: asyncio.Event, name: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
        call = stub.WatchPersonas(persona_service_pb2.WatchPersonasRequest(dialed_numbers=[NUMBER]))
        # The stream is open once its first message could arrive; a keep-alive proves it.
        ready.set()
        async for event in call:
            if event.HasField("change"):
                version = event.change.version
                arrivals.setdefault(version, {})[name] = time.perf_counter()
                arrivals[version][f"{name}_wall"] = time.time()
                arrivals[version]["published"] = event.change.changed_at.ToNanoseconds() / 1e9


async def measure(rounds: int, redis_url: str) -> dict[str, dict[str, float]]:
    prefix = f"bench:changes:{uuid.uuid4().hex}:"
    async with CrmStandIn() as crm:
        crm.set_persona(NATIONAL, {"personality": "You are Asha.", "version": "v0"})
        processes = []
        try:
            a_process, a = await _replica(crm, redis_url, prefix)
            processes.append(a_process)
            b_process, b = await _replica(crm, redis_url, prefix)
            processes.append(b_process)
            arrivals: dict[str, dict[str, float]] = {}
            ready_a, ready_b = asyncio.Event(), asyncio.Event()
            watchers = [
                asyncio.create_task(_watch(a, arrivals, ready_a, "a")),
                asyncio.create_task(_watch(b, arrivals, ready_b, "b")),
            ]
            await ready_a.wait()
            await ready_b.wait()
            await asyncio.sleep(0.5)  # both streams registered on their replicas
            sent: dict[str, float] = {}
            async with PersonaClient(a, timeout=5) as client:
                for i in range(1, rounds + 1):
                    version = f"v{i}"
                    crm.set_persona(NATIONAL, {"personality": f"You are Asha, version {i}.", "version": version})
                    sent[version] = time.perf_counter()
                    await client.notify_changes([NUMBER])
                    for _ in range(2000):
                        seen = arrivals.get(version, {})
                        if "a" in seen and "b" in seen:
                            break
                        await asyncio.sleep(0.001)
            for task in watchers:
                task.cancel()
        finally:
            for process in processes:
                process.terminate()
                await process.wait()
            await _forget(redis_url, prefix)
    complete = [v for v in sent if "a" in arrivals.get(v, {}) and "b" in arrivals.get(v, {})]
    return {
        "notify -> A": summarize_ms([arrivals[v]["a"] - sent[v] for v in complete]),
        "notify -> B": summarize_ms([arrivals[v]["b"] - sent[v] for v in complete]),
        "published -> B": summarize_ms([arrivals[v]["b_wall"] - arrivals[v]["published"] for v in complete]),
        "delivered": {"rounds": float(rounds), "both_replicas": float(len(complete))},
    }


async def _forget(redis_url: str, prefix: str) -> None:
    """Drops what the run left in Redis (the change stream, cache entries)."""
    client = redis_client(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.persona_changes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="persona changes to send (default 200)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="Redis the replicas share")
    args = parser.parse_args()
    results = asyncio.run(measure(args.rounds, args.redis_url))
    delivered = results.pop("delivered")
    print(f"persona change propagation, {args.rounds} changes, two replicas sharing Redis")
    print(f"delivered to both replicas' subscribers: {int(delivered['both_replicas'])} of {args.rounds}")
    print("| leg | p50 ms | p95 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    for leg, summary in results.items():
        print(f"| {leg} | " + " | ".join(fmt(summary.get(k)) for k in ("p50", "p95", "p99", "max")) + " |")


if __name__ == "__main__":
    main()
