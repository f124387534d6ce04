"""Which environment variables each workload's code actually reads, found from
the code itself so a renamed setting shows up as a stale manifest:

- the `from_env` readers (every one takes a Mapping and reads it through
  services.common.env.Environment) and `log_level_from_env` are run against a
  recording Mapping that answers "unset" to everything and remembers each name
  asked for;
- modules that read the process environment where they stand (the CLI entry
  points through `Environment()`, livekit-agents' worker through `os.environ.get`)
  are scanned for string literals passed to a reader method or a `get(...)` call.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


class RecordingEnv(Mapping[str, str]):
    """An empty environment that records every variable looked up in it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


# `Mapping.get` and the services.common.env.Environment methods that take a variable name.
READ_CALLS = frozenset({"get", "optional", "text", "integer", "number", "flag", "choice", "enum"})


def names_passed_to_get(source: str) -> set[str]:
    """Upper-case string literals (or tuples of them) that are the first argument of a
    `get(...)` or Environment reader call."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if called not in READ_CALLS:
            continue
        first = node.args[0]
        for literal in first.elts if isinstance(first, ast.Tuple) else [first]:
            if isinstance(literal, ast.Constant) and isinstance(literal.value, str) and literal.value.isupper():
                names.add(literal.value)
    return names


def _scan(*relative_paths: str) -> set[str]:
    names: set[str] = set()
    for relative in relative_paths:
        path = REPO / relative
        if path.exists():  # a CLI module may not exist yet; then it reads nothing
            names |= names_passed_to_get(path.read_text())
    return names


def _scan_module(module: ModuleType) -> set[str]:
    return names_passed_to_get(inspect.getsource(module))


def _server_env(server_config_from_env: Callable[[Mapping[str, str]], object]) -> set[str]:
    env = RecordingEnv()
    server_config_from_env(env)
    return env.names


def _log_level_env() -> set[str]:
    from services.common.tracing import log_level_from_env

    env = RecordingEnv()
    log_level_from_env(env)
    return env.names


def persona_reads() -> set[str]:
    from services.persona.config import PersonaConfig
    from services.persona.server import server_config_from_env

    env = RecordingEnv()
    PersonaConfig.from_env(env)
    return _server_env(server_config_from_env) | env.names | _log_level_env() | _scan("services/cli/persona.py")


def dispatcher_reads() -> set[str]:
    from services.dispatcher.config import DispatcherConfig
    from services.dispatcher.server import server_config_from_env

    env = RecordingEnv()
    DispatcherConfig.from_env(env)
    return _server_env(server_config_from_env) | env.names | _log_level_env() | _scan("services/cli/dispatcher.py")


def calls_reads() -> set[str]:
    from services.calls.config import CallsConfig
    from services.calls.server import server_config_from_env

    env = RecordingEnv()
    CallsConfig.from_env(env)
    return _server_env(server_config_from_env) | env.names | _log_level_env() | _scan("services/cli/calls.py")


def gateway_reads() -> set[str]:
    from services.webhook_gateway.config import GatewayConfig, HttpServerConfig

    env = RecordingEnv()
    GatewayConfig.from_env(env)
    HttpServerConfig.from_env(env)
    return env.names | _log_level_env() | _scan("services/cli/gateway.py")


def agent_reads() -> set[str]:
    from livekit.agents import worker

    from agent.config import AgentConfig

    env = RecordingEnv()
    AgentConfig.from_env(env)
    # LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET are read by livekit-agents itself.
    return env.names | _scan_module(worker) | _scan("services/cli/agent.py")


READERS = {
    "friday-persona": persona_reads,
    "friday-dispatcher": dispatcher_reads,
    "friday-calls": calls_reads,
    "friday-gateway": gateway_reads,
    "friday-agent": agent_reads,
}
