"""Tenancy: a repository built for account A can neither read nor change B's rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendline.errors import NotFound
from sendline.store.consent import Consent
from sendline.store.contacts import Contacts
from sendline.store.credits import Credits
from sendline.store.models import ConsentEvent, Contact, LedgerEntry
from tests.store.conftest import MakeAccount


@pytest.fixture
def two_accounts(session: Session, make_account: MakeAccount) -> dict[str, Any]:
    a, b = make_account("A"), make_account("B")
    contacts_b = Contacts(session, b.id)
    contacts_b.define_field("CITY")
    bob = contacts_b.create(email="bob@example.com", phone="415 892 1234", fields={"CITY": "Oslo"})
    contacts_b.add_to_list(bob.id, "B list")
    Consent(session, b.id).record(bob.id, "opt_in", "form", source="web", disclosure="d")
    credits_b = Credits(session, b.id)
    credits_b.purchase(50)
    reservation = credits_b.reserve(5)
    session.commit()
    return {"a": a.id, "b": b.id, "bob": bob.id, "reservation": reservation.id}


CONTACT_CALLS: list[tuple[str, Callable[[Contacts, int], object]]] = [
    ("get", lambda c, i: c.get(i)),
    ("update", lambda c, i: c.update(i, first_name="Mallory")),
    ("tags", lambda c, i: c.tags(i)),
    ("add_tags", lambda c, i: c.add_tags(i, ["pwned"])),
    ("remove_tags", lambda c, i: c.remove_tags(i, ["x"])),
    ("lists", lambda c, i: c.lists(i)),
    ("add_to_list", lambda c, i: c.add_to_list(i, "A list")),
    ("remove_from_list", lambda c, i: c.remove_from_list(i, "B list")),
    ("resolve", lambda c, i: c.resolve(str(i))),
]


@pytest.mark.parametrize(("name", "call"), CONTACT_CALLS, ids=[n for n, _ in CONTACT_CALLS])
def test_it_refuses_contact_access_across_accounts(
    session: Session,
    two_accounts: dict[str, Any],
    name: str,
    call: Callable[[Contacts, int], object],
) -> None:
    with pytest.raises(NotFound):
        call(Contacts(session, two_accounts["a"]), two_accounts["bob"])
    session.rollback()
    bob = session.get(Contact, two_accounts["bob"])
    assert bob is not None and bob.first_name is None and bob.account_id == two_accounts["b"]


def test_it_refuses_lookups_across_accounts(session: Session, two_accounts: dict[str, Any]) -> None:
    contacts_a = Contacts(session, two_accounts["a"])
    assert contacts_a.find_by_email("bob@example.com") is None
    assert contacts_a.find_by_phone("415 892 1234") is None
    assert contacts_a.count() == 0
    assert list(contacts_a.iter_contacts()) == []
    assert contacts_a.custom_fields() == {}
    with pytest.raises(NotFound):
        contacts_a.members("B list")


CONSENT_CALLS: list[tuple[str, Callable[[Consent, int], object]]] = [
    ("record", lambda c, i: c.record(i, "opt_out", "api", source="x")),
    ("status", lambda c, i: c.status(i)),
    ("history", lambda c, i: c.history(i)),
    ("latest", lambda c, i: c.latest(i)),
]


@pytest.mark.parametrize(("name", "call"), CONSENT_CALLS, ids=[n for n, _ in CONSENT_CALLS])
def test_it_refuses_consent_access_across_accounts(
    session: Session,
    two_accounts: dict[str, Any],
    name: str,
    call: Callable[[Consent, int], object],
) -> None:
    with pytest.raises(NotFound):
        call(Consent(session, two_accounts["a"]), two_accounts["bob"])
    session.rollback()
    count = session.scalar(select(func.count()).select_from(ConsentEvent))
    assert count == 1
    assert Consent(session, two_accounts["b"]).status(two_accounts["bob"]) == "opted_in"


CREDIT_CALLS: list[tuple[str, Callable[[Credits, int], object]]] = [
    ("reservation", lambda c, i: c.reservation(i)),
    ("charge", lambda c, i: c.charge(i)),
    ("release", lambda c, i: c.release(i)),
    ("refund", lambda c, i: c.refund(i)),
]


@pytest.mark.parametrize(("name", "call"), CREDIT_CALLS, ids=[n for n, _ in CREDIT_CALLS])
def test_it_refuses_credit_access_across_accounts(
    session: Session,
    two_accounts: dict[str, Any],
    name: str,
    call: Callable[[Credits, int], object],
) -> None:
    credits_a = Credits(session, two_accounts["a"])
    with pytest.raises(NotFound):
        call(credits_a, two_accounts["reservation"])
    session.rollback()
    assert credits_a.ledger() == []
    assert credits_a.balance().total == 0
    b = Credits(session, two_accounts["b"])
    assert b.reservation(two_accounts["reservation"]).state == "open"
    assert b.audit().ok
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 2
