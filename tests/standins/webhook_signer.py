"""The webhook signer stand-in. It lives in the product (services/simulator) because
`friday simulate-call` and the benchmark send the same webhooks; tests import it from
here. What it produces is checked against livekit-api's own WebhookReceiver
(tests/standins/test_webhook_signer.py), not against our verifier."""

from services.simulator.livekit_webhooks import (  # noqa: F401
    DEFAULT_VALIDITY,
    WEBHOOK_CONTENT_TYPE,
    agent_participant_joined,
    body_sha256,
    event_body,
    random_id,
    room_started,
    sign,
    signed_request,
    sip_participant_joined,
    standard_participant_joined,
)
