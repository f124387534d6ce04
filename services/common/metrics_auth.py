"""Who may scrape metrics: `METRICS_TOKEN`, one bearer token for every /metrics
endpoint of the mesh (each gRPC service's metrics server and the gateway's route).

One token rather than one per service because one Prometheus scrapes them all and
holds one credentials file; a per-service token would only multiply the Secrets
without keeping any scraper from any service. Health endpoints never need it: the
kubelet's probes carry no credentials. Unset, /metrics stays open (a development
mesh on loopback); `friday up` off loopback and the Kubernetes manifests set it."""

from __future__ import annotations

import hashlib
import hmac

METRICS_TOKEN_ENV = "METRICS_TOKEN"
# RFC 6750's challenge, so a client told 401 learns which scheme is wanted.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="metrics"'}


class MetricsToken:
    """The bearer token an `Authorization` header must carry, compared in constant time:
    both sides are hashed first, so neither the token's content nor its length leaks
    through how long a comparison takes. Only the digest is kept, and repr shows none
    of it, so the token cannot reach a log line through this object."""

    __slots__ = ("_digest",)

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("an empty metrics token would accept everyone")
        self._digest = hashlib.sha256(token.encode()).digest()

    def admits(self, authorization: str | None) -> bool:
        """True for `Bearer <token>` (the scheme in any case, as RFC 7235 allows)."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        matches = hmac.compare_digest(hashlib.sha256(credentials.strip().encode()).digest(), self._digest)
        return matches and scheme.lower() == "bearer"

    def __repr__(self) -> str:
        return "MetricsToken(<redacted>)"
