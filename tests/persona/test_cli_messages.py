"""What `friday persona get|invalidate` tells its user when the answer is not a persona:
the `friday` process against a real PersonaService serving the bundled example personas."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from services.persona.config import PersonaConfig
from tests.persona.conftest import StartPersona

FRIDAY = str(Path(sys.executable).with_name("friday"))


async def _friday(*args: str, hash_seed: str = "0") -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONA_")} | {"PYTHONHASHSEED": hash_seed}
    process = await asyncio.create_subprocess_exec(
        FRIDAY, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_number_that_is_too_short_is_refused_in_our_words_with_a_valid_example(
    start_persona: StartPersona,
) -> None:
    running = await start_persona(PersonaConfig())
    code, out, err = await _friday("persona", "get", "+1", "--target", running.server.address)
    assert code == 2 and out == ""
    error = json.loads(err)["error"]
    assert error["code"] == "INVALID_ARGUMENT" and error["reason"] == "INVALID_PHONE_NUMBER"
    assert error["message"].startswith("'+1' has 1 digit, too few for a phone number")
    assert "e.g. +918655701159" in error["message"]
    assert "did not seem" not in error["message"]  # phonenumbers' own wording stays out


async def test_error_json_has_one_key_order_whatever_the_hash_seed(start_persona: StartPersona) -> None:
    running = await start_persona(PersonaConfig())
    # Under these two seeds a protobuf map iterates ErrorInfo's metadata in opposite orders.
    first = await _friday("persona", "get", "+1", "--target", running.server.address, hash_seed="0")
    second = await _friday("persona", "get", "+1", "--target", running.server.address, hash_seed="4")
    assert first == second
    error = json.loads(first[2])["error"]
    assert list(error) == ["code", "message", "reason", "target", "metadata"]
    assert list(error["metadata"]) == ["dialed_number", "normalized_number"]


async def test_invalidate_against_the_persona_file_says_there_is_no_cache_to_drop(
    start_persona: StartPersona,
) -> None:
    running = await start_persona(PersonaConfig())
    code, out, err = await _friday("persona", "invalidate", "08655701159", "--target", running.server.address)
    assert code == 0, err
    assert json.loads(out) == {
        "normalized_number": "+918655701159", "removed": False, "source_cacheable": False, "refetched": False,
        "version": "",
    }  # fmt: skip
    assert "serves a persona file" in err and "restart the service" in err
