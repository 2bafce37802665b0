"""CSV export of an account's contacts, in the columns the import reads back.

Streams in id order, a page at a time, so memory stays flat. Consent is written as
yes / no / empty (the import's words), tags and lists joined with ';', then one column
per custom field (its key). Phones are written as stored (as submitted, R6), and
every text cell through `csv_safety` (a formula-like cell gets a leading quote).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.csv_safety import csv_writer
from sendline.store.accounts import Accounts
from sendline.store.contacts import Contacts
from sendline.store.models import Contact, ContactList, ContactTag, ListMember

STANDARD_COLUMNS = ("email", "first_name", "last_name", "phone", "consent", "tags", "lists")
PAGE = 5000
_CONSENT = {"opted_in": "yes", "opted_out": "no", "none": ""}


def export_contacts(session: Session, account_id: int, out: TextIO) -> int:
    """Write every contact of the account as CSV; return how many were written."""
    Accounts(session).get(account_id)
    keys = sorted(Contacts(session, account_id).custom_fields())
    writer = csv_writer(out)
    writer.writerow([*STANDARD_COLUMNS, *keys])
    count = 0
    for page in _pages(session, account_id):
        ids = [row.id for row in page]
        tags = _grouped(session, select(ContactTag.contact_id, ContactTag.tag), ids)
        lists = _grouped(
            session,
            select(ListMember.contact_id, ContactList.name).join(
                ContactList, ContactList.id == ListMember.list_id
            ),
            ids,
        )
        for row in page:
            fields: dict[str, Any] = row.fields or {}
            writer.writerow(
                [
                    row.email or "",
                    row.first_name or "",
                    row.last_name or "",
                    row.phone or "",
                    _CONSENT[row.sms_consent],
                    ";".join(sorted(tags.get(row.id, ()))),
                    ";".join(sorted(lists.get(row.id, ()))),
                    *(_cell(fields.get(key)) for key in keys),
                ]
            )
        count += len(page)
    return count


def _pages(session: Session, account_id: int) -> Iterator[list[Any]]:
    last = 0
    while True:
        page = list(
            session.execute(
                select(
                    Contact.id,
                    Contact.email,
                    Contact.first_name,
                    Contact.last_name,
                    Contact.phone,
                    Contact.sms_consent,
                    Contact.fields,
                )
                .where(Contact.account_id == account_id, Contact.id > last)
                .order_by(Contact.id)
                .limit(PAGE)
            )
        )
        if not page:
            return
        yield page
        last = page[-1].id


def _grouped(session: Session, query: Any, ids: list[int]) -> dict[int, list[str]]:
    # Every query here is filtered through ids of this account's contacts only.
    grouped: dict[int, list[str]] = defaultdict(list)
    contact_column = query.selected_columns[0]
    for contact_id, value in session.execute(query.where(contact_column.in_(ids))):
        grouped[contact_id].append(value)
    return grouped


def _cell(value: Any) -> Any:
    # Numbers stay numbers (a negative one is not a formula), text is defused by the writer.
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return str(value)
