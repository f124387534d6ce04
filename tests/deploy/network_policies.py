"""A small evaluator of Kubernetes NetworkPolicy semantics, enough to ask the
manifests "may A open a connection to B on port P?":

- a pod selected by any policy of a type (Ingress/Egress) is isolated for that
  type; then only the union of those policies' rules lets traffic through;
- a rule matches when one of its ports matches (no `ports`: every port; a named
  port is the destination container's; `endPort` makes a range) and one of its
  peers matches (no `from`/`to`: every peer);
- a peer is a podSelector (pods of the policy's namespace), a namespaceSelector
  (pods of the namespaces it selects, narrowed by a podSelector beside it), or an
  ipBlock (addresses outside the cluster's pods, minus `except`).

A connection works when the source's egress and the destination's ingress both
allow it (a peer outside the namespace has no policies of ours: only one side is
checked).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from tests.deploy.manifests import Doc, Manifests, only_container, pod_labels


@dataclass(frozen=True)
class Endpoint:
    """One side of a connection: a pod in some namespace, or an address outside the cluster."""

    labels: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None  # None: not a pod (see `address`)
    address: str | None = None
    ports: dict[str, int] = field(default_factory=dict)  # named container ports, for named-port rules

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace} if self.namespace else {}


def pod_of(deployment: Doc, namespace: str) -> Endpoint:
    container = only_container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    return Endpoint(labels=pod_labels(deployment), namespace=namespace, ports=ports)


def outside(address: str) -> Endpoint:
    return Endpoint(address=address)


def _selects(selector: dict[str, object] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions In/NotIn/Exists/DoesNotExist); {} selects all."""
    selector = selector or {}
    match_labels = selector.get("matchLabels") or {}
    assert isinstance(match_labels, dict)
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    for expression in selector.get("matchExpressions") or []:  # type: ignore[union-attr]
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(peer: Doc, policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if other.address is None:
            return False  # ipBlock is for addresses outside the cluster's pods
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.address)
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False  # a podSelector alone means pods of the policy's own namespace
    return _selects(peer.get("podSelector"), other.labels)


def _port_matches(rule_ports: list[Doc] | None, port: int, protocol: str, destination: Endpoint) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        value = entry["port"]
        number = destination.ports.get(value) if isinstance(value, str) else value
        if number is None:
            continue
        if number <= port <= entry.get("endPort", number):
            return True
    return False


@dataclass(frozen=True)
class Policies:
    manifests: Manifests

    @property
    def namespace(self) -> str:
        return self.manifests.namespace

    def _selecting(self, pod: Endpoint, kind: str) -> list[Doc]:
        if pod.namespace != self.namespace:
            return []
        return [
            policy
            for policy in self.manifests.objects("NetworkPolicy").values()
            if kind in policy["spec"].get("policyTypes", ["Ingress"])
            and _selects(policy["spec"]["podSelector"], pod.labels)
        ]

    def isolated(self, pod: Endpoint, kind: str) -> bool:
        return bool(self._selecting(pod, kind))

    def _allows(self, subject: Endpoint, kind: str, other: Endpoint, port: int, protocol: str, dest: Endpoint) -> bool:
        policies = self._selecting(subject, kind)
        if not policies:
            return True  # not isolated for this direction: everything passes
        key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in policy["spec"].get(key, []):
                if not _port_matches(rule.get("ports"), port, protocol, dest):
                    continue
                peers = rule.get(peers_key)
                if not peers or any(_peer_matches(peer, self.namespace, other) for peer in peers):
                    return True
        return False

    def admits(self, source: Endpoint, destination: Endpoint, port: int | str, protocol: str = "TCP") -> bool:
        """The destination's ingress alone, whatever the source's egress says (a pod added
        later with open egress gets exactly this far)."""
        number = destination.ports[port] if isinstance(port, str) else port
        return self._allows(destination, "Ingress", source, number, protocol, destination)

    def connects(self, source: Endpoint, destination: Endpoint, port: int | str, protocol: str = "TCP") -> bool:
        number = destination.ports[port] if isinstance(port, str) else port
        egress = source.namespace != self.namespace or self._allows(
            source, "Egress", destination, number, protocol, destination
        )
        ingress = destination.namespace != self.namespace or self._allows(
            destination, "Ingress", source, number, protocol, destination
        )
        return egress and ingress
