"""`friday up` as a real process on ports of its own, for the launcher's process
tests: start it, read its table, find what listens where, stop it with Ctrl-C."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.child_process import REPO_ROOT, ProcessOutput, free_port

READY = "friday up: the mesh is ready"
# Settings a developer's shell may carry that would change what `friday up` does.
_ISOLATED_ENV = (
    "REDIS_URL", "PERSONA_FILE", "PERSONA_API_BASE", "DISPATCHER_TOKEN", "PERSONA_TOKEN", "PERSONA_ADMIN_TOKEN",
    "CALLS_TOKEN", "METRICS_TOKEN",
    "LIVEKIT_WEBHOOK_API_SECRET", "FRIDAY_UP_HOST", "FRIDAY_UP_WITH_AGENT", "FRIDAY_UP_REPLICAS",
)  # fmt: skip


@dataclass(frozen=True)
class Ports:
    persona: int = field(default_factory=free_port)
    dispatcher: int = field(default_factory=free_port)
    gateway: int = field(default_factory=free_port)
    persona_metrics: int = field(default_factory=free_port)
    dispatcher_metrics: int = field(default_factory=free_port)
    calls: int = field(default_factory=free_port)
    calls_metrics: int = field(default_factory=free_port)

    def args(self) -> list[str]:
        return [
            "--persona-port", str(self.persona), "--dispatcher-port", str(self.dispatcher),
            "--gateway-port", str(self.gateway), "--persona-metrics-port", str(self.persona_metrics),
            "--dispatcher-metrics-port", str(self.dispatcher_metrics),
            "--calls-port", str(self.calls), "--calls-metrics-port", str(self.calls_metrics),
            "--calls-database-url", ":memory:",
        ]  # fmt: skip

    def all(self) -> list[int]:
        return [
            self.persona, self.dispatcher, self.gateway, self.persona_metrics, self.dispatcher_metrics,
            self.calls, self.calls_metrics,
        ]  # fmt: skip


def up_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ISOLATED_ENV}
    return {**env, "PYTHONPATH": str(REPO_ROOT), **extra}


def up_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", "up", *args]


@dataclass
class RunningUp:
    process: subprocess.Popen[str]
    output: ProcessOutput
    ports: Ports

    def pids(self) -> dict[str, int]:
        """Service name -> pid, from the table printed when the mesh was ready."""
        text = "".join(self.output.lines)
        table = text[text.index(READY) :]
        return {m[0]: int(m[1]) for m in re.findall(r"^(persona|dispatcher|gateway)\s+(\d+)\s", table, re.MULTILINE)}

    def text(self) -> str:
        return "".join(self.output.lines)

    def stop(self) -> int:
        """Ctrl-C, then its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)


@contextlib.contextmanager
def friday_up(*args: str, ports: Ports | None = None, env: dict[str, str] | None = None) -> Iterator[RunningUp]:
    """A running `friday up` whose mesh is ready; stopped (Ctrl-C) on exit."""
    ports = ports or Ports()
    process = subprocess.Popen(
        up_command(*ports.args(), *args), cwd=REPO_ROOT, env=env or up_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    running = RunningUp(process, ProcessOutput(process), ports)
    try:
        running.output.wait_for(READY, timeout=90)
        yield running
    finally:
        running.stop()


def listening_addresses(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The local addresses with a TCP socket LISTENing on `port`, from /proc/net/tcp{,6}
    (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            # Each 32-bit word is in host (little-endian) byte order.
            raw = b"".join(bytes.fromhex(address_hex[i : i + 8])[::-1] for i in range(0, len(address_hex), 8))
            address = ipaddress.ip_address(raw)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            found.add(address)
    return found


def non_loopback_address() -> str | None:
    """An address of this machine other hosts could route to, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address
