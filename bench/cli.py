"""`python -m bench` / `friday bench`: start everything, run the scenarios, judge the
targets (ratios measured side by side in this run; none in a quick run), write
bench/results/<name>.{json,md} and print the markdown. Exit 0 when the run completed
(targets missed or not); 1 when the harness itself could not run."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
from pathlib import Path

from .config import BenchConfig
from .measure import Bench
from .mesh import API_KEY, API_SECRET, LoadGenerator, running_mesh, start_announcing
from .options import DESCRIPTION, add_arguments, config_from
from .personas import BenchNumbers
from .report import write
from .scenarios import ALL


async def run(cfg: BenchConfig, scenario_names: list[str] | None, command: str) -> dict:
    numbers = BenchNumbers.make(cfg.cold_count)
    with tempfile.TemporaryDirectory(prefix="friday-bench-") as tmp:
        crm_file, floor_file = numbers.write(Path(tmp))
        async with running_mesh(crm_file, log_level=cfg.log_level, calls_database=Path(tmp) / "calls.sqlite3") as mesh:
            floor_child, floor_url = await start_announcing(
                "floor", "bench.floor", "--personas", str(floor_file), "--livekit-url", mesh.livekit.origin,
                "--api-key", API_KEY, "--api-secret", API_SECRET,
            )  # fmt: skip
            bare_child, bare_target = await start_announcing("bare-health", "bench.bare_health")
            mesh.extra = {"floor": floor_child, "bare-health": bare_child}
            loadgen = await LoadGenerator.start()
            try:
                bench = Bench(cfg, mesh, loadgen, numbers, floor_url, bare_target)
                print(f"bench: mesh ready (gateway {mesh.gateway_url}, floor {floor_url}); running", flush=True)
                rows = []
                for scenario in ALL:
                    if scenario_names and scenario.__name__ not in scenario_names:
                        continue
                    rows += await scenario(bench)
            finally:
                await loadgen.close()
                for child in (floor_child, bare_child):
                    await child.stop(5)
    return write(rows, cfg, command)


def handle(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    program = "friday" if Path(sys.argv[0]).name == "friday" else "python -m bench"
    command = f"{program} {shlex.join(sys.argv[1:])}"
    try:
        result = asyncio.run(run(cfg, args.only, command.strip()))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 — the harness failing is reported, not a traceback wall
        print(f"bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print((cfg.output_dir / f"{cfg.output_name}.md").read_text())
    print(f"bench: wrote {cfg.output_dir / cfg.output_name}.json and .md", flush=True)
    if not result["judged"]:
        print("bench: quick run: a smoke test of the harness, no targets judged", flush=True)
        return 0
    missed = [t["target"] for t in result["targets"] if t["passed"] is False]
    unmeasured = [t["target"] for t in result["targets"] if t["passed"] is None]
    print("bench: targets missed: " + (", ".join(missed) or "none"), flush=True)
    if unmeasured:
        print("bench: not measured in this run: " + ", ".join(unmeasured), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return handle(build_parser().parse_args(argv))
