"""Loads deploy/kubernetes and answers the questions the manifest tests ask:
which objects exist, what a container's environment resolves to (ConfigMap
values looked up, Secret references kept as references), which Secrets a pod
can read, which port a named port means."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUSTOMIZATION = "kustomization.yaml"

Doc = dict[str, Any]


@dataclass(frozen=True)
class SecretRef:
    secret: str
    key: str


@dataclass(frozen=True)
class Manifests:
    """Every object of every manifest file, plus the file each came from."""

    docs: tuple[tuple[Path, Doc], ...]
    kustomization: Doc

    @classmethod
    def load(cls, directory: Path = DEPLOY_DIR) -> Manifests:
        docs: list[tuple[Path, Doc]] = []
        kustomization: Doc = {}
        for path in sorted(directory.rglob("*.y*ml")):
            loaded = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
            if path.name == KUSTOMIZATION:
                kustomization = loaded[0]
                continue
            docs.extend((path, doc) for doc in loaded)
        return cls(tuple(docs), kustomization)

    @property
    def files(self) -> set[Path]:
        return {path for path, _ in self.docs}

    def objects(self, kind: str) -> dict[str, Doc]:
        return {doc["metadata"]["name"]: doc for _, doc in self.docs if doc.get("kind") == kind}

    @property
    def namespace(self) -> str:
        return self.kustomization["namespace"]

    def config_map(self, name: str) -> dict[str, str]:
        return self.objects("ConfigMap")[name].get("data", {})

    def resolved_env(self, container: Doc) -> dict[str, str | SecretRef]:
        """Env name -> literal value, ConfigMap value (looked up), or SecretRef."""
        resolved: dict[str, str | SecretRef] = {}
        for entry in container.get("env", []):
            source = entry.get("valueFrom")
            if source is None:
                resolved[entry["name"]] = str(entry.get("value", ""))
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                data = self.config_map(ref["name"])
                assert ref["key"] in data, f"{entry['name']}: ConfigMap {ref['name']} has no key {ref['key']}"
                resolved[entry["name"]] = data[ref["key"]]
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                resolved[entry["name"]] = SecretRef(ref["name"], ref["key"])
            else:
                raise AssertionError(f"{entry['name']}: unexpected valueFrom {source}")
        return resolved


def pod_spec(deployment: Doc) -> Doc:
    return deployment["spec"]["template"]["spec"]


def pod_labels(deployment: Doc) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def annotations(deployment: Doc) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"].get("annotations", {})


def only_container(deployment: Doc) -> Doc:
    containers = pod_spec(deployment)["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: expected one container"
    return containers[0]


def container_port(container: Doc, port: int | str) -> int:
    """A probe's or Service's port (number or name) as the container's port number."""
    ports = container.get("ports", [])
    if isinstance(port, int):
        assert port in {p["containerPort"] for p in ports}, f"port {port} is not a container port"
        return port
    by_name = {p["name"]: p["containerPort"] for p in ports if "name" in p}
    assert port in by_name, f"no container port named {port!r}"
    return by_name[port]


def secrets_read(deployment: Doc) -> set[str]:
    """Every Secret the pod can read: env, envFrom and volumes (plain and projected)."""
    spec = pod_spec(deployment)
    names: set[str] = set()
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"]["name"])
    return names


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}


def memory_bytes(quantity: str | int) -> int:
    text = str(quantity)
    for suffix, factor in _MEMORY_UNITS.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)
