"""The activity log the engine writes (`account_events`), driven through real flows on
both databases: every message's exact status history, consent changes and inbound texts,
each written in the transaction of the change it records."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine import outbox, triggers
from sendline.engine.dispatcher import R13_DETAIL, Dispatcher
from sendline.engine.held import release
from sendline.engine.inbound import CANCELED, receive_all
from sendline.engine.pipeline import Pipeline, SmsRequest
from sendline.engine.reconciler import UNCONFIRMED
from sendline.engine.statuses import apply_delivery_report
from sendline.providers.base import DeliveryReport
from sendline.providers.sandbox import SandboxProvider
from sendline.store.activity import RELEASED
from sendline.store.consent import Consent
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.event_models import AccountEvent
from tests.engine.automation_factories import Clock as RunClock
from tests.engine.automation_factories import automation, runner
from tests.engine.factories import NOW, World, make_account, make_contact, make_world, message
from tests.engine.sandbox_receipts import poll
from tests.engine.scripted_provider import ScriptedProvider

LEASE = timedelta(seconds=60)
BODY = "Spring sale: 20% off today"


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(session_factory: sessionmaker[Session], clock: Clock) -> Iterator[SandboxProvider]:
    provider = SandboxProvider(session_factory, rng=random.Random(1), clock=clock)
    yield provider
    provider.close()


@pytest.fixture
def dispatcher(
    session_factory: sessionmaker[Session], sandbox: SandboxProvider, clock: Clock
) -> Iterator[Dispatcher]:
    found = Dispatcher(
        session_factory,
        sandbox,
        worker_id="w1",
        lease=LEASE,
        clock=clock,
        rng=random.Random(2),
        unconfirmed_after=timedelta(minutes=10),
    )
    yield found
    found.close()


@pytest.fixture
def world(session: Session) -> World:
    return make_world(session)


def _queue(session: Session, world: World, to: str | None = None) -> int:
    """One message through the send pipeline (as a blast queues it), committed; `to`
    replaces its destination (the sandbox's test numbers are no contact's phone)."""
    ids: list[int] = []
    Pipeline(world.account).queue_many(
        session,
        [(world.contact, SmsRequest(template=BODY))],
        NOW,
        before_insert=lambda rows: ids.extend(row["id"] for row in rows),
    )
    if to is not None:
        session.execute(update(Message).where(Message.id == ids[0]).values(to_e164=to))
    session.commit()
    return ids[0]


def _events(session: Session, **where: Any) -> list[tuple[str, dict[str, Any]]]:
    """(kind, data) of the events matching `where` (column=value), in id order."""
    query = select(AccountEvent).order_by(AccountEvent.id)
    for column, value in where.items():
        query = query.where(getattr(AccountEvent, column) == value)
    found = [(event.kind, dict(event.data)) for event in session.scalars(query)]
    session.commit()
    return found


def _status(status: str, detail: str | None = None, code: str | None = None) -> tuple[str, Any]:
    return ("message.status", {"status": status, "detail": detail, "error_code": code})


def _sent(provider_id: str | None) -> tuple[str, Any]:
    kind, data = _status("sent")
    return kind, {**data, "provider_id": provider_id}


def test_it_records_queued_sending_sent_delivered(
    session: Session,
    world: World,
    dispatcher: Dispatcher,
    sandbox: SandboxProvider,
    session_factory: sessionmaker[Session],
    clock: Clock,
) -> None:
    message_id = _queue(session, world)
    assert _events(session, message_id=message_id) == [_status("queued")]
    assert dispatcher.dispatch_due() == 1
    provider_id = message(session, message_id).provider_id
    assert provider_id is not None
    poll(sandbox, session_factory, clock.advance(5))
    assert message(session, message_id).status == "delivered"
    assert _events(session, message_id=message_id) == [
        _status("queued"),
        _status("sending"),
        _sent(provider_id),
        _status("delivered"),
    ]
    rows = session.scalars(select(AccountEvent).where(AccountEvent.message_id == message_id))
    assert {(e.account_id, e.contact_id) for e in rows} == {(world.account.id, world.contact.id)}
    session.commit()


def test_it_records_a_blast_claimed_as_it_is_queued(
    session: Session,
    session_factory: sessionmaker[Session],
    dispatcher: Dispatcher,
    sandbox: SandboxProvider,
    clock: Clock,
) -> None:
    owner = make_account(session)
    contacts = [make_contact(session, owner, f"+1415867{5300 + i}") for i in range(3)]
    blast = automation(
        session,
        owner,
        f"name: B\ntrigger: {{type: bulk}}\nsteps: [{{type: send_sms, body: '{BODY}'}}]",
    )
    triggers.start_bulk(session, owner.id, blast.id, now=NOW)
    session.commit()
    work = runner(session_factory, RunClock(NOW), claim_sends=True)
    assert work.run_due() == 3
    jobs, claimed_at = work.take_claimed()
    assert len(jobs) == 3 and claimed_at is not None
    dispatcher.dispatch_claimed(jobs, claimed_at)
    poll(sandbox, session_factory, clock.advance(5))
    for person in contacts:
        [found] = session.scalars(select(Message).where(Message.contact_id == person.id))
        session.commit()
        assert found.status == "delivered"
        assert _events(session, message_id=found.id) == [
            _status("queued"),
            _status("sending"),
            _sent(found.provider_id),
            _status("delivered"),
        ]


def test_it_records_a_permanent_failure_and_an_undelivered_one(
    session: Session,
    world: World,
    dispatcher: Dispatcher,
    sandbox: SandboxProvider,
    session_factory: sessionmaker[Session],
    clock: Clock,
) -> None:
    refused = _queue(session, world, to="+15005550001")
    filtered = _queue(session, world, to="+15005550032")
    assert dispatcher.dispatch_due() == 2
    poll(sandbox, session_factory, clock.advance(5))
    detail = message(session, refused).detail
    assert _events(session, message_id=refused) == [
        _status("queued"),
        _status("sending"),
        _status("failed", detail, "21211"),
    ]
    assert _events(session, message_id=filtered) == [
        _status("queued"),
        _status("sending"),
        _sent(message(session, filtered).provider_id),
        _status("undelivered", None, "30007"),
    ]


def test_it_records_a_retry_back_in_the_queue(
    session: Session, world: World, dispatcher: Dispatcher, clock: Clock
) -> None:
    message_id = _queue(session, world, to="+15005550029")
    assert dispatcher.dispatch_due() == 1
    retry = message(session, message_id)
    assert (retry.status, retry.error_code) == ("queued", "20429")
    assert _events(session, message_id=message_id) == [
        _status("queued"),
        _status("sending"),
        _status("queued", retry.detail, "20429"),
    ]


def test_it_records_a_late_failure_report_on_the_one_by_one_path(
    session: Session, world: World, dispatcher: Dispatcher
) -> None:
    message_id = _queue(session, world)
    dispatcher.dispatch_due()
    provider_id = message(session, message_id).provider_id
    assert provider_id is not None
    report = DeliveryReport(provider_id=provider_id, status="failed", error_code="30008")
    assert apply_delivery_report(session, report, NOW) is not None
    session.commit()
    assert _events(session, message_id=message_id)[2:] == [
        _sent(provider_id),
        ("message.status", {**_status("failed", None, "30008")[1], "provider_id": provider_id}),
    ]


def test_it_records_held_released_queued_sent(session: Session, dispatcher: Dispatcher) -> None:
    world = make_world(session, credits=0)
    message_id = _queue(session, world)
    held = message(session, message_id)
    status, reason, detail = held.status, held.held_reason, held.detail
    assert (status, reason) == ("held", "insufficient_credits")
    Credits(session, world.account.id).purchase(10)
    [released] = release(session, world.account, ids=[message_id], now=NOW)
    session.commit()
    assert released.status == "queued"
    dispatcher.dispatch_due()
    assert _events(session, message_id=message_id) == [
        ("message.held", {"reason": "insufficient_credits", "detail": detail}),
        _status("queued", RELEASED),
        _status("sending"),
        _sent(message(session, message_id).provider_id),
    ]


def test_it_records_a_release_that_holds_again_only_when_the_reason_changes(
    session: Session,
) -> None:
    world = make_world(session, credits=0)
    message_id = _queue(session, world)
    release(session, world.account, ids=[message_id], now=NOW)  # still no credits
    session.commit()
    assert [kind for kind, _ in _events(session, message_id=message_id)] == ["message.held"]
    Consent(session, world.account.id).record(
        world.contact.id, "opt_out", "keyword", source="STOP", occurred_at=NOW
    )
    Credits(session, world.account.id).purchase(10)
    release(session, world.account, ids=[message_id], now=NOW)
    session.commit()
    [_, (kind, data)] = _events(session, message_id=message_id)
    assert (kind, data["reason"]) == ("message.held", "opted_out")


def test_it_records_a_stop_with_the_pending_messages_canceled(
    session: Session, world: World
) -> None:
    _queue(session, world)
    _queue(session, world)
    [handled] = receive_all(
        session, from_number=world.contact.phone_e164 or "", to_number=None, body="STOP", now=NOW
    )
    session.commit()
    assert handled.canceled == 2 and handled.reply is not None
    log = _events(session, contact_id=world.contact.id)
    inbound = ("inbound.received", {"inbound_id": handled.inbound.id, "body": "STOP"})
    inbound[1]["action"] = "opt_out"
    source = Consent(session, world.account.id).latest(world.contact.id)
    assert source is not None
    session.commit()
    assert log[3:] == [
        inbound,
        ("contact.opted_out", {"method": "keyword", "source": source.source}),
        _status("canceled", CANCELED),
        _status("canceled", CANCELED),
        _status("queued"),  # the one confirmation (R12)
    ]
    assert [e[0] for e in _events(session, message_id=handled.reply.id)] == ["message.status"]
    # A second STOP changes nothing: the text is logged, no consent change, no reply.
    receive_all(
        session, from_number=world.contact.phone_e164 or "", to_number=None, body="STOP", now=NOW
    )
    session.commit()
    kinds = [kind for kind, _ in _events(session, contact_id=world.contact.id)]
    assert kinds[8] == "inbound.received"
    assert (kinds.count("contact.opted_out"), kinds.count("inbound.received")) == (1, 2)


def test_it_records_a_help_answer_held_for_credits_then_released(session: Session) -> None:
    world = make_world(session, credits=0)
    phone = world.contact.phone_e164 or ""
    [handled] = receive_all(session, from_number=phone, to_number=None, body="HELP", now=NOW)
    session.commit()
    assert handled.reply is not None
    reply_id, detail = handled.reply.id, handled.reply.detail
    Credits(session, world.account.id).purchase(10)
    release(session, world.account, ids=[reply_id], now=NOW)
    session.commit()
    assert _events(session, message_id=reply_id) == [
        ("message.held", {"reason": "insufficient_credits", "detail": detail}),
        _status("queued", RELEASED),
    ]


def test_it_records_a_carrier_opt_out(
    session: Session, world: World, session_factory: sessionmaker[Session], clock: Clock
) -> None:
    carrier = ScriptedProvider("twilio:1", ["opted_out"])  # 21610: STOP to the carrier
    refused = _queue(session, world)
    later = _queue(session, world)
    session.execute(
        update(Message).where(Message.id == later).values(due_at=NOW + timedelta(hours=1))
    )
    session.commit()
    dispatcher = Dispatcher(session_factory, carrier, worker_id="w1", lease=LEASE, clock=clock)
    assert dispatcher.dispatch_due() == 1
    dispatcher.close()
    detail = message(session, refused).detail
    assert _events(session, message_id=refused) == [
        _status("queued"),
        _status("sending"),
        _status("failed", detail, "21610"),
    ]
    event = Consent(session, world.account.id).latest(world.contact.id)
    assert event is not None
    source = event.source
    session.commit()
    assert _events(session, contact_id=world.contact.id)[-2:] == [
        ("contact.opted_out", {"method": "keyword", "source": source}),
        _status("canceled", CANCELED),
    ]
    assert _events(session, message_id=later) == [_status("queued"), _status("canceled", CANCELED)]


def test_it_records_a_message_canceled_at_the_provider_call(
    session: Session, world: World, dispatcher: Dispatcher
) -> None:
    message_id = _queue(session, world)
    # R13: opted out after it was queued (no STOP: nothing canceled it at once).
    Consent(session, world.account.id).record(
        world.contact.id, "opt_out", "agent", source="phone call", occurred_at=NOW
    )
    session.commit()
    dispatcher.dispatch_due()
    assert _events(session, message_id=message_id) == [
        _status("queued"),
        _status("sending"),
        _status("canceled", R13_DETAIL),
    ]


def test_it_records_reconciliation(
    session: Session, world: World, dispatcher: Dispatcher, clock: Clock
) -> None:
    lost = _queue(session, world, to="+15005550090")  # accepted, answer lost
    unsent = _queue(session, world, to="+15005550091")  # never reached the carrier
    unsure = _queue(session, world, to="+15005550092")  # lookups cannot tell
    assert dispatcher.dispatch_due() == 3
    clock.advance(LEASE.total_seconds() + 1)
    dispatcher.reconcile()
    clock.advance(11 * 60)
    dispatcher.reconcile()
    for message_id in (lost, unsent, unsure):
        log = _events(session, message_id=message_id)
        assert log[:2] == [_status("queued"), _status("sending")]
        assert log[2][1]["status"] == "unknown"
    found = message(session, lost)
    assert _events(session, message_id=lost)[3:] == [
        ("message.status", {**_status("sent", found.detail)[1], "provider_id": found.provider_id})
    ]
    requeued = message(session, unsent).detail
    assert _events(session, message_id=unsent)[3] == _status("queued", requeued)
    gone = message(session, unsure)
    assert _events(session, message_id=unsure)[3:] == [_status("failed", gone.detail, UNCONFIRMED)]


def test_it_records_a_worker_that_died_mid_send(
    session: Session, world: World, dispatcher: Dispatcher, clock: Clock
) -> None:
    message_id = _queue(session, world)
    [job] = outbox.claim_due(session, "w0", NOW, 10)  # claimed, then the worker died
    session.commit()
    clock.advance(LEASE.total_seconds() + 1)
    assert dispatcher.reconcile() == 1  # the sandbox never got it: back to the queue
    requeued = message(session, message_id)
    assert (job.id, requeued.status) == (message_id, "queued")
    assert _events(session, message_id=message_id) == [
        _status("queued"),
        _status("sending"),
        _status("unknown"),
        _status("queued", requeued.detail),
    ]


def test_it_records_nothing_for_a_change_rolled_back(session: Session, world: World) -> None:
    before = _events(session)
    Pipeline(world.account).queue_many(session, [(world.contact, SmsRequest(template=BODY))], NOW)
    receive_all(
        session, from_number=world.contact.phone_e164 or "", to_number=None, body="STOP", now=NOW
    )
    session.rollback()
    assert _events(session) == before


def test_it_records_consent_changes_only(session: Session) -> None:
    owner = make_account(session)
    ada = make_contact(session, owner, consent=False)
    consent = Consent(session, owner.id)
    consent.record(ada.id, "opt_in", "form", source="signup", disclosure="Yes", occurred_at=NOW)
    consent.record(ada.id, "opt_in", "form", source="again", disclosure="Yes", occurred_at=NOW)
    # A backdated opt-out that an opt-in already overrides changes nothing either.
    early = NOW - timedelta(days=1)
    consent.record(ada.id, "opt_out", "agent", source="old call", occurred_at=early)
    consent.record(ada.id, "opt_out", "agent", source="call", occurred_at=NOW + timedelta(1))
    session.commit()
    assert _events(session, contact_id=ada.id) == [
        ("contact.opted_in", {"method": "form", "source": "signup"}),
        ("contact.opted_out", {"method": "agent", "source": "call"}),
    ]
