"""Every gRPC service's `serve` takes the same port flags, named and defaulted as its
server reads the environment (`ServerConfig.from_env(prefix, ports.X)`)."""

from __future__ import annotations

import pytest

from services.cli import build_parser
from services.cli.serving import server_port_overrides
from services.common import ports

SERVICES = {
    "persona": ("PERSONA", ports.PERSONA),
    "dispatcher": ("DISPATCHER", ports.DISPATCHER),
    "calls": ("CALLS", ports.CALLS),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_serve_flags_override_the_servers_ports(service: str) -> None:
    parser = build_parser()
    assert server_port_overrides(parser.parse_args([service, "serve"])) == {}
    given = parser.parse_args([service, "serve", "--port", "7001", "--metrics-port", "7002"])
    assert server_port_overrides(given) == {"port": 7001, "metrics_port": 7002}
    off = parser.parse_args([service, "serve", "--port", "0", "--metrics-port", "0"])
    assert server_port_overrides(off) == {"port": 0, "metrics_port": None}  # 0 switches /metrics off


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_serve_help_names_the_variables_and_defaults_the_server_reads(
    service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix, defaults = SERVICES[service]
    with pytest.raises(SystemExit):
        build_parser().parse_args([service, "serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"{prefix}_PORT ({defaults.grpc})" in shown
    assert f"{prefix}_METRICS_PORT ({defaults.metrics}, 0 = off)" in shown
    assert f"env {prefix}_METRICS_PORT, default {defaults.metrics}" in shown
