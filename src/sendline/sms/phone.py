"""Phone numbers (R5-R8): read a stored number as the provider would dial it.

A number is stored exactly as submitted (R6); this module decides, at send time or when
deriving the indexed E.164 column, what it means. A number without `+` is read as
dialled from the US (R8, the source provider's `+1` default), and Sendline refuses to
text anything libphonenumber does not hold to be a valid number, so that default never
reaches a stranger.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from phonenumbers import PhoneNumberType, phonenumberutil
from phonenumbers.phonemetadata import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE
from phonenumbers.re_util import re_compile

DEFAULT_REGION = "US"

# Raw inputs longer than this are not phone numbers; libphonenumber itself gives up at
# 250 characters, and a cheap early bound keeps a 10 MB CSV field from costing anything.
MAX_RAW_LENGTH = 64


class PhoneStatus(StrEnum):
    OK = "ok"
    NO_PHONE = "no_phone"
    INVALID_PHONE = "invalid_phone"
    LANDLINE = "landline"


_TYPE_NAMES: dict[int, str] = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    """What a raw default-phone value means for sending.

    `e164` is set only when `status` is ok; `region` and `number_type` are reported
    whenever libphonenumber could tell them, so a held number can still be explained.
    """

    status: PhoneStatus
    e164: str | None = None
    region: str | None = None
    number_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is PhoneStatus.OK

    @property
    def held_reason(self) -> str | None:
        return None if self.status is PhoneStatus.OK else self.status.value


_NO_PHONE = PhoneCheck(PhoneStatus.NO_PHONE)
_UNPARSEABLE = PhoneCheck(PhoneStatus.INVALID_PHONE)


def check_phone(raw: str | None) -> PhoneCheck:
    """Classify a raw default-phone value: ok(e164, region, type) or a held reason."""
    if raw is None:
        return _NO_PHONE
    text = raw.strip()
    if not text:
        return _NO_PHONE
    if len(text) > MAX_RAW_LENGTH:
        return _UNPARSEABLE
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return _UNPARSEABLE
    return _classify(number)


def _classify(number: phonenumbers.PhoneNumber) -> PhoneCheck:
    # This is is_valid_number + number_type + format_number(E164) done with one region
    # lookup instead of three: for +1 that lookup types the number against each NANP
    # region's patterns in turn and dominates the cost, so the type it found is kept.
    # Validity is exactly "type is not UNKNOWN" for a number whose country code maps to
    # a region, which is how libphonenumber defines it.
    code = number.country_code
    national = phonenumberutil.national_significant_number(number)
    region, kind = _region_and_type(code, national)
    if region is None or code is None:
        return _UNPARSEABLE
    if kind is None:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is None:
            return PhoneCheck(PhoneStatus.INVALID_PHONE, region=_real_region(region))
        kind = phonenumberutil._number_type_helper(national, metadata)
    type_name = _TYPE_NAMES.get(kind, "unknown")
    if kind == PhoneNumberType.UNKNOWN:
        return PhoneCheck(PhoneStatus.INVALID_PHONE, region=_real_region(region))
    if kind == PhoneNumberType.FIXED_LINE:
        # A landline cannot receive SMS; sending would only burn credits.
        return PhoneCheck(PhoneStatus.LANDLINE, region=region, number_type=type_name)
    e164 = f"+{code}{national}"
    return PhoneCheck(PhoneStatus.OK, e164=e164, region=region, number_type=type_name)


def _region_and_type(code: int | None, national: str) -> tuple[str | None, int | None]:
    """libphonenumber's `region_code_for_number`, plus the number type when that lookup
    had to work it out (a calling code shared by several regions: +1 has 25)."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code) if code is not None else None
    if regions is None:
        return None, None
    if len(regions) == 1:
        return regions[0], None
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if re_compile(metadata.leading_digits).match(national):
                return region, None
            continue
        kind = phonenumberutil._number_type_helper(national, metadata)
        if kind != PhoneNumberType.UNKNOWN:
            return region, kind
    return None, None


def _real_region(region: str) -> str | None:
    # "ZZ" is libphonenumber's unknown region and "001" its non-geographic entity.
    return None if region in ("ZZ", "001") else region


def time_zones_for(e164: str) -> tuple[str, ...]:
    """Time zones a valid number may ring in, most likely first (empty when unknown).

    Quiet hours (R14) need the recipient's local time; for a number that spans zones
    the caller should respect every zone listed.
    """
    from phonenumbers import timezone  # noqa: PLC0415 - loads a large table on first use

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = timezone.time_zones_for_number(number)
    return tuple(z for z in zones if z != "Etc/Unknown")


def time_zone_for(e164: str) -> str | None:
    """The primary time zone of a valid number, or None when libphonenumber cannot say."""
    zones = time_zones_for(e164)
    return zones[0] if zones else None
