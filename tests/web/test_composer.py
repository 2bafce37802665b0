"""The composer: the counter htmx swaps in as the user types (both databases), the page
without JavaScript, odd input, and the real thing in Chromium."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.store.contacts import Contacts
from sendline.store.models import Account
from tests.fakes.live_app import LiveApp
from tests.web.conftest import Browserless, Member, screenshot, sign_in_browser, sqlite_only

HTMX = {"HX-Request": "true"}


def check(pages: Browserless, body: str, **extra: str) -> Any:
    data = {"composer_field": "body", "body": body, **extra}
    return pages.post("/app/composer/check", data, headers=HTMX)


def count(html: str, what: str) -> str:
    found = re.search(rf'data-count="{what}">([^<]*)<', html)
    assert found is not None, html
    return found.group(1)


def test_it_shows_the_composer_page(signed_in: Browserless) -> None:
    page = signed_in.get("/app/composer?body=Hello")
    assert page.status_code == 200
    assert '<label for="f-body">Message</label>' in page.text
    assert 'hx-post="/app/composer/check"' in page.text
    assert 'aria-live="polite"' in page.text
    assert ">Hello</textarea>" in page.text


def test_it_counts_a_draft_with_its_opt_out_clause(signed_in: Browserless) -> None:
    answer = check(signed_in, "Spring sale today")
    assert answer.status_code == 200
    assert count(answer.text, "characters") == "17"
    assert count(answer.text, "encoding") == "GSM-7"
    assert count(answer.text, "segments") == "1"
    assert count(answer.text, "credits") == "1"
    assert "Spring sale today\nReply STOP to opt out" in answer.text
    longer = check(signed_in, "x" * 150)
    assert count(longer.text, "segments") == "2"
    assert "the limit is 160" in longer.text


def test_it_highlights_ucs2_characters_with_their_fix(signed_in: Browserless) -> None:
    answer = check(signed_in, "Don\u2019t miss it \u2014 today")
    assert count(answer.text, "encoding") == "UCS-2"
    assert '<mark class="ucs2">\u2019</mark>' in answer.text
    assert """data-replace='[["\\u2019", "\\u0027"]]'""" in answer.text  # JSON, escaped
    assert "Replace \u2014 with -" in answer.text
    assert "Replace all 2 with GSM-7 characters" in answer.text


def test_it_names_a_public_shortener_and_an_unknown_tag(signed_in: Browserless) -> None:
    answer = check(signed_in, "Deals at bit.ly/x for %NICKNAME%")
    assert "uses the public link shortener bit.ly" in answer.text
    assert "%NICKNAME% is not a field of this account" in answer.text


def test_it_previews_for_a_contact(signed_in: Browserless, acme: Member) -> None:
    answer = check(signed_in, "Hi %FIRSTNAME|there%!", composer_contact=str(acme.contact_id))
    assert 'data-preview="contact">Hi Ada!\nReply STOP to opt out</p>' in answer.text
    assert "Would be held" not in answer.text


def test_it_never_previews_another_accounts_contact(signed_in: Browserless, globex: Member) -> None:
    answer = check(signed_in, "Hi %FIRSTNAME%", composer_contact=str(globex.contact_id))
    assert answer.status_code == 200
    assert "no contact" in answer.text and "Ada" not in answer.text
    extras = signed_in.get("/app/composer/extras?name=body")
    assert f'value="{globex.contact_id}"' not in extras.text


def test_it_offers_the_accounts_fields_as_tags(
    signed_in: Browserless, acme: Member, session: Session
) -> None:
    Contacts(session, acme.account_id).define_field("CITY", label="City")
    session.commit()
    extras = signed_in.get(f"/app/composer/extras?name=body&contact_id={acme.contact_id}")
    assert 'data-insert="%CITY%"' in extras.text and 'data-insert="%FIRSTNAME%"' in extras.text
    assert f'<option value="{acme.contact_id}" selected>' in extras.text
    assert 'hx-trigger="change, load"' in extras.text


@pytest.mark.parametrize(
    "body",
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "x" * 100_000,
        "\U0001f469\u200d\U0001f469\u200d\U0001f467" * 50,
        "\u202e\ufeff\u0301",
        "%",
        "%%%",
        "%A|" + "b" * 3000 + "%",
        "<script>alert(1)</script>",
    ],
)
def test_it_never_fails_on_odd_text(signed_in: Browserless, body: str) -> None:
    answer = check(signed_in, body)
    assert answer.status_code == 200
    assert "<script>alert" not in answer.text


@pytest.mark.parametrize("contact", ["abc", "-1", "1e3", "99999999999999999999", "\u0661", "0"])
def test_it_refuses_a_bad_contact_by_name(signed_in: Browserless, contact: str) -> None:
    answer = check(signed_in, "Hi", composer_contact=contact)
    assert answer.status_code == 200
    assert 'role="alert"' in answer.text


def test_it_keeps_what_was_typed_without_javascript(signed_in: Browserless) -> None:
    ok = signed_in.post("/app/composer", {"body": "Hello there"})
    assert ok.status_code == 200
    assert ">Hello there</textarea>" in ok.text and 'data-count="segments">1<' in ok.text
    too_long = signed_in.post("/app/composer", {"body": "y" * 6000})
    assert too_long.status_code == 400
    assert "y" * 6000 + "</textarea>" in too_long.text
    assert 'aria-invalid="true"' in too_long.text and "at most 10 segments" in too_long.text


def test_it_reads_a_body_from_a_custom_field_name(signed_in: Browserless) -> None:
    data = {"composer_field": "steps-0-body", "steps-0-body": "\u201cHi\u201d"}
    answer = signed_in.post("/app/composer/check", data, headers=HTMX)
    assert 'data-composer-for="f-steps-0-body"' in answer.text
    assert count(answer.text, "encoding") == "UCS-2"


def test_it_refuses_a_check_without_the_csrf_token(signed_in: Browserless) -> None:
    answer = signed_in.http.post("/app/composer/check", data={"body": "x"}, headers=HTMX)
    assert answer.status_code == 403


def test_it_sends_a_stranger_to_sign_in(pages: Browserless) -> None:
    answer = pages.http.post("/app/composer/check", data={"body": "x"}, headers=HTMX)
    assert answer.headers.get("HX-Redirect", "").startswith("/app/login")


# --- real Chromium -------------------------------------------------------------------


def _counter(page: Any, what: str) -> Any:
    return page.locator(f'#count-body [data-count="{what}"]')


@sqlite_only
def test_it_counts_live_and_fixes_ucs2_in_one_click(
    page: Any, site: LiveApp, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    sign_in_browser(page, site, acme)
    page.goto(site.url + "/app/composer")
    box = page.get_by_label("Message")
    box.press_sequentially("Spring sale")
    page.wait_for_function(
        "document.querySelector('#count-body [data-count=characters]')?.textContent === '11'"
    )
    box.press_sequentially(" " + "x" * 140)
    page.wait_for_function(
        "document.querySelector('#count-body [data-count=segments]')?.textContent === '2'"
    )
    box.fill("Don\u2019t miss it")
    page.wait_for_selector("#count-body mark.ucs2")
    assert _counter(page, "encoding").inner_text() == "UCS-2"
    screenshot(page, "composer-ucs2")
    page.get_by_role("button", name="Replace \u2019 with '").click()
    page.wait_for_function(
        "document.querySelector('#count-body [data-count=encoding]')?.textContent === 'GSM-7'"
    )
    assert box.input_value() == "Don't miss it"

    box.fill("Shop now at bit.ly/x")
    error = page.locator("#count-body [data-code=public_shortener]")
    error.wait_for()
    assert "bit.ly" in error.inner_text()
    assert box.input_value() == "Shop now at bit.ly/x"  # what was typed stays

    box.fill("Hi %FIRSTNAME|there%, see you")
    page.get_by_label("Preview for a contact").select_option(str(acme.contact_id))
    preview = page.locator('#count-body [data-preview="contact"]')
    preview.wait_for()
    assert preview.inner_text() == "Hi Ada, see you\nReply STOP to opt out"
    screenshot(page, "composer")


@sqlite_only
def test_it_inserts_a_tag_where_the_cursor_is(page: Any, site: LiveApp, acme: Member) -> None:
    sign_in_browser(page, site, acme)
    page.goto(site.url + "/app/composer")
    box = page.get_by_label("Message")
    box.fill("Hi !")
    box.evaluate("el => el.setSelectionRange(3, 3)")
    page.get_by_text("Insert a personalization tag").click()
    page.get_by_role("button", name="First name %FIRSTNAME%").click()
    assert box.input_value() == "Hi %FIRSTNAME%!"
    page.locator("#count-body [data-code=personalized]").wait_for()


def test_it_names_other_countries_rates(
    signed_in: Browserless, acme: Member, session: Session
) -> None:
    account = session.get(Account, acme.account_id)
    assert account is not None
    account.credit_rates = {"default": 1, "GB": 2}
    session.commit()
    answer = check(signed_in, "Hello")
    assert "per segment elsewhere: GB 2" in answer.text


def test_it_reads_the_contact_beside_its_own_textarea(
    signed_in: Browserless, acme: Member, globex: Member
) -> None:
    # Two composers in one form (an automation's steps): each posts the other's chooser
    # too, under its own name.
    data = {
        "composer_field": "steps-1-body",
        "steps-1-body": "Hi %FIRSTNAME%",
        "composer_contact.steps-0-body": str(globex.contact_id),
        "composer_contact.steps-1-body": str(acme.contact_id),
    }
    answer = signed_in.post("/app/composer/check", data, headers=HTMX)
    assert 'data-preview="contact">Hi Ada\nReply STOP to opt out' in answer.text


def test_it_escapes_an_odd_field_name(signed_in: Browserless) -> None:
    odd = "x\"'><script>alert(1)</script>"
    extras = signed_in.get("/app/composer/extras", params={"name": odd, "contact_id": "1e9"})
    assert extras.status_code == 200 and "<script>alert" not in extras.text
    answer = signed_in.post("/app/composer/check", {"composer_field": odd, odd: "Hi"}, headers=HTMX)
    assert answer.status_code == 200 and "<script>alert" not in answer.text
