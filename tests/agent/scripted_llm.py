"""A scripted LLM for driving an AgentSession without a model or network.

livekit-agents ships no fake LLM; this is the smallest real `llm.LLM`: each
`chat()` call pops the next scripted reply (text, or a tool call) and records the
chat context it was given, so tests can read the instructions the agent used.
"""

from __future__ import annotations

from typing import Any

from livekit.agents import llm
from livekit.agents.llm import ChatChunk, ChoiceDelta, FunctionToolCall
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

Reply = str | FunctionToolCall


def tool_call(name: str, arguments: str = "{}", call_id: str = "call_1") -> FunctionToolCall:
    return FunctionToolCall(name=name, arguments=arguments, call_id=call_id)


class ScriptedLLM(llm.LLM):
    def __init__(self, replies: list[Reply] | None = None, *, default: str = "Okay.") -> None:
        super().__init__()
        self._replies = list(replies or [])
        self._default = default
        self.requests: list[llm.ChatContext] = []

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[Any] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        **_: Any,
    ) -> llm.LLMStream:
        self.requests.append(chat_ctx.copy())
        reply = self._replies.pop(0) if self._replies else self._default
        return _ScriptedStream(self, reply, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)

    def system_prompt(self, index: int = 0) -> str:
        """The system/instructions text of the index-th request."""
        for item in self.requests[index].items:
            if item.type == "message" and item.role == "system":
                return item.text_content or ""
        return ""


class _ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, reply: Reply, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._reply = reply

    async def _run(self) -> None:
        if isinstance(self._reply, FunctionToolCall):
            delta = ChoiceDelta(role="assistant", tool_calls=[self._reply])
        else:
            delta = ChoiceDelta(role="assistant", content=self._reply)
        self._event_ch.send_nowait(ChatChunk(id="scripted", delta=delta))
