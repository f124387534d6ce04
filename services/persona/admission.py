"""Which CRM fetches for numbers never seen before may start: a token bucket per
calling peer and one for the whole service.

A number the service knows (cached, negatively cached, or last known good) never
comes here, so it is never delayed; only numbers with no trace at all do, and those
are what a flood of made-up numbers consists of. Over a limit the lookup is answered
at once as if the CRM were unavailable for that number.

The peer is the gRPC peer's host. Behind the gateway every call comes from one peer
(each gateway replica's address), so a per-peer limit on its own would cap real
callers at one peer's share. Two things keep the gateway from being starved: peers in
`peer_exempt` (the gateways' addresses or networks) are held to the overall limit only,
and the per-peer limit is kept well under the overall one, so a single other caller
flooding numbers still leaves most of the overall budget to everyone else."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.common.env import setting
from services.common.token_bucket import TokenBucket

# Peers whose buckets are remembered; the least recently seen is forgotten first (and
# starts again with a full bucket if it comes back: the overall bucket still holds).
MAX_TRACKED_PEERS = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class NewNumberLimits:
    """Rates in fetches per second (0 = no such limit), bursts in fetches."""

    rate: float = setting("PERSONA_NEW_NUMBER_RATE", 50.0, not_negative=True)
    burst: int = setting("PERSONA_NEW_NUMBER_BURST", 200, not_negative=True)
    peer_rate: float = setting("PERSONA_NEW_NUMBER_PEER_RATE", 20.0, not_negative=True)
    peer_burst: int = setting("PERSONA_NEW_NUMBER_PEER_BURST", 100, not_negative=True)
    # Addresses or CIDR networks; a list, so PersonaConfig.from_env reads and checks it
    # (PERSONA_NEW_NUMBER_PEER_EXEMPT) rather than `setting`.
    peer_exempt: tuple[str, ...] = ()


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """`10.0.0.7`, `10.1.0.0/16`, `::1`; raises ValueError naming a bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


class NewNumberAdmission:
    def __init__(self, limits: NewNumberLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._overall = TokenBucket(limits.rate, max(1, limits.burst), clock=clock) if limits.rate > 0 else None
        self._exempt = parse_networks(limits.peer_exempt)
        self._peers: OrderedDict[str, TokenBucket | None] = OrderedDict()

    def admit(self, peer: str) -> str | None:
        """None when a fetch may start, else the limit that refused it: "peer" or "overall"."""
        own = self._peer_bucket(peer)
        if own is not None and not own.try_take():
            return "peer"
        if self._overall is not None and not self._overall.try_take():
            if own is not None:
                own.give_back()  # refused all the same: its share is not spent
            return "overall"
        return None

    def _peer_bucket(self, peer: str) -> TokenBucket | None:
        if self.limits.peer_rate <= 0:
            return None
        if peer in self._peers:
            self._peers.move_to_end(peer)
            return self._peers[peer]
        bucket = None
        if not self._is_exempt(peer):
            bucket = TokenBucket(self.limits.peer_rate, max(1, self.limits.peer_burst), clock=self._clock)
        self._peers[peer] = bucket
        while len(self._peers) > MAX_TRACKED_PEERS:
            self._peers.popitem(last=False)
        return bucket

    def _is_exempt(self, peer: str) -> bool:
        if not self._exempt:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._exempt)
