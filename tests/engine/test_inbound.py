"""Inbound texts (R12, R13): keywords opt out, opt in and ask for help; one STOP
confirmation and nothing after it; free text is stored for review or handed to the
automations."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.automations import Automations
from sendline.engine.dispatcher import Dispatcher
from sendline.engine.inbound import (
    OPT_IN_CONFIRMATION,
    OPT_OUT_CONFIRMATION,
    receive,
    receive_all,
    review,
)
from sendline.errors import Conflict, InvalidInput, NotFound
from sendline.providers.sandbox import SandboxProvider
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.consent import Consent
from sendline.store.engine_models import AutomationRun, InboundMessage, Message
from tests.engine.factories import (
    NOW,
    SENDER,
    World,
    assert_ledger_ok,
    make_account,
    make_contact,
    make_world,
    message,
    queue_message,
    reservation_state,
)

PHONE = "+14158675309"


@pytest.fixture
def world(session: Session) -> World:
    return make_world(session)


def _replies(session: Session, contact_id: int) -> list[Message]:
    found = list(
        session.scalars(
            select(Message)
            .where(Message.contact_id == contact_id, Message.kind == "reply")
            .order_by(Message.id)
        )
    )
    session.commit()
    return found


def _text(
    session: Session,
    body: str,
    provider_id: str | None = None,
    to: str | None = SENDER,
    minutes: int = 0,
) -> InboundMessage:
    inbound = receive(
        session,
        from_number=PHONE,
        to_number=to,
        body=body,
        provider_id=provider_id,
        now=NOW + timedelta(minutes=minutes),
    )
    session.commit()
    return inbound


@pytest.mark.parametrize("body", ["STOP", " stop! ", "Arrêt", "unsubscribe", "Stop All"])
def test_it_handles_an_opt_out_keyword(session: Session, world: World, body: str) -> None:
    pending = queue_message(session, world.account, world.contact)
    inbound = _text(session, body)
    assert (inbound.action, inbound.contact_id, inbound.account_id) == (
        "opt_out",
        world.contact.id,
        world.account.id,
    )
    consent = Consent(session, world.account.id)
    assert consent.status(world.contact.id) == "opted_out"
    latest = consent.latest(world.contact.id)
    assert latest is not None and (latest.method, latest.occurred_at) == ("keyword", NOW)
    assert latest.source.startswith("sms reply")
    canceled = message(session, pending.id)
    assert canceled.status == "canceled"
    assert reservation_state(session, world.account.id, canceled) == "released"
    [reply] = _replies(session, world.contact.id)
    assert reply.body == OPT_OUT_CONFIRMATION.format(name="demo")
    assert (reply.status, reply.to_e164) == ("queued", PHONE)
    assert_ledger_ok(session, world.account.id)


def test_it_handles_a_second_stop_without_a_second_confirmation(
    session: Session, world: World
) -> None:
    _text(session, "STOP")
    _text(session, "STOP")
    # The first STOP's confirmation, still waiting for a worker, is owed all the same:
    # the second STOP cancels what is pending but not it (one confirmation, R12).
    [reply] = _replies(session, world.contact.id)
    assert (reply.body, reply.status) == (OPT_OUT_CONFIRMATION.format(name="demo"), "queued")
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_out"
    assert_ledger_ok(session, world.account.id)


def test_it_handles_nothing_after_the_confirmation(
    session: Session, world: World, session_factory: sessionmaker[Session]
) -> None:
    """R12 + R13: the confirmation goes out; a marketing message claimed or queued later
    does not, even one queued by an automation that did not know yet."""
    before = queue_message(session, world.account, world.contact)
    _text(session, "STOP")
    after = queue_message(session, world.account, world.contact)
    sandbox = SandboxProvider(session_factory, rng=random.Random(3))
    dispatcher = Dispatcher(session_factory, sandbox, worker_id="w1", clock=lambda: NOW)
    dispatcher.dispatch_due()
    sent = list(session.scalars(select(SandboxMessage.body)))
    session.commit()
    assert sent == [OPT_OUT_CONFIRMATION.format(name="demo")]
    assert message(session, before.id).status == "canceled"
    assert message(session, after.id).status == "canceled"
    assert_ledger_ok(session, world.account.id)


def test_it_handles_an_opt_in_keyword(session: Session, world: World) -> None:
    _text(session, "STOP")
    inbound = _text(session, "start", minutes=1)
    assert inbound.action == "opt_in"
    consent = Consent(session, world.account.id)
    assert consent.status(world.contact.id) == "opted_in"
    latest = consent.latest(world.contact.id)
    assert latest is not None and latest.method == "keyword"
    assert latest.disclosure == OPT_IN_CONFIRMATION.format(name="demo")
    _text(session, "YES", minutes=2)  # already opted in: no second confirmation
    bodies = [reply.body for reply in _replies(session, world.contact.id)]
    assert bodies == [
        OPT_OUT_CONFIRMATION.format(name="demo"),
        OPT_IN_CONFIRMATION.format(name="demo"),
    ]


@pytest.mark.parametrize("opted_out", [False, True])
def test_it_handles_a_help_keyword(session: Session, world: World, opted_out: bool) -> None:
    if opted_out:
        _text(session, "STOP")
    inbound = _text(session, "Help")
    assert inbound.action == "help"
    replies = _replies(session, world.contact.id)
    assert replies[-1].body == world.account.help_text  # answered even after an opt-out
    expected = "opted_out" if opted_out else "opted_in"
    assert Consent(session, world.account.id).status(world.contact.id) == expected


def test_it_handles_a_free_text_revocation_by_flagging_it(session: Session, world: World) -> None:
    inbound = _text(session, "please stop texting me")
    assert inbound.action == "review" and inbound.reviewed_at is None
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_in"
    assert _replies(session, world.contact.id) == []


def test_it_handles_an_ordinary_reply_by_waking_the_automations(
    session: Session, world: World
) -> None:
    automations = Automations(session, world.account.id)
    saved = automations.create(
        "name: Replies\ntrigger: {type: reply}\nsteps:\n  - {type: send_sms, body: 'Thanks!'}\n"
    )
    automations.activate(saved.automation.id)
    session.commit()
    inbound = _text(session, "What time do you open tomorrow?")
    assert inbound.action == "none"
    runs = session.scalar(select(func.count()).select_from(AutomationRun))
    session.commit()
    assert runs == 1
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_in"


def test_it_handles_a_webhook_delivered_twice(session: Session, world: World) -> None:
    first = _text(session, "STOP", provider_id="SMabc")
    again = _text(session, "STOP", provider_id="SMabc")
    assert again.id == first.id
    count = session.scalar(select(func.count()).select_from(InboundMessage))
    session.commit()
    assert count == 1 and len(_replies(session, world.contact.id)) == 1


def test_it_handles_a_number_known_to_several_accounts(session: Session, world: World) -> None:
    other = make_account(session, "other", sender_number="+14155550001")
    twin = make_contact(session, other, PHONE)
    # Texted on the other account's number: only that account is concerned.
    _text(session, "STOP", to="+1 415 555 0001")
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_in"
    assert Consent(session, other.id).status(twin.id) == "opted_out"
    # No number to go by: every account that knows the sender hears it.
    handled = receive_all(
        session, from_number=PHONE, to_number=None, body="STOP", provider_id="SM2", now=NOW
    )
    session.commit()
    assert [h.account.id for h in handled if h.account] == [world.account.id, other.id]
    assert [h.reply is not None for h in handled] == [True, False]  # twin was already out
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_out"
    stored = list(session.scalars(select(InboundMessage.provider_id).order_by(InboundMessage.id)))
    session.commit()
    assert stored == [None, "SM2", f"SM2#{other.id}"]


def test_it_handles_a_text_from_a_stranger(session: Session, world: World) -> None:
    inbound = receive(session, from_number="+14155550999", to_number=SENDER, body="STOP", now=NOW)
    session.commit()
    assert (inbound.action, inbound.account_id, inbound.contact_id) == (
        "opt_out",
        world.account.id,
        None,
    )
    unknown = receive(
        session, from_number="12345", to_number=None, body="hi", now=NOW + timedelta(seconds=1)
    )
    session.commit()
    assert (unknown.account_id, unknown.contact_id, unknown.from_number) == (None, None, "12345")


def test_it_handles_a_reviewed_revocation_as_an_agent_opt_out(
    session: Session, world: World
) -> None:
    inbound = _text(session, "please stop texting me")
    pending = queue_message(session, world.account, world.contact)
    done = review(session, world.account.id, inbound.id, opt_out=True, by="alice", now=NOW)
    session.commit()
    latest = Consent(session, world.account.id).latest(world.contact.id)
    assert latest is not None and latest.id == done.consent_event_id
    assert (latest.kind, latest.method, latest.disclosure) == (
        "opt_out",
        "agent",
        "please stop texting me",
    )
    assert latest.recorded_by == "alice" and f"reply {inbound.id}" in latest.source
    assert (inbound.review_decision, inbound.reviewed_by, inbound.reviewed_at) == (
        "opt_out",
        "alice",
        NOW,
    )
    assert done.canceled == 1 and message(session, pending.id).status == "canceled"
    assert _replies(session, world.contact.id) == []  # no confirmation long after the text
    assert_ledger_ok(session, world.account.id)


def test_it_handles_a_review_that_is_not_an_opt_out(session: Session, world: World) -> None:
    inbound = _text(session, "stop sending the wrong size, I wanted a 9")
    done = review(session, world.account.id, inbound.id, opt_out=False, by="bob", now=NOW)
    session.commit()
    assert done.consent_event_id is None
    assert (inbound.review_decision, inbound.reviewed_by) == ("not_opt_out", "bob")
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_in"


def test_it_refuses_a_second_review_and_replies_not_flagged(session: Session, world: World) -> None:
    flagged = _text(session, "please stop texting me")
    keyword = _text(session, "HELP", minutes=1)
    review(session, world.account.id, flagged.id, opt_out=False, by="bob", now=NOW)
    session.commit()
    with pytest.raises(Conflict) as twice:
        review(session, world.account.id, flagged.id, opt_out=True, by="alice", now=NOW)
    assert twice.value.code == "already_reviewed" and "bob" in twice.value.message
    with pytest.raises(InvalidInput) as not_flagged:
        review(session, world.account.id, keyword.id, opt_out=True, by="alice", now=NOW)
    assert not_flagged.value.code == "not_for_review"
    for wrong in (flagged.id + 100, 10**25, 0):
        with pytest.raises(NotFound):
            review(session, world.account.id, wrong, opt_out=True, by="alice", now=NOW)
    other = make_account(session, "other")
    with pytest.raises(NotFound):  # another account's reply is not this account's to review
        review(session, other.id, flagged.id, opt_out=True, by="alice", now=NOW)
    with pytest.raises(InvalidInput):
        review(session, world.account.id, flagged.id, opt_out=True, by=" ", now=NOW)
    session.rollback()
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_in"


def test_it_refuses_to_opt_out_a_stranger_on_review(session: Session, world: World) -> None:
    inbound = receive(
        session, from_number="+14155550999", to_number=SENDER, body="stop texting me", now=NOW
    )
    session.commit()
    with pytest.raises(InvalidInput, match="no contact"):
        review(session, world.account.id, inbound.id, opt_out=True, by="alice", now=NOW)
    session.rollback()
    closed = review(session, world.account.id, inbound.id, opt_out=False, by="alice", now=NOW)
    assert closed.inbound.review_decision == "not_opt_out"
