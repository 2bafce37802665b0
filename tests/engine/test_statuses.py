"""Message statuses (R16): only forward, whatever order the delivery reports come in."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendline.engine import outbox
from sendline.engine.statuses import (
    FINAL,
    RANK,
    apply_delivery_report,
    apply_delivery_reports,
    can_advance,
    settlement,
)
from sendline.providers.base import DeliveryReport
from sendline.store.credit_values import Balance
from sendline.store.credits import Credits
from sendline.store.engine_models import MESSAGE_STATUSES
from sendline.store.models import LedgerEntry
from sendline.store.monthly import grant_monthly
from sendline.store.settlement import SettleKind, settle_shares
from tests.engine.factories import (
    NOW,
    assert_ledger_ok,
    make_account,
    make_contact,
    make_world,
    message,
    queue_many,
    queue_message,
    reservation_state,
)

TRANSITIONS = [
    ("queued", "sending", True),
    ("queued", "canceled", True),
    ("held", "canceled", True),
    ("sending", "sent", True),
    ("sending", "unknown", True),
    ("sending", "failed", True),
    ("unknown", "sent", True),
    ("unknown", "delivered", True),
    ("sent", "delivered", True),
    ("sent", "undelivered", True),
    ("sent", "failed", True),
    ("queued", "delivered", True),  # a receipt may overtake our own bookkeeping
    ("sending", "queued", False),  # un-claiming is the dispatcher's own move, not this
    ("sent", "sending", False),
    ("sent", "sent", False),
    ("delivered", "sent", False),
    ("delivered", "undelivered", False),
    ("undelivered", "delivered", False),
    ("failed", "delivered", False),
    ("canceled", "sending", False),
    ("canceled", "sent", False),
    ("queued", "bogus", False),
]


@pytest.mark.parametrize(("current", "new", "allowed"), TRANSITIONS)
def test_it_handles_each_transition(current: str, new: str, allowed: bool) -> None:
    assert can_advance(current, new) is allowed


def test_it_handles_every_status_in_the_order() -> None:
    assert set(RANK) == set(MESSAGE_STATUSES)
    for final in FINAL:
        assert not any(can_advance(final, other) for other in MESSAGE_STATUSES)


def _sent(session: Session, provider_id: str = "SM1") -> int:
    """A message the provider accepted: status sent, credits charged."""
    world = make_world(session)
    msg = queue_message(session, world.account, world.contact)
    msg.status, msg.provider, msg.provider_id, msg.sent_at = "sent", "sandbox", provider_id, NOW
    session.flush()
    assert msg.reservation_id is not None
    Credits(session, world.account.id).charge(msg.reservation_id)
    session.commit()
    return msg.id


def _report(status: str, code: str | None = None, minutes: int = 1) -> DeliveryReport:
    return DeliveryReport("SM1", status, code, NOW + timedelta(minutes=minutes))


def test_it_handles_a_delivery_report(session: Session) -> None:
    message_id = _sent(session)
    found = apply_delivery_report(session, _report("delivered"), NOW)
    session.commit()
    assert found is not None and found.id == message_id
    msg = message(session, message_id)
    assert (msg.status, msg.delivered_at) == ("delivered", NOW + timedelta(minutes=1))
    assert reservation_state(session, msg.account_id, msg) == "charged"
    assert_ledger_ok(session, msg.account_id)


@pytest.mark.parametrize(
    ("reports", "final"),
    [
        (["delivered", "sent"], "delivered"),  # out of order
        (["delivered", "delivered"], "delivered"),  # duplicate
        (["undelivered", "delivered"], "undelivered"),  # first final wins
        (["sent", "sent", "undelivered"], "undelivered"),
        (["failed", "delivered", "sent"], "failed"),
    ],
)
def test_it_handles_out_of_order_and_duplicate_reports(
    session: Session, reports: list[str], final: str
) -> None:
    message_id = _sent(session)
    for minutes, status in enumerate(reports):
        code = "30003" if status in ("undelivered", "failed") else None
        apply_delivery_report(session, _report(status, code, minutes), NOW)
        session.commit()
    msg = message(session, message_id)
    assert msg.status == final
    assert_ledger_ok(session, msg.account_id)


def test_it_handles_a_failure_report_after_acceptance_by_refunding(session: Session) -> None:
    message_id = _sent(session)
    apply_delivery_report(session, _report("failed", "30007"), NOW)
    session.commit()
    msg = message(session, message_id)
    assert (msg.status, msg.error_code) == ("failed", "30007")
    assert reservation_state(session, msg.account_id, msg) == "refunded"
    assert_ledger_ok(session, msg.account_id)


@pytest.mark.parametrize(("status", "state"), [("delivered", "charged"), ("failed", "released")])
def test_it_handles_a_report_for_a_message_whose_outcome_was_unknown(
    session: Session, status: str, state: str
) -> None:
    world = make_world(session)
    msg = queue_message(session, world.account, world.contact)
    msg.status, msg.provider_id = "unknown", "SM1"
    session.commit()
    apply_delivery_report(session, _report(status), NOW)
    session.commit()
    msg = message(session, msg.id)
    assert msg.status == status
    assert reservation_state(session, world.account.id, msg) == state
    assert_ledger_ok(session, world.account.id)


def test_it_handles_a_report_nobody_claims(session: Session) -> None:
    make_world(session)
    assert apply_delivery_report(session, _report("delivered"), NOW) is None
    assert apply_delivery_report(session, DeliveryReport("SM1", "weird"), NOW) is None


@pytest.mark.parametrize("kind", ["charge", "release"])
def test_it_handles_batch_settlement_like_the_credits_store(
    session: Session, kind: SettleKind
) -> None:
    """settle_shares writes what Credits.charge / Credits.release write for a message
    alone, including R2's expiry of free credits that come back after their month was
    closed."""
    account = make_account(session, credits=10, purchased_on=date(2022, 6, 1))  # legacy
    grant_monthly(session, "2026-10", account_ids=[account.id])  # 25 free credits
    credits = Credits(session, account.id)
    one, two = credits.reserve(10, message_id=1), credits.reserve(10, message_id=2)  # free ones
    grant_monthly(session, "2026-11", account_ids=[account.id])  # closes October
    session.commit()
    if kind == "charge":
        credits.charge(one.id)
    else:
        credits.release(one.id)
    by_store = credits.balance()
    assert settle_shares(session, [(2, account.id, two.id, 10, two.free)], kind) == 1
    session.commit()

    def entries(reservation_id: int) -> list[tuple[str, int, int, int, int]]:
        rows = session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.reservation_id == reservation_id)
            .order_by(LedgerEntry.id)
        )
        return [(e.kind, e.amount, e.free_delta, e.purchased_delta, e.reserved_delta) for e in rows]

    first, second = entries(one.id), entries(two.id)
    assert [e[0] for e in first] == [e[0] for e in second]  # same kinds, same order
    if kind == "release":
        assert [e[0] for e in second] == ["release", "expire"]  # October's credits are gone
    after = credits.balance()
    assert after.reserved == by_store.reserved - 10
    assert_ledger_ok(session, account.id)


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("sending", "sent", "charge"),
        ("unknown", "delivered", "charge"),
        ("queued", "undelivered", "charge"),  # carriers bill undelivered messages
        ("sending", "failed", "release"),
        ("queued", "canceled", "release"),
        ("sent", "failed", "refund"),
        ("delivered", "failed", None),  # not a forward move: never reaches settlement
        ("sent", "delivered", None),  # already charged
        ("held", "canceled", None),  # a held message holds no credits
        ("queued", "sending", None),
    ],
)
def test_it_handles_what_each_move_does_to_the_credits(
    old: str, new: str, kind: SettleKind | None
) -> None:
    assert settlement(old, new) == kind


def test_it_handles_a_batch_reservation_settled_in_parts(session: Session) -> None:
    """One reservation for three messages: charged, released and left open in separate
    settlements, each part back in the bucket it came from (free credits first)."""
    account = make_account(session, credits=10, purchased_on=date(2022, 6, 1))  # legacy
    grant_monthly(session, "2026-11", account_ids=[account.id])  # 25 free credits
    credits = Credits(session, account.id)
    first, second, third = credits.reserve_many([(1, 20), (2, 10), (3, 4)])
    assert first is not None and second is not None and third is not None
    [reserve] = [e for e in credits.ledger() if e.kind == "reserve"]
    assert {first.reservation_id, second.reservation_id, third.reservation_id} == {reserve.id}
    assert (first.free, second.free, third.free) == (20, 5, 0)  # free credits first
    assert (reserve.amount, reserve.free_delta, reserve.purchased_delta) == (34, -25, -9)
    assert reserve.message_id is None and reserve.note == "3 messages"
    settle_shares(session, [(1, account.id, reserve.id, 20, 20)], "charge")
    settle_shares(session, [(2, account.id, reserve.id, 10, 5)], "release")
    session.commit()
    assert credits.balance() == Balance(free=5, purchased=6, reserved=4)
    assert credits.audit().ok
    kinds = [(e.kind, e.amount, e.message_id) for e in reversed(credits.ledger())]
    assert kinds[-3:] == [("reserve", 34, None), ("charge", 20, 1), ("release", 10, 2)]


def _settle_through_the_engine(session: Session, account_id: int, kind: str, late: bool) -> None:
    """Fail every queued message the way the worker does: a refusal from the provider
    (release), or a failure report after acceptance (refund). October closes (the
    monthly job for November) before their settlement if `late`, after it if not."""
    jobs = outbox.claim_due(session, "w1", NOW, 100)
    if kind == "refund":
        accepted = [outbox.Outcome(job, "sent", provider_id=f"SM{job.id}") for job in jobs]
        outbox.record_outcomes(session, "w1", "sandbox", accepted, NOW)
        session.commit()
    if late:
        grant_monthly(session, "2026-11", account_ids=[account_id])
    if kind == "release":
        failed = [outbox.Outcome(job, "failed", error_code="21211") for job in jobs]
        outbox.record_outcomes(session, "w1", "sandbox", failed, NOW)
    else:
        reports = [DeliveryReport(f"SM{job.id}", "failed", "30007", NOW) for job in jobs]
        apply_delivery_reports(session, reports, NOW)
    if not late:
        grant_monthly(session, "2026-11", account_ids=[account_id])
    session.commit()


def _ledger_totals(session: Session, account_id: int) -> dict[str, tuple[int, ...]]:
    """Per kind of entry: the credits it moved, and the change to each bucket."""
    rows = session.execute(
        select(
            LedgerEntry.kind,
            func.sum(LedgerEntry.amount),
            func.sum(LedgerEntry.free_delta),
            func.sum(LedgerEntry.purchased_delta),
            func.sum(LedgerEntry.reserved_delta),
        )
        .where(LedgerEntry.account_id == account_id)
        .group_by(LedgerEntry.kind)
    ).all()
    session.commit()
    return {kind: tuple(int(total) for total in totals) for kind, *totals in rows}


@pytest.mark.parametrize("kind", ["release", "refund"])
def test_it_handles_free_credits_settled_after_their_month_as_the_monthly_job_would(
    session: Session, kind: str
) -> None:
    """R2 has one expiry rule: October's free credits that a blast held across the
    close of October and that come back after it (the engine's set-based settlement)
    expire exactly as if they had come back before it and the monthly job had expired
    them. Same entries (per kind, in total), same balance."""
    totals = []
    for name in ("in time", "late"):
        account = make_account(session, name, credits=5, purchased_on=date(2022, 6, 1))
        grant_monthly(session, "2026-10", account_ids=[account.id])  # 25 free credits
        contact = make_contact(session, account)
        queue_many(session, account, [contact], 20, due_at=NOW)  # 20 of them reserved
        _settle_through_the_engine(session, account.id, kind, late=name == "late")
        assert Credits(session, account.id).balance() == Balance(free=25, purchased=5, reserved=0)
        assert_ledger_ok(session, account.id)
        totals.append(_ledger_totals(session, account.id))
    in_time, late = totals
    assert late == in_time
    assert late["expire"] == (25, -25, 0, 0)  # October's 25, whenever they came back
