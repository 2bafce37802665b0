"""Test data for automations: contacts with tags, lists and fields, saved automations, a
settable clock, and the runner driven the way a worker drives it.

Every helper commits: on SQLite an open transaction holds the write lock (BEGIN
IMMEDIATE) and would block the runner under test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.automations import Automations, trigger_key
from sendline.engine.definitions import parse_definition
from sendline.engine.runner import Runner
from sendline.store.consent import Consent
from sendline.store.contacts import Contacts
from sendline.store.engine_models import Automation, AutomationRun, AutomationVersion, Message
from sendline.store.models import (
    DEFAULT_QUIET_END,
    DEFAULT_QUIET_START,
    Account,
    ConsentEvent,
    Contact,
)
from tests.engine.factories import DISCLOSURE, make_account

# 12:00 in San Francisco, 15:00 in New York, 20:00 in London: inside every sending window.
NOON = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
SF = "+14158675309"  # America/Los_Angeles


class Clock:
    def __init__(self, now: datetime = NOON) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def account(session: Session, name: str = "demo", **settings: Any) -> Account:
    # The product's sending window (R14): these tests follow runs through quiet hours.
    settings.setdefault("quiet_start", DEFAULT_QUIET_START)
    settings.setdefault("quiet_end", DEFAULT_QUIET_END)
    return make_account(session, name, **settings)


def contact(
    session: Session,
    owner: Account,
    phone: str | None = SF,
    *,
    consent: bool = True,
    first_name: str | None = "Ada",
    email: str | None = None,
    fields: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    lists: Iterable[str] = (),
) -> Contact:
    contacts = Contacts(session, owner.id)
    for key, value in (fields or {}).items():
        if key not in contacts.custom_fields():
            kind = "number" if isinstance(value, int | float) else "text"
            contacts.define_field(key, type=kind)
    created = contacts.create(
        phone=phone,
        email=email,
        first_name=first_name,
        fields=fields,
        tags=tags,
        lists=lists,
    )
    if consent:
        Consent(session, owner.id).record(
            created.id, "opt_in", "form", source="signup form", disclosure=DISCLOSURE
        )
    session.commit()
    return created


def define_fields(session: Session, owner: Account, **types: str) -> None:
    contacts = Contacts(session, owner.id)
    for key, kind in types.items():
        contacts.define_field(key, type=kind)
    session.commit()


def automation(session: Session, owner: Account, text: str, *, active: bool = True) -> Automation:
    automations = Automations(session, owner.id)
    saved = automations.create(text)
    if active:
        automations.activate(saved.automation.id)
    session.commit()
    return saved.automation


def saved_before_checks(session: Session, owner: Account, text: str) -> Automation:
    """An active automation stored as an older version would be: parsed, not validated
    (the save-time checks added since would refuse it), as the runner must still run it."""
    definition = parse_definition(text)
    automation = Automation(
        account_id=owner.id,
        name=definition.name,
        status="active",
        trigger_type=definition.trigger.type,
        trigger_key=trigger_key(definition),
    )
    session.add(automation)
    session.flush()
    data = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
    version = AutomationVersion(automation_id=automation.id, number=1, definition=data)
    session.add(version)
    session.flush()
    automation.current_version_id = version.id
    session.commit()
    return automation


def runner(
    session_factory: sessionmaker[Session], clock: Clock, worker_id: str = "w1", **options: Any
) -> Runner:
    return Runner(session_factory, worker_id=worker_id, clock=clock, **options)


def messages(session: Session, owner: Account | None = None) -> list[Message]:
    query = select(Message).order_by(Message.id)
    if owner is not None:
        query = query.where(Message.account_id == owner.id)
    found = list(session.scalars(query.execution_options(populate_existing=True)))
    session.commit()
    return found


def runs(session: Session, automation_id: int | None = None) -> list[AutomationRun]:
    query = select(AutomationRun).order_by(AutomationRun.id)
    if automation_id is not None:
        query = query.where(AutomationRun.automation_id == automation_id)
    found = list(session.scalars(query.execution_options(populate_existing=True)))
    session.commit()
    return found


def many_contacts(session: Session, owner: Account, count: int) -> None:
    """Consenting San Francisco contacts, written in bulk (as an import would)."""
    phones = [f"+1415555{i:04d}" for i in range(count)]
    rows = [
        {
            "account_id": owner.id,
            "first_name": "Ada",
            "phone": phone,
            "phone_e164": phone,
            "phone_status": "ok",
            "phone_region": "US",
            "time_zone": "America/Los_Angeles",
            "fields": {},
            "sms_consent": "opted_in",
            "created_at": NOON,
            "updated_at": NOON,
        }
        for phone in phones
    ]
    ids = session.scalars(insert(Contact).returning(Contact.id), rows).all()
    events = [
        {
            "account_id": owner.id,
            "contact_id": contact_id,
            "kind": "opt_in",
            "method": "import",
            "source": "test import",
            "disclosure": DISCLOSURE,
            "occurred_at": NOON,
            "recorded_at": NOON,
        }
        for contact_id in ids
    ]
    session.execute(insert(ConsentEvent), events)
    session.commit()
