"""Ranks where a py-spy raw profile (collapsed stacks: `frame;frame;... count`) spends
its samples: self time per function, and inclusive time per function.

    python -m bench.hotspots bench/results/profile/3-c8-gateway.txt [--top 25] [--match services/]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def rank(stacks: list[tuple[list[str], int]]) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return own, inclusive, total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="inclusive ranking only for frames containing this text")
    args = parser.parse_args(argv)
    own, inclusive, total = rank(load(args.profile))
    print(f"{total} samples in {args.profile}")
    print("\nself time:")
    for frame, count in own.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("\ninclusive time" + (f" (frames matching {args.match!r})" if args.match else "") + ":")
    shown = [(f, c) for f, c in inclusive.most_common() if args.match in f][: args.top]
    for frame, count in shown:
        print(f"  {100 * count / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
