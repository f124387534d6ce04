"""`friday chaos`: the fault matrix. Sends simulated calls through a real gateway,
PersonaService and DispatcherService (in this process, against the CRM and LiveKit
stand-ins) while one fault at a time is injected, redelivers 5xx'd webhooks on
LiveKit's schedule, and prints per fault how many calls ended with no agent, with
two, or with the wrong persona, the p99 time to dispatch, and whether CallHistoryService
holds exactly one right record of every call."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from services.chaos.faults import FAULTS

    names = [fault.name for fault in FAULTS]
    chaos = subparsers.add_parser(
        "chaos",
        help="run the fault matrix against the CRM and LiveKit stand-ins",
        description=__doc__,
        epilog="faults: " + "; ".join(f"{f.name}: {f.description}" for f in FAULTS),
    )
    chaos.add_argument(
        "--calls",
        type=int,
        default=100,
        help="simulated calls per fault (default 100); the numbers called cycle warm, cold, unknown, "
        "so 3 or more calls exercise every kind",
    )
    chaos.add_argument(
        "--fault", action="append", choices=names, metavar="NAME", help="run only these faults (repeatable)"
    )
    chaos.add_argument(
        "--arrival-seconds", type=float, default=3.0, help="calls arrive spread over this many seconds (default 3)"
    )
    chaos.add_argument("--verbose", action="store_true", help="print every problem found, not just the first few")
    chaos.add_argument("--json", action="store_true", help="print the matrix as JSON (one object per fault)")
    chaos.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from services.chaos.faults import FAULTS, FAULTS_BY_NAME
    from services.chaos.report import format_json, format_table
    from services.chaos.runner import FaultResult, run_fault
    from services.testing.redis_process import RedisUnavailableError

    # The faults make the services log warnings by design; keep the table readable.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    selected = [FAULTS_BY_NAME[name] for name in args.fault] if args.fault else list(FAULTS)

    async def run_all() -> list[FaultResult]:
        results = []
        for fault in selected:
            print(f"running {fault.name}: {fault.description} ...", file=sys.stderr, flush=True)
            try:
                results.append(await run_fault(fault, args.calls, arrival_seconds=args.arrival_seconds))
            except RedisUnavailableError as exc:
                print(f"  skipped: {exc}", file=sys.stderr)
        return results

    results = asyncio.run(run_all())
    print(format_json(results) if args.json else format_table(results))
    failed = False
    for result in results:
        if result.failed:
            failed = True
            shown = result.problems if args.verbose else result.problems[:5]
            print(f"\n{result.fault}: {len(result.problems)} problem(s)", file=sys.stderr)
            for problem in shown:
                print(f"  {problem}", file=sys.stderr)
    return 1 if failed else 0
