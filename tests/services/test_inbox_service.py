"""services/inbox.py on both databases: the inbound list and the review queue (R12)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.inbound import receive
from sendline.errors import Conflict, InvalidInput, NotFound
from sendline.services.inbox import list_inbound, receive_text, review_reply
from sendline.store.consent import Consent
from tests.engine.factories import NOW, SENDER, World, make_world

PHONE = "+14158675309"


@pytest.fixture
def world(session: Session) -> World:
    made = make_world(session)
    for minutes, body in enumerate(["STOP please, no more texts", "HELP", "When do you open?"]):
        receive(
            session,
            from_number=PHONE,
            to_number=SENDER,
            body=body,
            now=NOW + timedelta(minutes=minutes),
        )
    session.commit()
    return made


def test_it_handles_the_list_newest_first_and_the_review_queue(
    session_factory: sessionmaker[Session], world: World
) -> None:
    every = list_inbound(session_factory)
    assert [(r.body, r.outcome) for r in every] == [
        ("When do you open?", "passed to automations"),
        ("HELP", "help text sent"),
        ("STOP please, no more texts", "awaiting review"),
    ]
    queue = list_inbound(session_factory, world.account.name, review_only=True)
    assert [r.id for r in queue] == [every[-1].id] and queue[0].awaiting_review
    assert [r.body for r in list_inbound(session_factory, limit=1)] == ["When do you open?"]
    with pytest.raises(InvalidInput, match="--limit"):
        list_inbound(session_factory, limit=0)


def test_it_handles_a_review_and_closes_the_queue(
    session_factory: sessionmaker[Session], session: Session, world: World
) -> None:
    flagged = list_inbound(session_factory, review_only=True)[0]
    result = review_reply(session_factory, flagged.id, opt_out=True, by="alice", now=NOW)
    assert result.consent_event_id is not None
    assert (result.reply.outcome, result.reply.reviewed_by) == (
        "opted out by alice (review)",
        "alice",
    )
    assert list_inbound(session_factory, review_only=True) == []
    latest = Consent(session, world.account.id).latest(world.contact.id)
    assert latest is not None and (latest.method, latest.disclosure) == ("agent", flagged.body)
    session.commit()  # SQLite: every transaction holds the write lock
    with pytest.raises(Conflict, match="already reviewed by alice"):
        review_reply(session_factory, flagged.id, opt_out=False, by="bob")
    with pytest.raises(NotFound):
        review_reply(session_factory, 10**25, opt_out=False, by="bob")


def test_it_handles_a_stop_from_the_contacts_phone_before_returning(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    made = make_world(session)
    phone = made.contact.phone
    session.commit()
    first = receive_text(session_factory, from_number=phone, body=" Stop! ")
    assert [(r.action, r.account_name, r.has_contact, r.replied) for r in first] == [
        ("opt_out", made.account.name, True, True)
    ]
    session.expire_all()
    assert Consent(session, made.account.id).status(made.contact.id) == "opted_out"
    session.rollback()  # this test's reader steps aside for the next text's write
    again = receive_text(session_factory, from_number=phone, body="STOP")
    assert [(r.action, r.replied) for r in again] == [("opt_out", False)]  # one confirmation


def test_it_refuses_a_reply_from_no_real_number(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidInput, match="not a valid phone number"):
        receive_text(session_factory, from_number="12345", body="STOP")
