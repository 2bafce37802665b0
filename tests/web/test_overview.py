"""The overview: credits, the chart of what happened, and what needs action (both
databases); in Chromium, after the engine really sent and held messages."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.services.messages import queue_test, send_test
from sendline.store.contacts import Contacts
from sendline.store.engine_models import Message
from sendline.store.models import Account, Contact
from tests.fakes.live_app import LiveApp
from tests.web.conftest import Browserless, Member, screenshot, sign_in_browser, sqlite_only


def hold_one(session: Session, member: Member, phone: str = "+14155550199") -> None:
    """A message the send pipeline holds: to a contact who never opted in."""
    account = session.get(Account, member.account_id)
    assert account is not None
    stranger = Contacts(session, member.account_id).create(phone=phone, first_name="Bob")
    held = queue_test(session, account, stranger, "Order shipped", datetime.now(UTC))
    assert held.status == "held"
    session.commit()


def test_it_shows_credits_the_chart_and_an_empty_to_do(signed_in: Browserless) -> None:
    page = signed_in.get("/app/")
    assert page.status_code == 200
    assert "Nothing waits for you." in page.text
    assert "data-balance>1000<" in page.text  # the factory's purchase
    assert '<svg class="chart"' in page.text and "Messages over the last 30 days" in page.text
    assert "purchase" in page.text  # the ledger line


def test_it_lists_held_messages_by_reason_with_the_fix(
    signed_in: Browserless, acme: Member, session: Session
) -> None:
    hold_one(session, acme)
    Contacts(session, acme.account_id).create(phone="06 12 34 56 78", first_name="Eve")
    session.commit()
    session.rollback()
    page = signed_in.get("/app/")
    assert 'href="/app/messages?status=held&amp;reason=no_consent"' in page.text
    assert "no SMS opt-in recorded" in page.text
    assert 'href="/app/contacts?phone_status=invalid_phone"' in page.text
    assert "1</strong> invalid number" in page.text
    assert "Held: <strong>1</strong>" in page.text


def test_it_never_shows_another_accounts_activity(
    signed_in: Browserless, globex: Member, session: Session
) -> None:
    hold_one(session, globex, phone="+14155550177")
    session.rollback()
    page = signed_in.get("/app/")
    assert "no_consent" not in page.text and "Nothing waits for you." in page.text


def test_it_takes_only_the_periods_it_offers(signed_in: Browserless) -> None:
    assert "last 7 days" in signed_in.get("/app/?days=7").text
    assert "choose a period" not in signed_in.get("/app/?days=7").text
    for odd in ("0", "-1", "abc", "100000", "7.5", "\u0667", "%00", "\x00", " ", "9" * 5000):
        answer = signed_in.get("/app/", params={"days": odd})
        assert answer.status_code == 400 and "last 30 days" in answer.text, repr(odd)
        assert '<p class="error" role="alert">choose a period of 7, 30 or 90 days' in answer.text


def _wait_until_sent(sessions: sessionmaker[Session], account_id: int, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with sessions() as session:
            sent = session.scalars(
                select(Message.id).where(
                    Message.account_id == account_id, Message.sent_at.is_not(None)
                )
            ).all()
        if len(sent) >= count:
            return
        time.sleep(0.1)
    raise AssertionError("the worker sent nothing in 30 s")


@sqlite_only
def test_it_charts_what_the_engine_did(
    page: Any,
    site: LiveApp,
    acme: Member,
    session: Session,
    session_factory: sessionmaker[Session],
) -> None:
    for _ in range(2):
        send_test(
            session_factory, acme.account_id, body="Your order shipped", contact_id=acme.contact_id
        )
    hold_one(session, acme)
    session.rollback()
    _wait_until_sent(session_factory, acme.account_id, 2)

    sign_in_browser(page, site, acme)
    chart = page.locator("svg.chart")
    assert chart.get_attribute("role") == "img"
    assert "2 sent" in (chart.locator("desc").text_content() or "")
    assert page.locator("svg.chart .series-sent circle").count() == 1
    assert page.locator("svg.chart .series-held circle").count() == 1
    held = page.get_by_role("link", name="no_consent")
    assert held.get_attribute("href") == "/app/messages?status=held&reason=no_consent"
    with session_factory() as check:
        assert check.scalar(select(Contact.id).where(Contact.first_name == "Bob")) is not None
    screenshot(page, "overview")
