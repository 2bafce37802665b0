"""The import's phone classification agrees with the rule core (time zones included)."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.timezone import UNKNOWN_TIMEZONE
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from sendline.importing.phones import NO_PHONE, PhoneChecker, classify, zone_for
from sendline.sms.phone import check_phone, time_zone_for

TYPES = (
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.PREMIUM_RATE,
)


def _examples() -> list[str]:
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(phonenumbers.format_number(example, PhoneNumberFormat.INTERNATIONAL))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            numbers.append(phonenumbers.format_number(example, PhoneNumberFormat.E164))
    return numbers + ["(415) 892-1234", "212 736 5000", "06 12 34 56 78", "", "   ", "+1"]


def _agrees(raw: str) -> None:
    check = check_phone(raw)
    status, e164, region, zone = classify(raw)
    assert (status, e164, region) == (check.status.value, check.e164, check.region), raw
    assert zone == (time_zone_for(e164) if e164 else None), raw


def test_it_handles_every_region_like_the_rule_core() -> None:
    for raw in _examples():
        _agrees(raw)
    assert classify(None) == NO_PHONE
    _agrees("+1 " + "2" * 70)  # longer than the rule core reads


def test_it_handles_north_american_numbers_like_the_rule_core() -> None:
    # +1 is shared by 25 regions: classify finds region and type in one pass.
    rng = random.Random(3)
    formats = ("({a}) {e}-{n}", "{a}-{e}-{n}", "+1 {a} {e} {n}", "1{a}{e}{n}", "{a}{e}{n}")
    for _ in range(3000):
        area, exchange = rng.randint(100, 999), rng.randint(100, 999)
        line = f"{rng.randint(0, 9999):04d}"
        _agrees(rng.choice(formats).format(a=area, e=exchange, n=line))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="+0123456789 ()-.x", max_size=20))
def test_it_handles_any_input_like_the_rule_core(raw: str) -> None:
    _agrees(raw)


def test_its_time_zone_index_finds_the_longest_prefix() -> None:
    def reference(key: str) -> str | None:
        for length in range(min(TIMEZONE_LONGEST_PREFIX, len(key)), 0, -1):
            zones = TIMEZONE_DATA.get(key[:length])
            if zones is not None:
                known = [z for z in zones if z != UNKNOWN_TIMEZONE]
                return known[0] if known else None
        return None

    for prefix in TIMEZONE_DATA:
        for key in (prefix, prefix + "0", prefix + "99999", prefix[:-1] + "5"):
            code, national = int(key[0]), key[1:]
            kind = PhoneNumberType.FIXED_LINE_OR_MOBILE  # always geographical: the whole key
            assert zone_for(code, national, kind) == reference(key), key


@pytest.mark.parametrize("workers", [0, 2])
def test_it_handles_batches_in_order(workers: int) -> None:
    batches = [[f"(415) 892-{i:04d}" for i in range(n, n + 50)] for n in range(0, 500, 50)]
    results = []
    with PhoneChecker(workers) as checker:
        pending = 0
        for batch in batches:
            if pending == checker.max_in_flight:
                results.append(checker.result())
                pending -= 1
            checker.submit(list(batch))
            pending += 1
        results.extend(checker.result() for _ in range(pending))
    for batch, result in zip(batches, results, strict=True):
        assert [r[1] for r in result] == [check_phone(raw).e164 for raw in batch]
