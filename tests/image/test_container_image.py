"""The container image, built from the Dockerfile here and run from its own files
(tests/image/podman.py says how, on a machine where `podman run` does not work):

- every service's command serves health from the image, configured as the manifests
  configure it (mutual TLS between the services, bearer tokens), and stops cleanly on
  SIGTERM; the agent registers with LiveKit (the stand-in, itself run from the image)
  and its health endpoint answers;
- the image holds exactly the runtime dependencies at the pinned versions (no test
  tools, no pip, no compilers), no test code, no secrets, and runs as a non-root user.

`services/testing` is in the image on purpose: it is the shipped testing package that
`friday bench`, `friday chaos` and `friday simulate-call` run on (never imported by the
services themselves); `tests/` is not.

The first build on a machine makes the Debian base (~70 s) and installs the
dependencies (~2 min); after that an unchanged tree is a cached rebuild of seconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import signal
import socket
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from friday.calls.v1 import call_history_service_pb2, call_history_service_pb2_grpc
from friday.persona.v1 import persona_service_pb2, persona_service_pb2_grpc
from tests.child_process import ProcessOutput, free_port
from tests.grpc_runtime.certs import CertFiles, make_certs
from tests.image import podman
from tests.image.podman import ImageRoot, group_memory_bytes, stop, wait_until
from tests.image.secrets_scan import find_secrets

reason = podman.unavailable_reason()
pytestmark = [pytest.mark.image, pytest.mark.skipif(reason is not None, reason=reason or "")]

REPO = podman.REPO
DEPLOY = REPO / "deploy" / "kubernetes"
AGENT_HEALTH_PORT = 8081  # livekit-agents' production health port, fixed (AgentServer's prod_default)
START_S = 60  # a service's start-up from a cold page cache, on two loaded cores
AGENT_START_S = 120  # the worker's imports and its two pre-warmed job processes
TOKEN_PERSONA = "persona-token-" + "p" * 32
TOKEN_DISPATCHER = "dispatcher-token-" + "d" * 32
TOKEN_CALLS = "calls-token-" + "c" * 32
TOKEN_METRICS = "metrics-token-" + "m" * 32
LIVEKIT_KEY, LIVEKIT_SECRET = "APIimagetest", "image-test-secret-" + "s" * 32
WEBHOOK_KEY, WEBHOOK_SECRET = "APIwebhooks", "webhook-test-secret-" + "w" * 32


@pytest.fixture(scope="module")
def image() -> Iterator[ImageRoot]:
    if (missing := podman.base_unavailable_reason()) is not None:
        pytest.skip(missing)
    root = ImageRoot.mount(podman.build_image(podman.ensure_base_image()))
    try:
        yield root
    finally:
        root.unmount()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """The container's /tmp, writable by the image's user (an emptyDir in the cluster)."""
    directory = tmp_path / "container-tmp"
    directory.mkdir()
    directory.chmod(0o1777)
    return directory


def _tls_files(scratch: Path) -> CertFiles:
    """Certificates as the cluster mounts them (tests/grpc_runtime/certs.py: a server
    certificate for 127.0.0.1, a client certificate, one CA), readable by the image's user."""
    directory = scratch / "tls"
    directory.mkdir()
    files = make_certs(directory)
    for path in directory.iterdir():
        path.chmod(0o644)
    return files


def _in_container(path: str, scratch: Path) -> str:
    return "/tmp/" + str(Path(path).relative_to(scratch))


def _http(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _secure_channel(port: int, certs: CertFiles) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(certs.ca).read_bytes(),
        private_key=Path(certs.client_key).read_bytes(),
        certificate_chain=Path(certs.client_cert).read_bytes(),
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


def _grpc_status(channel: grpc.Channel, service: str = "") -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=3).status


# --- the services run from the image ----------------------------------------


def test_the_mesh_serves_from_the_image_with_mutual_tls_and_tokens(image: ImageRoot, scratch: Path) -> None:
    certs = _tls_files(scratch)

    def tls_server(prefix: str) -> dict[str, str]:
        return {
            f"{prefix}_TLS_CERT_FILE": _in_container(certs.server_cert, scratch),
            f"{prefix}_TLS_KEY_FILE": _in_container(certs.server_key, scratch),
            f"{prefix}_TLS_CLIENT_CA_FILE": _in_container(certs.ca, scratch),
        }

    def tls_client(prefix: str) -> dict[str, str]:
        return {
            f"{prefix}_TLS_CA_FILE": _in_container(certs.ca, scratch),
            f"{prefix}_TLS_CLIENT_CERT_FILE": _in_container(certs.client_cert, scratch),
            f"{prefix}_TLS_CLIENT_KEY_FILE": _in_container(certs.client_key, scratch),
        }

    persona_port, persona_metrics = free_port(), free_port()
    dispatcher_port, dispatcher_metrics = free_port(), free_port()
    calls_port, calls_metrics = free_port(), free_port()
    gateway_port = free_port()
    commands = {
        "persona": (
            ["persona", "serve"],
            {
                "PERSONA_HOST": "127.0.0.1",
                "PERSONA_PORT": str(persona_port),
                "PERSONA_METRICS_HOST": "127.0.0.1",
                "PERSONA_METRICS_PORT": str(persona_metrics),
                "PERSONA_TOKEN": TOKEN_PERSONA,
                "METRICS_TOKEN": TOKEN_METRICS,
                **tls_server("PERSONA"),
            },
        ),
        "dispatcher": (
            ["dispatcher", "serve"],
            {
                "DISPATCHER_HOST": "127.0.0.1",
                "DISPATCHER_PORT": str(dispatcher_port),
                "DISPATCHER_METRICS_HOST": "127.0.0.1",
                "DISPATCHER_METRICS_PORT": str(dispatcher_metrics),
                "DISPATCHER_TOKEN": TOKEN_DISPATCHER,
                "METRICS_TOKEN": TOKEN_METRICS,
                # Nothing listens here: health "" does not depend on LiveKit.
                "LIVEKIT_URL": f"http://127.0.0.1:{free_port()}",
                "LIVEKIT_API_KEY": LIVEKIT_KEY,
                "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
                **tls_server("DISPATCHER"),
            },
        ),
        "calls": (
            ["calls", "serve"],
            {
                "CALLS_HOST": "127.0.0.1",
                "CALLS_PORT": str(calls_port),
                "CALLS_METRICS_HOST": "127.0.0.1",
                "CALLS_METRICS_PORT": str(calls_metrics),
                "CALLS_TOKEN": TOKEN_CALLS,
                "METRICS_TOKEN": TOKEN_METRICS,
                # /tmp is the pod's one writable directory (the root filesystem is read-only).
                "CALLS_DATABASE_URL": "sqlite:////tmp/calls.sqlite3",
                **tls_server("CALLS"),
            },
        ),
        "gateway": (
            ["gateway", "serve"],
            {
                "GATEWAY_HOST": "127.0.0.1",
                "PORT": str(gateway_port),
                "PERSONA_TARGET": f"127.0.0.1:{persona_port}",
                "DISPATCHER_TARGET": f"127.0.0.1:{dispatcher_port}",
                "CALLS_TARGET": f"127.0.0.1:{calls_port}",
                "PERSONA_TOKEN": TOKEN_PERSONA,
                "DISPATCHER_TOKEN": TOKEN_DISPATCHER,
                "CALLS_TOKEN": TOKEN_CALLS,
                "METRICS_TOKEN": TOKEN_METRICS,
                "LIVEKIT_WEBHOOK_API_KEY": WEBHOOK_KEY,
                "LIVEKIT_WEBHOOK_API_SECRET": WEBHOOK_SECRET,
                **tls_client("PERSONA"),
                **tls_client("DISPATCHER"),
                **tls_client("CALLS"),
            },
        ),
    }
    processes = {name: image.spawn([*image.entrypoint, *argv], env, scratch) for name, (argv, env) in commands.items()}
    outputs = {name: ProcessOutput(process) for name, process in processes.items()}
    try:
        for name, port in (("persona", persona_metrics), ("dispatcher", dispatcher_metrics), ("calls", calls_metrics)):
            wait_until(lambda p=port: _http(f"http://127.0.0.1:{p}/health")[0] == 200, START_S, name, outputs[name])

        with _secure_channel(persona_port, certs) as channel:
            assert _grpc_status(channel) == health_pb2.HealthCheckResponse.SERVING
            stub = persona_service_pb2_grpc.PersonaServiceStub(channel)
            request = persona_service_pb2.GetPersonaRequest(dialed_number="+918655701159")
            # The example personas are package data: they made it into the image.
            answer = stub.GetPersona(request, timeout=5, metadata=[("authorization", f"Bearer {TOKEN_PERSONA}")])
            assert answer.persona.persona_id == "xeny-reception"
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetPersona(request, timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with grpc.insecure_channel(f"127.0.0.1:{persona_port}") as plaintext, pytest.raises(grpc.RpcError):
            _grpc_status(plaintext)
        with _secure_channel(dispatcher_port, certs) as channel:
            assert _grpc_status(channel) == health_pb2.HealthCheckResponse.SERVING
        with _secure_channel(calls_port, certs) as channel:
            # Its migrations ran against the SQLite file in /tmp before it served.
            assert _grpc_status(channel) == health_pb2.HealthCheckResponse.SERVING
            calls = call_history_service_pb2_grpc.CallHistoryServiceStub(channel)
            listed = calls.ListCalls(
                call_history_service_pb2.ListCallsRequest(),
                timeout=5,
                metadata=[("authorization", f"Bearer {TOKEN_CALLS}")],
            )
            assert list(listed.calls) == []
            with pytest.raises(grpc.RpcError) as refused:
                calls.ListCalls(call_history_service_pb2.ListCallsRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

        gateway = f"http://127.0.0.1:{gateway_port}"
        wait_until(lambda: _http(f"{gateway}/health")[0] == 200, START_S, "gateway /health", outputs["gateway"])
        # /ready asks both upstreams' health over their mutual-TLS channels.
        wait_until(lambda: _http(f"{gateway}/ready")[0] == 200, START_S, "gateway /ready", outputs["gateway"])
        # Every /metrics wants the metrics token (as the manifests set it); /health did not.
        for url in [f"http://127.0.0.1:{p}/metrics" for p in (persona_metrics, dispatcher_metrics, calls_metrics)] + [
            f"{gateway}/metrics"
        ]:
            assert _http(url)[0] == 401, url
            status, text = _http(url, TOKEN_METRICS)
            assert status == 200 and "# TYPE" in text, url
        rss = {name: group_memory_bytes(process) for name, process in processes.items()}
    finally:
        codes = {name: stop(process) for name, process in processes.items()}
    logs = {name: output.text() for name, output in outputs.items()}
    # uvicorn re-raises SIGTERM once it has shut down, so the gateway's status says "ended by
    # SIGTERM" (143 in the kubelet's terms) after its graceful shutdown.
    assert codes == {"persona": 0, "dispatcher": 0, "calls": 0, "gateway": -signal.SIGTERM}, logs
    assert "Application shutdown complete" in logs["gateway"], logs["gateway"]
    for name in ("persona", "dispatcher", "calls"):
        assert f"{name} stopped" in logs[name], logs[name]
    for name in ("persona", "dispatcher", "calls"):
        assert "tls=True, mtls=True, auth=True" in logs[name], logs[name]
    for name, text in logs.items():
        assert "Traceback" not in text, f"{name}:\n{text}"
    # What the image's processes hold at rest fits well inside what the manifests request
    # (tests/deploy compares the benchmark's peak figures with requests and limits).
    for name, resident in rss.items():
        request = _memory_request(f"friday-{name}")
        print(f"{name}: {resident / 2**20:.0f} MiB at rest (PSS)")
        assert 0 < resident < request / 1.5, (
            f"{name}: {resident / 2**20:.0f} MiB at rest, request {request / 2**20:.0f} MiB"
        )


def _memory_request(deployment: str) -> int:
    from tests.deploy.manifests import memory_bytes

    (found,) = [d for d in _deployments() if d["metadata"]["name"] == deployment]  # type: ignore[index]
    container = found["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return memory_bytes(container["resources"]["requests"]["memory"])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the worker's aiohttp server binds: connections a last run left in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_the_agent_from_the_image_registers_with_livekit_and_reports_healthy(image: ImageRoot, scratch: Path) -> None:
    if not _port_free(AGENT_HEALTH_PORT):
        pytest.skip(f"port {AGENT_HEALTH_PORT} (the worker's fixed production health port) is taken on this machine")
    livekit_port = free_port()
    standin = image.spawn(
        [
            "python",
            "-m",
            "services.testing.livekit_api",
            "--port",
            str(livekit_port),
            "--api-key",
            LIVEKIT_KEY,
            "--api-secret",
            LIVEKIT_SECRET,
        ],
        {},
        scratch,
    )
    standin_output = ProcessOutput(standin)
    agent = None
    try:
        state_url = f"http://127.0.0.1:{livekit_port}/_standin/state"
        wait_until(lambda: _http(state_url)[0] == 200, START_S, "the LiveKit stand-in", standin_output)
        agent = image.spawn(
            [*image.entrypoint, "agent", "start", "--drain-timeout", "5"],
            {
                "LIVEKIT_URL": f"http://127.0.0.1:{livekit_port}",
                "LIVEKIT_API_KEY": LIVEKIT_KEY,
                "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
                # A self-hosted LiveKit: the openai stack passes the start-up check; no call
                # is placed, so the key is never used.
                "FRIDAY_SPEECH_STACK": "openai",
                "OPENAI_API_KEY": "sk-test-not-used",
                "FRIDAY_VAD": "none",
            },
            scratch,
        )
        agent_output = ProcessOutput(agent)

        def registered() -> list[dict[str, object]]:
            return [w for w in json.loads(_http(state_url)[1])["workers"] if w["agent_name"] == "friday-ai-agent"]

        wait_until(registered, AGENT_START_S, "the worker registers", agent_output)
        health = f"http://127.0.0.1:{AGENT_HEALTH_PORT}/"
        wait_until(lambda: _http(health) == (200, "OK"), START_S, "the worker's health", agent_output)
        assert len(registered()) == 1
        # The worker and its pre-warmed job processes, at rest, within the manifest's request.
        resident = group_memory_bytes(agent)
        request = _memory_request("friday-agent")
        print(f"agent: {resident / 2**20:.0f} MiB at rest (PSS)")
        assert 0 < resident < request, f"agent: {resident / 2**20:.0f} MiB at rest, request {request / 2**20:.0f} MiB"
    finally:
        agent_code = stop(agent, timeout=30) if agent is not None else None
        stop(standin)
    assert agent_code == 0, agent_output.text()


def test_the_default_command_is_friday_help(image: ImageRoot, scratch: Path) -> None:
    config = podman.inspect(image.name)["Config"]
    assert config["Entrypoint"] == ["friday"] and config["Cmd"] == ["--help"]
    code, output = image.run([*config["Entrypoint"], *config["Cmd"]], {}, scratch)
    assert code == 0 and "persona" in output and "dispatcher" in output and "gateway" in output, output


# --- what is (not) in the image ---------------------------------------------


def _deployments() -> list[dict[str, object]]:
    docs = [doc for path in sorted(DEPLOY.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return [doc for doc in docs if doc.get("kind") == "Deployment" and doc["metadata"]["name"] != "friday-redis"]


def test_the_image_runs_as_the_non_root_user_the_manifests_expect(image: ImageRoot) -> None:
    uid, _, gid = image.user.partition(":")
    assert uid.isdigit() and gid.isdigit(), f"USER {image.user!r}: runAsNonRoot can only verify a numeric user"
    assert int(uid) != 0 and int(gid) != 0
    passwd = {line.split(":")[2]: line.split(":")[0] for line in (image.path / "etc/passwd").read_text().splitlines()}
    assert passwd.get(uid) == "friday"
    for deployment in _deployments():
        context = deployment["spec"]["template"]["spec"]["securityContext"]  # type: ignore[index]
        assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid), deployment["metadata"]


def _runtime_closure(site: Path) -> set[str]:
    """The distributions `friday-persona-mesh` (no extras) needs, read from the image's metadata."""
    dists = {canonicalize_name(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[str(site)])}
    python = _image_python(site)
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = [("friday-persona-mesh", "")]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for text in dists[name].requires or []:
            requirement = Requirement(text)
            environment = {"python_full_version": python, "extra": extra}
            if requirement.marker is None or requirement.marker.evaluate(environment):
                child = canonicalize_name(requirement.name)
                # `pkg[a,b]` is pkg's own requirements plus those under each extra.
                todo += [(child, ""), *((child, e) for e in requirement.extras)]
    return {name for name, _ in seen}


def _image_python(site: Path) -> str:
    """The image's Python version (markers such as redis's async-timeout one depend on it)."""
    pyvenv = (site.parents[2] / "pyvenv.cfg").read_text()
    match = re.search(r"^version\s*=\s*(\S+)", pyvenv, re.MULTILINE)
    assert match, pyvenv
    return match[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_image_holds_exactly_the_runtime_dependencies_at_their_pinned_versions(image: ImageRoot) -> None:
    site = image.site_packages
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=[str(site)])
    }
    closure = _runtime_closure(site)
    # Nothing beyond what the package needs at run time: no dev extra (pytest, hypothesis,
    # mypy, ruff, grpcurl), and no pip (removed at build: the image installs nothing later).
    assert set(installed) == closure, f"extra: {sorted(set(installed) - closure)}, missing: {closure - set(installed)}"
    pins = _pins()
    ours = canonicalize_name(_project()["name"])
    unpinned = {name: version for name, version in installed.items() if name != ours and pins.get(name) != version}
    assert not unpinned, f"installed at versions constraints.txt does not pin: {unpinned}"


def _project() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_image_holds_no_test_code_and_no_source_tree(image: ImageRoot) -> None:
    site = image.site_packages
    ours = [site / name for name in ("services", "agent", "bench", "friday")]
    assert all(path.is_dir() for path in ours)
    assert not (site / "tests").exists()
    test_files = [
        path
        for package in ours
        for path in package.rglob("*.py")
        if path.name == "conftest.py" or path.name.startswith("test_")
    ]
    assert not test_files, test_files
    # The shipped testing package (see the module docstring) is there, and nothing of tests/.
    assert (site / "services" / "testing" / "livekit_api.py").is_file()
    ours_by_content = {_digest(path) for path in (REPO / "tests").rglob("*.py") if path.stat().st_size}
    copied = [path for path in site.rglob("*.py") if path.stat().st_size and _digest(path) in ours_by_content]
    assert ours_by_content and not copied, f"files of tests/ in the image: {copied}"
    for leftover in ("src", "opt/friday/src", "tmp/src"):
        assert not (image.path / leftover).exists(), leftover
    assert not list((site).glob("__editable__*")), "an editable install points outside the image"


def test_the_image_has_no_compilers_and_no_installer(image: ImageRoot) -> None:
    path_dirs = [image.path / entry.lstrip("/") for entry in image.env["PATH"].split(":")]
    forbidden = re.compile(r"^(cc|c\+\+|gcc|g\+\+|clang|clang\+\+|tcc|[\w-]+-linux-gnu-(gcc|g\+\+)(-\d+)?|pip\S*)$")
    found = [str(p) for d in path_dirs if d.is_dir() for p in d.iterdir() if forbidden.match(p.name)]
    assert not found, found
    assert (image.path / "opt/friday/bin/friday").is_file()


CREDENTIAL_MARKERS = ("SECRET", "TOKEN", "API_KEY", "PASSWORD")


def test_the_image_holds_no_secrets(image: ImageRoot) -> None:
    for name in image.env:
        assert not any(marker in name for marker in CREDENTIAL_MARKERS), f"ENV {name} in the image config"
    history = podman.podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image.name).stdout
    for marker in CREDENTIAL_MARKERS:
        assert f"{marker}=" not in history.upper(), f"a build step sets {marker}"
    found = find_secrets(image.path)
    assert not found, f"private keys or credential files in the image: {found}"
