"""Every metric the Grafana dashboard and the alerting rules read is one our code
exports (read from the metrics registries, not from a copy of the names), or one
of the CallHistory service's announced names. A renamed metric fails here rather
than leaving a panel blank and an alert silent."""

from __future__ import annotations

import pytest

from tests.deploy.observability import (
    CALL_HISTORY_LABELS,
    CALL_HISTORY_SERIES,
    PROMETHEUS_SERIES,
    TARGET_LABELS,
    Query,
    alert_queries,
    as_promql,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    exported_series,
    grouping_labels,
    metric_names,
    selector_labels,
)

EXPORTED = exported_series()
QUERIES = [*alert_queries(), *dashboard_queries()]


def promql(query: Query) -> str:
    return as_promql(query.expr, "5m") if query.key.startswith("panel") else query.expr


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, method) (rate(a_seconds_bucket{job="x", le!="1e3"}[5m] offset 1m)))'
        ' / on (job) group_left (instance) sum without (code) (b_total) > bool 1e3 or absent(up{job="y"})'
        " unless c_gauge - 0.5 and max_over_time(d:recorded[1h:5m])"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "up", "c_gauge", "d:recorded"}


def test_the_registries_are_read() -> None:
    # One name from each metrics module, so an import that silently found nothing fails.
    assert {
        "friday_gateway_webhooks_total",
        "persona_crm_errors_total",
        "friday_dispatcher_dispatches_total",
        "grpc_server_handling_seconds_bucket",
    } <= EXPORTED.keys()
    assert EXPORTED["friday_gateway_webhooks_total"] == {"event", "outcome"}
    assert EXPORTED["persona_crm_request_seconds_bucket"] == {"outcome", "le"}


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.key)
def test_every_metric_read_is_exported_or_announced_by_call_history(query: Query) -> None:
    names = metric_names(promql(query))
    assert names, f"{query.key}: reads no metric"
    unknown = names - EXPORTED.keys() - CALL_HISTORY_SERIES - PROMETHEUS_SERIES
    assert not unknown, f"{query.key} reads metrics nothing exports: {sorted(unknown)}"


def test_label_readers_are_found_in_promql() -> None:
    expr = 'sum by (le, method) (rate(a_bucket{job="x", code!~"OK|1=2"}[5m])) / on (job) b{outcome="y"}'
    assert selector_labels(expr) == [("a_bucket", {"job", "code"}), ("b", {"outcome"})]
    assert grouping_labels(expr) == {"le", "method", "job"}


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.key)
def test_every_label_read_is_one_the_metric_carries(query: Query) -> None:
    # A renamed label leaves a panel blank as surely as a renamed metric.
    labels = {**CALL_HISTORY_LABELS, **EXPORTED, **{name: frozenset() for name in PROMETHEUS_SERIES}}
    expr = promql(query)
    for metric, matched in selector_labels(expr):
        assert matched <= labels[metric] | TARGET_LABELS, f"{query.key}: {metric} has no {matched - labels[metric]}"
    carried = set(TARGET_LABELS).union(*(labels[metric] for metric in metric_names(expr)))
    assert grouping_labels(expr) <= carried, f"{query.key}: no metric carries {grouping_labels(expr) - carried}"


def test_every_metric_family_of_the_call_path_is_on_the_dashboard() -> None:
    # The dashboard is where an operator looks first: every service's own metrics
    # (not the client library's _created) should appear somewhere on it.
    shown = set().union(*(metric_names(promql(query)) for query in dashboard_queries()))
    wanted = {
        "friday_gateway_webhooks_total",
        "friday_gateway_dispatch_latency_seconds_bucket",
        "friday_gateway_persona_sources_total",
        "friday_gateway_default_personas_total",
        "persona_crm_errors_total",
        "persona_crm_request_seconds_bucket",
        "persona_default_served_total",
        "friday_dispatcher_dispatches_total",
        "friday_dispatcher_no_agent_worker_total",
        *CALL_HISTORY_SERIES - {"friday_call_answer_seconds_count", "friday_call_answer_seconds_sum"},
    }
    assert wanted <= shown, f"not on the dashboard: {sorted(wanted - shown)}"


def test_dashboard_is_importable_grafana_json() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    nested = [panel for row in board["panels"] if row["type"] == "row" for panel in row.get("panels", [])]
    ids = [panel["id"] for panel in [*board["panels"], *nested]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["description"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
