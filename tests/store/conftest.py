"""Helpers for the store tests: accounts in a known plan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy.orm import Session

from sendline.store.accounts import Accounts
from sendline.store.models import Account

LEGACY = date(2022, 6, 1)
CURRENT = date(2024, 6, 1)

MakeAccount = Callable[..., Account]


@pytest.fixture
def make_account(session: Session) -> MakeAccount:
    """Create and commit an account; defaults to a current Plus account with the add-on."""
    counter = iter(range(1, 1000))

    def make(
        name: str | None = None,
        *,
        tier: str = "plus",
        product_line: str = "marketing",
        purchased_on: date = CURRENT,
        sms_addon: bool = True,
        **settings: Any,
    ) -> Account:
        account = Accounts(session).create(
            name or f"Account {next(counter)}",
            product_line=product_line,
            tier=tier,
            last_purchase_on=purchased_on,
            sms_addon=sms_addon,
            **settings,
        )
        session.commit()
        return account

    return make
