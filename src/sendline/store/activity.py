"""The one writer of `account_events` (store/event_models.py): a message's status
history and the outbound webhooks' outbox.

Every event is written in the transaction of the change it records, so a change rolled
back leaves no event, and in bulk: one INSERT per batch (COPY on PostgreSQL, one
executemany on SQLite, as `batch_writes` does for messages), never a round trip per
message. The engine's batch paths change thousands of messages per statement.

`data` is small and stable, per kind (what webhook receivers parse):
    message.status   {status, detail, error_code} and provider_id once the provider has it
    message.held     {reason, detail}
    contact.opted_out / contact.opted_in   {method, source}
    inbound.received {inbound_id, body, action}
Never a provider's secret, never anything the user did not already store.

Callers pass plain tuples on the hot paths (the dispatcher, receipts): building an
object per message costs more than the row it writes.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from sendline.store.batch_writes import timestamp_converter
from sendline.store.event_models import EVENT_KINDS
from sendline.store.types import utcnow

STATUS = "message.status"
HELD = "message.held"
OPTED_OUT = "contact.opted_out"
OPTED_IN = "contact.opted_in"
INBOUND = "inbound.received"
MAX_BODY = 1600  # an inbound text's body in `data` (10 segments; the row keeps it whole)
RELEASED = "released from hold"

_COLUMNS = ("account_id", "kind", "message_id", "contact_id", "data", "created_at")
_CONSENT_KINDS = {"opted_out": OPTED_OUT, "opted_in": OPTED_IN}

# (message id, account id, contact id): what an event needs of a message, as the
# engine's statements return it.
MessageKey = tuple[int, int, int | None]
# (account id, kind, message id, contact id, data as JSON text): one row to write.
_Row = tuple[int, str, int | None, int | None, str]


class Keyed(Protocol):
    """A message as the engine holds it (a Message, a claimed Job)."""

    @property
    def id(self) -> int: ...
    @property
    def account_id(self) -> int: ...
    @property
    def contact_id(self) -> int | None: ...


class Answered(Protocol):
    """A provider's answer for a message, as the dispatcher records it (an Outcome)."""

    @property
    def job(self) -> Keyed: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def provider_id(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class NewEvent:
    account_id: int
    kind: str
    message_id: int | None = None
    contact_id: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


def record(session: Session, events: Sequence[NewEvent], now: datetime | None = None) -> None:
    """Write `events`, in their order, in one INSERT inside the session's transaction."""
    for event in events:
        if event.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {event.kind!r}")
    rows = [(e.account_id, e.kind, e.message_id, e.contact_id, _dump(e.data)) for e in events]
    _write(session, rows, now)


def status_data(
    status: str,
    detail: str | None = None,
    error_code: str | None = None,
    provider_id: str | None = None,
) -> dict[str, Any]:
    """`message.status`'s data: provider_id only once the provider gave one."""
    data: dict[str, Any] = {"status": status, "detail": detail, "error_code": error_code}
    if provider_id is not None:
        data["provider_id"] = provider_id
    return data


def message_statuses(
    session: Session,
    keys: Iterable[MessageKey],
    status: str,
    now: datetime,
    *,
    detail: str | None = None,
    error_code: str | None = None,
) -> None:
    """The same status for many messages (a claim, a cancel, a batch of receipts): the
    data is serialized once for all of them."""
    data = _dump(status_data(status, detail, error_code))
    _write(session, [(a, STATUS, m, c, data) for m, a, c in keys], now)


def message_outcomes(
    session: Session, outcomes: Iterable[Answered], ours: Container[int], status: str, now: datetime
) -> None:
    """One status for many messages, each with its own detail, error code and provider
    id: the dispatcher's outcomes, those whose message is in `ours` (still its own)."""
    rows: list[_Row] = []
    plain = _dump(status_data(status))
    sent = plain[:-1] + ',"provider_id":"'  # + the id + '"}': a blast's thousands of sent
    for outcome in outcomes:
        job = outcome.job
        if job.id not in ours:
            continue
        provider_id, detail, code = outcome.provider_id, outcome.detail, outcome.error_code
        if detail is None and code is None and (provider_id is None or provider_id.isalnum()):
            # The common answers, without a JSON encoder's call per message: the ids
            # providers give are letters and digits (anything else is encoded).
            data = plain if provider_id is None else f'{sent}{provider_id}"}}'
        else:
            data = _dump(status_data(status, detail, code, provider_id))
        rows.append((job.account_id, STATUS, job.id, job.contact_id, data))
    _write(session, rows, now)


def keys(messages: Iterable[Keyed]) -> list[MessageKey]:
    return [(m.id, m.account_id, m.contact_id) for m in messages]


def share_keys(rows: Iterable[Sequence[Any]]) -> list[MessageKey]:
    """The keys of rows of `settlement.SHARE_COLUMNS` followed by the contact id."""
    return [(row[0], row[1], row[-1]) for row in rows]


def created(session: Session, rows: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """The events of messages just inserted (rows as `Pipeline.queue_many` writes them):
    queued, or held with its reason; one claimed as it was written (`sending`) was
    queued first."""
    queued = _dump(status_data("queued"))
    sending = _dump(status_data("sending"))
    events: list[_Row] = []
    add = events.append
    for row in rows:
        key = (row["account_id"], row["id"], row["contact_id"])
        status = row["status"]
        if status == "held":
            add(_held_row(*key, row["held_reason"], row["detail"]))
            continue
        add((key[0], STATUS, key[1], key[2], queued))
        if status == "sending":
            add((key[0], STATUS, key[1], key[2], sending))
    _write(session, events, now)


def settled(
    session: Session,
    messages: Iterable[tuple[int, int, int | None, str, str | None, str | None]],
    now: datetime,
    *,
    was: Mapping[int, str | None] | None = None,
) -> None:
    """Messages just queued or held again by a check (a release, an automatic reply):
    (id, account, contact, status, held reason, detail) as they now are. `was`: each
    message's hold reason before, when it was held: held again for the same reason is
    no news."""
    events: list[_Row] = []
    for message_id, account_id, contact_id, status, reason, detail in messages:
        if status == "held":
            if was is not None and was.get(message_id) == reason:
                continue
            events.append(_held_row(account_id, message_id, contact_id, reason, detail))
        else:
            data = _dump(status_data(status, RELEASED if was is not None else None))
            events.append((account_id, STATUS, message_id, contact_id, data))
    _write(session, events, now)


def consent_changed(
    session: Session,
    account_id: int,
    contacts: Iterable[tuple[int, str]],
    method: str,
    source: str,
    now: datetime,
) -> None:
    """Contacts whose consent status just became (contact id, status): opted_in or
    opted_out; any other status is not an event."""
    data = _dump({"method": method, "source": source})
    rows: list[_Row] = [
        (account_id, _CONSENT_KINDS[status], None, contact_id, data)
        for contact_id, status in contacts
        if status in _CONSENT_KINDS
    ]
    _write(session, rows, now)


def inbound_received(
    session: Session,
    account_id: int,
    contact_id: int | None,
    inbound_id: int,
    body: str,
    action: str,
    now: datetime,
) -> None:
    """A contact's text, stored for an account."""
    data = {"inbound_id": inbound_id, "body": body[:MAX_BODY], "action": action}
    _write(session, [(account_id, INBOUND, None, contact_id, _dump(data))], now)


def _held_row(
    account_id: int, message_id: int, contact_id: int | None, reason: str | None, detail: Any
) -> _Row:
    return (account_id, HELD, message_id, contact_id, _dump({"reason": reason, "detail": detail}))


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _write(session: Session, rows: Sequence[_Row], now: datetime | None) -> None:
    """The one INSERT: COPY on PostgreSQL, one executemany on SQLite, on the session's
    connection and inside its transaction (what `batch_writes._insert` does, with the
    JSON already text: both databases parse it as they would the ORM's)."""
    if not rows:
        return
    connection = session.connection()
    stamp = timestamp_converter(connection.dialect)(now or utcnow())
    raw: Any = connection.connection.dbapi_connection
    with closing(raw.cursor()) as cursor:
        if connection.dialect.name != "postgresql":
            cursor.executemany(
                f"INSERT INTO account_events ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
                [(*row, stamp) for row in rows],
            )
            return
        with cursor.copy(f"COPY account_events ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row, stamp))


__all__ = [
    "HELD",
    "INBOUND",
    "OPTED_IN",
    "OPTED_OUT",
    "STATUS",
    "NewEvent",
    "consent_changed",
    "created",
    "inbound_received",
    "message_outcomes",
    "message_statuses",
    "record",
    "settled",
    "status_data",
]
