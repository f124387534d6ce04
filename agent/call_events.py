"""The `persona_applied` event: one structured log line and one item in the
session's history, so a transcript (LiveKit's session report carries
`session.history`) shows which persona spoke and why.

The history item is a `system` message marked in `extra`; it is added to the
session's history only, never to the agent's LLM context, so it costs no tokens
and cannot steer the model.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from livekit.agents import llm

from agent.persona_plan import PersonaPlan

logger = logging.getLogger(__name__)

PERSONA_APPLIED = "persona_applied"
# Key in ChatMessage.extra that marks Friday's own transcript events.
EXTRA_KEY = "friday_event"


def record_persona_applied(plan: PersonaPlan, history: llm.ChatContext) -> llm.ChatMessage:
    return record_friday_event(plan.applied_event(), history)


def record_friday_event(event: dict[str, str], history: llm.ChatContext) -> llm.ChatMessage:
    """Logs `event` (its `event` key names it) and adds it to the session's history."""
    name = event["event"]
    logger.info(name, extra=event)
    message = llm.ChatMessage(
        role="system",
        content=[f"{name} {json.dumps(event, sort_keys=True)}"],
        extra={EXTRA_KEY: event},
        created_at=time.time(),
    )
    history.insert(message)
    return message


def friday_events(history: llm.ChatContext, name: str = PERSONA_APPLIED) -> list[dict[str, Any]]:
    """Friday events recorded in a history, oldest first (for transcript readers and tests)."""
    found = []
    for item in history.items:
        event = getattr(item, "extra", {}).get(EXTRA_KEY) if item.type == "message" else None
        if event and event.get("event") == name:
            found.append(event)
    return found
