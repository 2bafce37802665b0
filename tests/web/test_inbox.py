"""The inbox and its review queue, on both databases; the one-click opt-out in Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.services.inbox import receive_text
from sendline.store.engine_models import InboundMessage
from sendline.store.models import Contact
from tests.fakes.live_app import LiveApp
from tests.web.conftest import Browserless, Member, screenshot, sign_in_browser, sqlite_only

ACME_PHONE = "+14158675309"
GLOBEX_PHONE = "+14155550123"
PLEASE = "please stop texting me"


def _reply(sessions: sessionmaker[Session], member: Member, phone: str, body: str) -> int:
    receive_text(
        sessions,
        from_number=phone,
        body=body,
        account_ref=member.account_id,
        account_id=member.account_id,
    )
    with sessions() as session:
        found = session.scalar(
            select(InboundMessage.id)
            .where(InboundMessage.account_id == member.account_id)
            .order_by(InboundMessage.id.desc())
        )
        assert found is not None
        return found


def _consent(sessions: sessionmaker[Session], contact_id: int) -> str:
    with sessions() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact.sms_consent


def test_it_lists_conversations_and_the_review_queue(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    _reply(session_factory, acme, ACME_PHONE, "Thanks, see you Friday")
    _reply(session_factory, acme, ACME_PHONE, PLEASE)
    _reply(session_factory, acme, "+14155550199", "who is this?")
    page = signed_in.get("/app/inbox")
    assert page.status_code == 200
    assert PLEASE in page.text and "who is this?" in page.text
    assert "2 replies" in page.text and "needs review" in page.text
    queue = signed_in.get("/app/inbox?review=1")
    assert PLEASE in queue.text and "who is this?" not in queue.text


def test_it_names_each_conversations_contact(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    _reply(session_factory, acme, ACME_PHONE, "Thanks, see you Friday")
    _reply(session_factory, acme, "+14155550199", "who is this?")
    page = signed_in.get("/app/inbox").text
    assert re.search(r"<td>\s*Ada<br>", page) and "Unknown number<br>" in page
    assert f"Contact {acme.contact_id}" not in page
    only = signed_in.get(f"/app/inbox?contact={acme.contact_id}").text
    assert '<span class="badge">Ada only</span>' in only and "who is this?" not in only


def test_it_opts_a_contact_out_in_one_click(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    reply_id = _reply(session_factory, acme, ACME_PHONE, PLEASE)
    page = signed_in.get(f"/app/inbox/{reply_id}")
    assert "Opt out this contact" in page.text and "awaiting review" in page.text
    answer = signed_in.post(
        f"/app/inbox/{reply_id}/review", {"decision": "opt_out"}, follow_redirects=False
    )
    assert answer.status_code == 303
    done = signed_in.get(answer.headers["location"])
    assert (
        "opted out by owner@acme.example" in done.text and "Opt out this contact" not in done.text
    )
    assert _consent(session_factory, acme.contact_id) == "opted_out"
    again = signed_in.post(f"/app/inbox/{reply_id}/review", {"decision": "opt_out"})
    assert again.status_code == 409 and "already reviewed" in again.text


def test_it_closes_a_review_as_not_an_opt_out(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    reply_id = _reply(session_factory, acme, ACME_PHONE, PLEASE)
    answer = signed_in.post(f"/app/inbox/{reply_id}/review", {"decision": "not_opt_out"})
    assert answer.status_code == 200 and "not an opt-out, by owner@acme.example" in answer.text
    assert _consent(session_factory, acme.contact_id) == "opted_in"
    assert PLEASE not in signed_in.get("/app/inbox?review=1").text


@pytest.mark.parametrize("decision", ["", "maybe", "\u202e", "x" * 10_000])
def test_it_refuses_an_odd_decision(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session], decision: str
) -> None:
    reply_id = _reply(session_factory, acme, ACME_PHONE, PLEASE)
    answer = signed_in.post(f"/app/inbox/{reply_id}/review", {"decision": decision})
    assert answer.status_code == 400 and "Opt out this contact" in answer.text


def test_it_refuses_to_review_a_keyword_reply(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    reply_id = _reply(session_factory, acme, ACME_PHONE, "HELP")
    answer = signed_in.post(f"/app/inbox/{reply_id}/review", {"decision": "opt_out"})
    assert answer.status_code == 400 and "not flagged for review" in answer.text


def test_it_answers_another_accounts_text_with_a_404(
    signed_in: Browserless, globex: Member, session_factory: sessionmaker[Session]
) -> None:
    theirs = _reply(session_factory, globex, GLOBEX_PHONE, PLEASE)
    assert signed_in.get(f"/app/inbox/{theirs}").status_code == 404
    answer = signed_in.post(f"/app/inbox/{theirs}/review", {"decision": "opt_out"})
    assert answer.status_code == 404 and "Not found" in answer.text
    assert _consent(session_factory, globex.contact_id) == "opted_in"
    assert PLEASE not in signed_in.get("/app/inbox").text


@pytest.mark.parametrize(
    "path",
    [
        "/app/inbox/abc",
        "/app/inbox/0",
        "/app/inbox/-1",
        "/app/inbox/" + "9" * 50,
        "/app/inbox/%00",
        "/app/inbox?before=abc&contact=%F0%9F%98%80&review=2",
        "/app/inbox?before=" + "9" * 5000,
    ],
)
def test_it_never_fails_on_odd_links(signed_in: Browserless, path: str) -> None:
    answer = signed_in.get(path)
    assert answer.status_code in (200, 404), answer.text
    assert "text/html" in answer.headers["content-type"]


@sqlite_only
def test_it_opts_out_from_the_review_queue_in_chromium(
    page: Any, site: LiveApp, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    sign_in_browser(page, site, acme)
    # The contact texts the account's number from the sandbox phone.
    page.goto(site.url + f"/app/sandbox/{acme.contact_id}")
    page.get_by_label("Reply as this contact").fill(PLEASE)
    page.get_by_role("button", name="Send reply").click()
    assert "review queue" in page.get_by_role("status").inner_text()
    page.goto(site.url + "/app/inbox?review=1")
    screenshot(page, "inbox")
    page.get_by_role("link", name=PLEASE).click()
    page.get_by_role("button", name="Opt out this contact").click()
    assert re.search(r"opted out by", page.locator("#outcome").inner_text())
    assert page.locator("#consent").inner_text() == "opted out"
    assert page.get_by_role("button", name="Opt out this contact").count() == 0
    page.goto(site.url + "/app/inbox?review=1")
    assert "Nothing awaits review." in page.get_by_role("main").inner_text()
    assert _consent(session_factory, acme.contact_id) == "opted_out"
