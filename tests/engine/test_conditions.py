"""Conditions on both databases: every kind of leaf, composition, and the promise that a
segment (one SELECT) and a per-contact check never disagree."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.engine.conditions import RunScope, holds, segment_query, unknown_fields
from sendline.engine.definitions import Condition
from sendline.store.consent import Consent
from sendline.store.engine_models import InboundMessage, Message
from sendline.store.models import Account, Contact
from tests.engine.automation_factories import NOON, account, contact

_CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)


def _condition(data: dict[str, Any]) -> Condition:
    return _CONDITION.validate_python(data)


@pytest.fixture
def people(session: Session) -> dict[str, Contact]:
    owner = account(session)
    return {
        "ada": contact(
            session,
            owner,
            fields={"CITY": "Paris", "SPENT": 120, "JOINED": "2024-03-01"},
            tags=["vip"],
            lists=["Newsletter"],
        ),
        "bob": contact(
            session,
            owner,
            "+14158675310",
            first_name="Bob",
            fields={"CITY": "paris ", "SPENT": 80.5, "JOINED": "2025-01-10"},
            consent=False,
        ),
        "cy": contact(
            session, owner, "+14158675311", first_name=None, fields={"CITY": "Lyon"}, tags=["x"]
        ),
    }


def _matching(session: Session, people: dict[str, Contact], data: dict[str, Any]) -> set[str]:
    """Who matches, checked both ways: they must agree."""
    condition = _condition(data)
    by_id = {c.id: name for name, c in people.items()}
    owner_id = next(iter(people.values())).account_id
    in_segment = {by_id[i] for i in session.scalars(segment_query(session, owner_id, condition))}
    one_by_one = {name for name, c in people.items() if holds(session, c.id, condition)}
    assert in_segment == one_by_one
    return in_segment


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"field": "CITY", "op": "eq", "value": "PARIS"}, {"ada"}),  # case ignored, not spaces
        ({"field": "city", "op": "ne", "value": "paris"}, {"bob", "cy"}),
        ({"field": "CITY", "op": "contains", "value": "ari"}, {"ada", "bob"}),
        ({"field": "CITY", "op": "contains", "value": "%"}, set()),  # LIKE wildcards escaped
        ({"field": "SPENT", "op": "gt", "value": 100}, {"ada"}),
        ({"field": "SPENT", "op": "lte", "value": 80.5}, {"bob"}),
        ({"field": "SPENT", "op": "eq", "value": 120}, {"ada"}),
        ({"field": "SPENT", "op": "ne", "value": 120}, {"bob", "cy"}),  # missing: not equal
        ({"field": "CITY", "op": "gt", "value": 3}, set()),  # text never compares as a number
        ({"field": "JOINED", "op": "gte", "value": "2025-01-01"}, {"bob"}),  # ISO dates sort
        ({"field": "SPENT", "op": "empty"}, {"cy"}),
        ({"field": "FIRSTNAME", "op": "empty"}, {"cy"}),
        ({"field": "FIRSTNAME", "op": "not_empty"}, {"ada", "bob"}),
        ({"field": "FIRSTNAME", "op": "eq", "value": "bob"}, {"bob"}),
        ({"tag": "vip"}, {"ada"}),
        ({"tag": "vip", "present": False}, {"bob", "cy"}),
        ({"list": "Newsletter"}, {"ada"}),
        ({"list": "Newsletter", "member": False}, {"bob", "cy"}),
        ({"list": "No such list"}, set()),
        ({"consent": "opted_in"}, {"ada", "cy"}),
        ({"consent": "none"}, {"bob"}),
        ({"all": [{"tag": "vip"}, {"consent": "opted_in"}]}, {"ada"}),
        ({"all": []}, {"ada", "bob", "cy"}),
        ({"any": [{"tag": "x"}, {"field": "SPENT", "op": "lt", "value": 100}]}, {"bob", "cy"}),
        ({"any": []}, set()),
        ({"not": {"field": "CITY", "op": "eq", "value": "Paris"}}, {"bob", "cy"}),
        ({"not": {"any": [{"tag": "vip"}, {"tag": "x"}]}}, {"bob"}),
    ],
)
def test_it_handles_every_kind_of_condition(
    session: Session, people: dict[str, Contact], data: dict[str, Any], expected: set[str]
) -> None:
    assert _matching(session, people, data) == expected


def test_it_handles_opted_out_contacts(session: Session, people: dict[str, Contact]) -> None:
    ada = people["ada"]
    Consent(session, ada.account_id).record(ada.id, "opt_out", "keyword", source="STOP")
    session.commit()
    assert _matching(session, people, {"consent": "opted_out"}) == {"ada"}


def _inbound(session: Session, who: Contact, minutes: int) -> None:
    session.add(
        InboundMessage(
            account_id=who.account_id,
            contact_id=who.id,
            from_number=who.phone_e164 or "",
            body="Sounds good",
            action="none",
            received_at=NOON + timedelta(minutes=minutes),
        )
    )
    session.commit()


def test_it_handles_replies_since_the_run_started(
    session: Session, people: dict[str, Contact]
) -> None:
    ada, bob = people["ada"], people["bob"]
    _inbound(session, ada, -60)
    _inbound(session, bob, 5)
    assert _matching(session, people, {"replied": True}) == {"ada", "bob"}
    assert _matching(session, people, {"replied": False}) == {"cy"}
    since_noon = RunScope(started_at=NOON)
    replied = _condition({"replied": True})
    assert not holds(session, ada.id, replied, since_noon)  # replied before the run began
    assert holds(session, bob.id, replied, since_noon)


def _message(session: Session, who: Contact, status: str, minutes: int, run_id: int | None) -> None:
    session.add(
        Message(
            account_id=who.account_id,
            contact_id=who.id,
            run_id=run_id,
            kind="marketing",
            status=status,
            held_reason="no_consent" if status == "held" else None,
            created_at=NOON + timedelta(minutes=minutes),
            updated_at=NOON,
        )
    )
    session.commit()


def test_it_handles_the_last_message_status(session: Session, people: dict[str, Contact]) -> None:
    ada = people["ada"]
    _message(session, ada, "delivered", 1, run_id=7)
    _message(session, ada, "failed", 2, run_id=8)
    assert _matching(session, people, {"last_message_status": "failed"}) == {"ada"}
    assert _matching(session, people, {"last_message_status": "delivered"}) == set()
    delivered = _condition({"last_message_status": "delivered"})
    assert holds(session, ada.id, delivered, RunScope(run_id=7))  # this run's own last one
    assert not holds(session, ada.id, delivered, RunScope(run_id=9))  # a run with none


def test_it_handles_accounts_apart(session: Session, people: dict[str, Contact]) -> None:
    other = account(session, "other")
    contact(session, other, tags=["vip"])
    query = segment_query(session, people["ada"].account_id, _condition({"tag": "vip"}))
    assert list(session.scalars(query)) == [people["ada"].id]
    everyone = session.scalars(segment_query(session, other.id, None))
    assert len(list(everyone)) == 1


def test_it_handles_unknown_fields(session: Session) -> None:
    condition = _condition(
        {"all": [{"field": "firstname", "op": "empty"}, {"not": {"field": "CITTY", "value": "x"}}]}
    )
    assert unknown_fields(condition, ["CITY"]) == ["CITTY"]
    assert unknown_fields(condition, ["CITTY"]) == []


def test_it_handles_a_field_holding_text_and_numbers(session: Session) -> None:
    owner: Account = account(session)
    texty = contact(session, owner, fields={"CODE": "abc"})
    numeric = contact(session, owner, "+14158675312", fields={})
    numeric.fields = {"CODE": 42}  # a value stored as a number in a text-typed field
    session.commit()
    gt = _condition({"field": "CODE", "op": "gt", "value": 10})
    assert not holds(session, texty.id, gt)  # no cast error on PostgreSQL, no 0 on SQLite
    assert holds(session, numeric.id, gt)
    ids = set(session.scalars(select(Contact.id).where(Contact.account_id == owner.id)))
    assert ids == {texty.id, numeric.id}
