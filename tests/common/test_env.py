"""services/common/env.py: typed reads, empty = unset, errors that name the variable and the value."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping

import pytest

from services.common.env import ConfigError, Environment, setting


class Color(enum.StrEnum):
    RED = "red"
    DARK_BLUE = "dark_blue"


@dataclasses.dataclass(frozen=True)
class Settings:
    name: str = setting("N", "n")
    url: str | None = setting("U", None)
    count: int = setting(("NEW", "C"), 3)
    ratio: float = setting("R", 0.5)
    on: bool = setting("O", False)
    color: Color = setting("K", Color.RED)
    networks: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Unreadable:
    networks: tuple[str, ...] = setting("NETS", ())


@dataclasses.dataclass(frozen=True)
class Declared:
    """Settings that name their variables on the fields themselves."""

    name: str = setting("D_NAME", "n")
    token: str | None = setting(("D_TOKEN", "D_OLD_TOKEN"), None, secret=True)
    count: int = setting("D_COUNT", 3, not_negative=True)
    color: Color = setting("D_COLOR", Color.RED)
    networks: tuple[str, ...] = ()


def test_unset_empty_and_blank_values_all_give_the_default() -> None:
    for environ in ({}, {"X": ""}, {"X": "   "}):
        env = Environment(environ)
        assert env.text("X", "d") == "d"
        assert env.optional("X") is None
        assert env.integer("X", 7) == 7
        assert env.number("X", 1.5) == 1.5
        assert env.flag("X", True) is True
        assert env.choice("X", "a", ("a", "b")) == "a"
        assert env.enum("X", Color.RED) is Color.RED


def test_values_are_stripped_and_cast() -> None:
    env = Environment(
        {"T": "  hello \n", "I": " 42 ", "F": "0.25", "NEG": "-3", "E": "DARK_BLUE", "C": "Azure", "B": " Yes "}
    )
    assert env.text("T", "") == "hello"
    assert env.optional("T") == "hello"
    assert env.integer("I", 0) == 42
    assert env.integer("NEG", 0) == -3
    assert env.number("F", 0.0) == 0.25
    assert env.number("I", 0.0) == 42.0
    assert env.enum("E", Color.RED) is Color.DARK_BLUE
    assert env.choice("C", "inference", ("inference", "azure")) == "azure"  # spelled as the choices spell it
    assert env.flag("B", False) is True


@pytest.mark.parametrize(("value", "expected"), [(v, True) for v in ("1", "true", "YES", "on")] + [
    (v, False) for v in ("0", "False", "no", "OFF")
])  # fmt: skip
def test_flag_words(value: str, expected: bool) -> None:
    assert Environment({"X": value}).flag("X", not expected) is expected


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda env: env.number("PERSONA_CACHE_TTL", 1.0), "PERSONA_CACHE_TTL='abc' is not a number"),
        (lambda env: env.integer("PERSONA_CACHE_TTL", 1), "PERSONA_CACHE_TTL='abc' is not a whole number"),
        (lambda env: env.flag("PERSONA_CACHE_TTL", True), "PERSONA_CACHE_TTL='abc' is not a yes/no value"),
        (lambda env: env.choice("PERSONA_CACHE_TTL", "a", ("a", "b")), "PERSONA_CACHE_TTL='abc' is not one of a, b"),
        (lambda env: env.enum("PERSONA_CACHE_TTL", Color.RED), "PERSONA_CACHE_TTL='abc' is not one of red, dark_blue"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_value(read, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        read(Environment({"PERSONA_CACHE_TTL": "abc"}))
    assert str(refused.value).startswith(message)
    assert isinstance(refused.value, ValueError)


def test_numbers_refuse_what_is_not_one() -> None:
    env = Environment({"HALF": "1.5", "NAN": "nan", "UNIT": "3s"})
    with pytest.raises(ConfigError, match="HALF='1.5' is not a whole number"):
        env.integer("HALF", 1)
    with pytest.raises(ConfigError, match="NAN='nan' is not a number"):
        env.number("NAN", 1.0)
    with pytest.raises(ConfigError, match="UNIT='3s' is not a number"):
        env.number("UNIT", 1.0)


def test_a_tuple_of_names_reads_the_first_one_set_and_names_it_in_errors() -> None:
    env = Environment({"WEBHOOK_KEY": "", "API_KEY": "k2", "BAD": "x"})
    assert env.text(("WEBHOOK_KEY", "API_KEY"), "d") == "k2"
    assert env.text(("API_KEY", "WEBHOOK_KEY"), "d") == "k2"
    assert env.text(("NONE_1", "NONE_2"), "d") == "d"
    with pytest.raises(ConfigError, match="BAD='x'"):
        env.integer(("UNSET", "BAD"), 1)


def test_reads_go_through_mapping_get_so_a_recording_mapping_sees_every_name() -> None:
    class Recording(Mapping[str, str]):
        def __init__(self) -> None:
            self.asked: list[str] = []

        def __getitem__(self, key: str) -> str:
            self.asked.append(key)
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    recording = Recording()
    env = Environment(recording)
    env.text(("A", "B"), "")
    env.enum("C", Color.RED)
    assert recording.asked == ["A", "B", "C"]


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRIDAY_TEST_ENV_READER", "from-os")
    assert Environment().text("FRIDAY_TEST_ENV_READER", "") == "from-os"


def test_fields_read_each_declared_field_as_its_annotation_says_and_keep_the_other_defaults() -> None:
    assert Environment({}).fields(Settings) == Settings()
    environ = {"N": "x", "U": "http://u", "C": "9", "R": "2.5", "O": "yes", "K": "DARK_BLUE"}
    read = Environment(environ).fields(Settings, networks=("10.0.0.0/8",))
    assert read == Settings("x", "http://u", 9, 2.5, True, Color.DARK_BLUE, ("10.0.0.0/8",))
    with pytest.raises(ConfigError, match="C='x' is not a whole number"):
        Environment({"C": "x"}).fields(Settings)


def test_fields_refuse_negative_values_where_declared_naming_the_variable_read() -> None:
    assert Environment({"NEW": "-1"}).fields(Settings).count == -1
    with pytest.raises(ConfigError, match=r"D_COUNT=-1 must not be negative"):
        Environment({"D_COUNT": "-1"}).fields(Declared)


def test_fields_refuse_a_field_type_they_have_no_reader_for() -> None:
    with pytest.raises(TypeError, match="no reader"):
        Environment({}).fields(Unreadable)


def test_fields_read_each_declared_setting_from_its_variable_and_keep_its_default_when_unset() -> None:
    assert Environment({}).fields(Declared) == Declared()
    environ = {"D_NAME": "x", "D_OLD_TOKEN": "t", "D_COUNT": "9", "D_COLOR": "DARK_BLUE"}
    read = Environment(environ).fields(Declared, networks=("10.0.0.0/8",))
    assert read == Declared("x", "t", 9, Color.DARK_BLUE, ("10.0.0.0/8",))
    with pytest.raises(ConfigError, match="D_COUNT='x' is not a whole number"):
        Environment({"D_COUNT": "x"}).fields(Declared)


def test_a_declared_setting_refuses_a_negative_value_when_declared_so() -> None:
    with pytest.raises(ConfigError, match=r"D_COUNT=-1 must not be negative"):
        Environment({"D_COUNT": "-1"}).fields(Declared)


def test_a_declared_setting_given_as_a_value_is_not_read() -> None:
    env = Environment({"D_NAME": "from-env"})
    assert env.fields(Declared, name="given").name == "given"


def test_a_secret_setting_stays_out_of_repr() -> None:
    assert "hidden" not in repr(Declared(token="hidden"))
    assert Declared.count == 3  # the class attribute is the default, as with a plain default
