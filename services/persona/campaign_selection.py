"""Choosing a campaign's variant for one call: pure, per call, after the cache
(microseconds; the bench's GetPersona scenario covers it). The rules and their
order are documented on `Campaign` in campaign.proto."""

from __future__ import annotations

import datetime
import functools
import hashlib
import zoneinfo
from dataclasses import dataclass

import phonenumbers

from friday.persona.v1.campaign_pb2 import Campaign, OpeningHours, Schedule, SelectionRule, Variant
from services.persona.numbers import InvalidPhoneNumber, parse_dialed_number

# The `rule` label of persona_campaign_selections_total ("none" when nothing matched).
SELECTION_RULE_LABELS: dict[SelectionRule.ValueType, str] = {
    SelectionRule.SELECTION_RULE_CLOSED_HOURS: "closed_hours",
    SelectionRule.SELECTION_RULE_CALLER_MATCH: "caller_match",
    SelectionRule.SELECTION_RULE_WEIGHTED: "weighted",
    SelectionRule.SELECTION_RULE_DEFAULT_VARIANT: "default_variant",
}


@dataclass(frozen=True)
class Caller:
    e164: str
    region: str  # ISO region of the number ("IN"), "" when phonenumbers cannot tell


def read_caller(text: str, default_region: str) -> Caller | None:
    """The caller for campaign rules, or None for a hidden or unreadable number:
    those callers skip the caller-match and weighted rules rather than fail the call."""
    if not text:
        return None
    try:
        number = parse_dialed_number(text, default_region)
    except InvalidPhoneNumber:
        return None
    return Caller(number.e164, _region(number.e164))


@functools.lru_cache(maxsize=4096)
def _region(e164: str) -> str:
    """The number's region; for a number the bundled metadata does not hold valid
    (a new range), its country code's main region, as a carrier would route it."""
    number = phonenumbers.parse(e164, None)
    region = phonenumbers.region_code_for_number(number)
    if not region and number.country_code:
        region = phonenumbers.region_code_for_country_code(number.country_code)
    return "" if region in (None, "ZZ", "001") else region


def choose_variant(
    campaign: Campaign, caller: Caller | None, at: datetime.datetime
) -> tuple[Variant, SelectionRule.ValueType] | None:
    """The variant for a call from `caller` at `at` (an aware datetime), and the
    rule that chose it; None when no rule matched and there is no default variant."""
    by_id = {v.variant_id: v for v in campaign.variants}
    if campaign.HasField("schedule") and not is_open(campaign.schedule, at):
        return by_id[campaign.schedule.closed_variant_id], SelectionRule.SELECTION_RULE_CLOSED_HOURS
    if caller is not None:
        for variant in campaign.variants:
            if variant.HasField("caller_match") and _matches(variant, caller):
                return variant, SelectionRule.SELECTION_RULE_CALLER_MATCH
        split = [v for v in campaign.variants if v.weight and not v.HasField("caller_match")]
        if split:
            return _sticky_pick(campaign.campaign_id, caller.e164, split), SelectionRule.SELECTION_RULE_WEIGHTED
    if campaign.default_variant_id:
        return by_id[campaign.default_variant_id], SelectionRule.SELECTION_RULE_DEFAULT_VARIANT
    return None


def is_open(schedule: Schedule, at: datetime.datetime) -> bool:
    """Whether `at` falls in the schedule's hours for that local date: a dated
    exception replaces the weekday's hours (none listed: closed all day)."""
    local = at.astimezone(_zone(schedule.time_zone))
    minute = local.hour * 60 + local.minute
    today = local.date().isoformat()
    hours: list[OpeningHours] | None = None
    for exception in schedule.exceptions:
        if exception.date == today:
            hours = list(exception.hours)
            break
    if hours is None:
        weekday = local.isoweekday()
        hours = [h for h in schedule.weekly if h.iso_weekday == weekday]
    return any(h.open_minute <= minute < h.close_minute for h in hours)


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def _matches(variant: Variant, caller: Caller) -> bool:
    match = variant.caller_match
    return caller.region in match.regions or any(caller.e164.startswith(p) for p in match.number_prefixes)


def _sticky_pick(campaign_id: str, caller_e164: str, split: list[Variant]) -> Variant:
    """The same caller lands in the same variant for as long as the split (its
    variants, their order and weights) is unchanged: a stable hash, not random."""
    digest = hashlib.sha256(f"{campaign_id}\0{caller_e164}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in split)
    for variant in split:
        if point < variant.weight:
            return variant
        point -= variant.weight
    raise AssertionError("the point lies inside the total weight")  # pragma: no cover
