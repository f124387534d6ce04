"""Who is calling, as far as the connection says: the host part of
`ServicerContext.peer()` ("ipv4:10.0.0.7:51234" → "10.0.0.7", "ipv6:[::1]:51234" →
"::1", an IPv4 client of a dual-stack listener "ipv6:[::ffff:10.0.0.7]:51234" →
"10.0.0.7"). The port is dropped, so a caller that opens new connections is still
the same caller; anything else ("unix:/run/x.sock") is returned as it is."""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote


def peer_host(peer: str | None) -> str:
    if not peer:
        return ""
    peer = unquote(peer)
    scheme, _, address = peer.partition(":")
    if scheme == "ipv4":
        return address.rpartition(":")[0] or address
    if scheme == "ipv6":
        host = address[1:].partition("]")[0] if address.startswith("[") else address
        try:
            mapped = ipaddress.IPv6Address(host.partition("%")[0]).ipv4_mapped
        except ValueError:
            return host
        return str(mapped) if mapped is not None else host
    return peer
