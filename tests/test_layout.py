"""The repository explains itself: docs/architecture.md names every module of services/,
agent/ and bench/ under its folder ("Every module, by folder"), and every path the
README's layout table names exists. A module added, renamed or removed without the
map following fails here, so the map a newcomer reads is the tree they find."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"
INDEX_HEADING = "### Every module, by folder"
# A module is named as `snake_case` in backticks; a folder paragraph opens with `path/`.
_MODULE_NAME = re.compile(r"`(_?[a-z][a-z0-9_]*)`")
_FOLDER = re.compile(r"^`([a-z_]+(?:/[a-z_]+)*/)`")


def _index() -> dict[str, set[str]]:
    """Folder → the module names its paragraph of the index gives."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert INDEX_HEADING in text, f"{ARCHITECTURE.name} has no {INDEX_HEADING!r} section"
    section = text.split(INDEX_HEADING, 1)[1].split("\n#", 1)[0]
    folders: dict[str, set[str]] = {}
    for paragraph in section.split("\n\n"):
        opening = _FOLDER.match(paragraph.strip())
        if opening:
            folder = opening.group(1)
            folders[folder] = set(_MODULE_NAME.findall(paragraph))
    return folders


def _modules(folder: Path) -> set[str]:
    """The folder's Python modules and packages (a package is named by its folder name)."""
    names = {path.stem for path in folder.glob("*.py") if path.stem not in {"__init__", "__main__"}}
    names |= {path.name for path in folder.iterdir() if (path / "__init__.py").is_file()}
    return names


def _code_folders() -> list[Path]:
    services = sorted(path for path in (ROOT / "services").iterdir() if (path / "__init__.py").is_file())
    return [*services, ROOT / "agent", ROOT / "bench"]


@pytest.mark.parametrize("folder", _code_folders(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_the_module_index_names_every_module_of_the_folder(folder: Path) -> None:
    key = folder.relative_to(ROOT).as_posix() + "/"
    index = _index()
    assert key in index, f"{INDEX_HEADING!r} in docs/architecture.md has no paragraph for {key}"
    unnamed = _modules(folder) - index[key]
    assert not unnamed, f"docs/architecture.md does not name {sorted(unnamed)} under {key}"


def test_the_module_index_names_no_module_that_is_gone() -> None:
    for key, named in _index().items():
        folder = ROOT / key
        assert folder.is_dir(), f"docs/architecture.md indexes {key}, which does not exist"
        gone = {name for name in named if name.isidentifier()} - _modules(folder)
        # Backticked words in a paragraph are module names; anything else there is a stale entry.
        assert not gone, f"docs/architecture.md names {sorted(gone)} under {key}, which has no such module"


def test_every_path_in_the_readme_layout_table_exists() -> None:
    text = README.read_text(encoding="utf-8")
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    paths = [
        path
        for row in table.splitlines()
        if row.startswith("| `")
        for path in re.findall(r"`([^`]+)`", row.split("|")[1])
    ]
    assert paths, "the README's layout table names no paths"
    for path in paths:
        # `protos/friday/{persona,dispatcher,agent,calls}/v1/`: every brace alternative exists.
        braces = re.search(r"\{([^}]+)\}", path)
        expanded = [path.replace(braces.group(0), each) for each in braces.group(1).split(",")] if braces else [path]
        for each in expanded:
            assert (ROOT / each).exists(), f"the README's layout table names {each}, which does not exist"
