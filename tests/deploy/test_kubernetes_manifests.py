"""Invariants of deploy/kubernetes that a typo would silently break in a cluster:
probes on the ports the services really listen on, headless Services behind the
gateway's dns:/// targets, LiveKit credentials only where the design allows,
every env var one the code reads, PDBs that select their Deployments.

Ports and defaults come from the code (launcher SETTINGS, GatewayConfig,
livekit-agents), never from a second copy of the numbers here."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from services.cli import build_parser
from services.common.listen_address import is_loopback, is_wildcard
from services.common.ports import ServicePorts
from services.grpc_runtime.config import ServerConfig
from services.grpc_runtime.metrics import HEALTH_PATH
from services.launcher.settings import SETTINGS
from services.webhook_gateway.config import GatewayConfig, HttpServerConfig
from tests.deploy.env_readers import READERS
from tests.deploy.manifests import (
    DEPLOY_DIR,
    Manifests,
    SecretRef,
    annotations,
    container_port,
    memory_bytes,
    only_container,
    pod_labels,
    pod_spec,
    secrets_read,
    selector_matches,
)

M = Manifests.load()
REPO = Path(__file__).resolve().parents[2]
DEPLOYMENTS = M.objects("Deployment")
SERVICES = M.objects("Service")
DEFAULTS = {setting.env: setting.default for setting in SETTINGS}

PERSONA, DISPATCHER, CALLS = "friday-persona", "friday-dispatcher", "friday-calls"
GATEWAY, AGENT = "friday-gateway", "friday-agent"
# gRPC servers: Deployment -> env prefix of ServerConfig (PERSONA_PORT, PERSONA_METRICS_PORT, ...).
GRPC = {PERSONA: "PERSONA", DISPATCHER: "DISPATCHER", CALLS: "CALLS"}
OURS = (PERSONA, DISPATCHER, CALLS, GATEWAY, AGENT)

# The Secret holding the key pair that can create dispatches: only the dispatcher
# reads it. The gateway verifies webhooks with a key pair of its own.
LIVEKIT_SECRET = "friday-livekit"
WEBHOOK_SECRET = "friday-livekit-webhook"
AGENT_SECRET = "friday-agent-livekit"
AGENT_SPEECH_SECRET = "friday-agent-openai"
REDIS_SECRET = "friday-redis"
# The one token Prometheus sends to every /metrics (services/common/metrics_auth.py).
METRICS_SECRET = "friday-metrics-token"
ALLOWED_SECRETS = {
    PERSONA: {"friday-persona-token", "friday-persona-admin-token", REDIS_SECRET, "friday-persona-tls", METRICS_SECRET},
    DISPATCHER: {
        LIVEKIT_SECRET,
        "friday-dispatcher-token",
        "friday-calls-token",
        REDIS_SECRET,
        "friday-dispatcher-tls",
        METRICS_SECRET,
    },
    CALLS: {"friday-calls-database", "friday-calls-token", "friday-call-events", "friday-calls-tls", METRICS_SECRET},
    GATEWAY: {
        METRICS_SECRET,
        WEBHOOK_SECRET,
        "friday-dispatcher-token",
        "friday-persona-token",
        "friday-calls-token",
        REDIS_SECRET,
        "friday-gateway-tls",
    },
    AGENT: {AGENT_SECRET, AGENT_SPEECH_SECRET},
}
# Without these the code silently falls back to local defaults (devkey/secret, localhost).
# Without METRICS_TOKEN a pod's /metrics is open to whatever reaches its metrics port.
REQUIRED_ENV = {
    PERSONA: {"PERSONA_API_BASE", "REDIS_URL", "PERSONA_TOKEN", "PERSONA_ADMIN_TOKEN", "METRICS_TOKEN"},
    DISPATCHER: {
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "DISPATCHER_TOKEN",
        "REDIS_URL",
        "METRICS_TOKEN",
    },
    # Without a database URL a pod would keep its history in a file that dies with it.
    CALLS: {"CALLS_DATABASE_URL", "CALLS_TOKEN", "METRICS_TOKEN"},
    GATEWAY: {
        "METRICS_TOKEN",
        "PERSONA_TOKEN",
        "PERSONA_TARGET",
        "DISPATCHER_TARGET",
        "CALLS_TARGET",
        "CALLS_TOKEN",
        "LIVEKIT_WEBHOOK_API_KEY",
        "LIVEKIT_WEBHOOK_API_SECRET",
        "DISPATCHER_TOKEN",
        "AGENT_TO_DISPATCH",
        "REDIS_URL",
    },
    AGENT: {"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "AGENT_TO_DISPATCH"},
}
CREDENTIAL_MARKERS = ("SECRET", "TOKEN", "API_KEY", "PASSWORD")


def env(name: str) -> dict[str, str | SecretRef]:
    return M.resolved_env(only_container(DEPLOYMENTS[name]))


def agent_health_port() -> int:
    from livekit.agents import AgentServer

    # AgentServer() as agent/worker.py builds it: the health server's production default.
    return inspect.signature(AgentServer.__init__).parameters["port"].default.prod_default


# --- files and kustomization ------------------------------------------------


def test_every_document_is_a_named_kubernetes_object() -> None:
    assert M.docs, f"no manifests under {DEPLOY_DIR}"
    for path, doc in M.docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), path


def test_kustomization_lists_exactly_the_manifest_files() -> None:
    listed = {DEPLOY_DIR / name for name in M.kustomization["resources"]}
    assert listed == M.files, f"unlisted: {M.files - listed}, missing: {listed - M.files}"


def test_every_workload_runs_the_image_the_readme_builds_and_kustomize_maps_to_the_registry() -> None:
    (mapping,) = M.kustomization["images"]
    for name in OURS:
        assert only_container(DEPLOYMENTS[name])["image"] == mapping["name"], name
    assert mapping["newName"].endswith("/" + mapping["name"]) and mapping["newTag"]
    readme = (REPO / "README.md").read_text()
    assert f"podman build -t {mapping['name']}:" in readme
    assert f"kustomize edit set image {mapping['name']}=" in readme


def test_one_namespace_everywhere() -> None:
    assert set(M.objects("Namespace")) == {M.namespace}
    for path, doc in M.docs:
        assert doc["metadata"].get("namespace", M.namespace) == M.namespace, path


def test_every_workload_is_deployed_with_replicas_and_the_cli_command() -> None:
    parser = build_parser()
    for name in OURS:
        deployment = DEPLOYMENTS[name]
        assert deployment["spec"]["replicas"] >= 2, name
        assert selector_matches(deployment["spec"]["selector"]["matchLabels"], pod_labels(deployment)), name
        command = only_container(deployment)["command"]
        assert command[0] == "friday", name
        try:
            parser.parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"{name}: `{' '.join(command)}` is not a command of the friday CLI")
    for name, prefix in GRPC.items():
        assert only_container(DEPLOYMENTS[name])["command"] == ["friday", prefix.lower(), "serve"]
    assert only_container(DEPLOYMENTS[GATEWAY])["command"] == ["friday", "gateway", "serve"]
    assert only_container(DEPLOYMENTS[AGENT])["command"][:3] == ["friday", "agent", "start"]


# --- ports and probes -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GRPC))
def test_grpc_services_listen_and_are_probed_on_their_default_ports(name: str) -> None:
    prefix = GRPC[name]
    container = only_container(DEPLOYMENTS[name])
    port, metrics_port = int(DEFAULTS[f"{prefix}_PORT"]), int(DEFAULTS[f"{prefix}_METRICS_PORT"])
    assert container_port(container, "grpc") == port
    assert container_port(container, "metrics") == metrics_port
    # A manifest may pin the port by env, but then it must agree with the containerPort.
    resolved = env(name)
    assert resolved.get(f"{prefix}_PORT", str(port)) == str(port)
    assert resolved.get(f"{prefix}_METRICS_PORT", str(metrics_port)) == str(metrics_port)
    tls = f"{prefix}_TLS_CERT_FILE" in resolved
    for probe_kind in ("readinessProbe", "livenessProbe"):
        probe = container[probe_kind]
        if "grpc" in probe:
            # The kubelet's gRPC probe speaks plaintext only.
            assert not tls, f"{name} {probe_kind}: a native gRPC probe cannot reach a TLS port"
            assert container_port(container, probe["grpc"]["port"]) == port
            # "" = the runtime's overall status: SERVING while accepting calls, NOT_SERVING when draining.
            assert probe["grpc"].get("service", "") == ""
        else:
            # The same overall status over HTTP on the metrics port (services/grpc_runtime/metrics.py).
            assert probe["httpGet"]["path"] == HEALTH_PATH, f"{name} {probe_kind}"
            assert container_port(container, probe["httpGet"]["port"]) == metrics_port
    assert annotations(DEPLOYMENTS[name]) == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics_port),
        "prometheus.io/path": "/metrics",
    }


def test_gateway_listens_on_its_default_port_with_http_probes_on_real_routes() -> None:
    from services.webhook_gateway.server import build_app

    container = only_container(DEPLOYMENTS[GATEWAY])
    port = HttpServerConfig().port
    assert str(port) == DEFAULTS["PORT"]
    assert container_port(container, "http") == port
    assert env(GATEWAY).get("PORT", str(port)) == str(port)
    routes = {route.path for route in build_app(GatewayConfig()).routes}
    expected = {"readinessProbe": "/ready", "livenessProbe": "/health"}
    for probe_kind, path in expected.items():
        probe = container[probe_kind]["httpGet"]
        assert probe["path"] == path and path in routes
        assert container_port(container, probe["port"]) == port
    scrape = annotations(DEPLOYMENTS[GATEWAY])
    assert scrape["prometheus.io/scrape"] == "true" and scrape["prometheus.io/port"] == str(port)
    assert scrape["prometheus.io/path"] in routes


def test_agent_is_probed_on_the_livekit_worker_health_port() -> None:
    container = only_container(DEPLOYMENTS[AGENT])
    port = agent_health_port()
    for probe_kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[probe_kind]["httpGet"]
        assert probe["path"] == "/" and container_port(container, probe["port"]) == port


@pytest.mark.parametrize(
    ("name", "host_settings"),
    [
        (PERSONA, ("PERSONA_HOST", "PERSONA_METRICS_HOST")),
        (DISPATCHER, ("DISPATCHER_HOST", "DISPATCHER_METRICS_HOST")),
        (CALLS, ("CALLS_HOST", "CALLS_METRICS_HOST")),
        (GATEWAY, ("GATEWAY_HOST",)),
        (AGENT, ("AGENT_HEALTH_HOST",)),
    ],
)
def test_every_listener_binds_all_interfaces_in_the_pod(name: str, host_settings: tuple[str, ...]) -> None:
    from agent.config import AgentConfig

    # The code binds loopback by default, where no probe, scraper or other pod reaches it.
    assert ServerConfig().host == ServerConfig().metrics_host == HttpServerConfig().host == AgentConfig().health_host
    assert is_loopback(ServerConfig().host)
    resolved = env(name)
    for setting in host_settings:
        assert setting in resolved, f"{name} must set {setting}: the default is loopback"
        assert is_wildcard(str(resolved[setting])), f"{name}: {setting}={resolved[setting]!r}"


# --- Services and the gateway's targets -------------------------------------


@pytest.mark.parametrize("name", sorted(GRPC))
def test_grpc_services_are_headless_and_select_their_pods(name: str) -> None:
    service = SERVICES[name]
    assert service["spec"].get("clusterIP") == "None", f"{name}: round_robin needs one A record per pod"
    assert selector_matches(service["spec"]["selector"], pod_labels(DEPLOYMENTS[name]))
    (port,) = service["spec"]["ports"]
    container = only_container(DEPLOYMENTS[name])
    assert port["port"] == container_port(container, port["targetPort"]) == int(DEFAULTS[f"{GRPC[name]}_PORT"])


def test_gateway_service_is_a_normal_service_on_the_gateway_port() -> None:
    service = SERVICES[GATEWAY]
    assert service["spec"].get("clusterIP") != "None"
    assert selector_matches(service["spec"]["selector"], pod_labels(DEPLOYMENTS[GATEWAY]))
    (port,) = service["spec"]["ports"]
    assert container_port(only_container(DEPLOYMENTS[GATEWAY]), port["targetPort"]) == HttpServerConfig().port


@pytest.mark.parametrize(
    ("variable", "name"), [("PERSONA_TARGET", PERSONA), ("DISPATCHER_TARGET", DISPATCHER), ("CALLS_TARGET", CALLS)]
)
def test_gateway_targets_resolve_every_pod_of_the_headless_service(variable: str, name: str) -> None:
    port = SERVICES[name]["spec"]["ports"][0]["port"]
    assert env(GATEWAY)[variable] == f"dns:///{name}.{M.namespace}.svc.cluster.local:{port}"


def test_the_readme_webhook_url_is_https_and_the_ingress_routes_it_to_the_gateway() -> None:
    from services.webhook_gateway.app import WEBHOOK_PATH

    readme = (REPO / "README.md").read_text()
    urls = set(re.findall(r"\b(https?://[\w.-]+/livekit-webhook)\b", readme))
    assert urls and all(url.startswith("https://") for url in urls), urls
    (ingress,) = M.objects("Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert {urlparse(url).hostname for url in urls} == {rule["host"]}
    assert path["path"] == WEBHOOK_PATH and path["pathType"] == "Exact", "only the webhook leaves the cluster"
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    backend = path["backend"]["service"]
    assert backend["name"] == GATEWAY
    assert backend["port"]["name"] in {port["name"] for port in SERVICES[GATEWAY]["spec"]["ports"]}


def test_the_call_history_keeps_its_records_in_postgresql_from_a_secret() -> None:
    from services.calls.config import CallsConfig

    assert env(CALLS)["CALLS_DATABASE_URL"] == SecretRef("friday-calls-database", "url"), "it carries a password"
    # What the ConfigMap sets is what the service accepts (it refuses bad values at start).
    values = {k: v for k, v in env(CALLS).items() if isinstance(v, str)}
    values["CALLS_DATABASE_URL"] = "postgresql://friday:from-a-secret@192.0.2.10:5432/friday"
    config = CallsConfig.from_env(values)
    assert config.caller_numbers.value == "masked", "callers' numbers are personal data: masked unless chosen"
    assert config.events.url is None, "no call events leave the cluster until CALL_EVENTS_URL is set"


def test_redis_url_names_the_redis_service_with_the_password_redis_requires() -> None:
    urls = {env(name)["REDIS_URL"] for name in (PERSONA, DISPATCHER, GATEWAY)}
    assert len(urls) == 1, "all replicas of all services must share one Redis"
    url = urlparse(str(urls.pop()))
    assert url.scheme == "redis"
    service, namespace = url.hostname.split(".")[:2]
    assert namespace == M.namespace
    assert url.port in {p["port"] for p in SERVICES[service]["spec"]["ports"]}
    # The password is Kubernetes' $(REDIS_PASSWORD), taken from the Secret Redis's
    # --requirepass comes from.
    assert url.password == "$(REDIS_PASSWORD)"
    password = SecretRef(REDIS_SECRET, "password")
    for name in (PERSONA, DISPATCHER, GATEWAY):
        assert env(name)["REDIS_PASSWORD"] == password, name
    redis = only_container(DEPLOYMENTS[service])
    assert M.resolved_env(redis)["REDIS_PASSWORD"] == password
    args = redis["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"


def test_the_grpc_services_require_tokens_and_mutual_tls_from_the_gateway() -> None:
    from tests.deploy.tls import check_mutual_tls

    for name, prefix in GRPC.items():
        assert isinstance(env(name)[f"{prefix}_TOKEN"], SecretRef), name
        assert env(GATEWAY)[f"{prefix}_TOKEN"] == env(name)[f"{prefix}_TOKEN"], f"{name}: the gateway's token differs"
        check_mutual_tls(M, server=DEPLOYMENTS[name], prefix=prefix, client=DEPLOYMENTS[GATEWAY])
    # The gateway's client certificate serves all three; the CallHistory server's is its own.
    assert env(GATEWAY)["CALLS_TOKEN"] == env(CALLS)["CALLS_TOKEN"]
    # The admin token is the service's alone: no client in the cluster holds it.
    admin = env(PERSONA)["PERSONA_ADMIN_TOKEN"]
    assert isinstance(admin, SecretRef) and admin != env(PERSONA)["PERSONA_TOKEN"]
    assert all(admin.secret not in secrets_read(DEPLOYMENTS[name]) for name in OURS if name != PERSONA)


# --- secrets and environment ------------------------------------------------


def test_livekit_secret_is_read_only_by_the_dispatcher_and_the_gateway_verifies_with_its_own() -> None:
    readers = {name for name, deployment in DEPLOYMENTS.items() if LIVEKIT_SECRET in secrets_read(deployment)}
    assert readers == {DISPATCHER}
    webhook_pair = [env(GATEWAY)[variable] for variable in ("LIVEKIT_WEBHOOK_API_KEY", "LIVEKIT_WEBHOOK_API_SECRET")]
    assert {ref.secret for ref in webhook_pair if isinstance(ref, SecretRef)} == {WEBHOOK_SECRET}
    assert {name for name, d in DEPLOYMENTS.items() if WEBHOOK_SECRET in secrets_read(d)} == {GATEWAY}
    for name in OURS:
        assert secrets_read(DEPLOYMENTS[name]) <= ALLOWED_SECRETS[name], name
    agent_key_pair = [env(AGENT)[variable] for variable in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")]
    assert {ref.secret for ref in agent_key_pair if isinstance(ref, SecretRef)} == {AGENT_SECRET}


def test_credentials_come_only_from_secrets() -> None:
    for name in OURS:
        for variable, value in env(name).items():
            if any(marker in variable for marker in CREDENTIAL_MARKERS):
                assert isinstance(value, SecretRef), f"{name}: {variable} must come from a Secret"
    for config_map in M.objects("ConfigMap").values():
        for key in config_map.get("data", {}):
            assert not any(marker in key for marker in CREDENTIAL_MARKERS), f"credential {key} in a ConfigMap"


def test_every_scraped_pod_requires_the_one_metrics_token_and_no_other_pod_holds_it() -> None:
    scraped = {name for name in OURS if annotations(DEPLOYMENTS[name]).get("prometheus.io/scrape") == "true"}
    assert scraped == {PERSONA, DISPATCHER, CALLS, GATEWAY}
    for name in scraped:
        token = env(name)["METRICS_TOKEN"]
        assert isinstance(token, SecretRef) and token.secret == METRICS_SECRET, name
        assert token == env(GATEWAY)["METRICS_TOKEN"], f"{name}: a metrics token of its own"
    # The agent serves no /metrics: it has no use for the token.
    assert not [name for name in OURS if name not in scraped and METRICS_SECRET in secrets_read(DEPLOYMENTS[name])]


def test_dispatcher_and_gateway_share_one_token() -> None:
    assert env(GATEWAY)["DISPATCHER_TOKEN"] == env(DISPATCHER)["DISPATCHER_TOKEN"]


def test_gateway_dispatches_the_name_the_agent_registers() -> None:
    assert env(GATEWAY)["AGENT_TO_DISPATCH"] == env(AGENT)["AGENT_TO_DISPATCH"]


def test_the_agent_gets_a_speech_stack_that_works_with_the_configured_livekit() -> None:
    from agent.config import AgentConfig, require_usable_stack

    # The check `friday agent start` makes before it registers; a Secret counts as set.
    values = {name: value if isinstance(value, str) else "from-a-secret" for name, value in env(AGENT).items()}
    require_usable_stack(AgentConfig.from_env(values), values)


@pytest.mark.parametrize("name", OURS)
def test_every_env_var_set_is_read_by_the_code_and_none_required_is_missing(name: str) -> None:
    container = only_container(DEPLOYMENTS[name])
    assert "envFrom" not in container, "envFrom hides which variables a pod gets"
    names = {entry["name"] for entry in container.get("env", [])}
    assert len(names) == len(container.get("env", [])), f"{name}: duplicate env entries"
    # A variable only other values expand ($(REDIS_PASSWORD) in REDIS_URL) is Kubernetes'.
    expanded = {ref for entry in container.get("env", []) for ref in re.findall(r"\$\((\w+)\)", entry.get("value", ""))}
    unread = names - READERS[name]() - expanded
    assert not unread, f"{name} sets variables its code never reads: {sorted(unread)}"
    assert REQUIRED_ENV[name] <= names, f"{name} misses {sorted(REQUIRED_ENV[name] - names)}"


# --- availability, resources, shutdown, security ----------------------------


def test_every_replicated_deployment_has_a_pdb_that_selects_it_and_allows_drains() -> None:
    budgets = M.objects("PodDisruptionBudget")
    covered = set()
    for budget_name, budget in budgets.items():
        selector = budget["spec"]["selector"]["matchLabels"]
        matched = [name for name, d in DEPLOYMENTS.items() if selector_matches(selector, pod_labels(d))]
        assert len(matched) == 1, f"PDB {budget_name} selects {matched}"
        replicas = DEPLOYMENTS[matched[0]]["spec"]["replicas"]
        spec = budget["spec"]
        # A budget that forbids every eviction blocks node drains forever.
        assert spec.get("maxUnavailable", 0) >= 1 or spec.get("minAvailable", replicas) < replicas, budget_name
        covered.add(matched[0])
    assert set(OURS) <= covered


def test_every_container_requests_resources_within_its_limit() -> None:
    for name, deployment in DEPLOYMENTS.items():
        resources = only_container(deployment)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert memory_bytes(resources["requests"]["memory"]) <= memory_bytes(resources["limits"]["memory"]), name


def test_memory_requests_and_limits_cover_the_benchmarks_peak_rss() -> None:
    """The benchmark's peak RSS per service (README, Performance: VmHWM in MiB, under the
    full load run): each request covers it, so a loaded pod has what the scheduler
    reserved, and each limit leaves it twice over before the kernel kills the pod.
    tests/image checks the image's processes at rest against the same requests."""
    readme = (REPO / "README.md").read_text()
    found = re.search(r"peak RSS gateway / persona / dispatcher (\d+) / (\d+) / (\d+) MB", readme)
    assert found, "the README no longer states the benchmark's peak RSS figures"
    for name, peak_mib in zip((GATEWAY, PERSONA, DISPATCHER), found.groups(), strict=True):
        peak = int(peak_mib) * 2**20
        resources = only_container(DEPLOYMENTS[name])["resources"]
        assert memory_bytes(resources["requests"]["memory"]) >= peak, f"{name}: request below the peak RSS"
        assert memory_bytes(resources["limits"]["memory"]) >= 2 * peak, f"{name}: limit under twice the peak RSS"


def test_services_stop_within_their_termination_grace() -> None:
    from services.webhook_gateway.server import uvicorn_config

    for name, prefix in GRPC.items():
        values = {k: v for k, v in env(name).items() if isinstance(v, str)}
        grace = ServerConfig.from_env(prefix, ServicePorts(grpc=0, metrics=0), environ=values)
        assert pod_spec(DEPLOYMENTS[name])["terminationGracePeriodSeconds"] > grace.shutdown_grace_seconds, name
    gateway = only_container(DEPLOYMENTS[GATEWAY])
    pre_stop = gateway.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    listening = HttpServerConfig.from_env({k: v for k, v in env(GATEWAY).items() if isinstance(v, str)})
    drain = uvicorn_config(GatewayConfig(), listening).timeout_graceful_shutdown or 0
    assert pod_spec(DEPLOYMENTS[GATEWAY])["terminationGracePeriodSeconds"] > pre_stop + drain
    command = only_container(DEPLOYMENTS[AGENT])["command"]
    assert "--drain-timeout" in command, "without it livekit-agents drains for up to an hour"
    drain_timeout = int(command[command.index("--drain-timeout") + 1])
    assert pod_spec(DEPLOYMENTS[AGENT])["terminationGracePeriodSeconds"] > drain_timeout


def test_every_pod_runs_non_root_on_a_read_only_root_filesystem() -> None:
    for name, deployment in DEPLOYMENTS.items():
        spec = pod_spec(deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec.get("automountServiceAccountToken") is False, name
        container = only_container(deployment)["securityContext"]
        assert container["readOnlyRootFilesystem"] is True, name
        assert container["allowPrivilegeEscalation"] is False, name
        assert container["capabilities"]["drop"] == ["ALL"], name


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed; the YAML checks above still ran")
def test_kustomize_renders_every_object() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY_DIR)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    kinds_names = {(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(rendered) if doc}
    assert kinds_names == {(doc["kind"], doc["metadata"]["name"]) for _, doc in M.docs}
