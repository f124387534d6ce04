"""Stand-ins run as separate processes and are steerable through their /_standin/ control API."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from livekit import api
from livekit.protocol.agent_dispatch import CreateAgentDispatchRequest
from livekit.protocol.sip import ListSIPInboundTrunkRequest

from services.testing.crm import BASE_PATH
from services.testing.process import standin_process

KEY = "subprocess-key"
SECRET = "subprocess-secret-0123456789-0123456789-abc"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_crm_process_serves_file_personas_and_obeys_control(tmp_path: Path) -> None:
    personas = tmp_path / "personas.json"
    personas.write_text(json.dumps({"+14155550123": {"name": "Ada"}}))
    with standin_process("services.testing.crm", "--personas", str(personas), "--latency", "0.01") as crm:
        base = crm.origin + BASE_PATH
        assert _get(f"{base}/%2B14155550123") == (200, b'{"name": "Ada"}')

        crm.control("personas", {"+14155550124": {"name": "Bob"}})
        assert json.loads(_get(f"{base}/+14155550124")[1]) == {"name": "Bob"}

        crm.control("fail_next", {"n": 1, "status": 503})
        assert _get(f"{base}/+14155550123")[0] == 503
        crm.control("response", {"segment": "+14155550123", "status": 200, "body": "{oops"})
        assert _get(f"{base}/+14155550123") == (200, b"{oops")

        state = crm.state()
        assert state["requests"] == {"+14155550123": 3, "+14155550124": 1}
        assert state["total_requests"] == 4
        crm.process.send_signal(signal.SIGTERM)
        assert crm.process.wait(timeout=10) == 0


async def test_livekit_process_works_with_the_sdk_and_exposes_state() -> None:
    with standin_process("services.testing.livekit_api", "--api-key", KEY, "--api-secret", SECRET) as lk:
        async with api.LiveKitAPI(lk.origin, KEY, SECRET) as lkapi:
            created = await lkapi.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(agent_name="a", room="r1"))
            lk.control("fail_next", {"n": 1, "status": 503, "code": "unavailable"})
            with pytest.raises(api.TwirpError) as excinfo:
                await lkapi.agent_dispatch.list_dispatch("r1")
            assert excinfo.value.status == 503
        async with api.LiveKitAPI(lk.origin, KEY, "wrong-secret-0123456789-0123456789-abcd") as bad:
            with pytest.raises(api.TwirpError) as excinfo:
                await bad.agent_dispatch.list_dispatch("r1")
            assert excinfo.value.status == 401

        state = lk.state()
        assert state["create_count"] == 1
        assert [d["id"] for d in state["dispatches"]["r1"]] == [created.id]
        assert [(c["method"], c["status"]) for c in state["calls"]] == [
            ("CreateDispatch", 200),
            ("ListDispatch", 503),
            ("ListDispatch", 401),
        ]
        lk.control("reset")
        assert lk.state()["dispatches"] == {}


def test_unknown_control_endpoint_is_404() -> None:
    with standin_process("services.testing.livekit_api") as lk:
        assert _get(f"{lk.origin}/_standin/nope")[0] == 404


async def test_livekit_process_takes_workers_rooms_and_trunks_over_the_control_api() -> None:
    with standin_process("services.testing.livekit_api", "--api-key", KEY, "--api-secret", SECRET) as lk:
        worker_id = lk.control("workers", {"agent_name": "friday-ai-agent", "accept_delay": 0.05})["worker_id"]
        lk.control("workers", {"agent_name": "friday-ai-agent", "outcome": "full"})
        assert lk.control("rooms", {"names": ["call-1", "call-2"]}) == {"rooms": ["call-1", "call-2"]}
        lk.control("sip_inbound_trunks", {"trunk_id": "ST_1", "numbers": ["+14155550100"]})
        async with api.LiveKitAPI(lk.origin, KEY, SECRET) as lkapi:
            # call-1 exists already: ListDispatch answers at once with its implicit dispatch.
            assert [d.agent_name for d in await lkapi.agent_dispatch.list_dispatch("call-1")] == [""]
            created = await lkapi.agent_dispatch.create_dispatch(
                CreateAgentDispatchRequest(agent_name="friday-ai-agent", room="call-1")
            )
            trunks = await lkapi.sip.list_inbound_trunk(ListSIPInboundTrunkRequest(numbers=["14155550100"]))
        assert [t.sip_trunk_id for t in trunks.items] == ["ST_1"]
        lk.control("settle")

        state = lk.state()
        (job,) = state["jobs"]
        assert (job["dispatch_id"], job["worker_id"], job["status"]) == (created.id, worker_id, "JS_RUNNING")
        assert job["participant_identity"] == "agent-" + job["id"]
        (listed,) = state["dispatches"]["call-1"]
        assert listed["state"]["jobs"][0]["id"] == job["id"]
        assert state["rooms"]["call-1"]["agents"] == [job["participant_identity"]]
        assert state["rooms"]["call-2"]["implicit_dispatch"].startswith("AD_")
        assert sorted(w["outcome"] for w in state["workers"]) == ["full", "runs"]
        assert state["sip_inbound_trunks"][0]["numbers"] == ["+14155550100"]

        assert lk.control("rooms/delete", {"name": "call-1"}) == {"deleted": True}
        assert lk.state()["jobs"][0]["status"] == "JS_FAILED"  # its agent left the closed room
        assert lk.control("workers/remove", {"worker_id": worker_id}) == {"ok": True}
        assert len(lk.control("workers/absent", {"agent_name": "friday-ai-agent"})["removed"]) == 1
        assert lk.state()["workers"] == []

        lk.control("reset_calls")
        after = lk.state()
        assert (after["calls"], after["create_count"]) == ([], 0)
        assert "call-2" in after["rooms"]  # only the call log was reset
        lk.control("reset")
        assert lk.state()["rooms"] == {}
