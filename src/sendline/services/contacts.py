"""Contacts: import and export, create / update / delete / list, tags and lists, consent.

Every change a person makes goes through the engine's actions (`engine/actions.py`), so
the tag, list and field triggers fire exactly as when an automation step makes it.
Each function runs in one transaction of its own and returns plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import delete as sql_delete
from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.actions import Actions
from sendline.errors import Conflict, InvalidInput
from sendline.importing.importer import ImportOptions, ImportReport, Progress
from sendline.importing.importer import import_contacts as run_import
from sendline.services import AccountRef, resolve_account
from sendline.store import exporter
from sendline.store.consent import Consent
from sendline.store.contact_values import UNSET
from sendline.store.contacts import Contacts
from sendline.store.engine_models import AutomationRun, InboundMessage, Message
from sendline.store.models import (
    CONSENT_METHODS,
    ConsentEvent,
    Contact,
    ContactTag,
    ListMember,
)

Sessions = sessionmaker[Session]
LIST_LIMIT = 50
# How a contact is named: the CLI passes what the user typed (an id, an email or a
# phone); the API passes the id from its path, an int, only ever taken as an id.
ContactRef = str | int
# Called with the import's report inside its transaction, just before the commit: what
# it writes (an import job's outcome) is committed with the contacts or not at all.
BeforeCommit = Callable[[Session, ImportReport], None]


@dataclass(frozen=True)
class ConsentRecord:
    id: int
    kind: str
    method: str
    source: str
    disclosure: str | None
    ip: str | None
    user_agent: str | None
    occurred_at: datetime
    recorded_at: datetime
    recorded_by: str | None


@dataclass(frozen=True)
class ContactView:
    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None  # as submitted (R6)
    phone_e164: str | None
    phone_status: str
    phone_region: str | None
    time_zone: str | None
    sms_consent: str
    fields: dict[str, Any]
    tags: list[str]
    lists: list[str]
    latest_consent: ConsentRecord | None

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)


@dataclass(frozen=True)
class ContactChange:
    """What a command did: the contact after it, and the automation runs it started."""

    contact: ContactView
    runs_started: int
    changed: bool = True


@dataclass(frozen=True)
class ImportResult:
    account: str
    report: ImportReport


@dataclass(frozen=True)
class ConsentHistory:
    contact: ContactView
    events: list[ConsentRecord]


# -- import and export -----------------------------------------------------------------


def import_contacts(
    sessions: Sessions,
    account: AccountRef,
    path: Path,
    options: ImportOptions | None = None,
    progress: Progress | None = None,
    before_commit: BeforeCommit | None = None,
) -> ImportResult:
    """Import a CSV file into one account, all or nothing; its tags and lists fire triggers."""
    with sessions.begin() as session:
        found = resolve_account(session, account)
        report = run_import(session, found.id, path, options, progress)
        if before_commit is not None:
            before_commit(session, report)
        return ImportResult(found.name, report)


def export_contacts(sessions: Sessions, account: AccountRef, out: TextIO) -> tuple[str, int]:
    """Write the account's contacts as CSV; returns (account name, contacts written)."""
    with sessions.begin() as session:
        found = resolve_account(session, account)
        return found.name, exporter.export_contacts(session, found.id, out)


# -- reading ---------------------------------------------------------------------------


def show(sessions: Sessions, account: AccountRef, ref: ContactRef) -> ContactView:
    with sessions.begin() as session:
        contacts = _contacts(session, account)
        return _view(session, contacts, _find(contacts, ref))


def consent_history(sessions: Sessions, account: AccountRef, ref: ContactRef) -> ConsentHistory:
    """Every opt-in and opt-out of a contact, oldest first: the audit trail (R4)."""
    with sessions.begin() as session:
        contacts = _contacts(session, account)
        person = _find(contacts, ref)
        events = Consent(session, contacts.account_id).history(person.id)
        return ConsentHistory(_view(session, contacts, person), [_record(e) for e in events])


def write_consent_csv(sessions: Sessions, account: AccountRef, ref: ContactRef, out: TextIO) -> int:
    with sessions.begin() as session:
        contacts = _contacts(session, account)
        return Consent(session, contacts.account_id).write_csv(_find(contacts, ref).id, out)


def list_contacts(
    sessions: Sessions,
    account: AccountRef,
    *,
    tag: str | None = None,
    list_name: str | None = None,
    limit: int = LIST_LIMIT,
    after: int = 0,
) -> list[ContactView]:
    """Contacts in id order (after id `after`), optionally those with a tag or on a list."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("--limit must be between 1 and 10000")
    with sessions.begin() as session:
        contacts = _contacts(session, account)
        query = select(Contact).where(Contact.account_id == contacts.account_id)
        if tag is not None:
            query = query.where(
                exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag == tag.strip())
            )
        if list_name is not None:
            list_id = contacts.list_id(list_name, create=False)
            query = query.where(
                exists().where(ListMember.contact_id == Contact.id, ListMember.list_id == list_id)
            )
        rows = session.scalars(query.where(Contact.id > after).order_by(Contact.id).limit(limit))
        return [_view(session, contacts, c, consent=False) for c in rows]


# -- changing --------------------------------------------------------------------------


def create(
    sessions: Sessions,
    account: AccountRef,
    *,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    phone: str | None = None,
    fields: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
    lists: Sequence[str] = (),
) -> ContactChange:
    """A new contact (no consent yet: record it with `record_consent`)."""
    with sessions.begin() as session:
        contacts = _contacts(session, account)
        person = contacts.create(
            email=email, first_name=first_name, last_name=last_name, phone=phone
        )
        actions = Actions(session, contacts.account_id)
        runs = actions.update_fields(person.id, fields) if fields else 0
        runs += sum(actions.add_tag(person.id, t) for t in tags)
        runs += sum(actions.subscribe(person.id, name) for name in lists)
        return ContactChange(_view(session, contacts, person), runs)


def update(
    sessions: Sessions,
    account: AccountRef,
    ref: ContactRef,
    *,
    email: str | None = UNSET,
    first_name: str | None = UNSET,
    last_name: str | None = UNSET,
    phone: str | None = UNSET,
    fields: Mapping[str, Any] | None = None,
) -> ContactChange:
    """Change the given attributes; field triggers fire for each value that changed."""
    with sessions.begin() as session:
        contacts = _contacts(session, account)
        person = _find(contacts, ref)
        values: dict[str, Any] = dict(fields or {})
        for key, value in (("EMAIL", email), ("FIRSTNAME", first_name), ("LASTNAME", last_name)):
            if value is not UNSET:
                values[key] = value
        before = person.updated_at
        runs = Actions(session, contacts.account_id).update_fields(person.id, values)
        if phone is not UNSET:
            contacts.update(person.id, phone=phone)
        if person.email is None and person.phone is None:
            raise InvalidInput("a contact needs an email or a phone number", code="no_identity")
        changed = person.updated_at != before or runs > 0
        return ContactChange(_view(session, contacts, person), runs, changed)


def tag(
    sessions: Sessions, account: AccountRef, ref: ContactRef, tags: Sequence[str]
) -> ContactChange:
    return _change(sessions, account, ref, lambda a, cid: sum(a.add_tag(cid, t) for t in tags))


def untag(
    sessions: Sessions, account: AccountRef, ref: ContactRef, tags: Sequence[str]
) -> ContactChange:
    return _change(sessions, account, ref, lambda a, cid: [a.remove_tag(cid, t) for t in tags])


def subscribe(
    sessions: Sessions, account: AccountRef, ref: ContactRef, list_name: str
) -> ContactChange:
    return _change(sessions, account, ref, lambda a, cid: a.subscribe(cid, list_name))


def unsubscribe(
    sessions: Sessions, account: AccountRef, ref: ContactRef, list_name: str
) -> ContactChange:
    def leave(actions: Actions, contact_id: int) -> None:
        actions.contacts.list_id(list_name, create=False)  # an unknown list is an error
        actions.unsubscribe(contact_id, list_name)

    return _change(sessions, account, ref, leave)


def delete(sessions: Sessions, account: AccountRef, ref: ContactRef) -> int:
    """Delete a contact who has no history; returns its id.

    Consent records are append-only proof (R4), and messages and runs are the record of
    what was sent: a contact with any of them is kept (opt them out instead).
    """
    with sessions.begin() as session:
        contacts = _contacts(session, account)
        person = _find(contacts, ref)
        history = (
            (ConsentEvent, "consent records"),
            (Message, "messages"),
            (InboundMessage, "replies"),
        )
        for model, what in history:
            if session.scalar(select(exists().where(model.contact_id == person.id))):
                raise Conflict(
                    f"contact {person.id} has {what}, kept as proof (R4): "
                    "opt them out with `sendline contacts opt-out` instead",
                    code="contact_has_history",
                )
        session.execute(sql_delete(AutomationRun).where(AutomationRun.contact_id == person.id))
        session.execute(sql_delete(ContactTag).where(ContactTag.contact_id == person.id))
        session.execute(sql_delete(ListMember).where(ListMember.contact_id == person.id))
        session.delete(person)
        return person.id


def record_consent(
    sessions: Sessions,
    account: AccountRef,
    ref: ContactRef,
    *,
    kind: str,
    method: str,
    disclosure: str | None,
    recorded_by: str,
    source: str = "manual",
    ip: str | None = None,
    user_agent: str | None = None,
    occurred_at: datetime | None = None,
) -> ConsentRecord:
    """Append consent captured elsewhere (a paper form, a call) with its proof (R4)."""
    if method not in CONSENT_METHODS:
        raise InvalidInput(
            f"--method {method!r} is not one of {', '.join(CONSENT_METHODS)}",
            code="bad_consent_method",
        )
    with sessions.begin() as session:
        contacts = _contacts(session, account)
        person = _find(contacts, ref)
        event = Consent(session, contacts.account_id).record(
            person.id,
            kind,
            method,
            source=source,
            disclosure=disclosure,
            ip=ip,
            user_agent=user_agent,
            occurred_at=occurred_at,
            recorded_by=recorded_by,
        )
        return _record(event)


# -- internals -------------------------------------------------------------------------


def _find(contacts: Contacts, ref: ContactRef) -> Contact:
    return contacts.get(ref) if isinstance(ref, int) else contacts.resolve(ref)


def _contacts(session: Session, account: AccountRef) -> Contacts:
    return Contacts(session, resolve_account(session, account).id)


def _change(sessions: Sessions, account: AccountRef, ref: ContactRef, change: Any) -> ContactChange:
    """Run one action on the contact; `changed` tells whether tags or lists moved."""
    with sessions.begin() as session:
        contacts = _contacts(session, account)
        person = _find(contacts, ref)
        before = (contacts.tags(person.id), contacts.lists(person.id))
        result = change(Actions(session, contacts.account_id), person.id)
        runs = result if isinstance(result, int) else 0
        view = _view(session, contacts, person)
        return ContactChange(view, runs, (view.tags, view.lists) != before)


def _view(
    session: Session, contacts: Contacts, person: Contact, *, consent: bool = True
) -> ContactView:
    latest = Consent(session, contacts.account_id).latest(person.id) if consent else None
    return ContactView(
        id=person.id,
        email=person.email,
        first_name=person.first_name,
        last_name=person.last_name,
        phone=person.phone,
        phone_e164=person.phone_e164,
        phone_status=person.phone_status,
        phone_region=person.phone_region,
        time_zone=person.time_zone,
        sms_consent=person.sms_consent,
        fields=dict(person.fields or {}),
        tags=contacts.tags(person.id),
        lists=contacts.lists(person.id),
        latest_consent=_record(latest) if latest is not None else None,
    )


def _record(event: ConsentEvent) -> ConsentRecord:
    return ConsentRecord(
        id=event.id,
        kind=event.kind,
        method=event.method,
        source=event.source,
        disclosure=event.disclosure,
        ip=event.ip,
        user_agent=event.user_agent,
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at,
        recorded_by=event.recorded_by,
    )


__all__ = [
    "ConsentHistory",
    "ConsentRecord",
    "ContactChange",
    "ContactRef",
    "ContactView",
    "ImportResult",
    "consent_history",
    "create",
    "delete",
    "export_contacts",
    "import_contacts",
    "list_contacts",
    "record_consent",
    "show",
    "subscribe",
    "tag",
    "unsubscribe",
    "untag",
    "write_consent_csv",
]
