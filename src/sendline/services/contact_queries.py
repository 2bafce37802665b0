"""Contacts, read a page at a time: the searches and summaries behind the API's lists.

Pages are keyset pages (`before` an id, or `after` a tag name), fetched `limit + 1` at a
time so the caller can tell whether another page follows. Every query is scoped to the
account; another account's rows never match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from sendline.errors import InvalidInput
from sendline.services import AccountRef, resolve_account
from sendline.services.contacts import (
    ConsentRecord,
    ContactView,
    Sessions,
    _find,
    _record,
)
from sendline.sms.phone import check_phone
from sendline.store.contact_values import normalize_email
from sendline.store.contacts import Contacts
from sendline.store.ids import MAX_ID
from sendline.store.keyset import newest_first
from sendline.store.models import ConsentEvent, Contact, ContactList, ContactTag, ListMember


@dataclass(frozen=True)
class ContactFilter:
    """The search: every given criterion must hold."""

    phone: str | None = None  # any spelling of the number (matched by E.164), or as stored
    email: str | None = None
    tag: str | None = None
    list_name: str | None = None
    consent: str | None = None  # opted_in, opted_out, none
    phone_status: str | None = None  # ok, no_phone, invalid_phone, landline (PHONE_STATUSES)


@dataclass(frozen=True)
class TagCount:
    tag: str
    contacts: int


@dataclass(frozen=True)
class ListCount:
    id: int
    name: str
    members: int
    created_at: datetime


def search_contacts(
    sessions: Sessions,
    account: AccountRef,
    where: ContactFilter,
    *,
    before: int | None,
    limit: int,
) -> list[ContactView]:
    """Up to `limit + 1` contacts matching `where`, newest first, with ids below `before`."""
    with sessions.begin() as session:
        account_id = resolve_account(session, account).id
        query = _filtered(session, account_id, where)
        if query is None:
            return []
        query = newest_first(query, Contact.id, before, limit + 1)
        rows: list[Contact] = list(session.scalars(query))
        return _views(session, rows)


def tag_counts(
    sessions: Sessions, account: AccountRef, *, after: str | None, limit: int
) -> list[TagCount]:
    """Up to `limit + 1` tags of the account by name (after `after`), with contact counts."""
    with sessions.begin() as session:
        account_id = resolve_account(session, account).id
        query = (
            select(ContactTag.tag, func.count())
            .join(Contact, Contact.id == ContactTag.contact_id)
            .where(Contact.account_id == account_id)
            .group_by(ContactTag.tag)
            .order_by(ContactTag.tag)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(ContactTag.tag > after)
        return [TagCount(tag, int(count)) for tag, count in session.execute(query)]


def list_counts(
    sessions: Sessions, account: AccountRef, *, before: int | None, limit: int
) -> list[ListCount]:
    """Up to `limit + 1` lists of the account, newest first, with member counts."""
    with sessions.begin() as session:
        account_id = resolve_account(session, account).id
        members = (
            select(func.count())
            .where(ListMember.list_id == ContactList.id)
            .correlate(ContactList)
            .scalar_subquery()
        )
        query = select(ContactList.id, ContactList.name, ContactList.created_at, members).where(
            ContactList.account_id == account_id
        )
        rows = session.execute(newest_first(query, ContactList.id, before, limit + 1))
        return [ListCount(i, name, int(count), at) for i, name, at, count in rows]


def consent_page(
    sessions: Sessions, account: AccountRef, contact_id: int, *, before: int | None, limit: int
) -> list[ConsentRecord]:
    """Up to `limit + 1` consent events of one contact, newest recorded first (R4)."""
    with sessions.begin() as session:
        contacts = Contacts(session, resolve_account(session, account).id)
        person = _find(contacts, contact_id)
        query = select(ConsentEvent).where(
            ConsentEvent.account_id == contacts.account_id, ConsentEvent.contact_id == person.id
        )
        events = session.scalars(newest_first(query, ConsentEvent.id, before, limit + 1))
        return [_record(event) for event in events]


def contact_names(sessions: Sessions, account: AccountRef, ids: Iterable[int]) -> dict[int, str]:
    """How each of these contacts is shown in a list of texts (name, else phone, else
    email), in one query for a whole page; another account's ids are left out."""
    wanted = sorted({i for i in ids if 1 <= i <= MAX_ID})  # PostgreSQL refuses a bigger one
    if not wanted:
        return {}
    with sessions.begin() as session:
        account_id = resolve_account(session, account).id
        rows = session.execute(
            select(
                Contact.id, Contact.first_name, Contact.last_name, Contact.email, Contact.phone
            ).where(Contact.account_id == account_id, Contact.id.in_(wanted))
        )
        names: dict[int, str] = {}
        for contact_id, first, last, email, phone in rows:
            label = " ".join(p for p in (first, last) if p) or phone or email
            if label:
                names[contact_id] = label
        return names


def _filtered(session: Session, account_id: int, where: ContactFilter) -> Select[Any] | None:
    """The query for `where`; None when nothing can match (an unknown list, a bad email)."""
    query = select(Contact).where(Contact.account_id == account_id)
    if where.phone is not None:
        e164 = check_phone(where.phone).e164
        raw = where.phone.strip()
        query = query.where(Contact.phone_e164 == e164 if e164 else Contact.phone == raw)
    if where.email is not None:
        email = _email(where.email)
        if email is None:
            return None
        query = query.where(Contact.email == email)
    if where.tag is not None:
        query = query.where(
            exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag == where.tag.strip())
        )
    if where.list_name is not None:
        list_id = session.scalar(
            select(ContactList.id).where(
                ContactList.account_id == account_id, ContactList.name == where.list_name.strip()
            )
        )
        if list_id is None:
            return None
        query = query.where(
            exists().where(ListMember.contact_id == Contact.id, ListMember.list_id == list_id)
        )
    if where.consent is not None:
        query = query.where(Contact.sms_consent == where.consent)
    if where.phone_status is not None:
        query = query.where(Contact.phone_status == where.phone_status)
    return query


def _email(raw: str) -> str | None:
    try:
        return normalize_email(raw)
    except InvalidInput:
        return None


def _views(session: Session, rows: list[Contact]) -> list[ContactView]:
    """Views of a page of contacts: tags and lists in one query each, not one per contact."""
    ids = [row.id for row in rows]
    tags: dict[int, list[str]] = defaultdict(list)
    lists: dict[int, list[str]] = defaultdict(list)
    for contact_id, tag in session.execute(
        select(ContactTag.contact_id, ContactTag.tag).where(ContactTag.contact_id.in_(ids))
    ):
        tags[contact_id].append(tag)
    for contact_id, name in session.execute(
        select(ListMember.contact_id, ContactList.name)
        .join(ContactList, ContactList.id == ListMember.list_id)
        .where(ListMember.contact_id.in_(ids))
    ):
        lists[contact_id].append(name)
    return [
        ContactView(
            id=row.id,
            email=row.email,
            first_name=row.first_name,
            last_name=row.last_name,
            phone=row.phone,
            phone_e164=row.phone_e164,
            phone_status=row.phone_status,
            phone_region=row.phone_region,
            time_zone=row.time_zone,
            sms_consent=row.sms_consent,
            fields=dict(row.fields or {}),
            tags=sorted(tags[row.id]),
            lists=sorted(lists[row.id]),
            latest_consent=None,  # a list shows the status; GET /contacts/{id} the proof
        )
        for row in rows
    ]


__all__ = [
    "ContactFilter",
    "ListCount",
    "TagCount",
    "consent_page",
    "contact_names",
    "list_counts",
    "search_contacts",
    "tag_counts",
]
