"""Enrollment: what puts a contact into an automation, as a run due at once.

Each trigger finds the account's *active* automations listening for it (indexed by
account, trigger type and key) and inserts one run per automation on its current
version. Re-entry "once" is a unique enrollment key, `automation:contact` (date triggers
add the day, so every anniversary enters once), and the insert is `ON CONFLICT DO
NOTHING`: two processes enrolling the same contact at the same moment cannot both win,
and nothing is read first. Re-entry "always" stores no key.

A bulk start is one `INSERT ... SELECT` over the segment: 100,000 runs never pass
through Python. Automations that change contacts can trigger each other; the chain
depth travels in the run context and enrollment stops at MAX_DEPTH, so two automations
that tag each other's contacts cannot loop forever.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Insert,
    String,
    bindparam,
    cast,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from sendline.engine.automations import Automations, fold_keyword, load_definition
from sendline.engine.conditions import both, segment_query
from sendline.engine.definitions import AutomationDefinition, BulkTrigger, Condition
from sendline.errors import Conflict, InvalidInput
from sendline.sms.optout import ReplyAction, classify_reply
from sendline.store.batch_filter import among
from sendline.store.engine_models import Automation, AutomationRun, AutomationVersion
from sendline.store.models import Contact
from sendline.store.types import UTCDateTime

log = logging.getLogger(__name__)

MAX_DEPTH = 5  # automations enrolling contacts into automations, at most this deep
_KEYWORD_REPLIES = (ReplyAction.OPT_OUT, ReplyAction.OPT_IN, ReplyAction.HELP, ReplyAction.REVIEW)


# -- contact events ------------------------------------------------------------------


def on_list_subscribed(
    session: Session,
    account_id: int,
    contact_id: int,
    list_name: str,
    *,
    now: datetime,
    depth: int = 0,
) -> int:
    """Enroll a contact who just joined a list; returns the runs created."""
    found = listening(session, account_id, "list_subscribed", list_name.strip())
    return _enroll_each(session, found, contact_id, now=now, depth=depth)


def on_tag_added(
    session: Session, account_id: int, contact_id: int, tag: str, *, now: datetime, depth: int = 0
) -> int:
    found = listening(session, account_id, "tag_added", tag.strip())
    return _enroll_each(session, found, contact_id, now=now, depth=depth)


def on_field_changed(
    session: Session,
    account_id: int,
    contact_id: int,
    field: str,
    value: Any,
    *,
    now: datetime,
    depth: int = 0,
) -> int:
    """A field changed to `value`; triggers with `to` fire only on that value."""
    found = [
        (automation, definition)
        for automation, definition in listening(
            session, account_id, "field_changed", field.strip().upper()
        )
        if _changed_to(definition, value)
    ]
    return _enroll_each(session, found, contact_id, now=now, depth=depth)


def on_event(
    session: Session,
    account_id: int,
    contact_id: int,
    name: str,
    payload: Mapping[str, Any] | None,
    *,
    now: datetime,
    depth: int = 0,
) -> int:
    """A custom event; its payload is %EVENT.KEY% in the automation's templates."""
    event = _payload(payload)
    found = listening(session, account_id, "event", name.strip())
    return _enroll_each(session, found, contact_id, now=now, depth=depth, event=event)


def on_reply(
    session: Session, account_id: int, contact_id: int, body: str, *, now: datetime
) -> int:
    """An inbound text: wakes the contact's runs (replied conditions), enrolls on keywords.

    Opt-out, opt-in and help keywords are the inbound handler's business (R12), and a
    reply that reads like a revocation must never start a marketing sequence.
    """
    wake_runs(session, contact_id, now=now)
    if classify_reply(body) in _KEYWORD_REPLIES:
        return 0
    folded = fold_keyword(body)
    found = [
        (automation, definition)
        for automation, definition in listening(session, account_id, "reply", None, any_key=True)
        if automation.trigger_key is None
        or folded == automation.trigger_key
        or folded.startswith(automation.trigger_key + " ")
    ]
    return _enroll_each(session, found, contact_id, now=now, depth=0, event={"body": body})


def on_added_many(
    session: Session,
    account_id: int,
    trigger_type: str,
    added: Sequence[tuple[int, str]],
    *,
    now: datetime,
) -> int:
    """`on_tag_added` / `on_list_subscribed` for many (contact id, tag or list name) pairs
    at once (a CSV import's batch): one query finds the listening automations, one batched
    insert enrolls."""
    found: dict[str | None, list[tuple[Listener, AutomationDefinition]]] = {}
    for pair in listening(session, account_id, trigger_type, None, any_key=True) if added else []:
        found.setdefault(pair[0].trigger_key, []).append(pair)
    rows = [
        run_row(automation, definition, contact_id, now=now, depth=0)
        for contact_id, key in added
        for automation, definition in found.get(key.strip(), ())
    ]
    return insert_runs(session, rows)


def wake_many(session: Session, contact_ids: Sequence[int], *, now: datetime) -> None:
    """`wake_runs` for many contacts, in one statement."""
    if contact_ids:
        session.execute(
            update(AutomationRun)
            .where(
                among(session, AutomationRun.contact_id, contact_ids),
                AutomationRun.status == "active",
                AutomationRun.due_at > now,
            )
            .values(due_at=now)
            .execution_options(synchronize_session=False)
        )


# The statements on the path of every single event (an API call each), built once with
# bind parameters: building a statement and its cache key costs more than running it.
_WAKE = (
    update(AutomationRun)
    .where(
        AutomationRun.contact_id == bindparam("b_contact_id"),
        AutomationRun.status == "active",
        AutomationRun.due_at > bindparam("b_now"),
    )
    .values(due_at=bindparam("b_now"))
    .execution_options(synchronize_session=False)
)
_LISTENING_ANY = (
    select(
        Automation.id,
        Automation.account_id,
        Automation.name,
        Automation.status,
        Automation.current_version_id,
        Automation.trigger_key,
        AutomationVersion.definition,
    )
    .join(AutomationVersion, AutomationVersion.id == Automation.current_version_id)
    .where(
        Automation.account_id == bindparam("account_id"),
        Automation.trigger_type == bindparam("trigger_type"),
        Automation.status == "active",
    )
    .order_by(Automation.id)
)
_LISTENING = _LISTENING_ANY.where(Automation.trigger_key == bindparam("key"))


def wake_runs(session: Session, contact_id: int, *, now: datetime) -> int:
    """Make the contact's sleeping runs due now, so their goals are checked again."""
    result = _core(session).execute(_WAKE, {"b_contact_id": contact_id, "b_now": now})
    return int(getattr(result, "rowcount", 0) or 0)


def _core(session: Session) -> Connection:
    """The session's connection, for a statement that needs nothing from the ORM (no
    objects to load or synchronize): run there, it skips the ORM's bulk machinery, which
    costs more than the statement itself (about 0.2 ms for the wake-up, 0.5 ms for a
    run's insert on SQLite). Pending ORM changes are flushed first, as the session's
    autoflush would have, so statements still run in the order the code wrote them."""
    session.flush()
    return session.connection()


# -- bulk and scheduled --------------------------------------------------------------


def start_bulk(
    session: Session,
    account_id: int,
    automation_id: int,
    *,
    now: datetime,
    segment: Condition | None = None,
) -> int:
    """Enroll every contact of the segment (and the trigger's own segment) at once."""
    automations = Automations(session, account_id)
    automations.check_segment(segment)
    automation = automations.get(automation_id)
    if automation.status != "active" or automation.current_version_id is None:
        raise Conflict(
            f"automation {automation.name!r} is {automation.status}; activate it first",
            code="automation_not_active",
        )
    definition = load_definition(Automations(session, account_id).version(automation).definition)
    own = definition.trigger.segment if isinstance(definition.trigger, BulkTrigger) else None
    contacts = segment_query(session, account_id, both(own, segment))
    key = (
        literal(f"{automation.id}:") + cast(Contact.id, String)
        if definition.reentry == "once"
        else null()
    )
    moment = literal(now, UTCDateTime())
    rows = contacts.with_only_columns(
        literal(account_id),
        literal(automation.id),
        literal(automation.current_version_id),
        Contact.id,
        literal("active"),
        literal(definition.steps[0].id),
        literal(0),
        moment,
        literal({"depth": 0}, JSON().with_variant(postgresql.JSONB(), "postgresql")),
        key,
        moment,
        moment,
    )
    columns = ["account_id", "automation_id", "version_id", "contact_id", "status", "step_id"]
    columns += ["steps_done", "due_at", "context", "enrollment_key", "created_at", "updated_at"]
    # preserve_rowcount: psycopg reports -1 for INSERT ... SELECT unless asked to keep it.
    statement = _insert(session).from_select(columns, rows)
    result = session.execute(statement.execution_options(preserve_rowcount=True))
    return int(getattr(result, "rowcount", 0) or 0)


# -- internals -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listener:
    """An active automation listening for a trigger: what enrolling needs of it, read as
    plain columns (loading ORM objects cost more than the query, on every event)."""

    id: int
    account_id: int
    name: str
    status: str
    current_version_id: int
    trigger_key: str | None


def listening(
    session: Session, account_id: int, trigger_type: str, key: str | None, *, any_key: bool = False
) -> list[tuple[Listener, AutomationDefinition]]:
    query = _LISTENING_ANY if any_key else _LISTENING
    params = {"account_id": account_id, "trigger_type": trigger_type, "key": key}
    return [
        (Listener(*row[:6]), load_definition(row[6]))
        for row in _core(session).execute(query, params).all()
    ]


def _enroll_each(
    session: Session,
    found: Sequence[tuple[Listener, AutomationDefinition]],
    contact_id: int,
    *,
    now: datetime,
    depth: int,
    event: Mapping[str, Any] | None = None,
) -> int:
    if not found:
        return 0
    if depth > MAX_DEPTH:
        names = ", ".join(a.name for a, _ in found)
        log.warning(
            "not enrolling contact %s in %s: chain deeper than %s", contact_id, names, MAX_DEPTH
        )
        return 0
    rows = [
        run_row(automation, definition, contact_id, now=now, depth=depth, event=event)
        for automation, definition in found
    ]
    return insert_runs(session, rows)


def run_row(
    automation: Automation | Listener,
    definition: AutomationDefinition,
    contact_id: int,
    *,
    now: datetime,
    depth: int,
    event: Mapping[str, Any] | None = None,
    day: date | None = None,
) -> dict[str, Any]:
    key: str | None = None
    if day is not None:
        key = f"{automation.id}:{contact_id}:{day.isoformat()}"
    elif definition.reentry == "once":
        key = f"{automation.id}:{contact_id}"
    context: dict[str, Any] = {"depth": depth}
    if event is not None:
        context["event"] = dict(event)
    return {
        "account_id": automation.account_id,
        "automation_id": automation.id,
        "version_id": automation.current_version_id,
        "contact_id": contact_id,
        "status": "active",
        "step_id": definition.steps[0].id,
        "steps_done": 0,
        "due_at": now,
        "context": context,
        "enrollment_key": key,
        "created_at": now,
        "updated_at": now,
    }


def insert_runs(session: Session, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    # Counted by RETURNING, not rowcount: ON CONFLICT DO NOTHING skips enrolled contacts,
    # and rowcount over an executemany is not reliable on every driver.
    statement = _INSERTS_RETURNING[session.get_bind().dialect.name]
    inserted = _core(session).execute(statement, rows)
    return len(inserted.all())


def _insert(session: Session) -> Insert:
    """INSERT INTO automation_runs that skips a contact already enrolled (re-entry once)."""
    return _INSERTS[session.get_bind().dialect.name]


def _skip_enrolled(module: Any) -> Insert:
    statement: Insert = module.insert(AutomationRun).on_conflict_do_nothing(
        index_elements=[AutomationRun.enrollment_key],
        index_where=AutomationRun.enrollment_key.is_not(None),
    )
    return statement


_INSERTS = {"postgresql": _skip_enrolled(postgresql), "sqlite": _skip_enrolled(sqlite)}
_INSERTS_RETURNING = {name: insert.returning(AutomationRun.id) for name, insert in _INSERTS.items()}


def _changed_to(definition: AutomationDefinition, value: Any) -> bool:
    expected = getattr(definition.trigger, "to", None)
    if expected is None:
        return True
    return value is not None and str(value).strip().casefold() == expected.strip().casefold()


def _payload(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, Mapping) or not all(isinstance(k, str) for k in payload):
        raise InvalidInput("an event payload is a JSON object with text keys")
    return dict(payload)
