"""Ending the call for the caller, not just for the agent.

An agent that merely leaves the room leaves the SIP caller in a silent room.
Deleting the room disconnects every participant, SIP included — LiveKit's SIP
service then sends BYE — and is what livekit-agents itself does in its
EndCallTool. It runs as a job shutdown callback so it completes before the job
process exits.
"""

from __future__ import annotations

import logging

from livekit.agents import AgentSession, get_job_context

logger = logging.getLogger(__name__)

HANGUP_REASON = "agent ended the call"


def hang_up(session: AgentSession, *, trace_id: str = "") -> None:
    job_ctx = get_job_context(required=False)
    logger.info("hanging up the call", extra={"trace_id": trace_id, "reason": HANGUP_REASON})
    session.shutdown(drain=True)
    if job_ctx is None:
        return

    async def _delete_room() -> None:
        await job_ctx.delete_room()

    job_ctx.add_shutdown_callback(_delete_room)
    job_ctx.shutdown(reason=HANGUP_REASON)
