"""The benchmark scenarios (README, Performance), each returning result rows (see measure.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .measure import Bench
from .paired import block_ratios, paired, summarize_leg
from .personas import CAMPAIGN_CALLER, CAMPAIGN_NUMBER
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


async def saturation(bench: Bench) -> Rows:
    """3. Closed loop with rising concurrency, the mesh (3-cN) and the floor (7-cN) side
    by side: at each level the mesh, then the floor, so drift hits both alike. Each stops
    once errors appear or its p99 runs far past the limit. Saturation is the best rate
    whose p99 stayed under the limit with no errors, the same rule for both."""
    cfg = bench.cfg
    rows: Rows = []
    runs = {"3": ("mesh", bench.mesh.gateway_url), "7": ("floor", bench.floor_url)}
    expected = dict.fromkeys(runs, 500.0)
    running = set(runs)
    for level in cfg.closed_levels:
        for sid, (label, url) in runs.items():
            if sid not in running:
                continue
            row = await bench.measure(
                f"{sid}-c{level}",
                f"{label} closed loop, {level} in flight",
                bench.http_job(
                    url,
                    "closed",
                    [bench.numbers.warm],
                    concurrency=level,
                    duration=cfg.closed_duration,
                    expected_rate=expected[sid],
                    warmup=min(cfg.warmup, 20),
                ),
                livekit_latency=cfg.warm_livekit_latency,
            )
            rows.append(row)
            expected[sid] = max(expected[sid], (row["rate_per_s"] or 0) * 1.3)
            if row["error_count"] or row["latency_ms"].get("p99", 0) > 4 * cfg.saturation_p99_ms:
                running.discard(sid)
    return rows


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
        counts[lk_key] = counts.get(lk_key, 0) + row["livekit_calls_on_path_per_call"]
        extra = sum(overshoot[key] * n for key, n in counts.items())
        row["standin_timer_overshoot_ms"] = {"per_sleep": overshoot, "per_call": round(extra, 3)}
        row["overhead_net_ms"] = minus(row["overhead_ms"], extra)
    return [row]


async def persona_direct(bench: Bench) -> Rows:
    """6. GetPersona (warm) straight over gRPC, next to grpc.health.v1 Check on a bare
    grpc.aio server (the ceiling) and on PersonaService's own server (runtime overhead),
    each for a while on its own (6-bare, 6-health, 6-get: rates and CPU per call), then
    6p: GetPersona and the bare Check in alternating short blocks, for the target."""
    cfg = bench.cfg
    jobs = [
        ("6-bare", "bare grpc.aio health Check", bench.bare_health_target, "health"),
        ("6-health", "PersonaService health Check", bench.mesh.persona_target, "health"),
        ("6-get", "PersonaService GetPersona (warm)", bench.mesh.persona_target, "get_persona"),
    ]
    rows = []
    for sid, name, target, method in jobs:
        job = bench.grpc_job(
            target, method, concurrency=cfg.grpc_concurrency, duration=cfg.grpc_duration, warmup=cfg.warmup
        )
        rows.append(await bench.measure(sid, f"{name}, {cfg.grpc_concurrency} concurrent", job))
    rows.append(await paired_get_bare(bench))
    return rows


async def paired_get_bare(bench: Bench) -> dict[str, Any]:
    """6p. GetPersona's rate as a share of the bare health Check's, block pair by block
    pair; a third leg asks for a campaign number (selection per call after the cache),
    whose rate as a share of the single persona's is what a campaign costs."""
    cfg = bench.cfg
    block_warmup = _block_warmup(cfg.warmup)

    def leg(target: str, method: str, **params: Any) -> Callable[[], dict[str, Any]]:
        return lambda: bench.grpc_job(
            target,
            method,
            concurrency=cfg.grpc_concurrency,
            duration=cfg.grpc_block_duration,
            warmup=block_warmup,
            **params,
        )

    blocks = await bench.alternate(
        {
            "bare": leg(bench.bare_health_target, "health"),
            "get": leg(bench.mesh.persona_target, "get_persona"),
            "campaign": leg(bench.mesh.persona_target, "get_persona", number=CAMPAIGN_NUMBER, caller=CAMPAIGN_CALLER),
        },
        cfg.grpc_paired_blocks,
    )
    row = _paired_row(
        "6p",
        f"GetPersona vs bare health Check, {cfg.grpc_paired_blocks} alternating blocks of "
        f"{cfg.grpc_block_duration:g} s, {cfg.grpc_concurrency} concurrent",
        blocks,
        ratio=("get", "bare"),
        of="rate_per_s",
    )
    p = row["paired"]
    row["campaign_ratios"] = block_ratios(p["legs"]["campaign"]["rate_per_s"], p["legs"]["get"]["rate_per_s"])
    print(f"bench: [6p] GetPersona/bare rate per block pair {p['ratios']}, median {p['ratio_median']}", flush=True)
    print(f"bench: [6p] campaign/persona GetPersona rate per block pair {row['campaign_ratios']}", flush=True)
    return row


async def floor(bench: Bench) -> Rows:
    """7. The same warm webhooks through the single-process floor (bench/floor.py): 7a
    on its own, then 7p side by side with the mesh. The floor's closed loop (7-cN) runs
    in scenario 3, next to the mesh's."""
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
    return rows


async def paired_mesh_floor(bench: Bench) -> dict[str, Any]:
    """7p. 1a and 7a run minutes apart, long enough for this shared machine's speed to
    drift. Here sequential calls alternate between mesh, floor and a bare gRPC hop (one
    health Check on the bare server) in short blocks: each block pair gives a mesh /
    floor p50 ratio, and their median is what the mesh / floor target reads. The CPU
    every process spent per call over all blocks of a leg feeds the CPU target, and the
    LiveKit calls per webhook show that mesh and floor did the same LiveKit work."""
    cfg, number = bench.cfg, [bench.numbers.warm]
    block_warmup = _block_warmup(cfg.warmup)

    def webhooks(url: str) -> Callable[[], dict[str, Any]]:
        return lambda: bench.http_job(url, "sequential", number, count=cfg.paired_block_calls, warmup=block_warmup)

    blocks = await bench.alternate(
        {
            "mesh": webhooks(bench.mesh.gateway_url),
            "floor": webhooks(bench.floor_url),
            "bare-hop": lambda: bench.grpc_job(
                bench.bare_health_target, "health", concurrency=1, count=cfg.paired_block_calls, warmup=block_warmup
            ),
        },
        cfg.paired_blocks,
        livekit_latency=cfg.warm_livekit_latency,
    )
    row = _paired_row(
        "7p",
        f"mesh vs floor vs a bare gRPC hop, {cfg.paired_blocks} alternating blocks of "
        f"{cfg.paired_block_calls} sequential calls",
        blocks,
        ratio=("mesh", "floor"),
        of="p50_ms",
    )
    p = row["paired"]
    print(f"bench: [7p] mesh/floor p50 per block pair {p['ratios']}, median {p['ratio_median']}", flush=True)
    return row


def _block_warmup(warmup: int) -> int:
    """Calls before each block of a paired step: 20 reopen the connections and wake the
    processes after the other legs ran; a quick run (warm-up 5) needs no more than its own
    warm-up, and its blocks were most of its time."""
    return min(20, warmup)


def _paired_row(
    sid: str, name: str, blocks: dict[str, list[dict[str, Any]]], *, ratio: tuple[str, str], of: str
) -> dict[str, Any]:
    """The row of a paired step: every leg's blocks summarised, and the `of` value of the
    first leg named in `ratio` as a share of the second's, block pair by block pair."""
    legs = {leg: summarize_leg(leg_blocks) for leg, leg_blocks in blocks.items()}
    numerator, denominator = ratio
    ratios = block_ratios(legs[numerator][of], legs[denominator][of])
    return {
        "id": sid,
        "name": name,
        "ok": sum(leg["ok"] for leg in legs.values()),
        "error_count": sum(leg["error_count"] for leg in legs.values()),
        "processes": {},  # per leg instead: paired.legs[*].cpu_ms_per_call
        "paired": paired(legs, ratios, of=of),
    }


ALL = (warm_sequential, open_loop, saturation, cold_burst, cold_path, persona_direct, floor)
