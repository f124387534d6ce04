"""The Dockerfile read as text (no podman needed; tests/image builds and runs it):
its default base is an official slim Python that satisfies requires-python and the
Debian release the local base is made from, the runtime stage takes nothing but the
installed venv and runs as a numeric non-root user, and the build context leaves
tests out."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
LINES = [line.strip() for line in DOCKERFILE.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def stages() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = None
    for line in LINES:
        if match := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = match[2]
            found[current] = [line]
        elif current is not None:
            found[current].append(line)
    return found


def test_the_default_base_is_an_official_slim_python_that_satisfies_requires_python() -> None:
    (default,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    match = re.fullmatch(r"python:(\d+\.\d+)-slim-(\w+)", default)
    assert match, f"{default}: expected an official python:<version>-slim-<debian release> image"
    requires = SpecifierSet(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"])
    assert requires.contains(Version(match[1]))
    # The local base (scripts/build_base_image.sh) is the same Debian release.
    assert f" {match[2]} " in (REPO / "scripts" / "build_base_image.sh").read_text()


def test_every_stage_builds_on_the_base_argument() -> None:
    for name, lines in stages().items():
        assert lines[0].split()[1] == "${BASE_IMAGE}", name


def test_the_runtime_stage_takes_only_the_venv_and_runs_friday_as_a_numeric_non_root_user() -> None:
    *_, (last_name, runtime) = stages().items()
    assert last_name == "runtime"
    copies = [line for line in runtime if line.startswith(("COPY", "ADD"))]
    assert copies == ["COPY --from=build /opt/friday /opt/friday"]
    (user,) = [line.split()[1] for line in runtime if line.startswith("USER ")]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) > 0 and int(gid) > 0, user
    (entrypoint,) = [line.removeprefix("ENTRYPOINT ") for line in runtime if line.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint) == ["friday"]


def test_the_build_context_lets_in_the_package_and_never_the_tests() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    assert "*" in lines, "ignore everything, then let in what the package is built from"
    let_in = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "constraints.txt", "protos", "services", "agent", "bench"} <= let_in
    assert not {entry for entry in let_in if entry.split("/")[0] in {"tests", ".git", ".venv", ".env"}}
