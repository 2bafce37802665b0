"""The message pages on both databases: the log and its filters and pages, a message
with its history and Cancel, the held view grouped by reason with what fixes each and
its releases (a fixed cause makes the message queued), another account's message a
404 page and untouched by a release, odd input never a 500; and in Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.pipeline import Pipeline, SmsRequest
from sendline.services import contacts as service
from sendline.store.contacts import Contacts
from sendline.store.models import Account, Contact
from tests.engine.factories import make_contact, message, queue_message
from tests.fakes.live_app import LiveApp
from tests.web.conftest import Browserless, Member, screenshot, sign_in_browser, sqlite_only

DISCLOSURE = "Yes, text me Acme offers (up to 3/week). Reply STOP to opt out."
BODY = "Spring sale: 20% off today, %FIRSTNAME%. Reply STOP to opt out"
ODD = ["", " ", "x" * 5000, "\x00", "😀", "-1", "0", "9" * 40, "2026-13-45", "<b>"]


def held_without_consent(
    session: Session, member: Member, phone: str = "+14155550132"
) -> tuple[int, int]:
    """A contact with no opt-in and the message the pipeline held for it: (contact,
    message). As an automation's send to a contact who never opted in is held."""
    account = session.get(Account, member.account_id)
    assert account is not None
    contact = make_contact(session, account, phone, consent=False)
    ids: list[int] = []
    Pipeline(account).queue_many(
        session,
        [(contact, SmsRequest(template=BODY))],
        datetime.now(UTC),
        before_insert=lambda rows: ids.extend(row["id"] for row in rows),
    )
    session.commit()
    assert (message(session, ids[0]).status, message(session, ids[0]).held_reason) == (
        "held",
        "no_consent",
    )
    session.rollback()  # SQLite: a read left open would hold the write lock
    return contact.id, ids[0]


def opt_in(sessions: sessionmaker[Session], member: Member, contact_id: int) -> None:
    service.record_consent(
        sessions,
        member.account_id,
        contact_id,
        kind="opt_in",
        method="form",
        disclosure=DISCLOSURE,
        recorded_by="test",
    )


def status_of(session: Session, message_id: int) -> str:
    found = message(session, message_id).status
    session.rollback()
    return found


def msg_link(message_id: int) -> str:
    return f'href="/app/messages/{message_id}"'


def post(client: Browserless, url: str, data: dict[str, Any]) -> Any:
    return client.post(url, data=data, follow_redirects=False)


def test_it_groups_held_messages_and_releases_them_by_reason(
    signed_in: Browserless,
    acme: Member,
    session: Session,
    session_factory: sessionmaker[Session],
) -> None:
    contact_id, held = held_without_consent(session, acme)
    view = signed_in.get("/app/messages", params={"status": "held"})
    assert view.status_code == 200 and "<h1>Held messages</h1>" in view.text
    group = re.search(r"no consent</a></td>\s*<td>(\d+)</td>\s*<td>([^<]*)</td>", view.text)
    assert group is not None and group.group(1) == "1"
    assert "collect one (with its disclosure)" in group.group(2)
    assert msg_link(held) in view.text

    opt_in(session_factory, acme, contact_id)  # the cause fixed, then released
    released = post(signed_in, "/app/messages/release", {"reason": "no_consent"})
    assert released.status_code == 303
    assert released.headers["location"] == "/app/messages?status=held&released=1&still=0"
    after = signed_in.get(released.headers["location"])
    assert "1 released" in after.text and "Nothing is held." in after.text
    assert status_of(session, held) == "queued"


def test_it_releases_ticked_messages_and_says_which_are_still_held(
    signed_in: Browserless,
    acme: Member,
    session: Session,
    session_factory: sessionmaker[Session],
) -> None:
    fixed_contact, fixed = held_without_consent(session, acme, "+14155550132")
    _, unfixed = held_without_consent(session, acme, "+14155550133")
    opt_in(session_factory, acme, fixed_contact)
    answer = post(signed_in, "/app/messages/release", {"ids": [str(fixed), str(unfixed)]})
    assert answer.headers["location"] == "/app/messages?status=held&released=1&still=1"
    assert "1 released; 1 still held" in signed_in.get(answer.headers["location"]).text
    assert (status_of(session, fixed), status_of(session, unfixed)) == ("queued", "held")
    nothing = post(signed_in, "/app/messages/release", {})
    assert nothing.status_code == 400 and "tick the held messages" in nothing.text
    not_held = post(signed_in, "/app/messages/release", {"ids": str(fixed)})
    assert not_held.status_code == 400 and "not held" in not_held.text


def test_it_names_the_contact_of_a_held_message_without_a_number(
    signed_in: Browserless, acme: Member, session: Session
) -> None:
    account = session.get(Account, acme.account_id)
    assert account is not None
    contacts = Contacts(session, acme.account_id)
    bob = contacts.create(email="bob@example.com", first_name="Bob", last_name="Stone")
    typo = contacts.create(phone="+1 415 555 01")
    ids: list[int] = []
    Pipeline(account).queue_many(
        session,
        [(bob, SmsRequest(template=BODY)), (typo, SmsRequest(template=BODY))],
        datetime.now(UTC),
        before_insert=lambda rows: ids.extend(row["id"] for row in rows),
    )
    session.commit()
    assert [message(session, i).to_e164 for i in ids] == [None, None]
    session.rollback()
    held = signed_in.get("/app/messages", params={"status": "held"}).text
    assert f'href="/app/contacts/{bob.id}">Bob Stone</a>' in held
    assert f'href="/app/contacts/{typo.id}">+1 415 555 01</a>' in held
    assert "contact " + str(bob.id) not in held


def test_it_filters_and_pages_the_log(
    signed_in: Browserless, acme: Member, session: Session
) -> None:
    account = session.get(Account, acme.account_id)
    ada = session.get(Contact, acme.contact_id)
    assert account is not None and ada is not None
    old = queue_message(session, account, ada, created_at=datetime(2026, 1, 5, tzinfo=UTC)).id
    recent = [queue_message(session, account, ada).id for _ in range(50)]
    session.rollback()
    _, held = held_without_consent(session, acme)

    first = signed_in.get("/app/messages")
    assert msg_link(held) in first.text and msg_link(old) not in first.text
    older = re.search(r'href="/app/messages(\?before=\d+)"', first.text)
    assert older is not None
    second = signed_in.get("/app/messages" + older.group(1))
    assert msg_link(old) in second.text and "Older messages" not in second.text

    only_held = signed_in.get("/app/messages", params={"status": "held"}).text
    assert msg_link(held) in only_held and msg_link(recent[0]) not in only_held
    by_reason = signed_in.get("/app/messages", params={"reason": "no_consent"}).text
    assert msg_link(held) in by_reason and msg_link(old) not in by_reason
    by_contact = signed_in.get("/app/messages", params={"contact_id": str(acme.contact_id)}).text
    assert msg_link(recent[-1]) in by_contact and msg_link(held) not in by_contact
    in_january = signed_in.get(
        "/app/messages", params={"created_from": "2026-01-01", "created_until": "2026-01-31"}
    )
    assert msg_link(old) in in_january.text and msg_link(held) not in in_january.text

    bad = signed_in.get(
        "/app/messages",
        params={"status": "lost", "contact_id": "ada", "created_from": "notadate"},
    )
    assert bad.status_code == 400
    for field in ("status", "contact_id", "created_from"):
        assert f'id="q-error-{field}"' in bad.text
    assert 'value="ada"' in bad.text and 'value="notadate"' in bad.text  # what was typed is kept
    assert msg_link(held) not in bad.text  # no unfiltered log behind the errors
    late = signed_in.get("/app/messages", params={"created_until": "2026-02-30"})
    assert late.status_code == 400 and 'id="q-error-created_until"' in late.text
    old_link = signed_in.get("/app/messages", params={"since": "yesterday"})  # earlier name
    assert old_link.status_code == 400 and 'value="yesterday"' in old_link.text


def test_it_shows_a_message_with_its_history_and_cancels_it(
    signed_in: Browserless, acme: Member, session: Session
) -> None:
    contact_id, held = held_without_consent(session, acme)
    page = signed_in.get(f"/app/messages/{held}")
    assert page.status_code == 200
    assert "no consent" in page.text and "Cancel this message" in page.text
    assert f'href="/app/contacts/{contact_id}"' in page.text
    canceled = post(signed_in, f"/app/messages/{held}/cancel", {})
    assert canceled.headers["location"] == f"/app/messages/{held}?canceled=1"
    after = signed_in.get(canceled.headers["location"]).text
    assert "Canceled" in after and "Cancel this message" not in after
    assert "canceled by the user" in after  # the history's last step
    again = post(signed_in, f"/app/messages/{held}/cancel", {})
    assert again.status_code == 409 and "only a queued or held message" in again.text
    timeline = signed_in.get(f"/app/contacts/{contact_id}").text
    assert msg_link(held) in timeline and "canceled" in timeline


def test_it_answers_another_accounts_message_with_a_404_page(
    signed_in: Browserless, globex: Member, session: Session
) -> None:
    _, theirs = held_without_consent(session, globex, "+14155550177")
    assert signed_in.get(f"/app/messages/{theirs}").status_code == 404
    assert post(signed_in, f"/app/messages/{theirs}/cancel", {}).status_code == 404
    release = post(signed_in, "/app/messages/release", {"ids": str(theirs)})
    assert release.status_code == 400
    assert msg_link(theirs) not in signed_in.get("/app/messages?status=held").text
    assert status_of(session, theirs) == "held"


@pytest.mark.parametrize("odd", ODD)
def test_it_never_answers_odd_input_with_a_500(
    signed_in: Browserless, acme: Member, odd: str
) -> None:
    keys = ("status", "reason", "automation_id", "contact_id", "created_from", "created_until")
    for extra in ("before", "since", "until"):
        params = dict.fromkeys((*keys, extra), odd)
        assert signed_in.get("/app/messages", params=params).status_code < 500
    for data in ({"reason": odd}, {"ids": odd}, {"ids": [odd, "1"]}):
        assert post(signed_in, "/app/messages/release", data).status_code < 500
    path = odd.replace("\x00", "").replace("/", "") or "x"
    assert signed_in.get(f"/app/messages/{path}").status_code == 404
    assert post(signed_in, f"/app/messages/{path}/cancel", {}).status_code == 404


@sqlite_only
def test_it_releases_a_held_message_from_the_held_view_in_chromium(
    page: Any,
    site: LiveApp,
    acme: Member,
    session: Session,
    session_factory: sessionmaker[Session],
) -> None:
    contact_id, held = held_without_consent(session, acme)
    sign_in_browser(page, site, acme)
    page.goto(site.url + "/app/messages?status=held")
    screenshot(page, "messages")
    assert "no SMS opt-in recorded" in page.locator("table.held-groups").inner_text()
    opt_in(session_factory, acme, contact_id)  # the cause fixed
    page.get_by_label(f"Select message {held}").check()
    page.get_by_role("button", name="Release selected").click()
    assert page.get_by_role("status").inner_text().startswith("1 released")
    page.goto(f"{site.url}/app/messages/{held}")
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while "held" in page.locator("h2").first.inner_text() and datetime.now(UTC) < deadline:
        page.reload()
    assert "held" not in page.locator("h2").first.inner_text()  # queued, then sent
