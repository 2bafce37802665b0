"""Time zones of a contact: where quiet hours (R14) and local times are counted."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sendline.sms.phone import time_zones_for


@lru_cache(maxsize=4096)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


Zones = tuple[ZoneInfo, ...]  # every zone a number may ring in
_ZONES_BY_PREFIX: dict[str, Zones] = {}


def _zones_of_number(e164: str) -> Zones:
    # libphonenumber maps zones by prefix, at most 9 digits after the "+", so numbers
    # sharing those digits share zones: keyed by them, a blast to a million numbers
    # parses a few thousand.
    key = e164[:10]
    zones = _ZONES_BY_PREFIX.get(key)
    if zones is None:
        zones = tuple(z for z in map(_zone, time_zones_for(e164)) if z is not None)
        if len(_ZONES_BY_PREFIX) < 200_000:
            _ZONES_BY_PREFIX[key] = zones
    return zones


def ringing_zones(e164: str | None, stored: str | None) -> Zones:
    """Every zone the number may ring in (R14); the stored zone is the fallback when
    libphonenumber cannot tell."""
    if e164 is not None:
        zones = _zones_of_number(e164)
        if zones:
            return zones
    zone = _zone(stored) if stored else None
    return (zone,) if zone is not None else ()


def local_zone(name: str | None) -> ZoneInfo:
    """The contact's stored zone (derived from the phone), UTC when unknown."""
    return (_zone(name) if name else None) or ZoneInfo("UTC")
