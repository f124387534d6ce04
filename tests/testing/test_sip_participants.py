"""SIP participants in the webhooks the tests send look the way livekit/sip makes them, and
pass livekit-api's receiver and the gateway's own reading of them."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol.models import ParticipantInfo

from services.testing.livekit_webhooks import (
    event_body,
    signed_request,
    sip_outbound_participant_joined,
    sip_participant_joined,
)
from services.testing.sip_participants import CARRIER_HOST, hidden_identity
from services.webhook_gateway.events import Ignored, SipCall, classify

KEY = "webhook-key"
SECRET = "webhook-secret-0123456789-0123456789-abcdef"
NUMBER_ATTRIBUTES = {"sip.phoneNumber", "sip.trunkPhoneNumber", "sip.hostname"}


def _attrs(event) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return json.loads(event_body(event))["participant"]["attributes"]


def test_an_inbound_caller_has_every_attribute_livekit_sip_sets_at_join() -> None:
    event = sip_participant_joined(room="call-1", dialed_number="+14155550123", caller_number="+442079460958")
    body, headers = signed_request(event, KEY, SECRET)
    received = WebhookReceiver(TokenVerifier(KEY, SECRET)).receive(body.decode(), headers["Authorization"])
    participant = received.participant
    attrs = dict(participant.attributes)
    assert participant.kind == ParticipantInfo.Kind.SIP
    assert (participant.identity, participant.name) == ("sip_+442079460958", "Phone +442079460958")
    assert re.fullmatch(r"SCL_\w{12}", attrs["sip.callID"])
    assert (attrs["sip.trunkID"], attrs["sip.ruleID"]) == ("ST_test", "SDR_test")
    assert attrs["sip.phoneNumber"] == "+442079460958"
    assert attrs["sip.trunkPhoneNumber"] == "+14155550123"
    assert attrs["sip.hostname"] == CARRIER_HOST
    assert attrs["sip.callIDFull"].endswith("@" + CARRIER_HOST) and attrs["sip.callTag"]
    assert attrs["sip.callStatus"] == "ringing"
    assert not [name for name in attrs if name.startswith("sip.h.")]


@pytest.mark.parametrize("dialed", ["+14155550100", "14155550100", "4155550100", "004414155550100"])
def test_the_dialed_number_is_kept_as_the_carrier_sent_it(dialed: str) -> None:
    attrs = _attrs(sip_participant_joined(room="r", dialed_number=dialed))
    assert attrs["sip.trunkPhoneNumber"] == dialed
    call = classify(sip_participant_joined(room="r", dialed_number=dialed))
    assert isinstance(call, SipCall) and call.dialed_number == dialed


def test_a_rule_that_hides_numbers_drops_all_three_and_hashes_the_identity() -> None:
    event = sip_participant_joined(room="r", dialed_number=None, caller_number="+14155550100", hide_numbers=True)
    attrs = _attrs(event)
    assert NUMBER_ATTRIBUTES.isdisjoint(attrs)
    assert {"sip.callID", "sip.trunkID", "sip.ruleID", "sip.callIDFull", "sip.callTag"} <= set(attrs)
    digest = hashlib.sha256(b"+14155550100").hexdigest()[:16]
    assert event.participant.identity == hidden_identity("+14155550100") == "sip_" + digest
    assert re.fullmatch(r"sip_[0-9a-f]{16}", event.participant.identity)
    assert event.participant.name == "Phone 0100"
    with pytest.raises(ValueError, match="hide_numbers"):
        sip_participant_joined(room="r", dialed_number=None)


def test_invite_headers_become_attributes_as_the_trunk_says() -> None:
    headers = {"X-Twilio-CallSid": "CA123", "X-Customer-Tier": "gold", "User-Agent": "carrier"}
    plain = _attrs(sip_participant_joined(room="r", dialed_number="+1", x_headers=headers))
    assert plain["sip.twilio.callSid"] == "CA123"  # livekit/sip maps known carrier headers always
    assert not [name for name in plain if name.startswith("sip.h.")]
    included = _attrs(
        sip_participant_joined(
            room="r",
            dialed_number="+1",
            x_headers=headers,
            include_headers=True,
            headers_to_attributes={"X-Customer-Tier": "tier"},
        )
    )
    assert included["sip.h.x-customer-tier"] == "gold" and included["sip.h.x-twilio-callsid"] == "CA123"
    assert "sip.h.user-agent" not in included  # only X- headers
    assert included["tier"] == "gold"


def test_an_outbound_leg_is_sip_dialing_without_a_rule_and_the_gateway_ignores_it() -> None:
    event = sip_outbound_participant_joined(room="r", called_number="+918655701159", trunk_number="+14155550199")
    attrs = _attrs(event)
    assert event.participant.kind == ParticipantInfo.Kind.SIP
    assert event.participant.identity == "sip_+918655701159"
    assert attrs["sip.callStatus"] == "dialing"
    assert "sip.ruleID" not in attrs and "sip.callIDFull" not in attrs
    assert (attrs["sip.phoneNumber"], attrs["sip.trunkPhoneNumber"]) == ("+918655701159", "+14155550199")
    assert isinstance(classify(event), Ignored)
    hidden = sip_outbound_participant_joined(room="r", called_number="+918655701159", hide_numbers=True)
    assert NUMBER_ATTRIBUTES.isdisjoint(_attrs(hidden))
    assert hidden.participant.identity == "sip_+918655701159"
