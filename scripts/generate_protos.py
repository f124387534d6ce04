"""Regenerate the committed Python code for the protobuf contract in protos/.

Messages (`*_pb2.py`), typed stubs (`*_pb2.pyi`, mypy-protobuf), and gRPC
stubs (`*_pb2_grpc.py` + `.pyi`) are written next to each `.proto`, so the
proto tree doubles as the `friday` Python package and the generated imports
(`from friday.persona.v1 import persona_pb2`) need no rewriting.

Usage:  python scripts/generate_protos.py [--check]

`--check` regenerates into a temporary copy and exits 1 if anything differs
from what is committed (CI uses it to catch stale generated code).
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _generate(proto_root: Path) -> None:
    protos = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    well_known = Path(protoc.__file__).parent / "_proto"
    # mypy-protobuf's plugins live beside this interpreter, which may not be on PATH.
    scripts = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={scripts / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={scripts / 'protoc-gen-mypy_grpc'}",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={proto_root}",
        f"--mypy_out=quiet:{proto_root}",
        f"--grpc_python_out={proto_root}",
        f"--mypy_grpc_out=quiet:{proto_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # grpc_python_out writes a _grpc module for every file; drop the empty ones
    # for files without services so the tree only holds code that exists.
    for path in proto_root.rglob("*_pb2_grpc.py*"):
        proto = path.with_name(path.name.split("_pb2_grpc")[0] + ".proto")
        if not re.search(r"^service ", proto.read_text(), re.MULTILINE):
            path.unlink()
    # Every directory on the way to generated code is a regular package.
    for directory in {p.parent for p in proto_root.rglob("*_pb2.py")}:
        while directory != proto_root:
            (directory / "__init__.py").touch()
            directory = directory.parent


def _generated_files(proto_root: Path) -> set[Path]:
    return {
        p.relative_to(proto_root)
        for p in proto_root.rglob("*")
        if p.name.endswith(GENERATED_SUFFIXES) or p.name == "__init__.py"
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    options = parser.parse_args()
    if not options.check:
        _generate(PROTO_ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh_root = Path(tmp) / "protos"
        shutil.copytree(PROTO_ROOT, fresh_root, ignore=shutil.ignore_patterns("*_pb2*", "__pycache__"))
        _generate(fresh_root)
        fresh, committed = _generated_files(fresh_root), _generated_files(PROTO_ROOT)
        stale = sorted(str(p) for p in fresh ^ committed)
        stale += sorted(
            str(p) for p in fresh & committed if not filecmp.cmp(fresh_root / p, PROTO_ROOT / p, shallow=False)
        )
    if stale:
        print("generated code is stale; run `python scripts/generate_protos.py`:", *stale, sep="\n  ")
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
