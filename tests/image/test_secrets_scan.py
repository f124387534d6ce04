"""The image test's secret scan finds what it exists to find (no podman needed)."""

from __future__ import annotations

from pathlib import Path

from tests.grpc_runtime.certs import make_certs
from tests.image.secrets_scan import find_secrets


def test_finds_private_keys_by_content_and_credential_files_by_name(tmp_path: Path) -> None:
    (tmp_path / "made").mkdir()
    certs = make_certs(tmp_path / "made")
    hidden = tmp_path / "lib" / "data.bin"
    hidden.parent.mkdir()
    hidden.write_bytes(b"\x00prefix" + Path(certs.server_key).read_bytes())
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".env").write_text("TOKEN=x\n")
    found = find_secrets(tmp_path)
    assert str(hidden) in found and str(tmp_path / "app" / ".env") in found
    assert str(tmp_path / "made" / "server.key") in found
    assert certs.ca not in found and certs.server_cert not in found


def test_certificates_and_code_that_mentions_keys_are_not_secrets(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    for path in tmp_path.glob("*.key"):
        path.unlink()
    (tmp_path / "jwt_algorithms.py").write_text('if key.startswith("-----BEGIN PRIVATE KEY-----"):\n    pass\n')
    assert find_secrets(tmp_path) == [], certs
