"""R14: quiet hours in the recipient's zone(s)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendline.sms.schedule import DEFAULT_WINDOW, in_window, next_send_time

PARIS = ZoneInfo("Europe/Paris")
LA = ZoneInfo("America/Los_Angeles")
NY = ZoneInfo("America/New_York")
START, END = DEFAULT_WINDOW


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        # 12:00 in Paris (winter, UTC+1): inside the window, send now.
        (utc(2026, 1, 15, 11, 0), PARIS, utc(2026, 1, 15, 11, 0)),
        # 06:30 Paris: wait for 08:00 Paris = 07:00 UTC.
        (utc(2026, 1, 15, 5, 30), PARIS, utc(2026, 1, 15, 7, 0)),
        # 21:00 Paris exactly: the window is closed at its end; next morning.
        (utc(2026, 1, 15, 20, 0), PARIS, utc(2026, 1, 16, 7, 0)),
        # 20:59 Paris: still open.
        (utc(2026, 1, 15, 19, 59), PARIS, utc(2026, 1, 15, 19, 59)),
        # 23:00 UTC is 15:00 in Los Angeles: open.
        (utc(2026, 1, 15, 23, 0), LA, utc(2026, 1, 15, 23, 0)),
        # 05:00 UTC is 21:00 in Los Angeles (PST): next 08:00 PST = 16:00 UTC.
        (utc(2026, 1, 15, 5, 0), LA, utc(2026, 1, 15, 16, 0)),
        # Summer time: 08:00 in Paris is 06:00 UTC.
        (utc(2026, 7, 1, 5, 0), PARIS, utc(2026, 7, 1, 6, 0)),
    ],
)
def test_it_waits_for_the_local_window(now: datetime, zone: ZoneInfo, expected: datetime) -> None:
    assert next_send_time(now, [zone], START, END) == expected


def test_it_needs_every_zone_of_a_number_to_be_in_window() -> None:
    # 13:00 UTC: 08:00 in New York (open) but 05:00 in Los Angeles (closed).
    result = next_send_time(utc(2026, 1, 15, 13, 0), [NY, LA], START, END)
    assert result == utc(2026, 1, 15, 16, 0)  # 08:00 in LA, 11:00 in NY


def test_it_honours_a_window_that_wraps_midnight() -> None:
    assert in_window(datetime(2026, 1, 1, 23, 0), 22 * 60, 6 * 60)
    assert in_window(datetime(2026, 1, 1, 5, 59), 22 * 60, 6 * 60)
    assert not in_window(datetime(2026, 1, 1, 12, 0), 22 * 60, 6 * 60)


def test_it_treats_an_empty_window_as_no_quiet_hours() -> None:
    now = utc(2026, 1, 15, 3, 0)
    assert next_send_time(now, [PARIS], 600, 600) == now


def test_it_falls_back_to_the_primary_zone_when_zones_share_no_window() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    # A 2-hour window in zones 14-17 hours apart never overlaps.
    result = next_send_time(utc(2026, 1, 15, 12, 0), [tokyo, LA], 9 * 60, 11 * 60)
    assert in_window(result.astimezone(tokyo), 9 * 60, 11 * 60)


def test_it_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_send_time(datetime(2026, 1, 1), [PARIS], START, END)


def test_it_handles_the_spring_forward_gap() -> None:
    # 2026-03-29 02:00-03:00 does not exist in Paris; a 02:30 window start resolves.
    result = next_send_time(utc(2026, 3, 28, 23, 0), [PARIS], 2 * 60 + 30, 21 * 60)
    assert result > utc(2026, 3, 28, 23, 0)
    assert in_window(result.astimezone(PARIS), 2 * 60 + 30, 21 * 60)


zones = st.sampled_from([PARIS, LA, NY, ZoneInfo("Asia/Kolkata"), ZoneInfo("Australia/Sydney")])


@given(
    st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    st.lists(zones, min_size=1, max_size=2, unique=True),
    st.integers(0, 23 * 60),
    st.integers(30, 15 * 60),
)
def test_the_result_is_in_window_and_never_early(
    now: datetime, chosen: list[ZoneInfo], start: int, length: int
) -> None:
    end = (start + length) % (24 * 60)
    result = next_send_time(now, chosen, start, end)
    assert result >= now
    assert result - now <= timedelta(days=9)
    assert in_window(result.astimezone(chosen[0]), start, end)
    if in_window(now.astimezone(chosen[0]), start, end) and len(chosen) == 1:
        assert result == now
