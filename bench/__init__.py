"""Benchmark harness for the Friday persona mesh.

`python -m bench` (or `friday bench`) starts the CRM and LiveKit stand-ins, the three
services as separate processes (the way `friday up` runs them), the single-process
floor and a bare gRPC server, drives signed LiveKit webhooks through the real gateway
from a separate load-generator process, and writes JSON + a markdown table under
bench/results/. Its targets are ratios of things measured side by side in one run
(bench/targets.py). Performance is measured here, never asserted in timed tests.
"""
