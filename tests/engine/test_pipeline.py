"""The send pipeline: each check of R1-R15 in order, each with its hold reason.

Every case runs through the one entry point the runner, a release and preflight share
(`queue_many` over `check_batch`), a batch of one here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.engine.auto_replies import queue_reply
from sendline.engine.held import release
from sendline.engine.pipeline import HOLD_REASONS, Pipeline, SmsRequest
from sendline.store.accounts import Accounts
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.models import Account, Contact
from tests.engine.automation_factories import account, contact
from tests.engine.queueing import queue_one

NOON = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)  # 12:00 in San Francisco
NIGHT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # 23:00 in San Francisco

Queue = Callable[[Session, Account, Contact, str, datetime], Message]


@pytest.fixture
def queue() -> Queue:
    return queue_one


def test_it_queues_a_lawful_message_with_its_clause_and_reserved_credits(
    session: Session, queue: Queue
) -> None:
    owner = account(session)
    who = contact(session, owner)
    message = queue(session, owner, who, "Hi %FIRSTNAME%, sale today", NOON)
    session.commit()
    assert message.status == "queued"
    assert message.body == "Hi Ada, sale today\nReply STOP to opt out"
    assert (message.to_e164, message.segments, message.credits) == ("+14158675309", 1, 1)
    assert message.due_at == NOON
    assert message.reservation_id is not None
    credits = Credits(session, owner.id)
    assert credits.balance().reserved == 1
    assert credits.audit().ok


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("lite_tier", "sms_not_in_plan"),
        ("no_addon", "sms_addon_required"),
        ("no_consent", "no_consent"),
        ("opted_out", "opted_out"),
        ("no_phone", "no_phone"),
        ("invalid_phone", "invalid_phone"),
        ("landline", "landline"),
        ("unknown_tag", "template_error"),
        ("blank", "empty"),
        ("shortener", "public_shortener"),
        ("long", "too_long"),
        ("capped", "frequency_cap"),
        ("broke", "insufficient_credits"),
    ],
)
def test_it_holds_with_a_reason_instead_of_dropping(
    session: Session, queue: Queue, setup: str, reason: str
) -> None:
    owner = account(session, credits=0 if setup == "broke" else 100, frequency_cap=1)
    if setup == "lite_tier":
        Accounts(session).change_plan(owner.id, tier="lite")
    if setup == "no_addon":
        owner.sms_addon = False
    phone = {"no_phone": None, "invalid_phone": "06 12 34 56 78", "landline": "+33 1 42 68 53 00"}
    who = contact(
        session,
        owner,
        phone.get(setup, "+14158675309"),
        consent=setup != "no_consent",
        email="ada@example.com",
    )
    if setup == "opted_out":
        from sendline.store.consent import Consent

        Consent(session, owner.id).record(who.id, "opt_out", "keyword", source="sms reply")
    body = {
        "unknown_tag": "Hi %NICKNAME%",
        "blank": "   ",
        "shortener": "Deals at bit.ly/x",
        "long": "x" * 150,
    }.get(setup, "Sale today")
    if setup == "capped":
        queue(session, owner, who, "First message", NOON)
    message = queue(session, owner, who, body, NOON)
    session.commit()
    assert message.status == "held"
    assert message.held_reason == reason
    assert message.detail  # every held message says why, in words
    assert message.reservation_id is None
    assert Credits(session, owner.id).audit().ok


def test_every_hold_reason_has_a_case() -> None:
    # The table above must cover every reason the pipeline can give.
    cases = test_it_holds_with_a_reason_instead_of_dropping.pytestmark[0].args[1]  # type: ignore[attr-defined]
    assert {reason for _, reason in cases} == set(HOLD_REASONS)


def test_it_defers_to_the_sending_window_instead_of_holding(session: Session, queue: Queue) -> None:
    owner = account(session)
    who = contact(session, owner)
    message = queue(session, owner, who, "Sale today", NIGHT)
    session.commit()
    assert message.status == "queued"
    # 23:00 in San Francisco: the next window opens at 08:00 local = 16:00 UTC.
    assert message.due_at == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)


def test_it_never_queues_a_step_twice(session: Session) -> None:
    owner = account(session)
    who = contact(session, owner)
    pipeline = Pipeline(owner)
    request = SmsRequest(template="Sale today", idempotency_key="run:1:0")
    assert pipeline.queue_many(session, [(who, request)], NOON) == 1
    assert pipeline.queue_many(session, [(who, request)], NOON) == 0
    session.commit()
    assert len(session.scalars(select(Message)).all()) == 1


def test_it_caps_within_one_batch(session: Session) -> None:
    owner = account(session, frequency_cap=2)
    who = contact(session, owner)
    requests = [(who, SmsRequest(template=f"Message {i}")) for i in range(3)]
    assert Pipeline(owner).queue_many(session, requests, NOON) == 3
    session.commit()
    statuses = [
        m.held_reason or m.status for m in session.scalars(select(Message).order_by(Message.id))
    ]
    assert statuses == ["queued", "queued", "frequency_cap"]


def test_it_counts_the_cap_over_a_rolling_day(session: Session) -> None:
    owner = account(session, frequency_cap=1)
    who = contact(session, owner)
    queue_one(session, owner, who, "One", NOON)
    later = queue_one(session, owner, who, "Two", NOON + timedelta(hours=23))
    next_day = queue_one(session, owner, who, "Three", NOON + timedelta(hours=25))
    session.commit()
    assert (later.held_reason, next_day.status) == ("frequency_cap", "queued")


def test_it_releases_a_held_message_once_the_cause_is_fixed(session: Session) -> None:
    owner = account(session, credits=0)
    who = contact(session, owner)
    message = queue_one(session, owner, who, "Sale today", NOON)
    assert message.held_reason == "insufficient_credits"
    Credits(session, owner.id).purchase(10)
    [released] = release(session, owner, ids=[message.id], now=NOON)
    session.commit()
    assert (released.message_id, released.status, released.reason) == (message.id, "queued", None)
    assert Credits(session, owner.id).balance().reserved == 1


def test_it_queues_replies_without_marketing_checks(session: Session) -> None:
    owner = account(session)
    who = contact(session, owner, consent=False)
    reply = queue_reply(session, owner, who, "+14158675309", "You are unsubscribed.", now=NIGHT)
    session.commit()
    assert (reply.kind, reply.status, reply.due_at) == ("reply", "queued", NIGHT)
    assert reply.body == "You are unsubscribed."  # no clause appended to a confirmation
