"""How much load each scenario sends: the full run (a few minutes) and the quick run
(seconds, a smoke test that judges no targets), both overridable from the command line."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class BenchConfig:
    # The stand-ins' injected latency on the cold scenarios (4, 5) and on scenario 1b.
    crm_latency: float = 0.080
    livekit_latency: float = 0.030
    # LiveKit latency on the warm scenarios (1a, 2, 3, 7). 0 by default: they measure what
    # the mesh itself costs, which a sleep in the stand-in would only hide.
    warm_livekit_latency: float = 0.0
    warmup: int = 100
    sequential_count: int = 2000  # 1a and 7a
    sequential_real_count: int = 100  # 1b, with the stand-ins' default latency
    # 7p: mesh, floor and a bare gRPC hop in alternating blocks, so drift on a shared machine hits all alike.
    paired_blocks: int = 6
    paired_block_calls: int = 300
    open_rates: tuple[float, ...] = (100.0, 300.0)
    open_duration: float = 15.0
    # 3: mesh and floor alternate at each level.
    closed_levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    closed_duration: float = 5.0
    # Saturation = the highest rate whose p99 stayed under this, with no errors (mesh and floor alike).
    saturation_p99_ms: float = 50.0
    burst_size: int = 200
    cold_count: int = 100
    grpc_concurrency: int = 16
    grpc_duration: float = 8.0
    # 6p: GetPersona and a bare health Check in alternating blocks of this many seconds.
    grpc_paired_blocks: int = 6
    grpc_block_duration: float = 2.0
    log_level: str = "WARNING"
    output_dir: Path = DEFAULT_OUTPUT_DIR
    output_name: str = "latest"
    # A smoke run: the report says so and judges no targets.
    quick: bool = False
    # When set, py-spy profiles the services during every step (bench/profiling.py).
    profile_dir: Path | None = None

    @classmethod
    def quick_run(cls) -> BenchConfig:
        """Every scenario, a handful of calls each: proves the harness works, measures nothing."""
        return cls(
            warmup=5,
            sequential_count=20,
            sequential_real_count=5,
            paired_blocks=2,
            paired_block_calls=10,
            open_rates=(50.0,),
            open_duration=1.0,
            closed_levels=(1, 4),
            closed_duration=1.0,
            burst_size=20,
            cold_count=3,
            grpc_concurrency=4,
            grpc_duration=1.0,
            grpc_paired_blocks=2,
            grpc_block_duration=0.3,
            output_name="quick",
            quick=True,
        )

    def with_overrides(self, **overrides: Any) -> BenchConfig:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})
