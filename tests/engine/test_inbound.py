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
)
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
    assert len(_replies(session, world.contact.id)) == 1
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_out"


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
