"""Conditions (if_else, goals, bulk segments) evaluated by the database.

A condition compiles to one SQL boolean over a contact row, and that single compilation
serves every use: a bulk segment is `SELECT id FROM contacts WHERE <condition>`, and a
run's `if_else` is the same query narrowed to its contact. One implementation means a
segment and a branch can never disagree about who is a "VIP in Paris", and a segment
over 100,000 contacts never loads a contact into Python.

Semantics, on both databases:
- fields: FIRSTNAME, LASTNAME, EMAIL, PHONE or a custom field key (any case). Text
  comparisons (eq, ne, contains) ignore case; gt/gte/lt/lte with a text value compare
  text as stored (ISO dates sort correctly); with a number value they compare numbers
  and a field that does not hold a number never matches. `empty` is missing or blank.
- `last_message_status` and `replied` look at the run itself when evaluated for a run
  (its last message; replies since it started), at the whole contact otherwise.
Every leaf is NULL-free (TRUE or FALSE), so `not` is always the exact complement.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, not_, or_, select
from sqlalchemy import true as sql_true
from sqlalchemy.orm import Session

from sendline.engine.definitions import (
    AllCondition,
    AnyCondition,
    Condition,
    ConsentCondition,
    FieldCondition,
    LastMessageCondition,
    ListCondition,
    NotCondition,
    RepliedCondition,
    TagCondition,
)
from sendline.errors import InvalidInput
from sendline.store.engine_models import InboundMessage, Message
from sendline.store.models import Contact, ContactList, ContactTag, ListMember

STANDARD_FIELDS: dict[str, Any] = {
    "FIRSTNAME": Contact.first_name,
    "LASTNAME": Contact.last_name,
    "EMAIL": Contact.email,
    "PHONE": Contact.phone,
}
_CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)
_COMPARISONS = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_NUMERIC_JSON = {"postgresql": ("number",), "sqlite": ("integer", "real")}


@dataclass(frozen=True, slots=True)
class RunScope:
    """The run a condition is evaluated for: narrows `replied` and `last_message_status`."""

    run_id: int | None = None
    started_at: datetime | None = None


def condition_sql(
    condition: Condition, dialect: str, scope: RunScope | None = None
) -> ColumnElement[bool]:
    """The condition as a SQL boolean correlated to `contacts` (never NULL)."""
    scope = scope or RunScope()
    if isinstance(condition, AllCondition):
        return and_(sql_true(), *(condition_sql(c, dialect, scope) for c in condition.all))
    if isinstance(condition, AnyCondition):
        return or_(false(), *(condition_sql(c, dialect, scope) for c in condition.any))
    if isinstance(condition, NotCondition):
        return not_(condition_sql(condition.not_, dialect, scope))
    if isinstance(condition, FieldCondition):
        return _field(condition, dialect)
    if isinstance(condition, TagCondition):
        has = exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag == condition.tag)
        return has if condition.present else not_(has)
    if isinstance(condition, ListCondition):
        return _list(condition)
    if isinstance(condition, ConsentCondition):
        return Contact.sms_consent == condition.consent
    if isinstance(condition, LastMessageCondition):
        return _last_status(scope) == condition.last_message_status
    if isinstance(condition, RepliedCondition):
        replied = exists().where(InboundMessage.contact_id == Contact.id)
        if scope.started_at is not None:
            replied = replied.where(InboundMessage.received_at >= scope.started_at)
        return replied if condition.replied else not_(replied)
    raise TypeError(f"unknown condition {condition!r}")


def segment_from_data(data: Any) -> Condition:
    """A segment given as data (e.g. JSON on the command line or in an API call)."""
    try:
        return _CONDITION.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "segment"
        raise InvalidInput(
            f"segment is not a condition ({where}: {first['msg']}); e.g. "
            '{"all": [{"tag": "vip"}, {"field": "CITY", "op": "eq", "value": "Paris"}]}',
            code="invalid_segment",
        ) from None


def holds(
    session: Session, contact_id: int, condition: Condition, scope: RunScope | None = None
) -> bool:
    """Whether the condition holds for one contact now (pending changes are flushed)."""
    query = select(Contact.id).where(
        Contact.id == contact_id, condition_sql(condition, _dialect(session), scope)
    )
    return session.scalar(query) is not None


def segment_query(session: Session, account_id: int, segment: Condition | None) -> Select[Any]:
    """`SELECT contacts.id` of the account's contacts in the segment (None: all of them)."""
    query = select(Contact.id).where(Contact.account_id == account_id)
    if segment is not None:
        query = query.where(condition_sql(segment, _dialect(session)))
    return query


def both(*conditions: Condition | None) -> Condition | None:
    """The conjunction of the conditions given (None: no condition at all)."""
    present = [c for c in conditions if c is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else AllCondition(all=present)


def leaves(condition: Condition) -> Iterator[Condition]:
    """Every non-composite condition inside `condition`."""
    if isinstance(condition, AllCondition | AnyCondition):
        for child in condition.all if isinstance(condition, AllCondition) else condition.any:
            yield from leaves(child)
    elif isinstance(condition, NotCondition):
        yield from leaves(condition.not_)
    else:
        yield condition


def unknown_fields(condition: Condition, custom_fields: Iterable[str]) -> list[str]:
    """Field names the condition uses that are neither standard nor custom fields."""
    known = {*STANDARD_FIELDS, *(k.upper() for k in custom_fields)}
    fields = [c.field for c in leaves(condition) if isinstance(c, FieldCondition)]
    return [f for f in dict.fromkeys(fields) if f.strip().upper() not in known]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _field(condition: FieldCondition, dialect: str) -> ColumnElement[bool]:
    key = condition.field.strip().upper()
    text = STANDARD_FIELDS.get(key)
    if text is None:
        text = Contact.fields[key].as_string()
    op, value = condition.op, condition.value
    if op in ("empty", "not_empty"):
        blank = or_(text.is_(None), func.trim(text) == "")
        return blank if op == "empty" else not_(blank)
    if value is None:
        raise ValueError(f"condition on {condition.field} with op {op} needs a value")
    if isinstance(value, int | float):
        return _numeric(key, op, float(value), dialect)
    present = text.is_not(None)
    if op in ("eq", "ne"):
        equal = and_(present, func.lower(text) == value.lower())
        return equal if op == "eq" else not_(equal)
    if op == "contains":
        return and_(present, func.lower(text).contains(value.lower(), autoescape=True))
    return and_(present, _compare(text, op, value))


def _numeric(key: str, op: str, value: float, dialect: str) -> ColumnElement[bool]:
    if key in STANDARD_FIELDS:
        number: ColumnElement[Any] | None = None
    else:
        # The CASE guards the cast: PostgreSQL would fail on CAST('abc' AS FLOAT), and
        # SQLite would quietly read it as 0.
        if dialect == "postgresql":
            kind = func.jsonb_typeof(Contact.fields[key])
        else:
            kind = func.json_type(Contact.fields, f'$."{key}"')
        numeric = _NUMERIC_JSON.get(dialect, ("number",))
        number = case((kind.in_(numeric), Contact.fields[key].as_float()), else_=None)
    if number is None:
        return false() if op != "ne" else sql_true()
    if op == "contains":
        raise ValueError(f"condition on {key}: contains needs a text value")
    compared = and_(number.is_not(None), _compare(number, "eq" if op == "ne" else op, value))
    return not_(compared) if op == "ne" else compared


def _compare(left: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    compare = _COMPARISONS.get(op)
    if compare is None:
        raise ValueError(f"unknown comparison {op!r}")
    result: ColumnElement[bool] = compare(left, value)
    return result


def _list(condition: ListCondition) -> ColumnElement[bool]:
    member = exists().where(
        ListMember.contact_id == Contact.id,
        ListMember.list_id == ContactList.id,
        ContactList.account_id == Contact.account_id,
        ContactList.name == condition.list,
    )
    return member if condition.member else not_(member)


def _last_status(scope: RunScope) -> ColumnElement[Any]:
    # The run's own last message when there is a run; otherwise the contact's last
    # marketing message. A contact with no message has no status: never equal.
    query = select(Message.status)
    # Filtering by contact first uses the (contact_id, created_at) index.
    query = query.where(Message.contact_id == Contact.id, Message.kind == "marketing")
    if scope.run_id is not None:
        query = query.where(Message.run_id == scope.run_id)
    last = query.order_by(Message.created_at.desc(), Message.id.desc()).limit(1)
    return func.coalesce(last.scalar_subquery(), "")
