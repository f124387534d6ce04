"""Benchmark harness for the Friday persona mesh.

`python -m bench` (or `friday bench`) starts the CRM and LiveKit stand-ins, the three
services as separate processes (the way `friday up` runs them), drives signed LiveKit
webhooks through the real gateway from a separate load-generator process, and writes
JSON + a markdown table under bench/results/. Performance is measured here, never
asserted in timed tests.
"""
