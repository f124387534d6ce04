"""`friday persona get … | head -5`: a reader that leaves ends the command quietly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from services.persona.config import PersonaConfig
from tests.persona.conftest import StartPersona

FRIDAY = str(Path(sys.executable).with_name("friday"))


async def test_a_closed_pipe_ends_quietly(start_persona: StartPersona) -> None:
    running = await start_persona(PersonaConfig())  # the bundled example personas
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before friday writes
    try:
        get = await asyncio.create_subprocess_exec(
            FRIDAY, "persona", "get", "+918655701159", "--target", running.server.address,
            stdout=write_end, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(get.communicate(), 30)
    finally:
        os.close(write_end)
    assert "Traceback" not in err.decode() and "BrokenPipeError" not in err.decode()
    assert get.returncode == 141  # 128 + SIGPIPE, as a Unix tool ends
