"""The example scrape configs agree with the code and the manifests: the friday up
config scrapes the ports and path `friday up` serves metrics on, the Kubernetes
config scrapes the pods deploy/kubernetes annotates and names their jobs as the
rules expect, and every job the rules select is one the configs produce."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.launcher.settings import SETTINGS
from services.webhook_gateway.config import GatewayConfig
from tests.deploy.manifests import Manifests, annotations, only_container, pod_labels
from tests.deploy.observability import (
    INSTALL_HINT,
    JOBS,
    KUBERNETES_SCRAPE_CONFIG,
    RULES,
    SCRAPE_CONFIG,
    alert_rules,
)
from tests.deploy.prometheus_server import DEADLINE_SECONDS, PROMETHEUS, prometheus_server

DEFAULTS = {setting.env: setting.default for setting in SETTINGS}
REPO = Path(__file__).resolve().parents[2]
# Where each config reads the metrics token (README, "Dashboards and alerts").
FRIDAY_UP_TOKEN_FILE = "metrics-token"
KUBERNETES_TOKEN_FILE = "/etc/prometheus/secrets/friday-metrics-token/token"
# Job -> the `friday up` setting holding the port its metrics are served on.
METRICS_PORT_SETTING = {
    "friday-persona": "PERSONA_METRICS_PORT",
    "friday-dispatcher": "DISPATCHER_METRICS_PORT",
    "friday-calls": "CALLS_METRICS_PORT",
    "friday-gateway": "PORT",  # the gateway serves /metrics beside the webhook
}


def load(path: Any) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def jobs_selected_by_the_rules() -> set[str]:
    jobs: set[str] = set()
    for rule in alert_rules():
        for value in re.findall(r'\bjob=~?"([^"]*)"', str(rule["expr"])):
            jobs.update(value.split("|"))
    return jobs


def test_the_rules_select_exactly_the_mesh_jobs() -> None:
    assert jobs_selected_by_the_rules() == set(JOBS)


def test_friday_up_config_scrapes_the_default_ports_on_the_metrics_path() -> None:
    from services.webhook_gateway.server import build_app

    config = load(SCRAPE_CONFIG)
    assert config["rule_files"] == [RULES.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(JOBS)
    gateway_routes = {route.path for route in build_app(GatewayConfig()).routes}
    for name, job in jobs.items():
        (static,) = job["static_configs"]
        ports = {int(target.rsplit(":", 1)[1]) for target in static["targets"]}
        assert ports == {int(DEFAULTS[METRICS_PORT_SETTING[name]])}, name
        path = job.get("metrics_path", "/metrics")
        assert path == "/metrics"
        if name == "friday-gateway":
            assert path in gateway_routes


def test_both_configs_send_the_metrics_token_from_a_file_kept_out_of_git() -> None:
    # Bearer is Prometheus's default type; inline `credentials` would put the token in the config.
    for job in load(SCRAPE_CONFIG)["scrape_configs"]:
        assert job["authorization"] == {"credentials_file": FRIDAY_UP_TOKEN_FILE}, job["job_name"]
    assert f"deploy/prometheus/{FRIDAY_UP_TOKEN_FILE}" in (REPO / ".gitignore").read_text().splitlines()
    (job,) = load(KUBERNETES_SCRAPE_CONFIG)["scrape_configs"]
    assert job["authorization"] == {"credentials_file": KUBERNETES_TOKEN_FILE}
    assert "friday-metrics-token" in KUBERNETES_TOKEN_FILE  # the Secret the pods read METRICS_TOKEN from


def _relabel(job: dict[str, Any], target: str) -> dict[str, Any]:
    (rule,) = [rule for rule in job["relabel_configs"] if rule.get("target_label") == target]
    return rule


def _meta_label(kubernetes_label: str) -> str:
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", kubernetes_label)


def test_kubernetes_config_scrapes_every_annotated_pod_under_its_job_name() -> None:
    manifests = Manifests.load()
    config = load(KUBERNETES_SCRAPE_CONFIG)
    assert config["rule_files"] == [RULES.name]
    (job,) = config["scrape_configs"]
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod" and discovery["namespaces"]["names"] == [manifests.namespace]

    # The job label is the pod label app.kubernetes.io/name, which names each Deployment's pods.
    job_source = _relabel(job, "job")["source_labels"]
    assert job_source == [_meta_label("app.kubernetes.io/name")]
    scraped = {
        name: deployment
        for name, deployment in manifests.objects("Deployment").items()
        if annotations(deployment).get("prometheus.io/scrape") == "true"
    }
    assert {pod_labels(deployment)["app.kubernetes.io/name"] for deployment in scraped.values()} == set(JOBS)

    keeps = {rule["source_labels"][0]: rule["regex"] for rule in job["relabel_configs"] if rule.get("action") == "keep"}
    assert keeps["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    assert set(keeps[job_source[0]].split("|")) == set(JOBS)

    # Address and path come from the annotations, which the manifest tests hold to the code's ports.
    address = _relabel(job, "__address__")
    assert address["source_labels"] == ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"]
    assert re.fullmatch(address["regex"], "10.1.2.3:50051;9101")
    assert re.sub(address["regex"], address["replacement"].replace("$", "\\"), "10.1.2.3:50051;9101") == (
        "10.1.2.3:9101"
    )
    assert re.sub(address["regex"], address["replacement"].replace("$", "\\"), "10.1.2.3;8080") == "10.1.2.3:8080"
    assert _relabel(job, "__metrics_path__")["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_path"]


@pytest.mark.skipif(PROMETHEUS is None, reason=f"prometheus not installed: {INSTALL_HINT}")
def test_kubernetes_relabelling_on_a_real_prometheus_gives_one_target_per_pod_on_its_metrics_port(
    tmp_path: Path,
) -> None:
    # Debian's Prometheus has no Kubernetes discovery, so the pods arrive through file
    # discovery carrying the labels Kubernetes pod discovery gives them: one target
    # per container port, with the pod's labels and annotations as __meta_ labels.
    manifests = Manifests.load()
    pods: list[dict[str, Any]] = []
    expected: dict[str, dict[str, str]] = {}
    for index, (name, deployment) in enumerate(sorted(manifests.objects("Deployment").items()), start=1):
        pod = f"{name}-7d9f-{index}"
        ip = f"192.0.2.{index}"
        meta = {
            "__meta_kubernetes_namespace": manifests.namespace,
            "__meta_kubernetes_pod_name": pod,
            **{_meta_label(key): value for key, value in pod_labels(deployment).items()},
            **{
                "__meta_kubernetes_pod_annotation_" + re.sub(r"[^A-Za-z0-9_]", "_", key): value
                for key, value in annotations(deployment).items()
            },
        }
        for port in only_container(deployment).get("ports", []):
            pods.append({"targets": [f"{ip}:{port['containerPort']}"], "labels": meta})
        scrape = annotations(deployment)
        if scrape.get("prometheus.io/scrape") == "true":
            expected[pod] = {
                "job": pod_labels(deployment)["app.kubernetes.io/name"],
                "url": f"http://{ip}:{scrape['prometheus.io/port']}{scrape['prometheus.io/path']}",
            }
    (tmp_path / "pods.json").write_text(json.dumps(pods))

    config = load(KUBERNETES_SCRAPE_CONFIG)
    config.pop("rule_files")
    config["global"]["scrape_interval"] = "1h"  # the addresses are not reachable; only the targets matter
    for job in config["scrape_configs"]:
        job.pop("kubernetes_sd_configs")
        job["file_sd_configs"] = [{"files": [str(tmp_path / "pods.json")]}]

    with prometheus_server(config, tmp_path) as prometheus:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not (active := prometheus.get("/api/v1/targets", state="active")["data"]["activeTargets"]):
            assert time.monotonic() < deadline, "no targets discovered"
            time.sleep(0.2)
    found = {
        target["labels"]["instance"]: {"job": target["labels"]["job"], "url": target["scrapeUrl"]} for target in active
    }
    assert len(active) == len(found), f"more than one target per pod: {active}"
    assert found == expected
    assert {target["labels"]["namespace"] for target in active} == {manifests.namespace}
