"""`friday up` as a user runs it, on ports of its own: what it binds, what it
refuses, what a second `friday up` on the same ports does, and how it restarts a
service that dies. The services are real processes; the personas are the
example file shipped in the package, so no CRM or LiveKit is needed."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from friday.dispatcher.v1 import dispatcher_service_pb2, dispatcher_service_pb2_grpc
from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from services.common.listen_address import host_port
from tests.child_process import REPO_ROOT, is_alive
from tests.launcher.up_process import (
    RunningUp,
    friday_up,
    listening_addresses,
    non_loopback_address,
    up_command,
    up_env,
)

LOOPBACK = ipaddress.ip_address("127.0.0.1")
EXAMPLE_NUMBER = "+918655701159"  # in services/persona/personas.example.json
STRONG_SECRET = "up-process-secret-that-is-at-least-thirty-two-bytes"


def _get_persona(
    port: int, token: str | None = None, host: str = "127.0.0.1"
) -> persona_service_pb2.GetPersonaResponse:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
        return stub.GetPersona(
            persona_service_pb2.GetPersonaRequest(dialed_number=EXAMPLE_NUMBER), timeout=10, metadata=metadata
        )


@pytest.fixture(scope="module")
def mesh() -> Iterator[RunningUp]:
    """One loopback mesh for the tests below; each leaves it serving."""
    with friday_up() as running:
        yield running
    assert running.process.returncode == 0, running.text()[-3000:]


# --- where it listens -------------------------------------------------------


def test_every_port_listens_on_loopback_only(mesh: RunningUp) -> None:
    for port in mesh.ports.all():
        assert listening_addresses(port) == {LOOPBACK}, (port, mesh.text()[-2000:])
    table = mesh.text()
    assert f"grpc://127.0.0.1:{mesh.ports.persona}" in table
    assert f"http://127.0.0.1:{mesh.ports.gateway}/livekit-webhook" in table
    if (address := non_loopback_address()) is not None:
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect((address, mesh.ports.persona))


def test_a_second_up_on_the_same_ports_fails_naming_the_port_and_the_first_keeps_serving(mesh: RunningUp) -> None:
    pids = mesh.pids()
    second = subprocess.run(
        up_command(*mesh.ports.args()), cwd=REPO_ROOT, env=up_env(), capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 1, second.stdout + second.stderr
    assert "the mesh is ready" not in second.stdout
    up_lines = [line for line in second.stderr.splitlines() if line.startswith("friday up:")]
    assert up_lines[0] == (
        f"friday up: persona could not start: persona gRPC cannot listen on 127.0.0.1:{mesh.ports.persona}: "
        "Address already in use (another process, or another `friday up`, listens there)"
    ), second.stderr
    # The first mesh noticed nothing: same processes, still answering.
    assert mesh.pids() == pids and all(is_alive(pid) for pid in pids.values())
    assert "restart" not in mesh.text()
    assert _get_persona(mesh.ports.persona).persona.persona_id == "xeny-reception"


# --- restarts ---------------------------------------------------------------


def test_a_sigkilled_service_is_restarted_reported_and_serves_again(mesh: RunningUp) -> None:
    old_pid = mesh.pids()["persona"]
    os.kill(old_pid, signal.SIGKILL)
    mesh.output.wait_for("friday up: persona is back", timeout=90)
    text = mesh.text()
    assert "friday up: persona was killed by SIGKILL; restart 1 of 5 in 0.5s" in text
    new_pid = int(re.findall(r"friday up: persona is back \(pid (\d+)\)", text)[-1])
    assert new_pid != old_pid and is_alive(new_pid) and not is_alive(old_pid)
    assert _get_persona(mesh.ports.persona).persona.persona_id == "xeny-reception"
    assert listening_addresses(mesh.ports.persona) == {LOOPBACK}


def test_a_service_that_crashes_at_every_start_makes_up_give_up(tmp_path: Path) -> None:
    personas = tmp_path / "personas.json"
    example = REPO_ROOT / "services" / "persona" / "personas.example.json"
    personas.write_text(example.read_text())
    env = up_env(PERSONA_FILE=str(personas))
    running: RunningUp
    with friday_up("--max-restarts", "2", env=env) as running:
        personas.write_text("{ not json")  # every new persona process now dies at start-up
        os.kill(running.pids()["persona"], signal.SIGKILL)
        exit_code = running.process.wait(timeout=120)
    text = running.text()
    assert exit_code == 1, text[-3000:]
    assert "friday up: persona was killed by SIGKILL; restart 1 of 2 in 0.5s" in text
    assert "friday up: persona exited with code 1; restart 2 of 2 in 1s" in text
    assert re.search(
        r"friday up: persona exited with code 1: 3 crashes within 60s, more than --max-restarts 2; "
        "giving up and stopping the mesh",
        text,
    ), text[-3000:]
    assert not [pid for pid in running.pids().values() if is_alive(pid)]


# --- beyond loopback --------------------------------------------------------


def test_a_non_loopback_host_without_tokens_is_refused_with_one_line() -> None:
    done = subprocess.run(
        up_command("--host", "0.0.0.0"), cwd=REPO_ROOT, env=up_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("friday up: --host 0.0.0.0 makes the mesh reachable from other machines, which needs ")
    assert "--dispatcher-token" in line and "--persona-token" in line and "--livekit-api-secret" in line
    assert "--calls-token" in line and "--metrics-token" in line


def test_all_interfaces_with_tokens_serves_only_callers_that_send_them() -> None:
    env = up_env(
        DISPATCHER_TOKEN="d" * 40,
        PERSONA_TOKEN="p" * 40,
        CALLS_TOKEN="c" * 40,
        METRICS_TOKEN="m" * 40,
        LIVEKIT_API_SECRET=STRONG_SECRET,
    )
    with friday_up("--host", "0.0.0.0", env=env) as running:
        # grpc binds its IPv6 wildcard (which takes IPv4 too) for 0.0.0.0.
        wildcards = {ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::")}
        for port in running.ports.all():
            assert len(listening_addresses(port)) == 1 and listening_addresses(port) <= wildcards, port
        assert f"grpc://0.0.0.0:{running.ports.dispatcher}" in running.text()
        host = non_loopback_address() or "127.0.0.1"

        with grpc.insecure_channel(f"{host}:{running.ports.dispatcher}") as channel:
            stub = dispatcher_service_pb2_grpc.DispatcherServiceStub(channel)
            for call, request in (
                (stub.DispatchAgent, dispatcher_service_pb2.DispatchAgentRequest(room="r", agent_name="a")),
                (stub.ListDispatches, dispatcher_service_pb2.ListDispatchesRequest(room="r")),
            ):
                with pytest.raises(grpc.RpcError) as refused:
                    call(request, timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as refused:
            _get_persona(running.ports.persona, host=host)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _get_persona(running.ports.persona, token="p" * 40, host=host).persona.persona_id == "xeny-reception"
        # Every /metrics endpoint got the metrics token; the health paths stay open.
        metrics_ports = (running.ports.persona_metrics, running.ports.dispatcher_metrics, running.ports.calls_metrics)
        with httpx.Client(timeout=10) as http:
            for port in (*metrics_ports, running.ports.gateway):
                url = f"http://{host_port(host, port)}/metrics"
                assert http.get(url).status_code == 401, url
                assert http.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401, url
                assert http.get(url, headers={"Authorization": "Bearer " + "m" * 40}).status_code == 200, url
            for port in metrics_ports:
                assert http.get(f"http://{host_port(host, port)}/health").status_code == 200, port
            assert http.get(f"http://{host_port(host, running.ports.gateway)}/health").status_code == 200
        for token in ("d" * 40, "p" * 40, "m" * 40):
            assert token not in running.text()
    assert running.process.returncode == 0, running.text()[-3000:]
