"""CRM/persona-file JSON → `Campaign`, validated completely on the way in: a
campaign that cannot be evaluated for every call (unknown time zone, overlapping
hours, a split with no weight, a transfer target that is not a number or SIP URI)
is a malformed answer, counted and handled like any malformed persona (stale or
default served), never a surprise in the middle of a call.

The accepted document (camelCase spellings of the keys work too):

    {"campaign": {
        "id": "acme-spring", "version": "7", "default_variant": "a",
        "schedule": {"time_zone": "America/Los_Angeles",
                     "weekly": {"mon": ["09:00-17:00"], "sat": ["10:00-13:00"]},
                     "exceptions": {"2026-12-25": [], "2026-12-24": ["09:00-12:00"]},
                     "closed_variant": "closed"},
        "variants": [
            {"id": "hindi", "match": {"regions": ["IN"], "prefixes": ["+91"]}, "persona": {...}},
            {"id": "a", "weight": 50, "persona": {...}},
            {"id": "b", "weight": 50, "persona": {...}},
            {"id": "closed", "action": {"type": "reject", "message": "We open at nine."}},
            {"id": "oncall", "action": {"type": "transfer", "message": "Connecting you.",
                                        "to": "+14155550123"}}]}}
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

import phonenumbers

from friday.persona.v1.campaign_pb2 import (
    CallAction,
    CallActionKind,
    CallerMatch,
    Campaign,
    DatedHours,
    OpeningHours,
    Schedule,
    Variant,
)
from services.common.call_actions import MAX_ACTION_MESSAGE_LENGTH, normalized_transfer_target
from services.common.versions import content_version
from services.persona.mapping import MalformedPersona, persona_from_json

# Bounds that keep one campaign cheap to evaluate per call and small to cache.
MAX_VARIANTS = 32
MAX_INTERVALS_PER_DAY = 8
MAX_EXCEPTIONS = 366
MAX_MATCH_ENTRIES = 64
MAX_ID_LENGTH = 128

_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_INTERVAL = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_PREFIX = re.compile(r"^\+[1-9][0-9]{0,14}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


class MalformedCampaign(MalformedPersona):
    """The body is a campaign that cannot be evaluated as sent."""


def is_campaign_document(record: Mapping[str, Any]) -> bool:
    """A CRM answer (already unwrapped from `data`) is a campaign when it has a
    `campaign` object or a `variants` list; anything else is read as a persona."""
    return isinstance(record.get("campaign"), Mapping) or isinstance(record.get("variants"), list)


def campaign_from_json(record: Mapping[str, Any]) -> Campaign:
    body = record["campaign"] if isinstance(record.get("campaign"), Mapping) else record
    campaign = Campaign(campaign_id=_id(_get(body, "id", "campaign_id", "campaignId"), "campaign id"))
    variants = _get(body, "variants")
    if not isinstance(variants, list) or not variants:
        raise MalformedCampaign(f"campaign {campaign.campaign_id!r} has no variants")
    if len(variants) > MAX_VARIANTS:
        raise MalformedCampaign(
            f"campaign {campaign.campaign_id!r} has {len(variants)} variants (at most {MAX_VARIANTS})"
        )
    for index, raw in enumerate(variants):
        campaign.variants.append(_variant(raw, index))
    ids = [v.variant_id for v in campaign.variants]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise MalformedCampaign(f"variant ids used twice: {', '.join(duplicated)}")
    _check_weights(campaign, variants)

    default_variant = _get(body, "default_variant", "defaultVariant")
    if default_variant is not None:
        campaign.default_variant_id = _known_variant(default_variant, ids, "default_variant")
    schedule = _get(body, "schedule")
    if schedule is not None:
        campaign.schedule.CopyFrom(_schedule(schedule, ids))

    version = _get(body, "version")
    if version is not None and not isinstance(version, bool) and isinstance(version, str | int):
        campaign.version = str(version)
    elif version is not None:
        raise MalformedCampaign("campaign version must be text or a number")
    else:
        campaign.version = content_version(campaign)
    return campaign


def _variant(raw: Any, index: int) -> Variant:
    if not isinstance(raw, Mapping):
        raise MalformedCampaign(f"variant #{index + 1} is not an object")
    variant = Variant(variant_id=_id(_get(raw, "id", "variant_id", "variantId"), f"variant #{index + 1} id"))
    where = f"variant {variant.variant_id!r}"
    persona, action = _get(raw, "persona"), _get(raw, "action")
    if (persona is None) == (action is None):
        raise MalformedCampaign(f"{where} needs exactly one of persona, action")
    if persona is not None:
        try:
            variant.persona.CopyFrom(persona_from_json(persona, persona_id=variant.variant_id))
        except MalformedPersona as exc:
            raise MalformedCampaign(f"{where}: {exc}") from exc
    else:
        variant.action.CopyFrom(_action(action, where))
    weight = _get(raw, "weight")
    if weight is not None:
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 1_000_000:
            raise MalformedCampaign(f"{where}: weight must be a whole number from 0 to 1000000, got {weight!r}")
        variant.weight = weight
    match = _get(raw, "match", "caller_match", "callerMatch")
    if match is not None:
        variant.caller_match.CopyFrom(_caller_match(match, where))
        if variant.weight:
            raise MalformedCampaign(f"{where}: a caller-matched variant cannot also be in the weighted split")
    return variant


def _check_weights(campaign: Campaign, raw_variants: list[Any]) -> None:
    """A variant that declares a `weight` takes part in the split; a split whose
    weights add up to 0 could never choose, which is a CRM mistake worth surfacing."""
    declared = any(isinstance(raw, Mapping) and "weight" in raw for raw in raw_variants)
    if declared and not any(v.weight for v in campaign.variants):
        raise MalformedCampaign(f"campaign {campaign.campaign_id!r}: the weights add up to 0")


def _caller_match(raw: Any, where: str) -> CallerMatch:
    if not isinstance(raw, Mapping):
        raise MalformedCampaign(f"{where}: match must be an object")
    match = CallerMatch()
    regions = _list(_get(raw, "regions", "countries"), f"{where}: match.regions")
    for region in regions:
        if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise MalformedCampaign(f"{where}: {region!r} is not an ISO region code like 'IN' or 'GB'")
        match.regions.append(region.upper())
    prefixes = _list(_get(raw, "prefixes", "number_prefixes", "numberPrefixes"), f"{where}: match.prefixes")
    for prefix in prefixes:
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise MalformedCampaign(f"{where}: {prefix!r} is not an E.164 prefix like '+91'")
        match.number_prefixes.append(prefix)
    if not match.regions and not match.number_prefixes:
        raise MalformedCampaign(f"{where}: match names no regions and no prefixes")
    return match


def _action(raw: Any, where: str) -> CallAction:
    if not isinstance(raw, Mapping):
        raise MalformedCampaign(f"{where}: action must be an object")
    kind = str(_get(raw, "type", "kind") or "").lower()
    message = _get(raw, "message")
    if not isinstance(message, str) or not message.strip():
        raise MalformedCampaign(f"{where}: the action needs a message for the caller")
    if len(message) > MAX_ACTION_MESSAGE_LENGTH:
        raise MalformedCampaign(f"{where}: the action message is over {MAX_ACTION_MESSAGE_LENGTH} characters")
    target = _get(raw, "to", "transfer_to", "transferTo")
    if kind == "reject":
        if target is not None:
            raise MalformedCampaign(f"{where}: a reject action has no transfer target")
        return CallAction(kind=CallActionKind.CALL_ACTION_KIND_REJECT, message=message.strip())
    if kind == "transfer":
        return CallAction(
            kind=CallActionKind.CALL_ACTION_KIND_TRANSFER, message=message.strip(), transfer_to=_target(target, where)
        )
    raise MalformedCampaign(f"{where}: action type must be 'reject' or 'transfer', got {kind!r}")


def _target(raw: Any, where: str) -> str:
    target = normalized_transfer_target(raw) if isinstance(raw, str) else None
    if target is None:
        shown = raw[:64] if isinstance(raw, str) else raw
        raise MalformedCampaign(
            f"{where}: transfer 'to' {shown!r} is not an E.164 number like '+14155550123'"
            " or a SIP URI like 'sip:oncall@pbx.example.com'"
        )
    return target


def _schedule(raw: Any, variant_ids: list[str]) -> Schedule:
    if not isinstance(raw, Mapping):
        raise MalformedCampaign("schedule must be an object")
    zone = _get(raw, "time_zone", "timeZone", "timezone")
    if not isinstance(zone, str) or not zone:
        raise MalformedCampaign("schedule needs a time_zone (an IANA name like 'Europe/London')")
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise MalformedCampaign(f"schedule time_zone {zone!r} is not an IANA time zone") from exc
    schedule = Schedule(time_zone=zone)
    closed = _get(raw, "closed_variant", "closedVariant")
    if closed is None:
        raise MalformedCampaign("schedule needs a closed_variant: what callers get while closed")
    schedule.closed_variant_id = _known_variant(closed, variant_ids, "schedule closed_variant")

    weekly = _get(raw, "weekly", "hours")
    if not isinstance(weekly, Mapping):
        raise MalformedCampaign("schedule needs weekly hours, e.g. {'mon': ['09:00-17:00']}")
    for day, intervals in weekly.items():
        weekday = _WEEKDAYS.get(str(day).lower()[:3])
        if weekday is None:
            raise MalformedCampaign(f"schedule: {day!r} is not a weekday (mon … sun)")
        for hours in _intervals(intervals, f"schedule {day}"):
            hours.iso_weekday = weekday
            schedule.weekly.append(hours)
    exceptions = _get(raw, "exceptions", "holidays") or {}
    if not isinstance(exceptions, Mapping) or len(exceptions) > MAX_EXCEPTIONS:
        raise MalformedCampaign(f"schedule exceptions must be an object of at most {MAX_EXCEPTIONS} dates")
    for date, intervals in sorted(exceptions.items()):
        try:
            datetime.date.fromisoformat(str(date))
        except ValueError as exc:
            raise MalformedCampaign(f"schedule exception {date!r} is not a date like '2026-12-25'") from exc
        schedule.exceptions.append(DatedHours(date=str(date), hours=_intervals(intervals, f"schedule {date}")))
    return schedule


def _intervals(raw: Any, where: str) -> list[OpeningHours]:
    items = _list(raw, where)
    if len(items) > MAX_INTERVALS_PER_DAY:
        raise MalformedCampaign(f"{where}: more than {MAX_INTERVALS_PER_DAY} intervals")
    parsed: list[OpeningHours] = []
    for item in items:
        found = _INTERVAL.match(item) if isinstance(item, str) else None
        if found is None:
            raise MalformedCampaign(f"{where}: {item!r} is not an interval like '09:00-17:00'")
        oh, om, ch, cm = (int(g) for g in found.groups())
        if oh > 23 or om > 59 or cm > 59 or ch > 24 or (ch == 24 and cm):
            raise MalformedCampaign(f"{where}: {item!r} is not a time of day")
        opens, closes = oh * 60 + om, ch * 60 + cm
        if closes <= opens:
            raise MalformedCampaign(f"{where}: {item!r} closes before it opens (split overnight hours over two days)")
        parsed.append(OpeningHours(open_minute=opens, close_minute=closes))
    parsed.sort(key=lambda h: h.open_minute)
    for earlier, later in zip(parsed, parsed[1:], strict=False):
        if later.open_minute < earlier.close_minute:
            raise MalformedCampaign(f"{where}: intervals overlap")
    return parsed


def _known_variant(raw: Any, variant_ids: list[str], what: str) -> str:
    if not isinstance(raw, str) or raw not in variant_ids:
        raise MalformedCampaign(f"{what} {raw!r} names no variant of the campaign")
    return raw


def _id(raw: Any, what: str) -> str:
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise MalformedCampaign(f"{what} is missing")
    text = str(raw)
    if len(text) > MAX_ID_LENGTH or not _ID.match(text):
        raise MalformedCampaign(f"{what} {text[:40]!r} must be letters, digits, '.', '_', ':' or '-'")
    return text


def _list(raw: Any, what: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_MATCH_ENTRIES:
        raise MalformedCampaign(f"{what} must be a list of at most {MAX_MATCH_ENTRIES} entries")
    return raw


def _get(record: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in record:
            return record[key]
    return None
