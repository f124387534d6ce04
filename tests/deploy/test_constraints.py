"""constraints.txt against pyproject.toml, the installed environment and the commands
that install: every distribution the package and its dev extra pull in is pinned,
every pin lies inside pyproject.toml's ranges, every range has both bounds, this
environment runs the pinned versions, and every documented install uses the file."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
DECLARED = [Requirement(text) for text in [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["dev"]]]
CONSTRAINT_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)$")


def pins() -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = CONSTRAINT_LINE.match(line)
        assert match, f"constraints.txt: {line!r} is not an exact `name==version` pin"
        name = canonicalize_name(match["name"])
        assert name not in found, f"constraints.txt pins {name} twice"
        found[name] = Version(match["version"])
    return found


def applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**default_environment(), "extra": extra}) for extra in extras or {""})


def installed_closure() -> set[str]:
    """Every distribution installing `.[dev]` brought into this environment."""
    seen: set[str] = set()
    todo = [(requirement, set(requirement.extras)) for requirement in DECLARED]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.distribution(name).requires or []:
            child = Requirement(text)
            if applies(child, extras):
                todo.append((child, set(child.extras)))
    return seen


def test_every_declared_range_has_a_lower_and_an_upper_bound() -> None:
    for requirement in DECLARED:
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {">=", "==", "~="}, f"{requirement}: no tested lower bound"
        assert operators & {"<", "==", "~="}, f"{requirement}: no upper bound at a breaking release"


def test_every_pin_of_a_declared_dependency_lies_in_its_range() -> None:
    pinned = pins()
    for requirement in DECLARED:
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is declared but not pinned"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside pyproject.toml's {requirement}"
        )


def test_everything_the_package_installs_is_pinned() -> None:
    missing = installed_closure() - set(pins())
    assert not missing, f"not in constraints.txt (run scripts/update_constraints.py): {sorted(missing)}"


def installed_version(name: str) -> Version | None:
    try:
        return Version(importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        return None


def test_this_environment_runs_the_pinned_versions() -> None:
    # A pin need not be installed here: some apply only to another Python (async-timeout
    # below 3.11.3, for the image's Debian python3).
    installed = {name: installed_version(name) for name in pins()}
    differing = {
        name: (str(version), str(installed[name]))
        for name, version in pins().items()
        if installed[name] is not None and installed[name] != version
    }
    assert not differing, f"pinned vs installed (reinstall with -c constraints.txt): {differing}"


@pytest.mark.parametrize("path", ["README.md", ".ci/run", "Dockerfile"])
def test_every_documented_install_uses_the_constraints(path: str) -> None:
    installs = [line for line in (REPO / path).read_text().splitlines() if re.search(r"pip\s+install\s", line)]
    assert installs, f"{path} installs nothing"
    for line in installs:
        assert "-c constraints.txt" in line, f"{path}: `{line.strip()}` installs without the constraints"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = block.strip().splitlines()
    assert len(commands) == 2
    ci_last_line = (REPO / ".ci/run").read_text().strip().splitlines()[-1]
    assert ci_last_line == commands[1]
