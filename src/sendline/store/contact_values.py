"""What a contact's values may be: email, names, tags, custom-field keys and values, and
the facts derived from a default phone (R6). Pure checks shared by the contact
repository, the importer and the actions; each refusal is an InvalidInput with a code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sendline.errors import InvalidInput
from sendline.sms.phone import check_phone, time_zone_for

_EMAIL = re.compile(r"^[^@\s;,<>\"]+@[^@\s;,<>\"]+\.[^@\s;,<>\"]+$")
_FIELD_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
MAX_EMAIL = 254
MAX_NAME = 100
MAX_PHONE = 64
MAX_TEXT_FIELD = 1000
MAX_TAG = 64


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True, slots=True)
class PhoneFacts:
    """What is stored for a default phone value: the raw text and what it means."""

    phone: str | None
    e164: str | None
    status: str
    region: str | None
    time_zone: str | None


def derive_phone(raw: str | None) -> PhoneFacts:
    phone = raw if raw is not None and raw.strip() else None
    if phone is not None and len(phone) > MAX_PHONE:
        raise InvalidInput(f"phone {phone[:20]!r}... is longer than {MAX_PHONE} characters")
    check = check_phone(phone)
    zone = time_zone_for(check.e164) if check.e164 else None
    return PhoneFacts(phone, check.e164, check.status.value, check.region, zone)


def normalize_email(raw: str | None) -> str | None:
    """Lower-cased, trimmed email, None when empty; InvalidInput (bad_email) when malformed."""
    if raw is None or not raw.strip():
        return None
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise InvalidInput(f"bad email {raw!r}", code="bad_email")
    return email


def clean_name(raw: str | None, what: str = "name") -> str | None:
    if raw is None or not raw.strip():
        return None
    name = raw.strip()
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{what} is longer than {MAX_NAME} characters", code="bad_name")
    return name


def clean_tag(raw: str) -> str:
    tag = raw.strip()
    if not tag or len(tag) > MAX_TAG or ";" in tag or any(ord(c) < 32 for c in tag):
        raise InvalidInput(f"tag {raw!r} must be 1-{MAX_TAG} characters without ';'")
    return tag


def check_field_key(key: str) -> str:
    if not _FIELD_KEY.match(key):
        raise InvalidInput(
            f"custom field key {key!r} must be upper snake case, e.g. BIRTHDAY or PLAN_2"
        )
    return key


def coerce_field(key: str, type_: str, value: Any) -> Any:
    """A custom-field value checked and converted for its type (JSON-storable)."""
    if type_ == "number":
        return _number(key, value)
    if type_ == "date":
        return _date(key, value)
    text = str(value)
    if len(text) > (MAX_PHONE if type_ == "phone" else MAX_TEXT_FIELD):
        raise InvalidInput(f"{key} is too long", code="bad_field")
    return text  # a phone-typed field keeps the text as submitted, and is never dialled


def _number(key: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise InvalidInput(f"{key} must be a number, not {value!r}", code="bad_field")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{key} must be a number, not {value!r}", code="bad_field") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidInput(f"{key} must be a finite number", code="bad_field")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _date(key: str, value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise InvalidInput(
            f"{key} must be a date YYYY-MM-DD, not {value!r}", code="bad_field"
        ) from None
