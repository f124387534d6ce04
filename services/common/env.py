"""The one way Friday reads settings from the environment (modelled on starlette's
`config.py`): typed reads over a Mapping, every value stripped, an empty value the same
as an unset one, and a value that cannot be used refused at start-up with an error that
names the variable and the value (`PERSONA_CACHE_TTL='abc' is not a number`).

    env = Environment(environ)          # os.environ when None
    env.text("PERSONA_REDIS_PREFIX", "friday:persona:")
    env.optional("REDIS_URL")           # None when unset
    env.number("PERSONA_CACHE_TTL", 300.0)
    env.integer("PERSONA_CACHE_MAX_ENTRIES", 10_000)
    env.flag("FRIDAY_UP_WITH_AGENT", False)
    env.choice("FRIDAY_SPEECH_STACK", "inference", ("inference", "azure"))
    env.enum("PERSONA_CRM_NUMBER_FORMAT", CrmNumberFormat.NATIONAL)
    env.fields(RetryConfig)             # each field from the variable its `setting` names

`fields` reads a frozen settings dataclass: each field from the variable declared on it
(`max_attempts: int = setting("DISPATCHER_RETRY_MAX_ATTEMPTS", 6)`), with the reader its
annotation calls for and its default when the variable is unset.

A name may be a tuple: the first of those variables that is set is read (the gateway's
webhook key pair falls back to the LiveKit API key pair this way). The methods are not
called str/int/float/bool so they do not shadow the builtins in annotations.

Reads go through `Mapping.get`, so a recording Mapping learns every name a `from_env`
asks for (tests/deploy checks the Kubernetes manifests that way)."""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

E = TypeVar("E", bound=enum.Enum)
V = TypeVar("V")
D = TypeVar("D", bound="DataclassInstance")

Name = str | tuple[str, ...]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_YES_NO = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}
_YES_NO_LIST = ", ".join(_YES_NO)


# Where `setting` leaves a field's variable for `Environment.fields`.
_VARIABLE = "friday.environment_variable"
_NOT_NEGATIVE = "friday.not_negative"


class ConfigError(ValueError):
    """A setting's value cannot be used; the message names the variable and the value."""


def setting(variable: Name, default: V, *, not_negative: bool = False, secret: bool = False) -> V:
    """A field of a settings dataclass that `Environment.fields` reads from `variable`, its
    default when unset; `not_negative` refuses a value below 0, `secret` keeps it out of repr."""
    metadata = {_VARIABLE: variable, _NOT_NEGATIVE: not_negative}
    return dataclasses.field(default=default, repr=not secret, metadata=metadata)


class Environment:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ

    def lookup(self, name: Name) -> tuple[str, str] | None:
        """(variable, stripped value) of the first of `name` that is set and not empty."""
        for variable in (name,) if isinstance(name, str) else name:
            value = (self._environ.get(variable) or "").strip()
            if value:
                return variable, value
        return None

    def optional(self, name: Name) -> str | None:
        found = self.lookup(name)
        return found[1] if found else None

    def text(self, name: Name, default: str) -> str:
        found = self.lookup(name)
        return found[1] if found else default

    def integer(self, name: Name, default: int) -> int:
        return self._parsed(name, default, _whole_number, "a whole number")

    def number(self, name: Name, default: float) -> float:
        return self._parsed(name, default, _number, "a number")

    def flag(self, name: Name, default: bool) -> bool:
        return self._parsed(
            name, default, lambda value: _YES_NO.get(value.lower()), f"a yes/no value (one of {_YES_NO_LIST})"
        )

    def choice(self, name: Name, default: str, choices: Iterable[str]) -> str:
        """One of `choices`, compared case-insensitively and returned as spelled there."""
        return self._one_of(name, default, {choice: choice for choice in choices})

    def enum(self, name: Name, default: E) -> E:
        """The member of `default`'s enum whose value matches, case-insensitively."""
        return self._one_of(name, default, {str(member.value): member for member in type(default)})

    def _one_of(self, name: Name, default: V, options: Mapping[str, V]) -> V:
        by_lower = {spelling.lower(): option for spelling, option in options.items()}
        return self._parsed(name, default, lambda value: by_lower.get(value.lower()), f"one of {', '.join(options)}")

    def _parsed(self, name: Name, default: V, parse: Callable[[str], V | None], expected: str) -> V:
        """The value as `parse` reads it (None: not a valid one), `default` when unset; an
        invalid value is a ConfigError that names the variable, the value and what was `expected`."""
        found = self.lookup(name)
        if found is None:
            return default
        variable, value = found
        parsed = parse(value)
        if parsed is None:
            raise ConfigError(f"{variable}={value!r} is not {expected}")
        return parsed

    def fields(self, settings: type[D], **values: Any) -> D:
        """An instance of the dataclass `settings`: each field declared with `setting` read
        from its variable as its annotation says (str, str | None, int, float, bool or an
        Enum), its default when unset, refused below 0 where declared so; `values` given as
        they are (a declared field given there is not read); every other field at its
        default."""
        hints = typing.get_type_hints(settings)
        for declared in dataclasses.fields(settings):
            if _VARIABLE not in declared.metadata or declared.name in values:
                continue
            name = declared.metadata[_VARIABLE]
            value = self._read(name, hints[declared.name], declared.default)
            if declared.metadata[_NOT_NEGATIVE] and value < 0:
                found = self.lookup(name)
                raise ConfigError(f"{found[0] if found else name}={value!r} must not be negative")
            values[declared.name] = value
        return settings(**values)

    def _read(self, name: Name, kind: Any, default: Any) -> Any:
        if kind is bool:
            return self.flag(name, default)
        if kind is int:
            return self.integer(name, default)
        if kind is float:
            return self.number(name, default)
        if kind is str:
            return self.text(name, default)
        if kind == str | None and default is None:
            return self.optional(name)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return self.enum(name, default)
        raise TypeError(f"no reader for a setting of type {kind!r} ({name})")


def _whole_number(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _number(value: str) -> float | None:
    """A float that is a number (NaN is not: it compares unequal to every limit)."""
    try:
        parsed = float(value)
    except ValueError:
        return None
    return None if math.isnan(parsed) else parsed
