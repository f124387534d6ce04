"""DispatcherService: the only holder of the LiveKit API key, creating exactly one
explicit agent dispatch per call (docs/architecture.md, "Exactly one agent")."""
