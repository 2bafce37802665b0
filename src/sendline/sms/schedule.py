"""Quiet hours (R14): when a marketing message may reach the recipient.

Marketing texts go out only inside the recipient's local sending window (default
08:00-21:00); outside it they wait for the next window, they are not dropped. The zone
comes from the phone number; a number that spans zones (Russia, Brazil, ...) is sent
only when it is inside the window in every zone it may ring in, because a 7 a.m. text is
a complaint (and in several US states a fine) whichever zone the handset is really in.

Pure: callers pass `tzinfo` objects (zoneinfo), so nothing here reads the tz database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta, tzinfo

MINUTES_PER_DAY = 24 * 60
DEFAULT_WINDOW = (8 * 60, 21 * 60)  # 08:00-21:00 local

# Looking further than this for a moment that is in-window in every zone means the zones
# have no common window at all; the caller then falls back to the primary zone.
_SEARCH_DAYS = 8


def in_window(local: datetime, start: int, end: int) -> bool:
    """Whether a local wall-clock time is inside [start, end) minutes after midnight.

    A window with start > end wraps midnight (e.g. 22:00-06:00).
    """
    minute = local.hour * 60 + local.minute
    if start == end:
        return True  # an empty setting means "no quiet hours", not "never send"
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def _next_start(local: datetime, start: int) -> datetime:
    """The next local moment at `start` minutes after midnight, strictly after `local`."""
    start_time = time(start // 60, start % 60)
    candidate = datetime.combine(local.date(), start_time, tzinfo=local.tzinfo)
    if candidate <= local:
        candidate = datetime.combine(
            local.date() + timedelta(days=1), start_time, tzinfo=local.tzinfo
        )
    return candidate


def next_send_time(now: datetime, zones: Sequence[tzinfo], start: int, end: int) -> datetime:
    """The earliest UTC time >= `now` that is inside the window in every zone.

    `now` must be timezone-aware. With no zones the message is not delayed (the caller
    decides a default zone before this is called when it has one).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    candidate = now.astimezone(UTC)
    if not zones or start == end:
        return candidate
    limit = candidate + timedelta(days=_SEARCH_DAYS)
    while candidate <= limit:
        moved = False
        for zone in zones:
            local = candidate.astimezone(zone)
            if not in_window(local, start, end):
                # Normalising through UTC resolves a start time that falls in a DST gap
                # (it becomes the first valid instant after it).
                candidate = _next_start(local, start).astimezone(UTC)
                moved = True
        if not moved:
            return candidate
    return next_send_time(now, zones[:1], start, end)
