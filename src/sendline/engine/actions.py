"""Contact changes that fire triggers: one entry point for steps, the CLI and the API.

Each action makes the store change, then, only when something really changed, wakes the
contact's sleeping runs (a goal may now hold) and enrolls the contact in the automations
listening for that change. Adding a tag the contact already has does nothing, which is
also what stops an automation from re-triggering itself by re-adding its own tag.

`depth` is how deep in a chain of automations this change is (0 for a person or an API
call; a step of a run at depth d acts at d + 1); triggers stop enrolling past MAX_DEPTH.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from sendline.engine import triggers
from sendline.engine.definitions import (
    AddTagStep,
    RemoveTagStep,
    Step,
    SubscribeStep,
    UnsubscribeStep,
    UpdateFieldStep,
)
from sendline.store.contact_values import UNSET, clean_name, clean_tag
from sendline.store.contacts import Contacts
from sendline.store.models import Contact

# Standard contact attributes an update_field step or the API may set, by tag name
# (automations.UPDATABLE_STANDARD_FIELDS).
_STANDARD = {"FIRSTNAME": "first_name", "LASTNAME": "last_name", "EMAIL": "email"}


class Actions:
    """The trigger-firing changes to one account's contacts."""

    def __init__(
        self, session: Session, account_id: int, *, now: datetime | None = None, depth: int = 0
    ) -> None:
        self._session = session
        self.account_id = account_id
        self.contacts = Contacts(session, account_id)
        self.now = now or datetime.now(UTC)
        self.depth = depth

    def subscribe(self, contact_id: int, list_name: str) -> int:
        """Add the contact to a list (created if new); returns the runs started."""
        name = clean_name(list_name, "list name") or ""
        if name in self.contacts.lists(contact_id):
            return 0
        self.contacts.add_to_list(contact_id, name)
        self._wake(contact_id)
        return triggers.on_list_subscribed(
            self._session, self.account_id, contact_id, name, now=self.now, depth=self.depth
        )

    def unsubscribe(self, contact_id: int, list_name: str) -> None:
        name = clean_name(list_name, "list name") or ""
        if name in self.contacts.lists(contact_id):
            self.contacts.remove_from_list(contact_id, name)
            self._wake(contact_id)

    def add_tag(self, contact_id: int, tag: str) -> int:
        """Tag the contact; returns the runs started by tag triggers."""
        tag = clean_tag(tag)
        if tag in self.contacts.tags(contact_id):
            return 0
        self.contacts.add_tags(contact_id, [tag])
        self._wake(contact_id)
        return triggers.on_tag_added(
            self._session, self.account_id, contact_id, tag, now=self.now, depth=self.depth
        )

    def remove_tag(self, contact_id: int, tag: str) -> None:
        tag = tag.strip()
        if tag in self.contacts.tags(contact_id):
            self.contacts.remove_tags(contact_id, [tag])
            self._wake(contact_id)

    def update_fields(self, contact_id: int, values: Mapping[str, Any]) -> int:
        """Set standard (FIRSTNAME, LASTNAME, EMAIL) or custom fields; None clears one.

        Returns the runs started by field_changed triggers, one check per changed field.
        """
        contact = self.contacts.get(contact_id)
        before = _values(contact)
        standard = {_STANDARD[k.upper()]: v for k, v in values.items() if k.upper() in _STANDARD}
        custom = {k.upper(): v for k, v in values.items() if k.upper() not in _STANDARD}
        self.contacts.update(
            contact_id,
            first_name=standard.get("first_name", UNSET),
            last_name=standard.get("last_name", UNSET),
            email=standard.get("email", UNSET),
            fields=custom or UNSET,
        )
        after = _values(contact)
        changed = {k: after.get(k) for k in {*before, *after} if before.get(k) != after.get(k)}
        if not changed:
            return 0
        self._wake(contact_id)
        return sum(
            triggers.on_field_changed(
                self._session,
                self.account_id,
                contact_id,
                key,
                value,
                now=self.now,
                depth=self.depth,
            )
            for key, value in sorted(changed.items())
        )

    def record_event(
        self, contact_id: int, name: str, payload: Mapping[str, Any] | None = None
    ) -> int:
        """A custom event happened to the contact (an order shipped, a form sent)."""
        self.contacts.require(contact_id)
        self._wake(contact_id)
        return triggers.on_event(
            self._session,
            self.account_id,
            contact_id,
            name,
            payload,
            now=self.now,
            depth=self.depth,
        )

    def apply(self, contact_id: int, step: Step) -> int:
        """Carry out a contact-changing step of an automation; returns the runs started."""
        if isinstance(step, AddTagStep):
            return self.add_tag(contact_id, step.tag)
        if isinstance(step, RemoveTagStep):
            self.remove_tag(contact_id, step.tag)
        elif isinstance(step, UpdateFieldStep):
            return self.update_fields(contact_id, {step.field: step.value})
        elif isinstance(step, SubscribeStep):
            return self.subscribe(contact_id, step.list)
        elif isinstance(step, UnsubscribeStep):
            self.unsubscribe(contact_id, step.list)
        else:
            raise TypeError(f"step {step.id} ({step.type}) does not change the contact")
        return 0

    def _wake(self, contact_id: int) -> None:
        triggers.wake_runs(self._session, contact_id, now=self.now)


def _values(contact: Contact) -> dict[str, Any]:
    values: dict[str, Any] = {
        "FIRSTNAME": contact.first_name,
        "LASTNAME": contact.last_name,
        "EMAIL": contact.email,
    }
    values.update({k.upper(): v for k, v in (contact.fields or {}).items()})
    return values
