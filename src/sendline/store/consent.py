"""SMS consent records (R4): append-only events, status derived from the latest.

The latest event is the one that occurred last; on an exact tie the opt-out wins (R13
in spirit: when in doubt, do not text), then the one recorded last. The contact's
`sms_consent` column caches that status for the engine's hot path and is recomputed
from the events in the same transaction as every new event, so it cannot drift.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from sendline.csv_safety import csv_writer
from sendline.errors import InvalidInput, NotFound
from sendline.store import activity
from sendline.store.models import CONSENT_KINDS, CONSENT_METHODS, ConsentEvent, Contact

MAX_SOURCE = 200
MAX_USER_AGENT = 400
MAX_RECORDER = 100
CSV_COLUMNS = (
    "occurred_at",
    "recorded_at",
    "kind",
    "method",
    "source",
    "disclosure",
    "ip",
    "user_agent",
    "contact_id",
    "event_id",
    "recorded_by",
)


def _latest_first() -> tuple[Any, ...]:
    return (
        ConsentEvent.occurred_at.desc(),
        case((ConsentEvent.kind == "opt_out", 1), else_=0).desc(),
        ConsentEvent.id.desc(),
    )


def derived_status(account_id: Any, contact_id: Any) -> ColumnElement[str]:
    """SQL for the status the latest event of a contact gives (columns or values)."""
    latest = (
        select(ConsentEvent.kind)
        .where(ConsentEvent.account_id == account_id, ConsentEvent.contact_id == contact_id)
        .order_by(*_latest_first())
        .limit(1)
        .scalar_subquery()
    )
    return case((latest == "opt_in", "opted_in"), (latest == "opt_out", "opted_out"), else_="none")


def refresh_statuses(session: Session, account_id: int, contact_ids: Sequence[int]) -> None:
    """Recompute the cached `sms_consent` of these contacts from their events."""
    if not contact_ids:
        return
    session.execute(
        update(Contact)
        .where(Contact.account_id == account_id, Contact.id.in_(contact_ids))
        .values(sms_consent=derived_status(Contact.account_id, Contact.id))
        .execution_options(synchronize_session=False)
    )


class Consent:
    """The consent record of one account's contacts."""

    def __init__(self, session: Session, account_id: int) -> None:
        self._session = session
        self.account_id = account_id

    def record(
        self,
        contact_id: int,
        kind: str,
        method: str,
        *,
        source: str,
        disclosure: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        occurred_at: datetime | None = None,
        recorded_by: str | None = None,
    ) -> ConsentEvent:
        """Append one opt-in or opt-out and update the contact's derived status."""
        _check_event(kind, method, source, disclosure, occurred_at)
        contact = self._lock_contact(contact_id)
        now = datetime.now(UTC)
        event = ConsentEvent(
            account_id=self.account_id,
            contact_id=contact.id,
            kind=kind,
            method=method,
            source=source.strip(),
            disclosure=disclosure,
            ip=_ip(ip),
            user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
            occurred_at=occurred_at or now,
            recorded_at=now,
            recorded_by=_recorder(recorded_by),
        )
        self._session.add(event)
        self._session.flush()
        status = self._session.scalar(select(derived_status(self.account_id, contact.id)))
        if status != contact.sms_consent:
            contact.sms_consent = str(status)  # a derived cache: not an edit, updated_at stays
            self._session.flush()
            changed = [(contact.id, contact.sms_consent)]
            activity.consent_changed(
                self._session, self.account_id, changed, method, event.source, now
            )
        return event

    def status(self, contact_id: int) -> str:
        """The status derived from the events themselves (not the cached column)."""
        self._contact(contact_id)
        return str(self._session.scalar(select(derived_status(self.account_id, contact_id))))

    def latest(self, contact_id: int) -> ConsentEvent | None:
        self._contact(contact_id)
        query = (
            select(ConsentEvent)
            .where(
                ConsentEvent.account_id == self.account_id, ConsentEvent.contact_id == contact_id
            )
            .order_by(*_latest_first())
            .limit(1)
        )
        return self._session.scalars(query).first()

    def history(self, contact_id: int) -> list[ConsentEvent]:
        """Every event of a contact, oldest first: the audit trail."""
        self._contact(contact_id)
        query = (
            select(ConsentEvent)
            .where(
                ConsentEvent.contact_id == contact_id,
                ConsentEvent.account_id == self.account_id,
            )
            .order_by(*reversed_order())
        )
        return list(self._session.scalars(query))

    def write_csv(self, contact_id: int, out: TextIO) -> int:
        """The audit trail as CSV (one row per event); returns the number of events."""
        events = self.history(contact_id)
        writer = csv_writer(out)
        writer.writerow(CSV_COLUMNS)
        for event in events:
            writer.writerow(
                [
                    event.occurred_at.isoformat(),
                    event.recorded_at.isoformat(),
                    event.kind,
                    event.method,
                    event.source,
                    event.disclosure or "",
                    event.ip or "",
                    event.user_agent or "",
                    event.contact_id,
                    event.id,
                    event.recorded_by or "",
                ]
            )
        return len(events)

    def _contact(self, contact_id: int) -> Contact:
        query = select(Contact).where(
            Contact.id == contact_id, Contact.account_id == self.account_id
        )
        contact = self._session.scalars(query).first()
        if contact is None:
            raise NotFound(f"no contact {contact_id} in this account")
        return contact

    def _lock_contact(self, contact_id: int) -> Contact:
        query = (
            select(Contact)
            .where(Contact.id == contact_id, Contact.account_id == self.account_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        contact = self._session.scalars(query).first()
        if contact is None:
            raise NotFound(f"no contact {contact_id} in this account")
        return contact


def reversed_order() -> tuple[Any, ...]:
    """Oldest first, the exact reverse of the order that picks the latest event."""
    return (
        ConsentEvent.occurred_at.asc(),
        case((ConsentEvent.kind == "opt_out", 1), else_=0).asc(),
        ConsentEvent.id.asc(),
    )


def _check_event(
    kind: str, method: str, source: str, disclosure: str | None, occurred_at: datetime | None
) -> None:
    if kind not in CONSENT_KINDS:
        raise InvalidInput(f"consent kind {kind!r} is not one of {', '.join(CONSENT_KINDS)}")
    if method not in CONSENT_METHODS:
        raise InvalidInput(
            f"consent method {method!r} is not one of {', '.join(CONSENT_METHODS)}",
            code="bad_consent_method",
        )
    if not source or not source.strip() or len(source.strip()) > MAX_SOURCE:
        raise InvalidInput(f"a consent event needs its source (1-{MAX_SOURCE} characters)")
    if kind == "opt_in" and (disclosure is None or not disclosure.strip()):
        raise InvalidInput(
            "an opt-in needs the exact disclosure text the contact saw", code="disclosure_required"
        )
    if occurred_at is not None and occurred_at.tzinfo is None:
        raise InvalidInput("occurred_at must carry a time zone")


def _recorder(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw.strip() or len(raw.strip()) > MAX_RECORDER:
        raise InvalidInput(f"who recorded the event must be 1-{MAX_RECORDER} characters")
    return raw.strip()


def _ip(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        raise InvalidInput(f"{raw!r} is not an IP address", code="bad_ip") from None
