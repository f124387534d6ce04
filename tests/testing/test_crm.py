"""The CRM stand-in behaves like a plain REST persona API and its fault knobs really bite."""

from __future__ import annotations

import httpx
import pytest

from services.testing.crm import CrmStandIn

NUMBER = "+14155550123"
PERSONA = {"id": "p-1", "name": "Ada", "instructions": "Be kind."}


async def test_serves_persona_json_for_exact_segment(crm: CrmStandIn) -> None:
    crm.set_persona(NUMBER, PERSONA)
    async with httpx.AsyncClient() as client:
        encoded = await client.get(f"{crm.base_url}/%2B14155550123")
        literal = await client.get(f"{crm.base_url}/{NUMBER}")
    assert encoded.status_code == 200 and literal.status_code == 200
    assert encoded.headers["content-type"].startswith("application/json")
    assert encoded.json() == PERSONA == literal.json()
    assert crm.base_url.startswith("http://127.0.0.1:") and crm.base_url.endswith("/apis/api/public/mobile")


async def test_unknown_segment_and_other_paths_are_json_404(crm: CrmStandIn) -> None:
    crm.set_persona(NUMBER, PERSONA)
    async with httpx.AsyncClient() as client:
        unknown = await client.get(f"{crm.base_url}/+14155559999")
        nested = await client.get(f"{crm.base_url}/{NUMBER}/extra")
        elsewhere = await client.get(f"{crm.origin}/other/{NUMBER}")
    for response in (unknown, nested, elsewhere):
        assert response.status_code == 404
        assert "error" in response.json()


async def test_counts_requests_per_segment_and_logs_raw_path(crm: CrmStandIn) -> None:
    crm.set_persona(NUMBER, PERSONA)
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            await client.get(f"{crm.base_url}/%2B14155550123")
        await client.get(f"{crm.base_url}/404404", headers={"X-Trace": "t-1"})
    assert crm.requests_for(NUMBER) == 3
    assert crm.requests_for("404404") == 1
    assert crm.requests_for("never") == 0
    assert crm.total_requests == 4
    assert crm.request_log[0].method == "GET"
    assert crm.request_log[0].raw_path.endswith("/%2B14155550123")
    assert crm.request_log[-1].headers["X-Trace"] == "t-1"


async def test_fail_next_answers_n_failures_then_recovers(crm: CrmStandIn) -> None:
    crm.set_persona(NUMBER, PERSONA)
    crm.fail_next(2, status=503, body=b'{"error":"down"}')
    async with httpx.AsyncClient() as client:
        statuses = [(await client.get(f"{crm.base_url}/{NUMBER}")).status_code for _ in range(3)]
        again = await client.get(f"{crm.base_url}/{NUMBER}")
    assert statuses == [503, 503, 200]
    assert again.json() == PERSONA
    assert crm.requests_for(NUMBER) == 4  # failed requests still count: the CRM did receive them


async def test_fail_next_applies_to_any_path_with_given_body(crm: CrmStandIn) -> None:
    crm.fail_next(1, status=500, body=b"boom")
    async with httpx.AsyncClient() as client:
        failed = await client.get(f"{crm.base_url}/anything")
        after = await client.get(f"{crm.base_url}/anything")
    assert (failed.status_code, failed.content) == (500, b"boom")
    assert after.status_code == 404


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, b'{"name": "Ada", ', "application/json"),  # truncated JSON
        (200, b"<html>gateway</html>", "text/html"),
        (429, b'{"error":"slow down"}', "application/json"),
        (404, b"", "application/json"),
    ],
)
async def test_set_response_serves_raw_bytes(crm: CrmStandIn, status: int, body: bytes, content_type: str) -> None:
    crm.set_persona(NUMBER, PERSONA)
    crm.set_response(NUMBER, status, body, content_type)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{crm.base_url}/{NUMBER}")
    assert response.status_code == status
    assert response.content == body
    assert response.headers["content-type"] == content_type


async def test_set_persona_replaces_a_raw_override(crm: CrmStandIn) -> None:
    crm.set_response(NUMBER, 500, b"")
    crm.set_persona(NUMBER, PERSONA)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{crm.base_url}/{NUMBER}")
    assert response.status_code == 200


async def test_latency_delays_every_request(crm: CrmStandIn) -> None:
    # Asserts behaviour, not speed: a client whose timeout is far below the injected latency
    # must time out, and the same client succeeds once latency is removed.
    crm.set_persona(NUMBER, PERSONA)
    crm.set_latency(1.0)
    async with httpx.AsyncClient(timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{crm.base_url}/{NUMBER}")
        crm.set_latency(0)
        assert (await client.get(f"{crm.base_url}/{NUMBER}")).status_code == 200


async def test_each_instance_gets_its_own_port() -> None:
    async with CrmStandIn() as a, CrmStandIn() as b:
        assert a.port != b.port and a.port > 0


async def test_set_response_sends_extra_headers_verbatim(crm: CrmStandIn) -> None:
    # A body that claims gzip but is not: the client's decoder must see the raw bytes + header.
    crm.set_response(NUMBER, 200, b"not gzip at all", headers={"Content-Encoding": "gzip", "X-Extra": "1"})
    async with httpx.AsyncClient() as client:
        async with client.stream("GET", f"{crm.base_url}/{NUMBER}") as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
            headers = response.headers
    assert raw == b"not gzip at all"
    assert headers["content-encoding"] == "gzip" and headers["x-extra"] == "1"
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.DecodingError):
            await client.get(f"{crm.base_url}/{NUMBER}")


async def test_control_api_sets_response_headers(crm: CrmStandIn) -> None:
    async with httpx.AsyncClient() as client:
        control = await client.post(
            f"{crm.origin}/_standin/response",
            json={"segment": NUMBER, "status": 200, "body": "x", "headers": {"Content-Encoding": "gzip"}},
        )
        assert control.status_code == 200
        async with client.stream("GET", f"{crm.base_url}/{NUMBER}") as response:
            assert response.headers["content-encoding"] == "gzip"


async def test_fail_share_fails_about_that_share_of_requests_with_a_seeded_sequence(crm: CrmStandIn) -> None:
    crm.set_persona(NUMBER, PERSONA)

    async def statuses(n: int) -> list[int]:
        async with httpx.AsyncClient() as client:
            return [(await client.get(f"{crm.base_url}/{NUMBER}")).status_code for _ in range(n)]

    crm.fail_share(0.5, seed=7)
    first = await statuses(200)
    assert set(first) == {200, 500}
    assert 60 <= first.count(500) <= 140  # a binomial(200, 0.5) is outside this about once in 10^8
    crm.fail_share(0.5, seed=7)
    assert await statuses(200) == first  # same seed, same requests fail
    assert crm.requests_for(NUMBER) == 400  # failed requests still count: the CRM did receive them
    assert crm.state()["fail_share"] == 0.5

    crm.fail_share(0)
    assert await statuses(20) == [200] * 20
    crm.fail_share(1.0)
    assert await statuses(5) == [500] * 5
    crm.reset()
    assert await statuses(5) == [200] * 5


async def test_fail_share_over_the_control_api(crm: CrmStandIn) -> None:
    crm.set_persona(NUMBER, PERSONA)
    async with httpx.AsyncClient() as client:
        control = await client.post(f"{crm.origin}/_standin/fail_share", json={"share": 1.0, "seed": 3})
        assert control.status_code == 200 and control.json()["fail_share"] == 1.0
        failed = await client.get(f"{crm.base_url}/{NUMBER}")
        await client.post(f"{crm.origin}/_standin/fail_share", json={"share": 0})
        recovered = await client.get(f"{crm.base_url}/{NUMBER}")
    assert failed.status_code == 500 and failed.json()["error"] == "internal"
    assert recovered.json() == PERSONA


async def test_a_stopped_stand_in_starts_again_on_the_same_port() -> None:
    crm = CrmStandIn()
    crm.set_persona(NUMBER, PERSONA)
    async with crm:
        base_url = crm.base_url
        await crm.stop()
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{base_url}/{NUMBER}")
            await crm.start()
            assert crm.base_url == base_url
            assert (await client.get(f"{base_url}/{NUMBER}")).json() == PERSONA
