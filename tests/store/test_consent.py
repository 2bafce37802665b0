"""Consent (R4): append-only records, status derived from the latest, cached in step."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from sendline.errors import InvalidInput
from sendline.store.consent import CSV_COLUMNS, Consent
from sendline.store.contacts import Contacts
from sendline.store.models import Contact
from tests.store.conftest import MakeAccount

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DISCLOSURE = "Acme: recurring marketing texts. Msg & data rates may apply. Reply STOP to opt out."


def _contact(session: Session, account_id: int, email: str = "ann@example.com") -> Contact:
    return Contacts(session, account_id).create(email=email, phone="415 892 1234")


def test_it_handles_opt_in_then_opt_out(session: Session, make_account: MakeAccount) -> None:
    account = make_account()
    contact = _contact(session, account.id)
    consent = Consent(session, account.id)
    event = consent.record(
        contact.id,
        "opt_in",
        "form",
        source="https://acme.example/join",
        disclosure=DISCLOSURE,
        ip="203.0.113.9",
        user_agent="Mozilla/5.0",
        occurred_at=T0,
    )
    session.commit()
    assert (event.ip, event.user_agent, event.disclosure) == (
        "203.0.113.9",
        "Mozilla/5.0",
        DISCLOSURE,
    )
    assert event.occurred_at == T0 and event.recorded_at.tzinfo is not None
    assert contact.sms_consent == "opted_in" == consent.status(contact.id)
    consent.record(
        contact.id, "opt_out", "keyword", source="inbound STOP", occurred_at=T0 + timedelta(days=1)
    )
    session.commit()
    assert contact.sms_consent == "opted_out" == consent.status(contact.id)
    assert [e.kind for e in consent.history(contact.id)] == ["opt_in", "opt_out"]


def test_it_handles_events_recorded_out_of_order(
    session: Session, make_account: MakeAccount
) -> None:
    account = make_account()
    contact = _contact(session, account.id)
    consent = Consent(session, account.id)
    consent.record(contact.id, "opt_in", "api", source="crm", disclosure=DISCLOSURE, occurred_at=T0)
    # A backfilled opt-out that happened earlier does not override the later opt-in...
    consent.record(
        contact.id, "opt_out", "agent", source="call log", occurred_at=T0 - timedelta(hours=1)
    )
    assert contact.sms_consent == "opted_in"
    # ...but on an exact tie the opt-out wins.
    consent.record(contact.id, "opt_out", "agent", source="call log", occurred_at=T0)
    assert contact.sms_consent == "opted_out" == consent.status(contact.id)
    history = consent.history(contact.id)
    assert [e.occurred_at for e in history] == sorted(e.occurred_at for e in history)
    assert consent.latest(contact.id) == history[-1]


def test_it_refuses_to_change_or_delete_consent_records(
    session: Session, make_account: MakeAccount
) -> None:
    account = make_account()
    contact = _contact(session, account.id)
    Consent(session, account.id).record(
        contact.id, "opt_in", "form", source="web", disclosure=DISCLOSURE
    )
    session.commit()
    for statement in (
        "UPDATE consent_events SET kind = 'opt_out'",
        "UPDATE consent_events SET disclosure = 'something else'",
        "DELETE FROM consent_events",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
        session.rollback()
    assert Consent(session, account.id).status(contact.id) == "opted_in"
    assert not hasattr(Consent, "delete") and not hasattr(Consent, "update")


@pytest.mark.parametrize(
    ("kind", "method", "kwargs"),
    [
        ("opt_in", "form", {"source": "web"}),  # no disclosure
        ("maybe", "form", {"source": "web", "disclosure": "d"}),
        ("opt_out", "fax", {"source": "web"}),
        ("opt_out", "form", {"source": " "}),
        ("opt_out", "form", {"source": "web", "ip": "300.1.1.1"}),
        ("opt_out", "form", {"source": "web", "occurred_at": datetime(2026, 1, 1)}),
    ],
)
def test_it_refuses_incomplete_consent_records(
    session: Session, make_account: MakeAccount, kind: str, method: str, kwargs: dict[str, object]
) -> None:
    account = make_account()
    contact = _contact(session, account.id)
    with pytest.raises(InvalidInput):
        Consent(session, account.id).record(contact.id, kind, method, **kwargs)  # type: ignore[arg-type]
    assert Consent(session, account.id).history(contact.id) == []


def test_it_handles_the_audit_trail_as_csv(session: Session, make_account: MakeAccount) -> None:
    account = make_account()
    contact = _contact(session, account.id)
    consent = Consent(session, account.id)
    consent.record(
        contact.id,
        "opt_in",
        "import",
        source="import:list.csv",
        disclosure=DISCLOSURE,
        occurred_at=T0,
    )
    consent.record(contact.id, "opt_out", "keyword", source="STOP", occurred_at=T0 + timedelta(1))
    out = io.StringIO()
    assert consent.write_csv(contact.id, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["kind"], r["method"]) for r in rows] == [
        ("opt_in", "import"),
        ("opt_out", "keyword"),
    ]
    assert rows[0]["disclosure"] == DISCLOSURE
    assert rows[0]["occurred_at"] == T0.isoformat()


EVENTS = st.lists(
    st.tuples(st.sampled_from(["opt_in", "opt_out"]), st.integers(min_value=0, max_value=5)),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=EVENTS)
def test_it_handles_the_cached_status_always_equal_to_the_latest_event(
    session: Session, make_account: MakeAccount, events: list[tuple[str, int]]
) -> None:
    account = make_account()
    contact = _contact(session, account.id)
    consent = Consent(session, account.id)
    for kind, minutes in events:
        consent.record(
            contact.id,
            kind,
            "api",
            source="test",
            disclosure="d",
            occurred_at=T0 + timedelta(minutes=minutes),
        )
        session.commit()
        fresh = session.scalars(
            text("SELECT sms_consent FROM contacts WHERE id = :i").bindparams(i=contact.id)
        ).one()
        assert fresh == consent.status(contact.id) == _expected(consent.history(contact.id))


def _expected(history: list[object]) -> str:
    latest = max(
        history,
        key=lambda e: (e.occurred_at, e.kind == "opt_out", e.id),  # type: ignore[attr-defined]
    )
    return "opted_in" if latest.kind == "opt_in" else "opted_out"  # type: ignore[attr-defined]
