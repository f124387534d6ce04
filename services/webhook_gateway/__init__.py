"""The webhook gateway: LiveKit `participant_joined` webhooks in, one agent
dispatch with the right persona out. HTTP in (Starlette), gRPC out; it holds
only the key pair that verifies webhooks and never calls the LiveKit API."""
