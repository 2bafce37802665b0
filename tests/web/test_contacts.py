"""The contacts pages on both databases: search, create (a typo'd phone refused beside
its field, what was typed kept), edit, tags and lists (starting automations as the
API does), consent (an opt-in without its disclosure refused beside the field),
another account's contact a 404 page, odd input never a 500; and in Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.services import automations
from sendline.services import contacts as service
from tests.fakes.live_app import LiveApp
from tests.web.conftest import Browserless, Member, screenshot, sign_in_browser, sqlite_only

DISCLOSURE = "Yes, text me Acme offers (up to 3/week). Reply STOP to opt out."
TYPO = "+1 415 555 01"
ODD = ["", " ", "x" * 100_000, "\x00", "a\x00b", "😀 ünï", "-1", "0", "9" * 40, "<script>"]


def contact_url(contact_id: int) -> str:
    return f"/app/contacts/{contact_id}"


def post(client: Browserless, url: str, data: dict[str, Any]) -> Any:
    """A form post; a redirect is not followed (its 303 is what is checked)."""
    return client.post(url, data=data, follow_redirects=False)


def link(contact_id: int) -> str:
    return f'href="{contact_url(contact_id)}"'


def created_id(answer: Any) -> int:
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/app/contacts/(\d+)\?notice=\w+(&runs=\d+)?", answer.headers["location"])
    assert found is not None, answer.headers["location"]
    return int(found.group(1))


def test_it_searches_contacts_by_any_spelling_of_the_phone(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    grace = service.create(session_factory, acme.account_id, email="grace@example.com")
    service.tag(session_factory, acme.account_id, grace.contact.id, ["vip"])
    everyone = signed_in.get("/app/contacts")
    assert everyone.status_code == 200
    assert link(acme.contact_id) in everyone.text
    assert link(grace.contact.id) in everyone.text

    by_phone = signed_in.get("/app/contacts", params={"phone": "(415) 867-5309"})
    assert link(acme.contact_id) in by_phone.text
    assert link(grace.contact.id) not in by_phone.text
    by_tag = signed_in.get("/app/contacts", params={"tag": "vip"})
    assert link(grace.contact.id) in by_tag.text
    assert link(acme.contact_id) not in by_tag.text
    opted_in = signed_in.get("/app/contacts", params={"consent": "opted_in"})
    assert link(acme.contact_id) in opted_in.text
    assert link(grace.contact.id) not in opted_in.text
    nobody = signed_in.get("/app/contacts", params={"email": "nobody@example.com"})
    assert "No contact matches this search" in nobody.text


def test_it_lists_exactly_the_contacts_with_a_phone_status(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    # The overview's "Needs action" links: invalid numbers and landlines.
    typo = service.create(session_factory, acme.account_id, phone=TYPO, first_name="Alan")
    landline = service.create(session_factory, acme.account_id, phone="+44 20 7946 0958")
    email_only = service.create(session_factory, acme.account_id, email="ada@example.com")
    everyone = {acme.contact_id, typo.contact.id, landline.contact.id, email_only.contact.id}
    expected = {
        "invalid_phone": typo.contact.id,
        "landline": landline.contact.id,
        "no_phone": email_only.contact.id,
        "ok": acme.contact_id,
    }
    for status, only in expected.items():
        answer = signed_in.get("/app/contacts", params={"phone_status": status})
        assert answer.status_code == 200 and link(only) in answer.text, status
        assert not any(link(other) in answer.text for other in everyone - {only}), status
        assert f'<option value="{status}" selected>' in answer.text  # the choice is kept
    both = signed_in.get("/app/contacts?phone_status=landline&consent=none&before=999999999")
    assert link(landline.contact.id) in both.text and link(acme.contact_id) not in both.text

    bad = signed_in.get("/app/contacts", params={"phone_status": "bogus"})
    assert bad.status_code == 400
    assert 'id="q-error-phone_status"' in bad.text and "choose a phone status" in bad.text
    assert link(acme.contact_id) not in bad.text  # no unfiltered list behind the error


def test_it_pages_contacts_with_an_older_link(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    for n in range(50):
        service.create(session_factory, acme.account_id, email=f"p{n}@example.com")
    first = signed_in.get("/app/contacts")
    assert link(acme.contact_id) not in first.text  # the oldest is on page two
    older = re.search(r'href="(/app/contacts\?before=\d+)"', first.text)
    assert older is not None
    second = signed_in.get(older.group(1).replace("&amp;", "&"))
    assert link(acme.contact_id) in second.text
    assert "Older contacts" not in second.text


def test_it_refuses_a_typod_phone_beside_the_field_and_keeps_what_was_typed(
    signed_in: Browserless, session_factory: sessionmaker[Session], acme: Member
) -> None:
    typed = {"phone": TYPO, "email": "grace@example.com", "first_name": "Grace"}
    answer = post(signed_in, "/app/contacts", data=typed)
    assert answer.status_code == 400
    assert 'id="error-phone"' in answer.text and "not a valid phone number" in answer.text
    assert f'value="{TYPO}"' in answer.text and 'value="Grace"' in answer.text
    assert 'value="grace@example.com"' in answer.text
    bad_email = post(signed_in, "/app/contacts", data={"email": "grace@", "last_name": "Hopper"})
    assert bad_email.status_code == 400 and 'id="error-email"' in bad_email.text
    assert 'value="Hopper"' in bad_email.text
    taken = post(signed_in, "/app/contacts", data={"phone": "415 867 5309"})
    assert taken.status_code == 400 and 'id="error-phone"' in taken.text  # acme's own contact

    letter = post(signed_in, "/app/contacts", data=typed | {"phone": "+1 415 555 01O9"})
    assert letter.status_code == 400 and 'id="error-phone"' in letter.text
    assert "contains letters: O;" in letter.text and "it needs +country code" not in letter.text
    assert 'value="+1 415 555 01O9"' in letter.text

    made = post(signed_in, "/app/contacts", data=typed | {"phone": "(415) 555-0132"})
    new_id = created_id(made)
    page = signed_in.get(made.headers["location"])
    assert page.status_code == 200 and "Contact created." in page.text
    assert service.show(session_factory, acme.account_id, new_id).first_name == "Grace"
    assert "Grace" in page.text and "+14155550132" in page.text


def test_it_fixes_a_typod_phone_on_the_contact_page(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    # Stored flagged, as an import or the API stores it (R6).
    alan = service.create(session_factory, acme.account_id, phone=TYPO, first_name="Alan").contact
    page = signed_in.get(contact_url(alan.id))
    assert "This phone cannot be texted" in page.text
    # Another field can be changed while the old typo stays.
    renamed = post(
        signed_in,
        f"{contact_url(alan.id)}/edit",
        data={"phone": TYPO, "first_name": "Alan", "last_name": "T"},
    )
    assert renamed.status_code == 303
    still_bad = post(signed_in, f"{contact_url(alan.id)}/edit", data={"phone": "+1 415 555 0"})
    assert still_bad.status_code == 400 and 'id="error-phone"' in still_bad.text
    fixed = post(
        signed_in,
        f"{contact_url(alan.id)}/edit",
        data={"phone": "+1 415 555 0199", "first_name": "Alan", "last_name": "Turing"},
    )
    assert fixed.status_code == 303
    after = service.show(session_factory, acme.account_id, alan.id)
    assert (after.phone_status, after.last_name) == ("ok", "Turing")
    emptied = post(signed_in, f"{contact_url(alan.id)}/edit", data={"phone": "", "email": ""})
    assert emptied.status_code == 400 and "needs a phone number or an email" in emptied.text


def test_it_tags_and_subscribes_starting_automations_as_the_api_does(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    automation = automations.create_automation(
        session_factory,
        acme.account_id,
        "name: Vip\ntrigger: {type: tag_added, tag: vip}\nsteps: [{type: send_sms, body: Hi}]",
    )
    automations.change_status(session_factory, acme.account_id, automation.name, "activate")
    url = contact_url(acme.contact_id)
    tagged = signed_in.post(f"{url}/tags", data={"tags": "vip, spring"})
    assert "Tags added. 1 automation run started." in tagged.text
    assert service.show(session_factory, acme.account_id, acme.contact_id).tags == [
        "spring",
        "vip",
    ]
    assert post(signed_in, f"{url}/tags/remove", data={"tag": "spring"}).status_code == 303
    bad_tag = post(signed_in, f"{url}/tags", data={"tags": "a;b"})
    assert bad_tag.status_code == 400 and 'id="error-tags"' in bad_tag.text
    assert post(signed_in, f"{url}/lists", data={"list": "Newsletter"}).status_code == 303
    assert service.show(session_factory, acme.account_id, acme.contact_id).lists == ["Newsletter"]
    assert post(signed_in, f"{url}/lists/remove", data={"list": "Newsletter"}).status_code == 303
    unknown = post(signed_in, f"{url}/lists/remove", data={"list": "Nope"})
    assert unknown.status_code == 400 and "Nope" in unknown.text
    after = service.show(session_factory, acme.account_id, acme.contact_id)
    assert (after.tags, after.lists) == (["vip"], [])


def test_it_refuses_an_opt_in_without_its_disclosure_beside_the_field(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    grace = service.create(session_factory, acme.account_id, phone="+14155550132").contact
    url = f"{contact_url(grace.id)}/consent"
    typed = {"kind": "opt_in", "method": "form", "source": "shop counter", "ip": "203.0.113.9"}
    refused = post(signed_in, url, data=typed)
    assert refused.status_code == 400
    assert 'id="error-disclosure"' in refused.text and "disclosure" in refused.text
    assert 'value="shop counter"' in refused.text and 'value="203.0.113.9"' in refused.text
    bad_ip = post(signed_in, url, data=typed | {"disclosure": DISCLOSURE, "ip": "999.1.1.1"})
    assert bad_ip.status_code == 400 and 'id="error-ip"' in bad_ip.text
    bad_time = post(signed_in, url, data=typed | {"disclosure": DISCLOSURE, "occurred_at": "soon"})
    assert bad_time.status_code == 400 and 'id="error-occurred_at"' in bad_time.text

    agent = "Mozilla/5.0 (kiosk)"
    done = post(
        signed_in,
        url,
        data=typed
        | {"disclosure": DISCLOSURE, "user_agent": agent, "occurred_at": "2026-05-01T14:30"},
    )
    assert done.status_code == 303
    page = signed_in.get(contact_url(grace.id)).text
    for shown in (DISCLOSURE, "203.0.113.9", agent, "shop counter", "2026-05-01 14:30", acme.email):
        assert shown in page
    assert "opted in" in page
    out = post(signed_in, url, data={"kind": "opt_out", "method": "keyword", "source": "STOP"})
    assert out.status_code == 303
    assert service.show(session_factory, acme.account_id, grace.id).sms_consent == "opted_out"
    # An opt-out's text is its evidence, not a disclosure: the column says both.
    shown = signed_in.get(contact_url(grace.id)).text
    assert '<th scope="col">Disclosure or evidence</th>' in shown


def test_it_answers_another_accounts_contact_with_a_404_page(
    signed_in: Browserless, globex: Member, session_factory: sessionmaker[Session]
) -> None:
    url = contact_url(globex.contact_id)
    assert signed_in.get(url).status_code == 404
    posts = {
        "/edit": {"phone": "+14155550199"},
        "/tags": {"tags": "stolen"},
        "/tags/remove": {"tag": "x"},
        "/lists": {"list": "stolen"},
        "/lists/remove": {"list": "stolen"},
        "/consent": {"kind": "opt_out", "method": "form"},
    }
    for suffix, data in posts.items():
        answer = post(signed_in, url + suffix, data=data)
        assert answer.status_code == 404, suffix
        assert "Not found" in answer.text
    theirs = service.show(session_factory, globex.account_id, globex.contact_id)
    assert (theirs.phone, theirs.tags, theirs.lists, theirs.sms_consent) == (
        "+14155550123",
        [],
        [],
        "opted_in",
    )
    search = signed_in.get("/app/contacts", params={"phone": "+14155550123"})
    assert link(globex.contact_id) not in search.text


@pytest.mark.parametrize("odd", ODD)
def test_it_never_answers_odd_input_with_a_500(
    signed_in: Browserless, acme: Member, odd: str
) -> None:
    fields = ("phone", "email", "tag", "list", "consent", "phone_status", "before")
    # A URL is bounded (64 KB in httpx): the query gets the first 5,000 characters.
    query = dict.fromkeys(fields, odd[:5000])
    assert signed_in.get("/app/contacts", params=query).status_code < 500
    form = dict.fromkeys(("phone", "email", "first_name", "last_name"), odd)
    assert post(signed_in, "/app/contacts", data=form).status_code < 500
    url = contact_url(acme.contact_id)
    assert post(signed_in, f"{url}/edit", data=form).status_code < 500
    consent = dict.fromkeys(
        ("kind", "method", "disclosure", "source", "ip", "user_agent", "occurred_at"), odd
    )
    assert post(signed_in, f"{url}/consent", data=consent).status_code < 500
    for suffix, name in (("/tags", "tags"), ("/tags/remove", "tag"), ("/lists", "list")):
        assert post(signed_in, url + suffix, data={name: odd}).status_code < 500
    assert post(signed_in, f"{url}/lists/remove", data={"list": odd}).status_code < 500
    path_part = odd[:5000].replace("\x00", "").replace("/", "") or "x"
    assert signed_in.get(f"/app/contacts/{path_part}").status_code in (200, 404)


@sqlite_only
def test_it_creates_and_fixes_a_contact_in_chromium(
    page: Any, site: LiveApp, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    sign_in_browser(page, site, acme)
    page.goto(site.url + "/app/contacts")
    screenshot(page, "contacts")
    form = page.locator("#new-contact")
    form.get_by_label("Phone").fill(TYPO)
    form.get_by_label("First name").fill("Grace")
    page.get_by_role("button", name="Create contact").click()
    assert "not a valid phone number" in form.get_by_role("alert").inner_text()
    assert form.get_by_label("First name").input_value() == "Grace"
    form.get_by_label("Phone").fill("(415) 555-0132")
    page.get_by_role("button", name="Create contact").click()
    page.wait_for_url(re.compile(r".*/app/contacts/\d+\?notice=created"))
    assert page.get_by_role("heading", level=1).inner_text() == "Grace"
    page.get_by_label("Disclosure text").fill(DISCLOSURE)
    page.get_by_role("button", name="Record consent").click()
    page.wait_for_url(re.compile(r".*notice=consent"))
    assert DISCLOSURE in page.locator("table").first.inner_text()
    screenshot(page, "contact")
