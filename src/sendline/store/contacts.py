"""Contacts of one account (R5, R6): identity, default phone, custom fields, tags, lists.

The default phone is stored exactly as submitted (R6); its E.164 form, status, region
and time zone are derived with the rule core on every write, so the engine reads them
without parsing again. Phone-typed custom fields are data only: never a destination (R5).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sendline.errors import Conflict, InvalidInput, NotFound
from sendline.sms.phone import check_phone
from sendline.store.contact_values import (
    UNSET,
    PhoneFacts,
    check_field_key,
    clean_name,
    clean_tag,
    coerce_field,
    derive_phone,
    normalize_email,
)
from sendline.store.ids import parse_id
from sendline.store.models import (
    FIELD_TYPES,
    Contact,
    ContactList,
    ContactTag,
    CustomField,
    ListMember,
)

# Built once: an event or a reply checks its contact on every call, and an API event
# names it by id. Building a statement and its cache key costs more than running it.
_IN_ACCOUNT = select(Contact.id).where(
    Contact.id == bindparam("contact_id"), Contact.account_id == bindparam("account_id")
)
_BY_ID = select(Contact).where(
    Contact.id == bindparam("contact_id"), Contact.account_id == bindparam("account_id")
)
_RESOLVED = "sendline.contacts.resolved"  # session.info: (transaction, Contact) last loaded


class Contacts:
    """The contacts of one account; every query is filtered by that account."""

    def __init__(self, session: Session, account_id: int) -> None:
        self._session = session
        self.account_id = account_id

    # -- reading -----------------------------------------------------------------

    def require(self, contact_id: int) -> None:
        """Raise NotFound unless the contact is in this account (without loading it)."""
        if self._loaded_here(contact_id):
            return
        found = self._session.execute(
            _IN_ACCOUNT, {"contact_id": contact_id, "account_id": self.account_id}
        ).first()
        if found is None:
            raise NotFound(f"no contact {contact_id} in this account")

    def _loaded_here(self, contact_id: int) -> bool:
        """`_by_id` loaded this contact of this account in the session's current
        transaction, and it is still persistent (not deleted since): the query `require`
        runs could only say the same. An event resolves its contact, then records the
        event, which requires it again. Only the same transaction counts: the session
        keeps objects across commits (`expire_on_commit=False`), and another transaction
        may have deleted the contact since. Within the transaction, a concurrent delete
        on PostgreSQL can land after either read alike; the run's foreign key holds."""
        seen = self._session.info.get(_RESOLVED)
        if seen is None:
            return False
        transaction, contact = seen
        return (
            transaction is self._session.get_transaction()
            and contact.id == contact_id
            and contact.account_id == self.account_id
            and inspect(contact).persistent
        )

    def get(self, contact_id: int) -> Contact:
        contact = self._by_id(contact_id)
        if contact is None:
            raise NotFound(f"no contact {contact_id} in this account")
        return contact

    def find_by_email(self, email: str) -> Contact | None:
        normalized = normalize_email(email)
        return self._first(Contact.email == normalized) if normalized else None

    def find_by_phone(self, phone: str) -> Contact | None:
        e164 = check_phone(phone).e164
        return self._first(Contact.phone_e164 == e164) if e164 else None

    def resolve(self, ref: str) -> Contact:
        """A contact by id, email or phone number."""
        ref = ref.strip()
        contact: Contact | None = None
        number = parse_id(ref)
        if number is not None:
            contact = self._by_id(number)
        if contact is None and "@" in ref:
            contact = self.find_by_email(ref)
        if contact is None and "@" not in ref:
            contact = self.find_by_phone(ref)
        if contact is None:
            raise NotFound(f"no contact {ref!r} in this account")
        return contact

    def count(self) -> int:
        query = select(func.count()).select_from(Contact)
        return int(self._session.scalar(query.where(Contact.account_id == self.account_id)) or 0)

    def iter_contacts(self, batch_size: int = 1000) -> Iterator[list[Contact]]:
        """All contacts in id order, a batch at a time (memory stays flat)."""
        last_id = 0
        while True:
            batch = list(
                self._session.scalars(
                    select(Contact)
                    .where(Contact.account_id == self.account_id, Contact.id > last_id)
                    .order_by(Contact.id)
                    .limit(batch_size)
                )
            )
            if not batch:
                return
            yield batch
            last_id = batch[-1].id
            for contact in batch:  # keep the session's identity map from growing
                self._session.expunge(contact)

    def _by_id(self, contact_id: int) -> Contact | None:
        params = {"contact_id": contact_id, "account_id": self.account_id}
        contact = self._session.scalars(_BY_ID, params).first()
        if contact is not None:
            self._session.info[_RESOLVED] = (self._session.get_transaction(), contact)
        return contact

    def _first(self, *conditions: Any) -> Contact | None:
        query = select(Contact).where(Contact.account_id == self.account_id, *conditions)
        return self._session.scalars(query).first()

    # -- writing -----------------------------------------------------------------

    def create(
        self,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        fields: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        lists: Iterable[str] = (),
    ) -> Contact:
        normalized = normalize_email(email)
        facts = derive_phone(phone)
        if normalized is None and facts.phone is None:
            raise InvalidInput("a contact needs an email or a phone number", code="no_identity")
        self._check_unique(normalized, facts.e164, None)
        now = datetime.now(UTC)
        contact = Contact(
            account_id=self.account_id,
            email=normalized,
            first_name=clean_name(first_name, "first name"),
            last_name=clean_name(last_name, "last name"),
            fields=self._checked_fields(fields or {}),
            sms_consent="none",
            created_at=now,
            updated_at=now,
        )
        _set_phone(contact, facts)
        self._session.add(contact)
        self._flush()
        self.add_tags(contact.id, tags)
        for name in lists:
            self.add_to_list(contact.id, name)
        return contact

    def update(
        self,
        contact_id: int,
        *,
        email: str | None = UNSET,
        first_name: str | None = UNSET,
        last_name: str | None = UNSET,
        phone: str | None = UNSET,
        fields: Mapping[str, Any] | None = UNSET,
    ) -> Contact:
        """Change the given attributes; `fields` are merged (a None value removes one)."""
        contact = self.get(contact_id)
        changes: dict[str, Any] = {}
        if email is not UNSET:
            changes["email"] = normalize_email(email)
        if first_name is not UNSET:
            changes["first_name"] = clean_name(first_name, "first name")
        if last_name is not UNSET:
            changes["last_name"] = clean_name(last_name, "last name")
        if fields is not UNSET and fields:
            merged = {**contact.fields, **self._checked_fields(fields)}
            changes["fields"] = {k: v for k, v in merged.items() if v is not None}
        facts = derive_phone(phone) if phone is not UNSET else None
        self._check_unique(
            changes.get("email", contact.email),
            facts.e164 if facts else contact.phone_e164,
            contact,
        )
        changed = {k: v for k, v in changes.items() if getattr(contact, k) != v}
        for key, value in changed.items():
            setattr(contact, key, value)
        if facts is not None and facts.phone != contact.phone:
            _set_phone(contact, facts)
            changed["phone"] = facts.phone
        if changed:
            contact.updated_at = datetime.now(UTC)
            self._flush()
        return contact

    def _check_unique(self, email: str | None, e164: str | None, current: Contact | None) -> None:
        for column, value, what in (
            (Contact.email, email, "email"),
            (Contact.phone_e164, e164, "phone"),
        ):
            if value is None:
                continue
            other = self._first(column == value)
            if other is not None and (current is None or other.id != current.id):
                raise Conflict(f"contact {other.id} already has this {what} ({value})", field=what)

    def _flush(self) -> None:
        try:
            self._session.flush()
        except IntegrityError:
            raise Conflict("another contact of this account has this email or phone") from None

    # -- custom fields -----------------------------------------------------------

    def define_field(
        self, key: str, *, label: str | None = None, type: str = "text"
    ) -> CustomField:
        check_field_key(key)
        if type not in FIELD_TYPES:
            raise InvalidInput(f"custom field type {type!r} is not one of {', '.join(FIELD_TYPES)}")
        existing = self.custom_fields().get(key)
        if existing is not None:
            if existing.type != type:
                raise Conflict(f"custom field {key} already exists with type {existing.type}")
            return existing
        field = CustomField(account_id=self.account_id, key=key, label=label or key, type=type)
        self._session.add(field)
        self._session.flush()
        return field

    def custom_fields(self) -> dict[str, CustomField]:
        query = select(CustomField).where(CustomField.account_id == self.account_id)
        return {f.key: f for f in self._session.scalars(query.order_by(CustomField.key))}

    def _checked_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        defined = self.custom_fields()
        checked: dict[str, Any] = {}
        for key, value in values.items():
            if key not in defined:
                raise InvalidInput(f"unknown custom field {key!r}; define it first")
            checked[key] = None if value is None else coerce_field(key, defined[key].type, value)
        return checked

    # -- tags and lists ----------------------------------------------------------

    def tags(self, contact_id: int) -> list[str]:
        self.get(contact_id)
        query = select(ContactTag.tag).where(ContactTag.contact_id == contact_id)
        return sorted(self._session.scalars(query))

    def add_tags(self, contact_id: int, tags: Iterable[str]) -> None:
        wanted = {clean_tag(t) for t in tags}
        if not wanted:
            return
        have = set(self.tags(contact_id))
        self._session.add_all(ContactTag(contact_id=contact_id, tag=t) for t in wanted - have)
        self._session.flush()

    def remove_tags(self, contact_id: int, tags: Iterable[str]) -> None:
        self.get(contact_id)
        rows = self._session.scalars(
            select(ContactTag).where(
                ContactTag.contact_id == contact_id, ContactTag.tag.in_(list(tags))
            )
        )
        for row in rows:
            self._session.delete(row)
        self._session.flush()

    def list_id(self, name: str, *, create: bool = True) -> int:
        clean = clean_name(name, "list name")
        if clean is None:
            raise InvalidInput("a list needs a name")
        query = select(ContactList.id).where(
            ContactList.account_id == self.account_id, ContactList.name == clean
        )
        found = self._session.scalar(query)
        if found is not None:
            return found
        if not create:
            raise NotFound(f"no list {clean!r} in this account")
        contact_list = ContactList(
            account_id=self.account_id, name=clean, created_at=datetime.now(UTC)
        )
        self._session.add(contact_list)
        self._session.flush()
        return contact_list.id

    def lists(self, contact_id: int) -> list[str]:
        self.get(contact_id)
        query = (
            select(ContactList.name)
            .join(ListMember, ListMember.list_id == ContactList.id)
            .where(ListMember.contact_id == contact_id, ContactList.account_id == self.account_id)
        )
        return sorted(self._session.scalars(query))

    def add_to_list(self, contact_id: int, name: str) -> None:
        self.get(contact_id)
        list_id = self.list_id(name)
        if self._session.get(ListMember, (list_id, contact_id)) is None:
            self._session.add(
                ListMember(list_id=list_id, contact_id=contact_id, subscribed_at=datetime.now(UTC))
            )
            self._session.flush()

    def remove_from_list(self, contact_id: int, name: str) -> None:
        self.get(contact_id)
        member = self._session.get(ListMember, (self.list_id(name, create=False), contact_id))
        if member is not None:
            self._session.delete(member)
            self._session.flush()

    def members(self, name: str) -> list[int]:
        """Contact ids on a list of this account."""
        query = select(ListMember.contact_id).where(
            ListMember.list_id == self.list_id(name, create=False)
        )
        return sorted(self._session.scalars(query))


def _set_phone(contact: Contact, facts: PhoneFacts) -> None:
    contact.phone = facts.phone
    contact.phone_e164 = facts.e164
    contact.phone_status = facts.status
    contact.phone_region = facts.region
    contact.time_zone = facts.time_zone
