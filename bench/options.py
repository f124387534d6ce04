"""The benchmark's command-line options, shared by `python -m bench` and `friday bench`
(kept free of heavy imports so `friday --help` stays fast)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import BenchConfig

DESCRIPTION = (
    "Benchmark the mesh against the CRM and LiveKit stand-ins and against the single-process floor, all on "
    "this machine. The targets are ratios measured side by side in the run (mesh / floor, GetPersona / bare "
    "health Check); absolute figures are reported, never judged. A full run takes about 5 minutes on 2 cores; "
    "--quick takes seconds and judges nothing."
)
# The scenario functions in bench/scenarios.py, in run order.
SCENARIOS = ("warm_sequential", "open_loop", "saturation", "cold_burst", "cold_path", "persona_direct", "floor")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="a few calls per scenario (seconds): a smoke test, judges no targets"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable; saturation runs mesh and floor side by side); default: all seven",
    )
    parser.add_argument("--crm-latency", type=float, help="CRM stand-in latency, seconds (default 0.08)")
    parser.add_argument("--livekit-latency", type=float, help="LiveKit stand-in latency, seconds (default 0.03)")
    parser.add_argument(
        "--warm-livekit-latency", type=float, help="LiveKit latency on the warm scenarios 1a/2/3/7 (default 0)"
    )
    parser.add_argument("--open-rates", type=lambda s: tuple(float(x) for x in s.split(",")), help="e.g. 100,300")
    parser.add_argument("--open-duration", type=float, help="seconds per open-loop rate (default 15)")
    parser.add_argument("--closed-levels", type=lambda s: tuple(int(x) for x in s.split(",")), help="e.g. 1,4,16")
    parser.add_argument("--closed-duration", type=float, help="seconds per concurrency level (default 5)")
    parser.add_argument("--sequential-count", type=int, help="calls in scenarios 1a and 7a (default 2000)")
    parser.add_argument("--burst-size", type=int, help="simultaneous calls in scenario 4 (default 200)")
    parser.add_argument("--cold-count", type=int, help="distinct numbers in scenario 5 (default 100)")
    parser.add_argument("--grpc-concurrency", type=int, help="concurrent gRPC callers in scenario 6 (default 16)")
    parser.add_argument("--grpc-duration", type=float, help="seconds per gRPC measurement, 6-* (default 8)")
    parser.add_argument("--log-level", help="services' LOG_LEVEL (default WARNING: no log line per webhook)")
    parser.add_argument("--output-dir", type=Path, help="where to write <name>.json/.md (default bench/results)")
    parser.add_argument("--profile", type=Path, help="py-spy the services during every step; write profiles here")
    parser.add_argument("--output-name", help="file name stem (default latest, or quick with --quick)")


def config_from(args: argparse.Namespace) -> BenchConfig:
    base = BenchConfig.quick_run() if args.quick else BenchConfig()
    return base.with_overrides(
        crm_latency=args.crm_latency,
        livekit_latency=args.livekit_latency,
        warm_livekit_latency=args.warm_livekit_latency,
        open_rates=args.open_rates,
        open_duration=args.open_duration,
        closed_levels=args.closed_levels,
        closed_duration=args.closed_duration,
        sequential_count=args.sequential_count,
        burst_size=args.burst_size,
        cold_count=args.cold_count,
        grpc_concurrency=args.grpc_concurrency,
        grpc_duration=args.grpc_duration,
        log_level=args.log_level,
        output_dir=args.output_dir,
        output_name=args.output_name,
        profile_dir=args.profile,
    )
