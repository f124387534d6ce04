"""peer_host: the caller's host from ServicerContext.peer(), port dropped."""

from __future__ import annotations

import pytest

from services.grpc_runtime.peers import peer_host


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:127.0.0.1:51234", "127.0.0.1"),
        ("ipv6:[::1]:51234", "::1"),
        ("ipv6:%5B::1%5D:51234", "::1"),  # some grpc versions percent-encode the brackets
        ("ipv6:[::ffff:10.0.0.7]:51234", "10.0.0.7"),  # IPv4 client of a dual-stack listener
        ("ipv6:[2001:db8::5]:443", "2001:db8::5"),
        ("unix:/run/persona.sock", "unix:/run/persona.sock"),
        ("", ""),
        (None, ""),
    ],
)
def test_peer_host(peer: str | None, host: str) -> None:
    assert peer_host(peer) == host
