"""The sandbox phone: what the sandbox carrier delivered to a contact and the replies
typed as that contact, on both databases; STOP from the phone in Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.worker import Worker, WorkerOptions
from sendline.providers.sandbox import SandboxProvider
from sendline.providers.sandbox_store import SandboxMessage
from sendline.services.messages import send_test
from sendline.store.models import Contact
from tests.fakes.live_app import LiveApp
from tests.web.conftest import Browserless, Member, screenshot, sign_in_browser, sqlite_only

HELLO = "Your order shipped. Reply STOP to opt out"
UNSUBSCRIBED = "You are unsubscribed from Acme"


def _deliver(sessions: sessionmaker[Session], member: Member, body: str = HELLO) -> None:
    """A test text through the real pipeline, handed to the sandbox carrier by a worker."""
    send_test(sessions, member.account_id, body=body, contact_id=member.contact_id)
    _work(sessions)


def _work(sessions: sessionmaker[Session]) -> None:
    worker = Worker(
        sessions, SandboxProvider(sessions), WorkerOptions(worker_id="phone", webhooks=False)
    )
    for _ in range(5):
        worker.step()


def _carried(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(SandboxMessage)) or 0


def test_it_lists_the_accounts_phones(
    signed_in: Browserless, acme: Member, globex: Member, session_factory: sessionmaker[Session]
) -> None:
    _deliver(session_factory, acme)
    page = signed_in.get("/app/sandbox")
    assert page.status_code == 200
    assert "+14158675309" in page.text and "+14155550123" not in page.text
    assert f'/app/sandbox/{acme.contact_id}"' in page.text


def test_it_shows_what_the_sandbox_delivered_and_the_replies(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    _deliver(session_factory, acme)
    page = signed_in.get(f"/app/sandbox/{acme.contact_id}")
    assert page.status_code == 200 and HELLO in page.text
    assert 'hx-trigger="every 2s"' in page.text
    by_number = signed_in.get("/app/sandbox/+14158675309")
    assert by_number.status_code == 200 and HELLO in by_number.text
    answer = signed_in.post(
        f"/app/sandbox/{acme.contact_id}/reply", {"body": "Thanks!"}, follow_redirects=False
    )
    assert answer.status_code == 303
    thread = signed_in.get(f"/app/sandbox/{acme.contact_id}/thread", headers={"HX-Request": "true"})
    assert "<html" not in thread.text
    assert thread.text.index(HELLO) < thread.text.index("Thanks!")
    assert "Reply stored in the inbox" in signed_in.get(answer.headers["location"]).text


def test_it_opts_out_on_stop_with_one_confirmation(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    _deliver(session_factory, acme)
    for _ in range(2):  # a second STOP sends no second confirmation (R12)
        answer = signed_in.post(f"/app/sandbox/{acme.contact_id}/reply", {"body": "STOP"})
        assert answer.status_code == 200
        _work(session_factory)
    with session_factory() as session:
        contact = session.get(Contact, acme.contact_id)
        assert contact is not None and contact.sms_consent == "opted_out"
    thread = signed_in.get(f"/app/sandbox/{acme.contact_id}/thread").text
    assert thread.count(UNSUBSCRIBED) == 1 and thread.count(">STOP<") == 2


@pytest.mark.parametrize("body", ["", "   ", "x" * 2000, "hi\x01there"])
def test_it_refuses_an_empty_or_odd_reply_and_keeps_it(
    signed_in: Browserless, acme: Member, body: str
) -> None:
    answer = signed_in.post(f"/app/sandbox/{acme.contact_id}/reply", {"body": body})
    assert answer.status_code == 400
    assert 'id="error-body"' in answer.text
    if body.strip() and "\x01" not in body:
        assert body in answer.text


def test_it_answers_another_accounts_phone_with_a_404(
    signed_in: Browserless, globex: Member, session_factory: sessionmaker[Session]
) -> None:
    _deliver(session_factory, globex)
    for path in (f"/app/sandbox/{globex.contact_id}", "/app/sandbox/+14155550123"):
        assert signed_in.get(path).status_code == 404
        assert signed_in.get(path + "/thread").status_code == 404
        assert signed_in.post(path + "/reply", {"body": "STOP"}).status_code == 404
    with session_factory() as session:
        contact = session.get(Contact, globex.contact_id)
        assert contact is not None and contact.sms_consent == "opted_in"


@pytest.mark.parametrize("ref", ["abc", "0", "9" * 60, "+1", "%2B" + "9" * 300, "☎", "%00"])
def test_it_never_fails_on_odd_links(signed_in: Browserless, ref: str) -> None:
    assert signed_in.get(f"/app/sandbox/{ref}").status_code == 404
    assert signed_in.post(f"/app/sandbox/{ref}/reply", {"body": "hi"}).status_code == 404


@sqlite_only
def test_it_replies_stop_from_the_phone_in_chromium(
    page: Any, site: LiveApp, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    send_test(session_factory, acme.account_id, body=HELLO, contact_id=acme.contact_id)
    sign_in_browser(page, site, acme)
    page.goto(site.url + "/app/sandbox")
    page.get_by_role("link", name="Ada").click()
    bubbles = page.locator("#thread .bubble.in")
    # The embedded worker hands the text to the sandbox; the page polls every 2 s.
    bubbles.filter(has_text=HELLO).wait_for(timeout=15_000)
    page.get_by_label("Reply as this contact").fill("STOP")
    page.get_by_role("button", name="Send reply").click()
    assert "Opted out" in page.get_by_role("status").inner_text()
    assert page.locator("#consent").inner_text() == "opted out"
    bubbles.filter(has_text=UNSUBSCRIBED).wait_for(timeout=15_000)
    page.locator("#thread .bubble.out").filter(has_text="STOP").wait_for()
    screenshot(page, "sandbox-phone")
    page.wait_for_timeout(2500)  # one more poll: still exactly one confirmation
    assert bubbles.filter(has_text=UNSUBSCRIBED).count() == 1
    assert _carried(session_factory) == 2
