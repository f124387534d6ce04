"""deploy/kubernetes/networkpolicy.yaml against the Deployments and the addresses the
code dials (tests/deploy/network_policies.py evaluates the policies): only the
gateway takes traffic from outside, only the gateway and CLI pods reach the gRPC
services, only PersonaService reaches the CRM, only the services reach Redis, and
every path the configuration needs is open."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse

import pytest

from tests.deploy.manifests import Manifests, only_container
from tests.deploy.network_policies import Endpoint, Policies, outside, pod_of

M = Manifests.load()
P = Policies(M)
DEPLOYMENTS = M.objects("Deployment")
PODS = {name: pod_of(deployment, M.namespace) for name, deployment in DEPLOYMENTS.items()}
PERSONA, DISPATCHER, CALLS, GATEWAY, AGENT, REDIS = (
    "friday-persona",
    "friday-dispatcher",
    "friday-calls",
    "friday-gateway",
    "friday-agent",
    "friday-redis",
)
CLI = Endpoint(labels={"app.kubernetes.io/component": "cli"}, namespace=M.namespace)
INTERNET = outside("198.51.100.7")
OTHER_NAMESPACE_POD = Endpoint(labels={"app": "anything"}, namespace="some-other-team")
DNS = Endpoint(labels={"k8s-app": "kube-dns"}, namespace="kube-system")


def env(name: str) -> dict[str, object]:
    return dict(M.resolved_env(only_container(DEPLOYMENTS[name])))


def container_ports(name: str) -> list[tuple[int, str]]:
    return [(p["containerPort"], p.get("protocol", "TCP")) for p in only_container(DEPLOYMENTS[name])["ports"]]


def crm_address() -> str:
    """An address in the one ipBlock PersonaService may reach on 443: the CRM's range."""
    (policy,) = [
        p
        for p in M.objects("NetworkPolicy").values()
        if p["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": PERSONA}}
    ]
    blocks = [peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"] for peer in rule["to"] if "ipBlock" in peer]
    (cidr,) = blocks
    return str(next(ipaddress.ip_network(cidr).hosts()))


def test_every_pod_of_the_namespace_is_isolated_both_ways() -> None:
    for name, pod in [*PODS.items(), ("cli", CLI)]:
        assert P.isolated(pod, "Ingress") and P.isolated(pod, "Egress"), name


def test_only_the_gateway_takes_traffic_from_outside_the_namespace() -> None:
    opened = {
        (name, port)
        for name, pod in PODS.items()
        for port, protocol in container_ports(name)
        for source in (INTERNET, OTHER_NAMESPACE_POD)
        if P.connects(source, pod, port, protocol)
    }
    # Prometheus's namespace may scrape the services' metrics ports; nothing else from outside.
    monitoring = Endpoint(labels={"app": "prometheus"}, namespace="monitoring")
    gateway_port = PODS[GATEWAY].ports["http"]
    assert opened == {(GATEWAY, gateway_port)}
    for name in (PERSONA, DISPATCHER, CALLS):
        assert P.connects(monitoring, PODS[name], "metrics")
        assert not P.connects(monitoring, PODS[name], "grpc")


@pytest.mark.parametrize("service", [PERSONA, DISPATCHER, CALLS])
def test_only_the_gateway_and_the_cli_reach_the_grpc_services(service: str) -> None:
    target = urlparse(
        "//" + str(env(GATEWAY)[f"{service.removeprefix('friday-').upper()}_TARGET"]).removeprefix("dns:///")
    )
    assert target.port == PODS[service].ports["grpc"], "the gateway dials the port the pod listens on"
    # The dispatcher also reports to the call history (its creates that landed late).
    callers = {GATEWAY, DISPATCHER} if service == CALLS else {GATEWAY}
    reaching = {name for name, pod in PODS.items() if name != service and P.connects(pod, PODS[service], "grpc")}
    assert reaching == callers
    assert P.connects(CLI, PODS[service], "grpc")
    # The service's own ingress admits no one else, even a pod whose egress is open.
    admitted = {name for name, pod in PODS.items() if P.admits(pod, PODS[service], "grpc")}
    assert admitted == callers
    assert not P.admits(Endpoint(labels={"app": "new"}, namespace=M.namespace), PODS[service], "grpc")


def test_only_persona_reaches_the_crm() -> None:
    crm = outside(crm_address())
    assert urlparse(str(env(PERSONA)["PERSONA_API_BASE"])).scheme == "https"
    reaching = {name for name, pod in PODS.items() if P.connects(pod, crm, 443)}
    assert reaching == {PERSONA}
    assert not P.connects(CLI, crm, 443)
    # The agent's internet egress (its speech provider) is real, and excludes the CRM;
    # so is the call history's (the call events' receiver).
    assert P.connects(PODS[AGENT], INTERNET, 443)
    assert P.connects(PODS[CALLS], INTERNET, 443)


def database_address() -> str:
    """An address in the one ipBlock CallHistoryService may reach on 5432: its PostgreSQL."""
    (policy,) = [
        p
        for p in M.objects("NetworkPolicy").values()
        if p["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": CALLS}}
    ]
    blocks = [
        peer["ipBlock"]["cidr"]
        for rule in policy["spec"]["egress"]
        if any(port["port"] == 5432 for port in rule["ports"])
        for peer in rule["to"]
    ]
    (cidr,) = blocks
    return str(next(ipaddress.ip_network(cidr).hosts()))


def test_only_the_call_history_reaches_its_database_and_it_reaches_nothing_inside() -> None:
    database = outside(database_address())
    reaching = {name for name, pod in PODS.items() if P.connects(pod, database, 5432)}
    assert reaching == {CALLS}
    # Its internet egress is for the events' receiver: not the CRM, not another pod.
    assert not P.connects(PODS[CALLS], outside(crm_address()), 443)
    assert not any(P.connects(PODS[CALLS], PODS[name], "grpc") for name in (PERSONA, DISPATCHER))
    assert not P.connects(PODS[CALLS], PODS[REDIS], "redis")


def test_only_the_services_reach_redis_on_the_port_their_url_names() -> None:
    port = urlparse(str(env(PERSONA)["REDIS_URL"])).port
    assert port == PODS[REDIS].ports["redis"]
    reaching = {name for name, pod in PODS.items() if name != REDIS and P.connects(pod, PODS[REDIS], port)}
    assert reaching == {PERSONA, DISPATCHER, GATEWAY}
    assert not P.admits(CLI, PODS[REDIS], port)
    assert {name for name, pod in PODS.items() if P.admits(pod, PODS[REDIS], port)} == reaching


def test_the_dispatcher_and_the_agent_reach_livekit_and_nothing_else_does() -> None:
    url = urlparse(M.config_map("friday-config")["LIVEKIT_URL"])
    assert url.hostname and url.port
    _, namespace = url.hostname.split(".")[:2]
    livekit = Endpoint(labels={"app.kubernetes.io/name": "livekit-server"}, namespace=namespace)
    reaching = {name for name, pod in PODS.items() if P.connects(pod, livekit, url.port)}
    assert reaching == {DISPATCHER, AGENT}
    # Media: LiveKit's default UDP range and its TCP fallback.
    assert P.connects(PODS[AGENT], livekit, 50000, "UDP") and P.connects(PODS[AGENT], livekit, 60000, "UDP")
    assert P.connects(PODS[AGENT], livekit, 7881)


def test_every_pod_resolves_names_and_nothing_reaches_the_agent() -> None:
    for name, pod in [*PODS.items(), ("cli", CLI)]:
        assert P.connects(pod, DNS, 53, "UDP") and P.connects(pod, DNS, 53, "TCP"), name
    for name, pod in PODS.items():
        for port, protocol in container_ports(AGENT):
            assert not P.connects(pod, PODS[AGENT], port, protocol), name
    assert not any(P.connects(PODS[REDIS], pod, port) for pod in PODS.values() for port in (443, 50051, 50052))


def test_the_gateway_can_reach_everything_it_dials() -> None:
    for service in (PERSONA, DISPATCHER, CALLS):
        assert P.connects(PODS[GATEWAY], PODS[service], "grpc")
    assert P.connects(PODS[GATEWAY], PODS[REDIS], "redis")
    assert not P.connects(PODS[GATEWAY], INTERNET, 443), "the gateway never calls out of the cluster"
