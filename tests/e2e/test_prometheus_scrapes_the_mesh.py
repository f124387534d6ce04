"""A real Prometheus scraping a real mesh: `friday up` as a process against the CRM
and LiveKit stand-ins (processes too), a Prometheus server loading
deploy/prometheus/prometheus.yml (pointed at this run's ports, scraping every
second) and friday-alerts.yml, and signed webhooks through the gateway, some of
them from `friday simulate-call`. The mesh runs with a metrics token, which
Prometheus sends from the credentials file the config names. Then every dashboard panel's and every alert's
expression goes to Prometheus's /api/v1/query: each must parse, and each lands in
exactly one of the sets below, which say what the traffic must show.

The traffic runs twice, with a scrape in between, because Prometheus sees a
counter's label value only from its first scrape: a rate over a series that
appeared with the first phase's traffic shows the second phase's."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.common.livekit_names import DEFAULT_AGENT_NAME
from services.testing import livekit_webhooks as webhooks
from services.testing.crm import BASE_PATH as CRM_BASE_PATH
from services.testing.process import StandInProcess, standin_process
from tests.child_process import REPO_ROOT, ProcessOutput, free_port
from tests.deploy.observability import (
    INSTALL_HINT,
    RULES,
    SCRAPE_CONFIG,
    Query,
    alert_queries,
    alert_rules,
    as_promql,
    dashboard_queries,
)
from tests.deploy.prometheus_server import DEADLINE_SECONDS, PROMETHEUS, Prometheus, prometheus_server

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=f"prometheus not installed: {INSTALL_HINT}")

KEY = "APIpromkey"
SECRET = "prometheus-e2e-secret-of-at-least-thirty-two-bytes"
# Long enough to hold both phases on a slow machine; rates over it see phase 2.
WINDOW = "5m"
UNAUTHORIZED_PER_PHASE = 20
# The mesh's METRICS_TOKEN, written where prometheus.yml's credentials_file points.
METRICS_TOKEN = "prometheus-e2e-metrics-token-0123456789abcdef"

# What the traffic below must light up: a finite value above zero.
LIT = {
    "panel Replicas up [A]",
    "panel Dispatches with no agent worker [A]",
    "panel Webhooks by outcome [A]",
    "panel Dispatch latency [A]",
    "panel Dispatch latency [B]",
    "panel Dispatch latency [C]",
    "panel DispatchAgent outcomes [A]",
    "panel LiveKit request latency p95 [A]",
    "panel LiveKit retries and agent jobs [B]",
    "panel Agent job wait p95 [A]",
    "panel Persona sources [A]",
    "panel Default persona rate [A]",
    "panel Default personas by why [A]",
    "panel Persona cache [A]",
    "panel GetPersona by code [A]",
    "panel CRM errors by kind [A]",
    "panel CRM errors by kind [B]",
    "panel CRM latency [A]",
    "panel CRM latency [B]",
    "panel CRM latency [C]",
    "panel gRPC errors [A]",
    "panel gRPC latency p95 [A]",
    # Per phase: 4 of 9 CRM attempts fail (threshold a quarter), 2 or more of 6
    # dispatched calls get the default (a fifth), 1 of 7 SIP joins finds no worker
    # (a twentieth), 20 webhooks answered 401 (10 in 5 minutes).
    "alert FridayCRMFailing",
    "alert FridayDefaultPersonaRateHigh",
    "alert FridayDispatchFailures",
    "alert FridayNoAgentWorker",
    "alert FridayWebhookUnauthorizedBurst",
    # CallHistoryService, scraped as friday-calls: each phase has a call answered and left
    # talking (in progress), one answered and hung up, and SIP joins no agent ever joins,
    # which its sweep decides as no_agent after CALLS_NO_AGENT_SECONDS.
    "panel Calls in progress [A]",
    "panel No-agent calls [A]",
    "panel Calls by outcome [A]",
    "panel Answer time [A]",
    "panel Answer time [B]",
    "alert FridayNoAgentCalls",
}
# Must return nothing: every replica is up, and the CRM never fails five fetches in a row.
QUIET = {
    "alert FridayReplicaDown",
    "alert FridayNoHealthyReplica",
    "alert FridayCRMBreakerOpen",
    # Every call history replica answers scrapes; agents answer after 1.5 s, under the 3 s line.
    "alert FridayCallHistoryDown",
    "alert FridayAnswerTimeP95High",
}
# Only parsed: what this traffic leaves at zero or never creates (no LiveKit retries,
# no failed jobs, no stale serves, no rate limiting, no Redis, the breaker closed).
PARSED_ONLY = {
    "panel LiveKit retries and agent jobs [A]",
    "panel LiveKit retries and agent jobs [C]",
    "panel Persona cache [B]",
    "panel New-number refusals and Redis errors [A]",
    "panel New-number refusals and Redis errors [B]",
    "panel CRM breaker [A]",
    # The gateway reports to CallHistoryService now and exports this counter from its start;
    # the traffic here drops no call event, so it stays at zero.
    "panel Call events dropped [A]",
}
# A SIP join with no agent is a no_agent call this long after it rang: above
# simulate-call's 1.5 s answer, so its calls count as answered.
NO_AGENT_SECONDS = 4.0
# A decided call is counted (friday_calls_total, the answer-time histogram) once its
# record has not changed this long: a minute in production, a second here.
SETTLE_SECONDS = 1.0


def scrape_config_for(ports: dict[str, int], tmp: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with this run's ports, scraping every second, and
    its credentials file (relative to the config, which prometheus_server writes to `tmp`)
    holding the mesh's metrics token."""
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(SCRAPE_CONFIG.parent / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
        (tmp / job["authorization"]["credentials_file"]).write_text(METRICS_TOKEN + "\n")
    return config


def scrape(url: str) -> httpx.Response:
    return httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)


class Traffic:
    """Webhooks as LiveKit sends them, straight to the gateway (and via `friday simulate-call`)."""

    def __init__(self, gateway: str, crm: StandInProcess, livekit: StandInProcess, env: dict[str, str]) -> None:
        self.gateway = gateway
        self.crm = crm
        self.livekit = livekit
        self.env = env
        self.client = httpx.Client(timeout=30)
        self.rooms = 0

    def call(self, number: str) -> httpx.Response:
        self.rooms += 1
        room = f"prom-{self.rooms}"
        self.livekit.control("rooms", {"name": room})
        event = webhooks.sip_participant_joined(room=room, dialed_number=number, caller_number="+14155550199")
        body, headers = webhooks.signed_request(event, KEY, SECRET)
        return self.client.post(f"{self.gateway}/livekit-webhook", content=body, headers=headers)

    def dispatched(self, number: str) -> dict[str, Any]:
        response = self.call(number)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["status"] == "dispatched", answer
        return answer

    def phase(self, crm_number: str, unknown: tuple[str, str], failing: tuple[str, str], known: str) -> None:
        self.dispatched(crm_number)  # from the CRM, or the default if a busy machine made it too slow
        for number in unknown:  # not in the CRM: a 404, and the default persona
            assert self.dispatched(number)["persona_source"] == "PERSONA_SOURCE_DEFAULT"
        for number in failing:  # two 500s from the CRM on a number it has
            self.crm.control("fail_next", {"n": 2, "status": 500})
            self.dispatched(number)
            self.crm.control("reset")  # the retries may have run out of time before using both
        # No worker registered under the agent name: the dispatch is withdrawn.
        self.livekit.control("workers/absent", {"agent_name": DEFAULT_AGENT_NAME})
        response = self.call(known)
        assert response.status_code >= 500 and response.json()["status"] == "dispatch_failed", response.text
        self.livekit.control("workers", {"agent_name": DEFAULT_AGENT_NAME})
        # Signed with a secret the gateway does not hold (a wrong key, or a skewed clock: also 401).
        for _ in range(UNAUTHORIZED_PER_PHASE):
            event = webhooks.sip_participant_joined(room="prom-forged", dialed_number=known)
            body, headers = webhooks.signed_request(event, KEY, SECRET + "-wrong")
            response = self.client.post(f"{self.gateway}/livekit-webhook", content=body, headers=headers)
            assert response.status_code == 401, response.text
        self.simulate_call(known)  # answered, still talking
        self.simulate_call(known, "--hangup", "--talk-seconds", "12")  # answered and ended

    def simulate_call(self, number: str, *more: str) -> None:
        self.rooms += 1
        result = subprocess.run(
            [
                sys.executable, "-m", "services.cli", "simulate-call", "--to", number,
                "--room", f"prom-{self.rooms}", "--gateway", self.gateway, "--agent-join", *more,
            ],
            cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "dispatched AD_" in result.stdout and "agent join: HTTP 200" in result.stdout, result.stdout


def wait_for_counted_calls(metrics_url: str) -> None:
    """Until CallHistoryService has counted a no_agent call and an answered one: its sweep
    decides the unanswered SIP joins NO_AGENT_SECONDS after they rang and counts calls
    SETTLE_SECONDS after their last change, on its own schedule; a deadline, not a sleep."""
    wanted = ('friday_calls_total{outcome="no_agent"}', "friday_call_answer_seconds_count")
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        text = scrape(metrics_url).text
        values = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"
        }
        if all(values.get(name, 0) > 0 for name in wanted):
            return
        assert time.monotonic() < deadline, f"CallHistoryService counted no {wanted}: {values}"
        time.sleep(0.5)


def test_every_dashboard_and_alert_expression_runs_on_a_real_prometheus_scraping_the_mesh() -> None:
    queries = [*dashboard_queries(), *alert_queries()]
    keys = [query.key for query in queries]
    sets = (LIT, QUIET, PARSED_ONLY)
    assert len(keys) == len(set(keys)), "two expressions with one key"
    assert sorted(keys) == sorted(key for group in sets for key in group), "every expression in exactly one set"

    crm_personas = {
        f"86557011{n:02d}": {"persona_id": f"crm-{n}", "persona_name": f"CRM persona {n}", "personality": "Hi."}
        for n in range(60, 70)
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "crm.json").write_text(json.dumps(crm_personas))
        with (
            standin_process("services.testing.crm", "--personas", str(tmp / "crm.json")) as crm,
            standin_process("services.testing.livekit_api", "--api-key", KEY, "--api-secret", SECRET) as livekit,
        ):
            livekit.control("workers", {"agent_name": DEFAULT_AGENT_NAME})
            ports = {
                name: free_port() for name in ("friday-persona", "friday-dispatcher", "friday-gateway", "friday-calls")
            }
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO_ROOT),
                "LIVEKIT_URL": livekit.origin,
                "LIVEKIT_API_KEY": KEY,
                "LIVEKIT_API_SECRET": SECRET,
                "PERSONA_API_BASE": crm.origin + CRM_BASE_PATH,
                "CALLS_NO_AGENT_SECONDS": str(NO_AGENT_SECONDS),
                "CALLS_SWEEP_INTERVAL_SECONDS": "0.5",
                "CALLS_SETTLE_SECONDS": str(SETTLE_SECONDS),
                "METRICS_TOKEN": METRICS_TOKEN,
            }
            for name in ("REDIS_URL", "PERSONA_FILE", "DISPATCHER_TOKEN", "LIVEKIT_WEBHOOK_API_KEY"):
                env.pop(name, None)
            env.pop("LIVEKIT_WEBHOOK_API_SECRET", None)
            up = subprocess.Popen(
                [
                    sys.executable, "-m", "services.cli", "up",
                    "--persona-port", str(free_port()),
                    "--dispatcher-port", str(free_port()),
                    "--gateway-port", str(ports["friday-gateway"]),
                    "--persona-metrics-port", str(ports["friday-persona"]),
                    "--dispatcher-metrics-port", str(ports["friday-dispatcher"]),
                    "--calls-port", str(free_port()),
                    "--calls-metrics-port", str(ports["friday-calls"]),
                    "--calls-database-url", f"sqlite:///{tmp / 'calls.sqlite3'}",
                ],
                cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            output = ProcessOutput(up)
            try:
                output.wait_for("the mesh is ready", timeout=DEADLINE_SECONDS)
                for port in ports.values():  # every /metrics wants the token: Prometheus's `up` needs it
                    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 401, port
                    assert scrape(f"http://127.0.0.1:{port}/metrics").status_code == 200, port
                with prometheus_server(scrape_config_for(ports, tmp), tmp) as prometheus:
                    gateway = f"http://127.0.0.1:{ports['friday-gateway']}"
                    traffic = Traffic(gateway, crm, livekit, env)
                    numbers = [f"+91{number}" for number in crm_personas]
                    known = numbers[0]
                    prometheus.scraped_everything_after(time.time())
                    traffic.phase(known, ("+918655701201", "+918655701202"), (numbers[1], numbers[2]), known)
                    prometheus.scraped_everything_after(time.time())
                    traffic.phase(numbers[3], ("+918655701203", "+918655701204"), (numbers[4], numbers[5]), known)
                    wait_for_counted_calls(f"http://127.0.0.1:{ports['friday-calls']}/metrics")
                    at = prometheus.scraped_everything_after(time.time())
                    check_rules_loaded(prometheus)
                    results = {query.key: evaluate(prometheus, query, at) for query in queries}
            finally:
                up.send_signal(signal.SIGINT)
                up.wait(timeout=60)

    unparsed = {key: result for key, result in results.items() if isinstance(result, str)}
    assert not unparsed, f"Prometheus refused: {unparsed}"
    values = {key: result for key, result in results.items() if not isinstance(result, str)}
    dark = {key: values[key] for key in LIT if not any(value > 0 for value in values[key])}
    assert not dark, f"the traffic should have lit these up: {dark}"
    noisy = {key: values[key] for key in QUIET if values[key]}
    assert not noisy, f"these should have returned nothing: {noisy}"


def evaluate(prometheus: Prometheus, query: Query, at: float) -> list[float] | str:
    """The finite values an expression returns at `at`, or Prometheus's error."""
    expr = as_promql(query.expr, WINDOW) if query.key.startswith("panel") else query.expr
    answer = prometheus.query(expr, at)
    if answer["status"] != "success":
        return f"{answer.get('errorType')}: {answer.get('error')}"
    values = [float(sample["value"][1]) for sample in answer["data"]["result"]]
    return [value for value in values if math.isfinite(value)]


def check_rules_loaded(prometheus: Prometheus) -> None:
    """Prometheus loaded every alert of friday-alerts.yml and evaluates each without error."""
    wanted = {rule["alert"] for rule in alert_rules()}
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        answer = prometheus.get("/api/v1/rules", type="alert")
        rules = {rule["name"]: rule for group in answer["data"]["groups"] for rule in group["rules"]}
        assert set(rules) == wanted, f"{RULES.name} loaded as {sorted(rules)}"
        if all(rule["health"] == "ok" for rule in rules.values()):
            return
        broken = {name: rule.get("lastError") for name, rule in rules.items() if rule["health"] == "err"}
        assert not broken, broken
        assert time.monotonic() < deadline, {name: rule["health"] for name, rule in rules.items()}
        time.sleep(0.5)
