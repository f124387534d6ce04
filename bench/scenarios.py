"""The seven benchmark scenarios (README, Performance), each returning result rows (see measure.py)."""

from __future__ import annotations

from statistics import median
from typing import Any

from .measure import Bench
from .stats import minus

Rows = list[dict[str, Any]]


async def warm_sequential(bench: Bench) -> Rows:
    """1. One call at a time, persona cached: 1a with the warm LiveKit latency (the
    mesh's own cost), 1b with the stand-ins' default latency (what a caller waits)."""
    cfg, url, number = bench.cfg, bench.mesh.gateway_url, [bench.numbers.warm]
    rows = [
        await bench.measure(
            "1a",
            "warm sequential",
            bench.http_job(url, "sequential", number, count=cfg.sequential_count, warmup=cfg.warmup),
            livekit_latency=cfg.warm_livekit_latency,
        ),
        await bench.measure(
            "1b",
            "warm sequential, LiveKit latency on",
            bench.http_job(url, "sequential", number, count=cfg.sequential_real_count, warmup=cfg.warmup // 10),
            crm_latency=cfg.crm_latency,
            livekit_latency=cfg.livekit_latency,
        ),
    ]
    return rows


async def open_loop(bench: Bench) -> Rows:
    """2. Fixed arrival rates, answers or not (latency from the intended send time)."""
    cfg = bench.cfg
    return [
        await bench.measure(
            f"2-{rate:g}",
            f"open loop {rate:g}/s",
            bench.http_job(
                bench.mesh.gateway_url,
                "open",
                [bench.numbers.warm],
                rate=rate,
                duration=cfg.open_duration,
                warmup=cfg.warmup,
            ),
            livekit_latency=cfg.warm_livekit_latency,
        )
        for rate in cfg.open_rates
    ]


async def saturation(bench: Bench, *, url: str | None = None, sid: str = "3", label: str = "mesh") -> Rows:
    """3. Closed loop with rising concurrency; stops once errors appear or p99 runs far
    past the limit. The answer is the best rate whose p99 stayed under the limit with no errors."""
    cfg = bench.cfg
    rows: Rows = []
    expected = 500.0
    for level in cfg.closed_levels:
        row = await bench.measure(
            f"{sid}-c{level}",
            f"{label} closed loop, {level} in flight",
            bench.http_job(
                url or bench.mesh.gateway_url,
                "closed",
                [bench.numbers.warm],
                concurrency=level,
                duration=cfg.closed_duration,
                expected_rate=expected,
                warmup=min(cfg.warmup, 20),
            ),
            livekit_latency=cfg.warm_livekit_latency,
        )
        rows.append(row)
        expected = max(expected, (row["rate_per_s"] or 0) * 1.3)
        if row["error_count"] or row["latency_ms"].get("p99", 0) > 4 * cfg.saturation_p99_ms:
            break
    return rows


def best_rate(rows: Rows, p99_limit_ms: float) -> dict[str, Any] | None:
    good = [r for r in rows if not r["error_count"] and r["latency_ms"].get("p99", 1e9) <= p99_limit_ms]
    return max(good, key=lambda r: r["rate_per_s"], default=None)


async def cold_burst(bench: Bench) -> Rows:
    """4. Many simultaneous first calls to one uncached number: PersonaService must ask the
    CRM once (coalescing) and every call must still get exactly one dispatch."""
    cfg = bench.cfg
    number = bench.numbers.burst
    row = await bench.measure(
        "4",
        f"cold burst, {cfg.burst_size} simultaneous calls, one uncached number",
        bench.http_job(bench.mesh.gateway_url, "burst", [number], count=cfg.burst_size),
        crm_latency=cfg.crm_latency,
        livekit_latency=cfg.livekit_latency,
        watch_numbers=[number],
    )
    counts = row["standins"]
    row["checks"] = {
        "crm_requests": counts["crm_requests_for_numbers"],
        "crm_requests_expected": 1,
        "dispatches": counts["livekit_creates"],
        "dispatches_expected": cfg.burst_size,
        "answered_ok": row["ok"],
        "default_personas": row["default_personas"],
    }
    return [row]


async def cold_path(bench: Bench) -> Rows:
    """5. Sequential first calls to distinct uncached numbers; the overhead is the latency
    minus the stand-ins' sleeps on the path (counted from what they saw)."""
    cfg = bench.cfg
    cold = bench.numbers.cold
    overshoot = await bench.timer_overshoot_ms([cfg.crm_latency, cfg.livekit_latency], count=min(40, 4 * len(cold)))
    row = await bench.measure(
        "5",
        f"cold path, {len(cold)} distinct uncached numbers",
        # Warm-up on the (cached) warm number keeps connections open without warming these numbers.
        bench.http_job(
            bench.mesh.gateway_url,
            "sequential",
            cold,
            count=len(cold),
            warmup=min(cfg.warmup, 20),
            warmup_numbers=[bench.numbers.warm],
        ),
        crm_latency=cfg.crm_latency,
        livekit_latency=cfg.livekit_latency,
        watch_numbers=cold,
    )
    if "overhead_ms" in row:
        # The stand-ins' own timer overshoot is theirs, not the mesh's: report the overhead net of it too.
        counts = {f"{cfg.crm_latency * 1000:g}": row["crm_requests_per_call"]}
        lk_key = f"{cfg.livekit_latency * 1000:g}"
        counts[lk_key] = counts.get(lk_key, 0) + row["livekit_calls_per_call"]
        extra = sum(overshoot[key] * n for key, n in counts.items())
        row["standin_timer_overshoot_ms"] = {"per_sleep": overshoot, "per_call": round(extra, 3)}
        row["overhead_net_ms"] = minus(row["overhead_ms"], extra)
    return [row]


async def persona_direct(bench: Bench) -> Rows:
    """6. GetPersona (warm) straight over gRPC, next to grpc.health.v1 Check on a bare
    grpc.aio server (the ceiling) and on PersonaService's own server (runtime overhead)."""
    cfg = bench.cfg
    jobs = [
        ("6-bare", "bare grpc.aio health Check", bench.bare_health_target, "health"),
        ("6-health", "PersonaService health Check", bench.mesh.persona_target, "health"),
        ("6-get", "PersonaService GetPersona (warm)", bench.mesh.persona_target, "get_persona"),
    ]
    rows = []
    for sid, name, target, method in jobs:
        job = {
            "kind": "grpc",
            "target": target,
            "method": method,
            "number": bench.numbers.warm,
            "concurrency": cfg.grpc_concurrency,
            "duration": cfg.grpc_duration,
            "warmup": cfg.warmup,
        }
        rows.append(await bench.measure(sid, f"{name}, {cfg.grpc_concurrency} concurrent", job))
    return rows


async def floor(bench: Bench) -> Rows:
    """7. The same warm webhooks through the single-process floor (bench/floor.py)."""
    cfg = bench.cfg
    rows = [
        await bench.measure(
            "7a",
            "floor sequential",
            bench.http_job(
                bench.floor_url, "sequential", [bench.numbers.warm], count=cfg.sequential_count, warmup=cfg.warmup
            ),
            livekit_latency=cfg.warm_livekit_latency,
        )
    ]
    rows.append(await paired_mesh_floor(bench))
    rows += await saturation(bench, url=bench.floor_url, sid="7", label="floor")
    return rows


async def paired_mesh_floor(bench: Bench) -> dict[str, Any]:
    """7p. 1a and 7a run minutes apart, and this shared machine drifts by 10-20 % over
    minutes (one run gave mesh/floor 1.77, the next 2.35). Here the same sequential
    calls alternate between mesh and floor in short blocks; each block pair gives a
    ratio, and their median is what the mesh / floor target reads."""
    cfg, number = bench.cfg, [bench.numbers.warm]
    mesh_p50: list[float] = []
    floor_p50: list[float] = []
    ok = errors = 0
    for _ in range(cfg.paired_blocks):
        for url, p50s in ((bench.mesh.gateway_url, mesh_p50), (bench.floor_url, floor_p50)):
            job = bench.http_job(url, "sequential", number, count=cfg.paired_block_calls, warmup=20)
            result = await bench.run_job(job, livekit_latency=cfg.warm_livekit_latency)
            ok, errors = ok + result["ok"], errors + result["error_count"]
            p50s.append(result["latency_ms"]["p50"])
    ratios = sorted(m / f for m, f in zip(mesh_p50, floor_p50, strict=True))
    row = {
        "id": "7p",
        "name": f"mesh vs floor, {cfg.paired_blocks} alternating blocks of {cfg.paired_block_calls} sequential calls",
        "ok": ok,
        "error_count": errors,
        "processes": {},
        "paired": {
            "mesh_p50_ms": mesh_p50,
            "floor_p50_ms": floor_p50,
            "ratios": [round(r, 3) for r in ratios],
            "ratio_median": round(median(ratios), 3),
        },
    }
    print(f"bench: [7p] mesh/floor per block {row['paired']['ratios']}, median {row['paired']['ratio_median']}")
    return row


ALL = (warm_sequential, open_loop, saturation, cold_burst, cold_path, persona_direct, floor)
