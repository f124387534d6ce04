"""The mesh's well-known ports, in one place.

Each service's server default, the clients' default targets, `friday up`'s plan, the
gateway's upstream defaults and the CLI's help all read them here, so moving a service
to another port is one edit and the help text can never disagree with the code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServicePorts:
    """A gRPC service's port and the port of its Prometheus `/metrics` server."""

    grpc: int
    metrics: int

    @property
    def local_target(self) -> str:
        """The default target of a client on the same machine."""
        return f"localhost:{self.grpc}"


PERSONA = ServicePorts(grpc=50051, metrics=9101)
DISPATCHER = ServicePorts(grpc=50052, metrics=9102)
CALLS = ServicePorts(grpc=50053, metrics=9103)
# The webhook gateway serves webhooks, /health, /ready and /metrics on one HTTP port.
GATEWAY_HTTP = 8080
# livekit-agents' worker health check (its own default, which `friday up` keeps free).
AGENT_HEALTH = 8081
