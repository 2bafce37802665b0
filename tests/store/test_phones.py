"""The import's phone classification agrees with the rule core (time zones included)."""

from __future__ import annotations

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from sendline.sms.phone import check_phone, time_zone_for
from sendline.store.phones import NO_PHONE, PhoneChecker, classify

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


def test_it_handles_every_region_like_the_rule_core() -> None:
    for raw in _examples():
        check = check_phone(raw)
        status, e164, region, zone = classify(raw)
        assert (status, e164, region) == (check.status.value, check.e164, check.region), raw
        assert zone == (time_zone_for(e164) if e164 else None), raw
    assert classify(None) == NO_PHONE


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
