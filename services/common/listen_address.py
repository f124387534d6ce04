"""Where a service listens: the loopback default, what counts as reachable from
other machines, how to dial an address bound on every interface, and why a bind
failed (grpc only says "Failed to bind").

Every server binds 127.0.0.1 unless told otherwise: a service is reachable from
other machines only when its host setting says so (the Kubernetes manifests set
an all-interfaces host explicitly)."""

from __future__ import annotations

import errno
import ipaddress
import socket

LOOPBACK_HOST = "127.0.0.1"
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


class ListenError(OSError):
    """A server could not bind its address; the message names it and the reason."""


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_wildcard(host: str) -> bool:
    return host.strip() in _WILDCARD_HOSTS


def is_loopback(host: str) -> bool:
    """True only for addresses other machines cannot reach: 127.0.0.0/8, ::1, `localhost`."""
    bare = _bare(host.strip())
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def dialable_host(host: str) -> str:
    """The host a client on this machine dials to reach a server bound on `host`."""
    return LOOPBACK_HOST if is_wildcard(host) else host


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 literal in brackets."""
    bare = _bare(host)
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def bind_failure(what: str, host: str, port: int) -> ListenError:
    """Why `what` (e.g. "PersonaService gRPC") could not bind host:port, found by
    trying the same bind with a plain socket (as a listener would, without SO_REUSEPORT)."""
    reason, in_use = "the bind failed", False
    bare = _bare(host) or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        reason = f"cannot resolve {bare!r}: {exc.strerror}"
        infos = []
    for family, kind, proto, _, address in infos[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                reason, in_use = exc.strerror or str(exc), exc.errno == errno.EADDRINUSE
    hint = " (another process, or another `friday up`, listens there)" if in_use else ""
    return ListenError(f"{what} cannot listen on {host_port(host, port)}: {reason}{hint}")
