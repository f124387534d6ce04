"""When `friday up` may listen beyond this machine.

On loopback only this machine's users reach the mesh. Bound anywhere else, any
host that can route to it could call DispatchAgent (an agent of its own choosing
into a live call), ListDispatches (callers' numbers and personas) and
CancelDispatch, read call records (ListCalls), read the metrics, or sign webhooks
with livekit-server --dev's published secret. So `friday up` refuses a non-loopback
host unless every gRPC service requires a token, every /metrics endpoint requires
the metrics token and LiveKit's secret is not the dev default. It does not invent
tokens, because the gateway, the CLI clients, Prometheus and whoever else calls the
services must be given the same ones."""

from __future__ import annotations

from collections.abc import Mapping

from services.common.listen_address import is_loopback
from services.common.metrics_auth import METRICS_TOKEN_ENV
from services.common.secrets_check import DEV_SECRET


def exposure_problem(settings: Mapping[str, str], environ: Mapping[str, str]) -> str | None:
    """Why the planned host may not be used, or None. `settings` are `friday up`'s values
    (by env name), `environ` what the children inherit."""
    host = settings["FRIDAY_UP_HOST"]
    if is_loopback(host):
        return None
    missing = [
        flag
        for flag, env in (
            ("--dispatcher-token", "DISPATCHER_TOKEN"),
            ("--persona-token", "PERSONA_TOKEN"),
            # Call records hold callers' numbers and what they were told.
            ("--calls-token", "CALLS_TOKEN"),
            # Metrics name no caller, but they show the traffic, its failures and the
            # mesh's shape; the standard is that nothing reachable from a network is open.
            ("--metrics-token", METRICS_TOKEN_ENV),
        )
        if not settings[env]
    ]
    # The gateway verifies webhooks with this secret (see the gateway's config).
    webhook_secret = environ.get("LIVEKIT_WEBHOOK_API_SECRET") or settings["LIVEKIT_API_SECRET"]
    if webhook_secret == DEV_SECRET:
        missing.append("--livekit-api-secret (or LIVEKIT_WEBHOOK_API_SECRET) other than the --dev default")
    if not missing:
        return None
    return (
        f"--host {host} makes the mesh reachable from other machines, which needs {', '.join(missing)}; "
        'bind loopback (the default) or set them, e.g. --dispatcher-token "$(openssl rand -hex 32)"'
    )
