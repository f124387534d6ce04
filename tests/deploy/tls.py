"""Follows a TLS setting from a container's environment to the file, the mounted
Secret and the cert-manager Certificate that writes it, and checks that a server and
its client agree: the server certificate names the host the client dials, the client
certificate is for client auth, one CA issues both, and each side trusts it."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlparse

from tests.deploy.manifests import Doc, Manifests, only_container, pod_spec


def mounted_secret_file(deployment: Doc, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file at `path` in the deployment's container."""
    container = only_container(deployment)
    volumes = {volume["name"]: volume for volume in pod_spec(deployment).get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        directory = PurePosixPath(mount["mountPath"])
        if PurePosixPath(path).parent == directory:
            secret = volumes[mount["name"]].get("secret")
            assert secret, f"{path} is not in a mounted Secret"
            assert mount.get("readOnly") is True, f"{mount['mountPath']} must be mounted read-only"
            return secret["secretName"], PurePosixPath(path).name
    raise AssertionError(f"{path}: no volume is mounted at {PurePosixPath(path).parent}")


def certificate_for(manifests: Manifests, secret: str) -> Doc:
    found = [c for c in manifests.objects("Certificate").values() if c["spec"]["secretName"] == secret]
    assert len(found) == 1, f"no (single) cert-manager Certificate writes Secret {secret}"
    return found[0]


def check_mutual_tls(manifests: Manifests, *, server: Doc, prefix: str, client: Doc) -> None:
    server_env = manifests.resolved_env(only_container(server))
    client_env = manifests.resolved_env(only_container(client))

    def file_of(deployment: Doc, environment: dict[str, object], variable: str) -> tuple[str, str]:
        value = environment.get(variable)
        assert isinstance(value, str) and value, f"{deployment['metadata']['name']}: {variable} is not set"
        return mounted_secret_file(deployment, value)

    # cert-manager's Secret layout: tls.crt / tls.key, and the issuing CA as ca.crt.
    server_files = {
        suffix: file_of(server, server_env, f"{prefix}_TLS_{suffix}")
        for suffix in ("CERT_FILE", "KEY_FILE", "CLIENT_CA_FILE")
    }
    assert {key for _, key in server_files.values()} == {"tls.crt", "tls.key", "ca.crt"}
    (server_secret,) = {secret for secret, _ in server_files.values()}
    client_files = {
        suffix: file_of(client, client_env, f"{prefix}_TLS_{suffix}")
        for suffix in ("CA_FILE", "CLIENT_CERT_FILE", "CLIENT_KEY_FILE")
    }
    assert {key for _, key in client_files.values()} == {"tls.crt", "tls.key", "ca.crt"}
    (client_secret,) = {secret for secret, _ in client_files.values()}

    server_cert = certificate_for(manifests, server_secret)
    client_cert = certificate_for(manifests, client_secret)
    assert "server auth" in server_cert["spec"]["usages"]
    assert "client auth" in client_cert["spec"]["usages"]
    assert server_cert["spec"]["issuerRef"] == client_cert["spec"]["issuerRef"], "one CA must issue both"
    issuer = manifests.objects(server_cert["spec"]["issuerRef"].get("kind", "Issuer"))[
        server_cert["spec"]["issuerRef"]["name"]
    ]
    assert "ca" in issuer["spec"], "the services trust ca.crt: the issuer must be a CA, not self-signed"

    # gRPC checks the certificate against the host in the client's target.
    target = client_env[f"{prefix}_TARGET"]
    assert isinstance(target, str)
    host = urlparse("//" + target.removeprefix("dns:///")).hostname
    assert host in server_cert["spec"]["dnsNames"], f"{host} is not a name of {server_secret}"
    assert f"{prefix}_TLS_SERVER_NAME" not in client_env, "the real name must match; no override"
