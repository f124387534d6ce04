"""What services.testing promises about who imports what: product code never imports
`tests`, and the services themselves never import the testing package."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("services", "agent", "bench")
# The running mesh: what `friday up` starts and deploy/ ships. The tools (cli, chaos) may use the package.
SERVICES = (
    "services/persona",
    "services/dispatcher",
    "services/webhook_gateway",
    "services/grpc_runtime",
    "services/common",
    "services/launcher",
    "agent",
)


def _imports(root: str) -> Iterator[tuple[Path, str]]:
    for path in sorted((REPO_ROOT / root).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from ((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("root", PRODUCT)
def test_product_code_never_imports_tests(root: str) -> None:
    assert [(str(path), name) for path, name in _imports(root) if _is_under(name, "tests")] == []


@pytest.mark.parametrize("root", SERVICES)
def test_the_services_never_import_the_testing_package(root: str) -> None:
    found = [(str(path), name) for path, name in _imports(root) if _is_under(name, "services.testing")]
    assert found == []
    assert any(True for _ in _imports(root))  # the scan did read this package's imports
