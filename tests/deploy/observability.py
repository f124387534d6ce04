"""What the dashboard and alert tests share: where deploy/grafana and
deploy/prometheus keep their files, every PromQL expression in them, the metric
names an expression reads, the series our code exports (from the metrics
registries themselves), and the promtool / prometheus binaries."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

import services

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES = PROMETHEUS_DIR / "friday-alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "friday-alerts.test.yml"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
KUBERNETES_SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus-kubernetes.yml"
DASHBOARD = DEPLOY / "grafana" / "friday-mesh.json"

# The scrape jobs the rules and the dashboard select on.
JOBS = ("friday-persona", "friday-dispatcher", "friday-gateway", "friday-calls")

# What CallHistoryService (services/calls/) exports: friday_calls_total{outcome},
# friday_call_answer_seconds (histogram), friday_calls_in_progress (gauge); and the
# gateway's count of reports it dropped, friday_call_events_dropped_total{reason}.
CALL_HISTORY_SERIES = frozenset(
    {
        "friday_calls_total",
        "friday_call_answer_seconds_bucket",
        "friday_call_answer_seconds_count",
        "friday_call_answer_seconds_sum",
        "friday_calls_in_progress",
        "friday_call_events_dropped_total",
    }
)
# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = frozenset({"up"})

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}

INSTALL_HINT = "apt-get install -y prometheus (Debian's package ships the server and promtool)"


def binary(name: str) -> str | None:
    return shutil.which(name)


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the dashboard or the rules, and where it lives."""

    key: str  # "panel <title> [<refId>]" or "alert <name>"
    expr: str


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def alert_queries() -> list[Query]:
    return [Query(f"alert {rule['alert']}", str(rule["expr"])) for rule in alert_rules()]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel that shows data (rows, nested in rows or not, are only headings)."""
    found: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def dashboard_queries() -> list[Query]:
    return [
        Query(f"panel {panel['title']} [{target['refId']}]", target["expr"])
        for panel in dashboard_panels()
        for target in panel["targets"]
    ]


# Grafana's interval variables, as a query over the recent past would see them.
def as_promql(expr: str, window: str) -> str:
    """A dashboard expression with Grafana's variables filled in, ready for Prometheus."""
    text = expr.replace("$__rate_interval", window).replace("$__range", window).replace("$__interval", window)
    if "$" in text:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return text


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: every bare identifier that is not
    a function, an operator keyword, a label (inside {} or a by/on clause) or part of
    a number or duration."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for match in _WORD.finditer(text):
        word = match.group()
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # 1e3, 0.5, 5m
            continue
        if text[match.end() :].lstrip().startswith("("):  # a function or aggregation
            continue
        if word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def exported_series() -> dict[str, frozenset[str]]:
    """Every series name our metrics classes register, with the labels it carries:
    each `services.<pkg>.metrics` module's *Metrics classes, built on a fresh
    registry. prometheus_client lists a labelled metric's series only once it has a
    child, so the names and label names come from the registry's collectors."""
    series: dict[str, frozenset[str]] = {}
    for package in pkgutil.iter_modules(services.__path__):
        try:
            module = importlib.import_module(f"services.{package.name}.metrics")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{package.name}.metrics":
                raise
            continue
        classes: list[tuple[str, Any]] = inspect.getmembers(module, inspect.isclass)
        for _, cls in classes:
            if cls.__module__ != module.__name__ or not cls.__name__.endswith("Metrics"):
                continue
            registry = CollectorRegistry()
            takes_registry = "registry" in inspect.signature(cls).parameters
            built = cls(registry) if takes_registry else cls()
            registry = registry if takes_registry else built.registry
            for collector, names in registry._collector_to_names.items():
                labels = frozenset(getattr(collector, "_labelnames", ()))
                for name in names:
                    series[name] = labels | {"le"} if name.endswith("_bucket") else labels
    return series


# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
CALL_HISTORY_LABELS = {
    "friday_calls_total": frozenset({"outcome"}),
    "friday_call_answer_seconds_bucket": frozenset({"le"}),
    "friday_call_answer_seconds_count": frozenset(),
    "friday_call_answer_seconds_sum": frozenset(),
    "friday_calls_in_progress": frozenset(),
    "friday_call_events_dropped_total": frozenset({"reason"}),
}
assert set(CALL_HISTORY_LABELS) == CALL_HISTORY_SERIES

_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*[\"'`]")
_GROUPING_LABELS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names its {} matchers use) for every selector with matchers."""
    return [(match.group(1), set(_MATCHER.findall(match.group(2)))) for match in _SELECTOR.finditer(expr)]


def grouping_labels(expr: str) -> set[str]:
    """Label names in by/without/on/ignoring/group_* clauses."""
    return {
        label.strip()
        for match in _GROUPING_LABELS.finditer(expr)
        for label in match.group(1).split(",")
        if label.strip()
    }
