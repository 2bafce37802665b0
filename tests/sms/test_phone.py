"""R5-R8: how a stored default-phone value is read for sending."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendline.sms.phone import PhoneStatus, check_phone, time_zone_for, time_zones_for

OK, INVALID, LANDLINE, NO_PHONE = (
    PhoneStatus.OK,
    PhoneStatus.INVALID_PHONE,
    PhoneStatus.LANDLINE,
    PhoneStatus.NO_PHONE,
)


@pytest.mark.parametrize(
    ("raw", "status", "e164", "region"),
    [
        # US numbers may omit E.164 but need the area code (R7), in any punctuation.
        ("415 867 5309", OK, "+14158675309", "US"),
        ("(415) 867-5309", OK, "+14158675309", "US"),
        ("415.867.5309", OK, "+14158675309", "US"),
        ("1 415 867 5309", OK, "+14158675309", "US"),
        ("+1 415 867 5309", OK, "+14158675309", "US"),
        ("  +14158675309  ", OK, "+14158675309", "US"),
        ("+1 (604) 555-0199", OK, "+16045550199", "CA"),
        # Non-US numbers in E.164, spaces and punctuation ignored (R7).
        ("+33 6 12 34 56 78", OK, "+33612345678", "FR"),
        ("+33-6-12-34-56-78", OK, "+33612345678", "FR"),
        ("+44 7400 123456", OK, "+447400123456", "GB"),
        ("+55 11 91234 5678", OK, "+5511912345678", "BR"),
        ("+49 1512 3456789", OK, "+4915123456789", "DE"),
        # A number without + is dialled from the US: a French national number becomes
        # +1 061..., which is no valid number, so it is held, never sent (R8).
        ("06 12 34 56 78", INVALID, None, None),
        ("867 5309", INVALID, None, None),  # no area code
        ("+55 123 456 789", INVALID, None, "BR"),  # wrong length for Brazil
        ("+33 6 12 34", INVALID, None, "FR"),
        ("+999 1234567", INVALID, None, None),  # no such country code
        ("call me", INVALID, None, None),
        ("+", INVALID, None, None),
        ("1" * 500, INVALID, None, None),
        # Fixed lines cannot receive SMS (R8).
        ("+33 1 42 68 53 00", LANDLINE, None, "FR"),
        ("+44 20 7946 0958", LANDLINE, None, "GB"),
        # Empty default phone field.
        ("", NO_PHONE, None, None),
        ("   ", NO_PHONE, None, None),
        (None, NO_PHONE, None, None),
    ],
)
def test_it_reads_numbers_as_the_provider_would(
    raw: str | None, status: PhoneStatus, e164: str | None, region: str | None
) -> None:
    result = check_phone(raw)
    assert (result.status, result.e164, result.region) == (status, e164, region)
    assert result.ok is (status is OK)
    assert result.held_reason == (None if status is OK else status.value)


def test_it_reports_the_number_type() -> None:
    assert check_phone("+33 6 12 34 56 78").number_type == "mobile"
    assert check_phone("415 867 5309").number_type == "fixed_line_or_mobile"
    assert check_phone("+33 1 42 68 53 00").number_type == "fixed_line"


def test_it_derives_time_zones_from_the_number() -> None:
    assert time_zone_for("+14158675309") == "America/Los_Angeles"
    assert time_zone_for("+12125550123") == "America/New_York"
    assert time_zone_for("+33612345678") == "Europe/Paris"
    assert time_zones_for("not a number") == ()
    assert time_zone_for("+999") is None


@given(st.text(max_size=40))
def test_it_never_raises_and_agrees_with_libphonenumber(raw: str) -> None:
    result = check_phone(raw)
    if result.ok:
        assert result.e164 is not None
        parsed = phonenumbers.parse(result.e164, None)
        assert phonenumbers.is_valid_number(parsed)
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == (
            result.e164
        )
        assert phonenumbers.number_type(parsed) != phonenumbers.PhoneNumberType.FIXED_LINE


@given(st.from_regex(r"(\+1|1)?[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True))
def test_it_matches_libphonenumber_validity_on_us_shaped_numbers(raw: str) -> None:
    parsed = phonenumbers.parse(raw, "US")
    valid = phonenumbers.is_valid_number(parsed)
    result = check_phone(raw)
    assert (result.status is not INVALID) == valid
    if valid and result.ok:
        assert result.e164 == phonenumbers.format_number(
            parsed, phonenumbers.PhoneNumberFormat.E164
        )
