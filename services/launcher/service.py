"""One service `friday up` runs: its child process, the endpoints the plan gives it
and those it reported binding, and how to tell that it is ready."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.launcher.children import ChildProcess
from services.launcher.readiness import ReadyCheck


@dataclass
class Service:
    child: ChildProcess
    kind: str  # "persona", "dispatcher", "gateway", "agent"
    # How the table shows the service: str.format templates over its endpoints by role
    # ("grpc://{grpc}"); a template naming an endpoint the service does not have shows "(off)".
    address_template: str
    metrics_template: str
    # Endpoints by role as planned (host:port); replaced by what the child reports binding.
    endpoints: dict[str, str] = field(default_factory=dict)
    # None: no readiness to wait for (the agent registers with LiveKit on its own).
    ready_check: ReadyCheck | None = None

    def __post_init__(self) -> None:
        if self.ready_check is not None and not self.child.reports:
            raise ValueError(f"{self.child.name}: a ready check probes the address the child reports; it reports none")

    @property
    def address(self) -> str:
        return _fill(self.address_template, self.endpoints)

    @property
    def metrics(self) -> str:
        return _fill(self.metrics_template, self.endpoints)


def _fill(template: str, endpoints: dict[str, str]) -> str:
    try:
        return template.format(**endpoints)
    except KeyError:
        return "(off)"
