"""Choosing a campaign's variant for one call: pure, per call, after the cache
(microseconds; the bench's GetPersona scenario covers it). The rules and their
order are documented on `Campaign` in campaign.proto."""

from __future__ import annotations

import collections
import datetime
import functools
import hashlib
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

from friday.persona.v1.campaign_pb2 import Campaign, OpeningHours, SelectionRule, Variant
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


@dataclass(frozen=True)
class _Plan:
    """A campaign read once into plain Python: selection runs per call, and walking the
    protobuf message on each one (a wrapper object per field access) would cost more
    than the rules themselves."""

    campaign_id: str
    by_id: dict[str, Variant]
    zone: zoneinfo.ZoneInfo | None  # None: no schedule (always open)
    weekly: dict[int, tuple[tuple[int, int], ...]]  # ISO weekday -> (open, close) minutes
    exceptions: dict[str, tuple[tuple[int, int], ...]]  # ISO date -> its intervals
    closed: Variant | None
    matchers: tuple[tuple[Variant, frozenset[str], tuple[str, ...]], ...]  # variant, regions, prefixes
    split: tuple[tuple[Variant, int], ...]  # variant, weight
    split_total: int
    default: Variant | None


def _intervals(hours: Iterable[OpeningHours]) -> tuple[tuple[int, int], ...]:
    return tuple((h.open_minute, h.close_minute) for h in hours)


def _compile(campaign: Campaign) -> _Plan:
    by_id = {v.variant_id: v for v in campaign.variants}
    has_schedule = campaign.HasField("schedule")
    schedule = campaign.schedule
    weekly: dict[int, list[tuple[int, int]]] = {}
    for hours in schedule.weekly:
        weekly.setdefault(hours.iso_weekday, []).append((hours.open_minute, hours.close_minute))
    split = tuple((v, v.weight) for v in campaign.variants if v.weight and not v.HasField("caller_match"))
    return _Plan(
        campaign_id=campaign.campaign_id,
        by_id=by_id,
        zone=_zone(schedule.time_zone) if has_schedule else None,
        weekly={day: tuple(intervals) for day, intervals in weekly.items()},
        exceptions={e.date: _intervals(e.hours) for e in schedule.exceptions},
        closed=by_id.get(schedule.closed_variant_id) if has_schedule else None,
        matchers=tuple(
            (v, frozenset(v.caller_match.regions), tuple(v.caller_match.number_prefixes))
            for v in campaign.variants
            if v.HasField("caller_match")
        ),
        split=split,
        split_total=sum(weight for _, weight in split),
        default=by_id.get(campaign.default_variant_id) if campaign.default_variant_id else None,
    )


# Keyed by what identifies a campaign's content: its id, its version (the CRM's, or a
# content hash) and its size, so a CRM that keeps a version across an edit still gets a
# fresh plan unless the edit leaves the size unchanged too.
_plans: collections.OrderedDict[tuple[str, str, int], _Plan] = collections.OrderedDict()
_PLANS_MAX = 1024


# The plan last used for each campaign id, with the very message it was read from. The
# lookup hands over the cached campaign object itself call after call (cached answers
# are never mutated), so an identity check finds its plan without measuring the message;
# holding the message keeps its identity from being reused by another object.
_last_used: collections.OrderedDict[str, tuple[Campaign, _Plan]] = collections.OrderedDict()


def _plan(campaign: Campaign) -> _Plan:
    last = _last_used.get(campaign.campaign_id)
    if last is not None and last[0] is campaign:
        return last[1]
    key = (campaign.campaign_id, campaign.version, campaign.ByteSize())
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _compile(campaign)
        if len(_plans) > _PLANS_MAX:
            _plans.popitem(last=False)
    _last_used[campaign.campaign_id] = (campaign, plan)
    _last_used.move_to_end(campaign.campaign_id)
    if len(_last_used) > _PLANS_MAX:
        _last_used.popitem(last=False)
    return plan


def choose_variant(
    campaign: Campaign, caller: Caller | None, at: datetime.datetime
) -> tuple[Variant, SelectionRule.ValueType] | None:
    """The variant for a call from `caller` at `at` (an aware datetime), and the
    rule that chose it; None when no rule matched and there is no default variant."""
    plan = _plan(campaign)
    if plan.zone is not None and plan.closed is not None and not _open(plan, at):
        return plan.closed, SelectionRule.SELECTION_RULE_CLOSED_HOURS
    if caller is not None:
        for variant, regions, prefixes in plan.matchers:
            if caller.region in regions or caller.e164.startswith(prefixes):
                return variant, SelectionRule.SELECTION_RULE_CALLER_MATCH
        if plan.split:
            return _sticky_pick(plan, caller.e164), SelectionRule.SELECTION_RULE_WEIGHTED
    if plan.default is not None:
        return plan.default, SelectionRule.SELECTION_RULE_DEFAULT_VARIANT
    return None


def _open(plan: _Plan, at: datetime.datetime) -> bool:
    assert plan.zone is not None
    local = at.astimezone(plan.zone)
    minute = local.hour * 60 + local.minute
    hours = plan.exceptions.get(local.date().isoformat())
    if hours is None:
        hours = plan.weekly.get(local.isoweekday(), ())
    return any(opens <= minute < closes for opens, closes in hours)


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def _sticky_pick(plan: _Plan, caller_e164: str) -> Variant:
    """The same caller lands in the same variant for as long as the split (its
    variants, their order and weights) is unchanged: a stable hash, not random."""
    digest = hashlib.sha256(f"{plan.campaign_id}\0{caller_e164}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % plan.split_total
    for variant, weight in plan.split:
        if point < weight:
            return variant
        point -= weight
    raise AssertionError("the point lies inside the total weight")  # pragma: no cover
