"""The harness's own pieces: percentiles, the pre-signed webhooks, the option list."""

from __future__ import annotations

from bench import measure, options, scenarios
from bench.mesh import API_KEY, API_SECRET
from bench.stats import percentile, summarize_ms
from bench.webhooks import Target, WebhookFactory
from services.webhook_gateway.events import SipCall, classify
from services.webhook_gateway.verification import WebhookVerifier


def test_nearest_rank_percentiles_are_real_samples() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    summary = summarize_ms([0.001, 0.002, 0.003])
    assert summary["count"] == 3
    assert summary["p50"] == 2.0
    assert summary["max"] == 3.0


def test_presigned_webhooks_verify_and_are_distinct_calls() -> None:
    factory = WebhookFactory(Target("127.0.0.1", 8080), API_KEY, API_SECRET, tag="t0001")
    verifier = WebhookVerifier(API_KEY, API_SECRET)
    calls = []
    for raw in (factory.request("+14155551000"), factory.request("+14155551000")):
        head, body = raw.split(b"\r\n\r\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        assert int(headers["Content-Length"]) == len(body)
        assert headers["Content-Type"] == "application/webhook+json"
        call = classify(verifier.verify(body, headers["Authorization"]))
        assert isinstance(call, SipCall)
        assert call.dialed_number == "+14155551000"
        calls.append(call)
    first, second = calls
    assert first.room != second.room
    assert first.event_id != second.event_id
    assert first.sip_call_id != second.sip_call_id


def test_every_scenario_can_be_chosen_by_name() -> None:
    assert options.SCENARIOS == tuple(f.__name__ for f in scenarios.ALL)


def test_target_url_parsing() -> None:
    assert Target.from_url("http://127.0.0.1:8080") == Target("127.0.0.1", 8080)


def test_the_injected_latency_counts_list_rooms_beside_list_dispatch_once() -> None:
    # A cold call as the stand-ins saw it: one CRM fetch, ListRooms beside the first
    # ListDispatch, CreateDispatch, then the job confirmation's ListDispatch.
    row = {
        "ok": 10,
        "error_count": 0,
        "params": {"mode": "sequential"},
        "latency_ms": summarize_ms([0.175] * 10),
        "standins": {
            "livekit_calls": {"ListRooms": 10, "ListDispatch": 20, "CreateDispatch": 10},
            "crm_requests_for_numbers": 10,
        },
    }
    injected = measure._injected(row, crm_latency=0.08, livekit_latency=0.03)
    assert (injected["livekit_calls_per_call"], injected["livekit_calls_on_path_per_call"]) == (4.0, 3.0)
    assert injected["injected_ms"] == 170.0  # 80 + 3 × 30 on the path, not 4 × 30
    assert injected["overhead_ms"]["p50"] == 5.0
