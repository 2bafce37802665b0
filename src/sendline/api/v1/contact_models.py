"""The contact as /api/v1 shows it, shared by the contacts, tags and lists routes."""

from typing import Any

from pydantic import BaseModel

from sendline.api.v1.consent import ConsentOut, consent_out
from sendline.services.contacts import ContactChange, ContactView


class ContactOut(BaseModel):
    """A contact: the phone as submitted (R6) and what it means, consent, tags, lists."""

    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    phone_e164: str | None
    phone_status: str  # ok, no_phone, invalid_phone, landline
    phone_region: str | None
    time_zone: str | None
    sms_consent: str  # opted_in, opted_out, none
    fields: dict[str, Any]
    tags: list[str]
    lists: list[str]
    latest_consent: ConsentOut | None = None  # on a single contact, not in lists


class ContactChangeOut(BaseModel):
    """The contact after a change, and the automation runs the change started."""

    contact: ContactOut
    runs_started: int
    changed: bool


def contact_out(view: ContactView) -> ContactOut:
    latest = view.latest_consent
    return ContactOut(
        id=view.id,
        email=view.email,
        first_name=view.first_name,
        last_name=view.last_name,
        phone=view.phone,
        phone_e164=view.phone_e164,
        phone_status=view.phone_status,
        phone_region=view.phone_region,
        time_zone=view.time_zone,
        sms_consent=view.sms_consent,
        fields=view.fields,
        tags=view.tags,
        lists=view.lists,
        latest_consent=consent_out(latest) if latest is not None else None,
    )


def change_out(change: ContactChange) -> ContactChangeOut:
    return ContactChangeOut(
        contact=contact_out(change.contact),
        runs_started=change.runs_started,
        changed=change.changed,
    )
