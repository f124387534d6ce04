"""Emulates LiveKit's side of a call for tools and tests: the webhooks it sends,
signed as it signs them (`friday simulate-call`, the benchmark, the stand-ins)."""
