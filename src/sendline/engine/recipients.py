"""A message's recipient as the send checks read it: the `Recipient` protocol, met by an
ORM `Contact` or by `ContactFacts`, the plain snapshot the batch paths load.

The runner queues hundreds of messages per batch; loading each contact as an ORM object
(identity map, change tracking, every column converted) cost more than rendering and
checking its message. A snapshot is also the right meaning: a message renders the
contact as it stood when its step ran, not as a later step of the same pass left it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.store.batch_filter import among
from sendline.store.models import Contact


class Recipient(Protocol):
    """A contact as the pipeline reads it: an ORM `Contact` or a `ContactFacts`."""

    @property
    def id(self) -> int: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def phone_e164(self) -> str | None: ...
    @property
    def phone_status(self) -> str: ...
    @property
    def phone_region(self) -> str | None: ...
    @property
    def time_zone(self) -> str | None: ...
    @property
    def sms_consent(self) -> str: ...
    @property
    def fields(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ContactFacts:
    id: int
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    phone_e164: str | None
    phone_status: str
    phone_region: str | None
    time_zone: str | None
    sms_consent: str
    fields: dict[str, Any]


_COLUMNS = [getattr(Contact, name) for name in ContactFacts.__slots__]


def load_facts(session: Session, contact_ids: Collection[int]) -> dict[int, ContactFacts]:
    """The contacts that still exist among `contact_ids`, by id."""
    if not contact_ids:
        return {}
    rows = session.execute(select(*_COLUMNS).where(among(session, Contact.id, contact_ids)))
    return {row[0]: ContactFacts(*row) for row in rows}
