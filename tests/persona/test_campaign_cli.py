"""`friday persona check FILE` and `friday persona get --caller … --at …` as a user
runs them: real processes, a real PersonaService serving the bundled example file
(which holds a campaign at +14155550142)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from services.persona.config import PersonaConfig
from tests.persona.conftest import StartPersona

FRIDAY = str(Path(sys.executable).with_name("friday"))
EXAMPLE = Path(__file__).parents[2] / "services" / "persona" / "personas.example.json"


async def friday(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        FRIDAY, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_check_reports_every_entry_of_the_example_file() -> None:
    code, out, err = await friday("persona", "check", str(EXAMPLE))
    assert code == 0, err
    assert "+14155550142  campaign sunrise-bakery" in out and "caller match" in out
    assert "+918655701159  persona xeny-reception  version sha256:" in out


async def test_check_names_every_problem_and_exits_1(tmp_path: Path) -> None:
    document = json.loads(EXAMPLE.read_text())
    campaign = document["personas"]["+14155550142"]["campaign"]
    campaign["schedule"]["weekly"]["mon"] = ["09:00-12:00", "11:00-13:00"]
    document["personas"]["+14155550100"]["personality"] = {"not": "text"}
    bad = tmp_path / "personas.json"
    bad.write_text(json.dumps(document))
    code, out, err = await friday("persona", "check", str(bad))
    assert code == 1
    assert "+14155550142: schedule mon: intervals overlap" in err
    assert "+14155550100: field 'personality' must be text" in err
    assert "+918655701159  persona" in out  # the good entries are still listed
    code, _, err = await friday("persona", "check", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err and "Traceback" not in err


async def test_get_shows_what_a_caller_would_get_at_a_given_time(start_persona: StartPersona) -> None:
    running = await start_persona(PersonaConfig())
    target = ("--target", running.server.address)
    # Wednesday 2 December 2026, 10:00 in San Francisco (18:00 UTC): open.
    code, out, err = await friday("persona", "get", "+14155550142", "--caller", "+525512345678",
                                  "--at", "2026-12-02T18:00Z", *target)  # fmt: skip
    assert code == 0, err
    reply = json.loads(out)
    assert reply["persona"]["persona_id"] == "sunrise-es"
    assert reply["selection"]["rule"] == "SELECTION_RULE_CALLER_MATCH"
    # Christmas Day: closed all day, whoever calls.
    code, out, err = await friday("persona", "get", "+14155550142", "--caller", "+14155550199",
                                  "--at", "2026-12-25T18:00Z", *target)  # fmt: skip
    reply = json.loads(out)
    assert reply["action"]["kind"] == "CALL_ACTION_KIND_REJECT" and "closed right now" in reply["action"]["message"]
    code, _, err = await friday("persona", "get", "+14155550142", "--at", "tomorrow", *target)
    assert code == 2 and "not an ISO 8601 time" in err
    code, _, err = await friday("persona", "get", "+14155550142", "--at", "2026-12-25T10:00", *target)
    assert code == 2 and "no UTC offset" in err
