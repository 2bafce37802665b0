"""Sign-in, sessions, CSRF and the lockout, on both databases; and a real sign-in in
Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import Conflict, InvalidInput
from sendline.services.users import MAX_FAILURES, create_user
from sendline.store.user_models import User, WebSession
from tests.fakes.live_app import LiveApp
from tests.web.conftest import (
    PASSWORD,
    Browserless,
    Member,
    screenshot,
    sign_in_browser,
    sqlite_only,
)


def test_it_sends_a_stranger_to_the_sign_in_page(pages: Browserless) -> None:
    answer = pages.get("/app/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/login?next=/app/"


def test_it_signs_in_and_out(pages: Browserless, acme: Member) -> None:
    pages.sign_in(acme.email.upper())  # emails are matched whatever their case
    page = pages.get("/app/")
    assert page.status_code == 200
    assert "Acme" in page.text and acme.email in page.text
    assert pages.post("/app/logout", follow_redirects=False).status_code == 303
    assert pages.get("/app/", follow_redirects=False).status_code == 303


def test_it_refuses_a_wrong_password_and_keeps_the_email(pages: Browserless, acme: Member) -> None:
    token = pages.token_of(pages.get("/app/login").text)
    answer = pages.http.post(
        "/app/login", data={"csrf_token": token, "email": acme.email, "password": "nope"}
    )
    assert answer.status_code == 400
    assert "wrong email or password" in answer.text
    assert f'value="{acme.email}"' in answer.text
    assert "nope" not in answer.text  # a password is never echoed


def test_it_locks_a_user_after_repeated_failures(
    pages: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    for _ in range(MAX_FAILURES):
        token = pages.token_of(pages.get("/app/login").text)
        last = pages.http.post(
            "/app/login", data={"csrf_token": token, "email": acme.email, "password": "guess"}
        )
    assert "locked" in last.text
    # Even the right password is refused while locked.
    token = pages.token_of(pages.get("/app/login").text)
    answer = pages.http.post(
        "/app/login", data={"csrf_token": token, "email": acme.email, "password": PASSWORD}
    )
    assert answer.status_code == 400 and "locked" in answer.text
    with session_factory() as session:
        assert session.scalar(select(User.locked_until)) is not None
        assert session.scalar(select(WebSession.id)) is None


def test_it_refuses_a_sign_in_without_its_csrf_cookie(pages: Browserless, acme: Member) -> None:
    answer = pages.http.post(
        "/app/login", data={"csrf_token": "forged", "email": acme.email, "password": PASSWORD}
    )
    assert answer.status_code == 403


def test_it_refuses_a_post_without_the_csrf_token(signed_in: Browserless) -> None:
    answer = signed_in.http.post("/app/logout", data={}, follow_redirects=False)
    assert answer.status_code == 403
    assert "Refused" in answer.text
    # The session survived: the forged sign-out did nothing.
    assert signed_in.get("/app/", follow_redirects=False).status_code == 200


def test_it_refuses_a_post_from_another_origin(signed_in: Browserless) -> None:
    answer = signed_in.post(
        "/app/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert answer.status_code == 403


def test_it_never_redirects_off_site_after_sign_in(pages: Browserless, acme: Member) -> None:
    token = pages.token_of(pages.get("/app/login?next=//evil.example/").text)
    answer = pages.http.post(
        "/app/login",
        data={
            "csrf_token": token,
            "email": acme.email,
            "password": PASSWORD,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/app/"


def test_it_answers_an_unknown_page_with_a_404_page(signed_in: Browserless) -> None:
    answer = signed_in.get("/app/no-such-page")
    assert answer.status_code == 404
    assert "text/html" in answer.headers["content-type"]
    assert "Not found" in answer.text


@pytest.mark.parametrize(
    ("email", "password", "error"),
    [
        ("not-an-email", PASSWORD, InvalidInput),
        ("new@acme.example", "short", InvalidInput),
        ("OWNER@acme.example", PASSWORD, Conflict),
    ],
)
def test_it_handles_bad_new_users(
    acme: Member, session_factory: sessionmaker[Session], email: str, password: str, error: Any
) -> None:
    with pytest.raises(error):
        create_user(session_factory, acme.account_id, email, password)


@sqlite_only
def test_it_signs_in_in_chromium(page: Any, site: LiveApp, acme: Member) -> None:
    page.goto(site.url + "/app/login")
    screenshot(page, "sign-in")
    page.get_by_label("Email").fill(acme.email)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "wrong email or password"
    sign_in_browser(page, site, acme)
    assert page.get_by_role("heading", level=1).inner_text() == "Overview"
