"""Credits (R2, R3): the ledger, the balance it sums to, reservations, the monthly job."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

import sendline
from sendline.errors import (
    Conflict,
    InsufficientCredits,
    InvalidInput,
    InvalidReservationState,
    NotFound,
)
from sendline.store.accounts import Accounts
from sendline.store.credit_values import Balance
from sendline.store.credits import Credits
from sendline.store.models import LedgerEntry
from sendline.store.monthly import grant_monthly
from tests.store import racers
from tests.store.conftest import LEGACY, MakeAccount


def _checked(credits: Credits) -> Balance:
    audit = credits.audit()
    assert audit.ok, f"ledger {audit.ledger} != balance {audit.balance}"
    return audit.balance


def test_it_handles_purchase_and_the_ledger(session: Session, make_account: MakeAccount) -> None:
    credits = Credits(session, make_account().id)
    entry = credits.purchase(100, note="invoice 42")
    session.commit()
    assert (entry.kind, entry.amount, entry.purchased_delta) == ("purchase", 100, 100)
    assert _checked(credits) == Balance(free=0, purchased=100, reserved=0)
    for bad in (0, -5, 10_000_001):
        with pytest.raises(InvalidInput):
            credits.purchase(bad)


def test_it_handles_reserve_charge_release_refund(
    session: Session, make_account: MakeAccount
) -> None:
    account = make_account(tier="plus", purchased_on=LEGACY)
    credits = Credits(session, account.id)
    grant_monthly(session, "2026-11")
    credits.purchase(10)
    assert _checked(credits) == Balance(free=25, purchased=10, reserved=0)

    spend = credits.reserve(30, message_id=1)  # 25 free first, then 5 purchased
    assert (spend.free, spend.purchased, spend.state) == (25, 5, "open")
    assert _checked(credits) == Balance(free=0, purchased=5, reserved=30)
    credits.charge(spend.id)
    assert _checked(credits) == Balance(free=0, purchased=5, reserved=0)
    assert credits.reservation(spend.id).state == "charged"

    held = credits.reserve(4, message_id=2)
    assert (held.free, held.purchased) == (0, 4)
    credits.release(held.id)
    assert _checked(credits) == Balance(free=0, purchased=5, reserved=0)
    assert credits.reservation(held.id).state == "released"

    credits.refund(spend.id)  # back to the buckets the credits came from
    assert _checked(credits) == Balance(free=25, purchased=10, reserved=0)
    assert credits.reservation(spend.id).state == "refunded"
    session.commit()
    kinds = [e.kind for e in reversed(credits.ledger())]
    assert kinds == ["grant", "purchase", "reserve", "charge", "reserve", "release", "refund"]


def test_it_refuses_settling_a_reservation_out_of_order(
    session: Session, make_account: MakeAccount
) -> None:
    credits = Credits(session, make_account().id)
    credits.purchase(10)
    first = credits.reserve(2)
    with pytest.raises(InvalidReservationState) as caught:
        credits.refund(first.id)
    assert caught.value.code == "invalid_reservation_state"
    credits.charge(first.id)
    for again in (credits.charge, credits.release):
        with pytest.raises(InvalidReservationState):
            again(first.id)
    credits.refund(first.id)
    with pytest.raises(InvalidReservationState):
        credits.refund(first.id)
    with pytest.raises(NotFound):
        credits.charge(999_999)
    _checked(credits)


def test_it_handles_a_repeated_reservation_for_one_message(
    session: Session, make_account: MakeAccount
) -> None:
    credits = Credits(session, make_account().id)
    credits.purchase(10)
    first = credits.reserve(3, message_id=77)
    assert credits.reserve(3, message_id=77) == first
    with pytest.raises(Conflict):
        credits.reserve(4, message_id=77)
    assert credits.open_reservation_for(77) == first
    credits.release(first.id)
    assert credits.open_reservation_for(77) is None
    second = credits.reserve(3, message_id=77)  # e.g. retried after a hold
    assert second.id != first.id
    assert _checked(credits) == Balance(free=0, purchased=7, reserved=3)


def test_it_refuses_to_go_negative(session: Session, make_account: MakeAccount) -> None:
    credits = Credits(session, make_account().id)
    credits.purchase(5)
    with pytest.raises(InsufficientCredits) as caught:
        credits.reserve(6)
    assert caught.value.code == "insufficient_credits"
    assert _checked(credits) == Balance(free=0, purchased=5, reserved=0)
    session.commit()


def test_it_refuses_a_negative_balance_in_the_database(
    session: Session, make_account: MakeAccount
) -> None:
    account = make_account()
    with pytest.raises(DBAPIError):
        session.execute(
            text("UPDATE credit_balances SET purchased = -1 WHERE account_id = :a"),
            {"a": account.id},
        )
        session.flush()


def test_it_refuses_to_change_the_ledger(
    session: Session, make_account: MakeAccount, backend: str
) -> None:
    credits = Credits(session, make_account().id)
    credits.purchase(5)
    session.commit()
    for statement in ("UPDATE credit_ledger SET amount = 500", "DELETE FROM credit_ledger"):
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
        session.rollback()
    assert _checked(credits).purchased == 5


def test_it_handles_the_monthly_grant_once_per_month(
    session: Session, make_account: MakeAccount
) -> None:
    plus = make_account(tier="plus", purchased_on=LEGACY, sms_addon=False)
    pro = make_account(tier="professional", purchased_on=LEGACY)
    enterprise = make_account(tier="enterprise", purchased_on=date(2023, 1, 2))
    current = make_account(tier="enterprise", purchased_on=date(2023, 1, 3))
    lite = make_account(tier="lite", purchased_on=LEGACY)

    first = {r.account_id: r.granted for r in grant_monthly(session, "2026-11")}
    second = {r.account_id: r.granted for r in grant_monthly(session, "2026-11")}
    session.commit()
    assert first == {plus.id: 25, pro.id: 25, enterprise.id: 1000, current.id: 0, lite.id: 0}
    assert set(second.values()) == {0}
    for account in (plus, pro, enterprise, current, lite):
        _checked(Credits(session, account.id))
    grants = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "grant")).all()
    assert sorted((g.account_id, g.period) for g in grants) == [
        (plus.id, "2026-11"),
        (pro.id, "2026-11"),
        (enterprise.id, "2026-11"),
    ]
    # An older period after a newer one grants nothing either.
    assert {r.granted for r in grant_monthly(session, "2026-10")} == {0}


def test_it_handles_expiry_of_unused_free_credits(
    session: Session, make_account: MakeAccount
) -> None:
    account = make_account(tier="plus", purchased_on=LEGACY)
    credits = Credits(session, account.id)
    grant_monthly(session, "2026-11")
    credits.purchase(40)
    credits.charge(credits.reserve(10).id)  # 10 of the 25 free credits spent
    assert _checked(credits) == Balance(free=15, purchased=40, reserved=0)

    [result] = grant_monthly(session, "2026-12")
    assert (result.expired, result.granted) == (15, 25)
    assert _checked(credits) == Balance(free=25, purchased=40, reserved=0)
    expire = [e for e in credits.ledger() if e.kind == "expire"]
    assert [(e.amount, e.period) for e in expire] == [(15, "2026-11")]

    # Downgraded out of the legacy cohort: leftovers expire once, nothing is granted.
    Accounts(session).change_plan(account.id, last_purchase_on=date(2026, 12, 5))
    [result] = grant_monthly(session, "2027-01")
    assert (result.expired, result.granted) == (25, 0)
    [again] = grant_monthly(session, "2027-02")
    assert (again.expired, again.granted) == (0, 0)
    assert _checked(credits) == Balance(free=0, purchased=40, reserved=0)


def test_it_handles_free_credits_released_after_their_month(
    session: Session, make_account: MakeAccount
) -> None:
    account = make_account(tier="plus", purchased_on=LEGACY)
    credits = Credits(session, account.id)
    grant_monthly(session, "2026-11")
    credits.purchase(5)
    held = credits.reserve(27)  # 25 free (November) + 2 purchased
    late = credits.reserve(3)
    grant_monthly(session, "2026-12")  # nothing free left to expire; December's 25 granted
    assert _checked(credits) == Balance(free=25, purchased=0, reserved=30)
    credits.release(held.id)  # November's free credits must not roll into December
    assert _checked(credits) == Balance(free=25, purchased=2, reserved=3)
    credits.charge(late.id)
    credits.refund(late.id)
    assert _checked(credits) == Balance(free=25, purchased=5, reserved=0)


def test_it_handles_the_monthly_grant_raced_by_two_processes(
    database_url: str, session: Session, make_account: MakeAccount
) -> None:
    accounts = [make_account(tier="plus", purchased_on=LEGACY) for _ in range(5)]
    granted = racers.run_all(racers.grant, [(database_url, "2026-11")] * 2)
    assert sorted(granted) == [0, 125]
    for account in accounts:
        assert _checked(Credits(session, account.id)) == Balance(25, 0, 0)


def test_it_handles_eight_processes_racing_to_reserve(
    database_url: str, session: Session, make_account: MakeAccount
) -> None:
    account = make_account()
    Credits(session, account.id).purchase(150)
    session.commit()
    results = racers.run_all(racers.spend, [(database_url, account.id, seed) for seed in range(8)])
    charged = sum(r["charged"] for r in results)
    assert charged == 150  # every credit sold once: no oversell, nothing lost
    credits = Credits(session, account.id)
    assert _checked(credits) == Balance(free=0, purchased=0, reserved=0)
    ledger = credits.ledger()
    assert sum(e.amount for e in ledger if e.kind == "charge") == 150
    assert sum(e.amount for e in ledger if e.kind == "release") == sum(
        r["released"] for r in results
    )


def test_it_handles_batch_reservations_with_the_same_ledger_rules(
    session: Session, make_account: MakeAccount
) -> None:
    account = make_account(tier="plus", purchased_on=LEGACY)
    credits = Credits(session, account.id)
    grant_monthly(session, "2026-11")  # 25 free
    credits.purchase(10)
    shares = credits.reserve_many([(1, 20), (2, 10), (3, 8), (4, 5)])
    assert shares[2] is None  # 8 more than the 5 left: held, and the next still fits
    # One entry for the batch; each message knows its part of the free credits.
    assert [share and share.free for share in shares] == [20, 5, None, 0]
    assert len({share.reservation_id for share in shares if share}) == 1
    assert _checked(credits) == Balance(free=0, purchased=0, reserved=35)
    [reserve] = [e for e in credits.ledger() if e.kind == "reserve"]
    assert (reserve.amount, reserve.free_delta, reserve.purchased_delta) == (35, -25, -10)
    assert (reserve.message_id, reserve.note) == (None, "3 messages")
    # A batch of one names its message, as `reserve` does.
    credits.purchase(3)
    [alone] = credits.reserve_many([(9, 3)])
    assert alone is not None and credits.reservation(alone.reservation_id).message_id == 9
    assert credits.reserve_many([(10, 1)]) == [None]  # nothing left: nothing written
    assert _checked(credits) == Balance(free=0, purchased=0, reserved=38)
    session.commit()


def test_it_refuses_to_settle_a_batch_reservation_whole(
    session: Session, make_account: MakeAccount
) -> None:
    # Each message of a batch keeps its share and is settled on its own; settling the
    # batch's reservation whole would settle all of them a second time.
    credits = Credits(session, make_account().id)
    credits.purchase(10)
    first, _ = credits.reserve_many([(1, 2), (2, 3)])
    [alone] = credits.reserve_many([(3, 1)])
    assert first is not None and alone is not None
    entries = len(credits.ledger())
    for settle in (credits.charge, credits.release):
        with pytest.raises(InvalidReservationState) as caught:
            settle(first.reservation_id)
        assert "2 messages" in caught.value.message
    assert len(credits.ledger()) == entries  # nothing written
    credits.charge(alone.reservation_id)  # a batch of one is one message's reservation
    assert _checked(credits) == Balance(free=0, purchased=4, reserved=5)


# What writes the ledger or the balance: building a row, or an INSERT / UPDATE of it.
_LEDGER_WRITE = re.compile(
    r"\b(?:insert|update)\((?:LedgerEntry|CreditBalance)\b"
    r"|\b(?:LedgerEntry|CreditBalance)(?:\(|\.__table__)"
)
# The Credits aggregate, the models, and the account's creation (its zero balance row).
_LEDGER_OWNERS = {
    "store/credits.py",
    "store/settlement.py",
    "store/monthly.py",
    "store/models.py",
    "store/accounts.py",
}


def test_it_refuses_ledger_writes_outside_its_owner() -> None:
    """The ledger has one owner (R3): the engine settles through `store.settlement`,
    so R2's expiry rule cannot be written a second time beside it."""
    root = Path(sendline.__file__).parent
    writers = {
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if _LEDGER_WRITE.search(path.read_text(encoding="utf-8"))
    }
    assert writers - _LEDGER_OWNERS == set()
    assert {"store/credits.py", "store/settlement.py"} <= writers  # the check sees them
