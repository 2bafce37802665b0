"""The account's opt-out clause policy (R11, issue 12 #11): on every message (the
default), or "every 30 days": appended only when the contact got no message with the
clause in the last 30 days. Both databases, through the pipeline's batch path."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from sendline.engine.pipeline import Pipeline, SmsRequest
from sendline.errors import InvalidInput
from sendline.store.accounts import Accounts
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.models import Account
from tests.engine.automation_factories import NOON, account, contact
from tests.engine.queueing import queue_one

CLAUSE = "\nReply STOP to opt out"


def _monthly(session: Session, **settings: int) -> Account:
    owner = account(session, **settings)
    return Accounts(session).update_settings(owner.id, optout_clause_policy="every_30_days")


def test_it_appends_the_clause_to_every_message_by_default(session: Session) -> None:
    owner = account(session)
    assert owner.optout_clause_policy == "every_message"
    ada = contact(session, owner)
    first = queue_one(session, owner, ada, "Sale one", NOON)
    second = queue_one(session, owner, ada, "Sale two", NOON + timedelta(days=1))
    session.commit()
    assert (first.body, second.body) == ("Sale one" + CLAUSE, "Sale two" + CLAUSE)


def test_it_appends_the_clause_once_in_30_days_when_the_account_says_so(
    session: Session,
) -> None:
    owner = _monthly(session)
    ada, bob = contact(session, owner), contact(session, owner, "+14155550123")
    first = queue_one(session, owner, ada, "Sale one", NOON)
    later = NOON + timedelta(days=29)
    second, fresh = (
        queue_one(session, owner, who, "Sale two", later) for who in (ada, bob)
    )  # one batch each: Bob never had the clause
    month = queue_one(session, owner, ada, "Sale three", NOON + timedelta(days=31))
    session.commit()
    assert (first.body, first.clause_included) == ("Sale one" + CLAUSE, True)
    assert (second.body, second.clause_included) == ("Sale two", False)
    assert fresh.body == "Sale two" + CLAUSE
    assert month.body == "Sale three" + CLAUSE  # 31 days on: due again


def test_it_counts_length_without_the_clause_it_leaves_out(session: Session) -> None:
    """R9 counts what is sent: 150 characters fit one segment once no clause is added."""
    owner = _monthly(session)
    ada = contact(session, owner)
    queue_one(session, owner, ada, "Sale one", NOON)
    long = queue_one(session, owner, ada, "x" * 150, NOON + timedelta(days=1))
    session.commit()
    assert (long.status, long.segments, long.body) == ("queued", 1, "x" * 150)


def test_it_appends_the_clause_when_the_last_one_was_never_sent(session: Session) -> None:
    """A held message carried nothing to the contact: the next one still owes the clause,
    and every message of one batch gets it (more often is safe, never less)."""
    owner = _monthly(session, credits=0)
    ada = contact(session, owner)
    held = queue_one(session, owner, ada, "Sale one", NOON)
    assert held.status == "held"
    Credits(session, owner.id).purchase(10)
    both = [(ada, SmsRequest("Sale two")), (ada, SmsRequest("Sale three"))]
    assert Pipeline(owner).queue_many(session, both, NOON + timedelta(hours=1)) == 2
    session.commit()
    bodies = session.scalars(
        Message.__table__.select().with_only_columns(Message.body).order_by(Message.id)
    ).all()
    assert bodies[1:] == ["Sale two" + CLAUSE, "Sale three" + CLAUSE]


def test_it_refuses_an_unknown_clause_policy(session: Session) -> None:
    owner = account(session)
    with pytest.raises(InvalidInput, match="clause policy 'weekly'"):
        Accounts(session).update_settings(owner.id, optout_clause_policy="weekly")
    assert owner.optout_clause_policy == "every_message"
