"""services/credits.py on both databases: the balance beside its ledger (R3)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import InvalidInput, NotFound
from sendline.services.accounts import purchase_credits
from sendline.services.credits import credit_statement
from tests.engine.factories import make_account


def test_it_handles_the_balance_and_the_newest_entries_first(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    made = make_account(session, "Acme", credits=100)
    session.commit()
    purchase_credits(session_factory, "Acme", 50, note="invoice 7")
    statement = credit_statement(session_factory, "Acme", entries=1)
    assert statement.account_name == made.name and statement.audit.ok
    assert statement.audit.balance.available == 150
    assert [(e.kind, e.amount, e.about) for e in statement.entries] == [
        ("purchase", 50, "invoice 7")
    ]
    assert credit_statement(session_factory, "Acme", entries=0).entries == []


def test_it_refuses_a_bad_entry_count_and_an_unknown_account(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    make_account(session, "Acme")
    session.commit()
    with pytest.raises(InvalidInput, match="--ledger"):
        credit_statement(session_factory, "Acme", entries=-1)
    with pytest.raises(NotFound):
        credit_statement(session_factory, "Nobody")
