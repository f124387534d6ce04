"""Hypothesis strategies for what a hostile or broken sender can put in a webhook."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Digits from other scripts, fullwidth forms, separators, control and format characters:
# what "unicode in numbers" looks like in practice.
_NUMBERISH = st.text(
    alphabet=st.sampled_from(
        list("0123456789+-() .")
        + list("٠١٢٣٤٥٦٧٨٩")  # Arabic-Indic
        + list("०१२३४५६७८९")  # Devanagari
        + list("０１２３４５６７８９＋")  # fullwidth
        + ["\u200b", "\u202e", "\x00", "\n", "\t", "\ufeff", "\u00a0", "☎", "𝟗"]
    ),
    max_size=40,
)

phone_numbers = st.one_of(
    _NUMBERISH,
    st.text(max_size=60),
    st.sampled_from(["+918655701159", "8655701159", "+91 86557 01159", "", " ", "+", "0" * 33]),
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=50)
)

json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=25,
)

_EVENT_NAMES = st.sampled_from(
    [
        "participant_joined",
        "participant_left",
        "room_started",
        "room_finished",
        "track_published",
        "",
        "PARTICIPANT_JOINED",
    ]
)
_KINDS = st.one_of(
    st.sampled_from(["SIP", "AGENT", "STANDARD", "INGRESS", "EGRESS", "sip", "", "UNKNOWN_KIND"]),
    st.integers(min_value=-5, max_value=10),
    json_values,
)
_ROOM_NAMES = st.one_of(
    st.text(max_size=40),
    st.text(min_size=300, max_size=2000),
    st.sampled_from(["call-1", " call", "call\x00x", "\n", "a" * 10_000]),
)


def _attributes() -> st.SearchStrategy[Any]:
    # sip.ruleID is what marks an inbound call (an outbound leg has none): mostly present,
    # so hostile attributes reach the call path rather than stopping at the outbound filter.
    sip = st.fixed_dictionaries(
        {},
        optional={
            "sip.ruleID": st.one_of(st.just("SDR_hostile"), st.text(max_size=30), json_values),
            "sip.trunkPhoneNumber": st.one_of(phone_numbers, json_values),
            "sip.phoneNumber": st.one_of(phone_numbers, json_values),
            "sip.callID": st.one_of(st.text(max_size=30), json_values),
            "sip.trunkID": st.text(max_size=30),
            "sip.callStatus": st.sampled_from(["ringing", "active", ""]),
        },
    )
    huge = st.builds(
        lambda n, c: {"sip.ruleID": "SDR_hostile", "sip.h.x-huge": c * n},
        st.integers(1_000, 40_000),
        st.sampled_from("x9é☎"),
    )
    return st.one_of(sip, huge, st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=8), json_values)


def webhook_like() -> st.SearchStrategy[Any]:
    """Mostly LiveKit-shaped documents with wrong types and values in every slot."""
    participant = st.fixed_dictionaries(
        {},
        optional={
            "identity": st.one_of(st.text(max_size=30), json_values),
            "kind": _KINDS,
            "attributes": _attributes(),
            "joinedAt": st.one_of(st.text(max_size=12), st.integers(), json_values),
            "state": st.one_of(st.sampled_from(["ACTIVE", "JOINED", "nope"]), st.integers()),
        },
    )
    room = st.one_of(st.fixed_dictionaries({}, optional={"name": st.one_of(_ROOM_NAMES, json_values)}), json_values)
    event = st.fixed_dictionaries(
        {},
        optional={
            "event": st.one_of(_EVENT_NAMES, json_values),
            "id": st.one_of(st.text(max_size=40), json_values),
            "createdAt": st.one_of(st.text(max_size=20), st.integers(), json_values),
            "room": room,
            "participant": st.one_of(participant, json_values),
            "someFutureField": json_values,
        },
    )
    return st.one_of(event, json_values)


def sip_join_like() -> st.SearchStrategy[Any]:
    """A participant_joined of kind SIP, so the gateway goes all the way to the services,
    with hostile room names, numbers, ids and attributes."""
    return st.fixed_dictionaries(
        {
            "event": st.just("participant_joined"),
            "room": st.fixed_dictionaries({"name": _ROOM_NAMES}),
            "participant": st.fixed_dictionaries(
                {"kind": st.just("SIP"), "attributes": _attributes()},
                optional={"identity": st.text(max_size=300)},
            ),
        },
        optional={"id": st.text(max_size=200), "createdAt": st.sampled_from(["1757600001", "-1", "x"])},
    )
