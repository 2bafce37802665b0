"""Settings: the sending settings form, providers, API keys and webhooks, on both
databases; and the settings page in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.app import create_app
from sendline.bootstrap import Runtime
from sendline.config import Settings
from sendline.services.providers import new_secret_key
from sendline.services.webhooks import create_webhook
from sendline.store.engine_models import ApiKey
from sendline.store.models import Account
from tests.fakes.live_app import LiveApp
from tests.web.conftest import Browserless, Member, screenshot, sign_in_browser, sqlite_only

GOOD = {
    "quiet_start": "09:30",
    "quiet_end": "20:00",
    "frequency_cap": "5",
    "max_segments": "3",
    "optout_clause": "Reply STOP to opt out",
    "optout_language": "en",
    "optout_clause_policy": "every_30_days",
    "help_text": "Acme alerts. Reply STOP to opt out.",
    "sender_number": "+14155550100",
}


def _account(sessions: sessionmaker[Session], member: Member) -> Account:
    with sessions() as session:
        account = session.get(Account, member.account_id)
        assert account is not None
        session.expunge(account)
        return account


def test_it_saves_quiet_hours_and_the_frequency_cap(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    answer = signed_in.post("/app/settings", GOOD, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    page = signed_in.get(answer.headers["location"])
    assert "Settings saved" in page.text and 'value="09:30"' in page.text
    account = _account(session_factory, acme)
    assert (account.quiet_start, account.quiet_end) == (9 * 60 + 30, 20 * 60)
    assert (account.frequency_cap, account.max_segments) == (5, 3)
    assert account.optout_clause_policy == "every_30_days"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("quiet_start", "25:00"),
        ("quiet_end", "soon"),
        ("frequency_cap", "abc"),
        ("frequency_cap", "1000"),
        ("frequency_cap", "9" * 5000),
        ("max_segments", "0"),
        ("max_segments", "-3"),
        ("optout_clause", "Thanks for shopping"),
        ("optout_language", "english!"),
        ("optout_clause_policy", "never"),
        ("help_text", "x" * 400),
        ("sender_number", "call me"),
        ("optout_clause", "Reply STOP\x01 to opt out"),
        ("help_text", ""),
    ],
)
def test_it_shows_a_field_error_and_keeps_what_was_typed(
    signed_in: Browserless,
    acme: Member,
    session_factory: sessionmaker[Session],
    name: str,
    value: str,
) -> None:
    before = _account(session_factory, acme)
    answer = signed_in.post("/app/settings", {**GOOD, name: value})
    assert answer.status_code == 400
    assert f'id="error-{name}"' in answer.text
    other = "max_segments" if name != "max_segments" else "frequency_cap"
    kept = f'name="{other}" type="text" value="{GOOD[other]}"'
    assert kept in answer.text  # the other fields keep what was typed
    if name != "help_text" and "\x01" not in value and len(value) < 100:
        assert value in answer.text
    after = _account(session_factory, acme)
    assert after.quiet_start == before.quiet_start  # nothing was saved


def test_it_shows_errors_without_the_internal_field_name(signed_in: Browserless) -> None:
    answer = signed_in.post("/app/settings", {**GOOD, "quiet_start": "25:00"})
    said = re.search(r'id="error-quiet_start" role="alert">([^<]*)<', answer.text)
    assert said is not None and "not a time of day" in said.group(1)
    assert not said.group(1).startswith("quiet_start")


def test_it_refuses_a_window_that_ends_before_it_starts(signed_in: Browserless) -> None:
    answer = signed_in.post("/app/settings", {**GOOD, "quiet_start": "22:00"})
    assert answer.status_code == 400
    assert 'id="error-quiet_end"' in answer.text and 'value="22:00"' in answer.text


def test_it_never_changes_the_plan_from_the_settings_form(
    signed_in: Browserless, acme: Member, session_factory: sessionmaker[Session]
) -> None:
    answer = signed_in.post(
        "/app/settings", {**GOOD, "tier": "enterprise", "credit_rates": "default=0"}
    )
    assert answer.status_code == 303 or answer.status_code == 200
    assert _account(session_factory, acme).tier == "plus"


def test_it_survives_odd_input(signed_in: Browserless) -> None:
    for values in (
        {},
        {"quiet_start": "\x00"},
        {"frequency_cap": "٣"},
        {"sender_number": "☎" * 50},
    ):
        answer = signed_in.post("/app/settings", values)
        assert answer.status_code in (303, 200, 400), answer.text


def test_it_creates_an_api_key_shown_once_and_revokes_it(
    signed_in: Browserless, session_factory: sessionmaker[Session]
) -> None:
    answer = signed_in.post("/app/settings/keys", {"name": "shop backend"})
    assert answer.status_code == 200
    key = re.search(r'id="new-key">(sl_live_[^<]+)<', answer.text)
    assert key is not None and "shown only this once" in answer.text
    listing = signed_in.get("/app/settings/keys")
    assert key.group(1) not in listing.text and key.group(1)[:12] in listing.text
    with session_factory() as session:
        key_id = session.scalar(select(ApiKey.id))
    api = signed_in.http.get("/api/v1/account", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert api.status_code == 200
    revoked = signed_in.post(f"/app/settings/keys/{key_id}/revoke", follow_redirects=False)
    assert revoked.status_code == 303
    assert "revoked" in signed_in.get("/app/settings/keys").text
    api = signed_in.http.get("/api/v1/account", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert api.status_code == 401


def _key_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return len(session.scalars(select(ApiKey.id)).all())


def test_it_refuses_a_reload_that_would_create_the_key_again(
    signed_in: Browserless, session_factory: sessionmaker[Session]
) -> None:
    form = signed_in.get("/app/settings/keys").text
    issued = re.search(r'name="issued" value="([^"]+)"', form)
    assert issued is not None
    sent = {"name": "shop backend", "issued": issued.group(1)}
    created = signed_in.post("/app/settings/keys", sent)
    assert created.status_code == 200 and 'id="new-key"' in created.text
    assert created.headers["cache-control"] == "no-store"
    again = signed_in.post("/app/settings/keys", sent)  # what a browser reload sends
    assert again.status_code == 400 and 'id="new-key"' not in again.text
    assert "already created; reloading does not show it again" in again.text
    assert _key_count(session_factory) == 1
    # The page showing the key carries a fresh form: another key of that name is fine.
    fresh = re.search(r'name="issued" value="([^"]+)"', created.text)
    assert fresh is not None
    other = signed_in.post("/app/settings/keys", {**sent, "issued": fresh.group(1)})
    assert other.status_code == 200 and 'id="new-key"' in other.text
    assert _key_count(session_factory) == 2
    odd = signed_in.post("/app/settings/keys", {"name": "x", "issued": "\x00yesterday"})
    assert odd.status_code == 200  # an unreadable time is no check, never a 500


@pytest.mark.parametrize("name", ["", "   ", "k" * 500])
def test_it_refuses_a_bad_key_name(signed_in: Browserless, name: str) -> None:
    answer = signed_in.post("/app/settings/keys", {"name": name})
    assert answer.status_code == 400 and 'id="error-name"' in answer.text


def test_it_answers_another_accounts_key_with_a_404(
    pages: Browserless, acme: Member, globex: Member, session_factory: sessionmaker[Session]
) -> None:
    pages.sign_in(globex.email)
    created = pages.post("/app/settings/keys", {"name": "globex"})
    assert created.status_code == 200
    with session_factory() as session:
        key_id = session.scalar(select(ApiKey.id))
    pages.post("/app/logout")
    pages.sign_in(acme.email)
    answer = pages.post(f"/app/settings/keys/{key_id}/revoke")
    assert answer.status_code == 404 and "Not found" in answer.text
    for odd in ("abc", "0", "9" * 40):
        assert pages.post(f"/app/settings/keys/{odd}/revoke").status_code == 404


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "http://example.com/hook", "not a url", "https://10.0.0.1/x", ""],
)
def test_it_refuses_a_bad_webhook_url(signed_in: Browserless, url: str) -> None:
    answer = signed_in.post("/app/settings/webhooks", {"url": url, "events": "message.status"})
    assert answer.status_code == 400
    assert 'id="error-url"' in answer.text or "SENDLINE_SECRET_KEY" in answer.text


def test_it_disables_adding_a_webhook_without_the_secret_key(signed_in: Browserless) -> None:
    page = signed_in.get("/app/settings/webhooks").text
    assert "SENDLINE_SECRET_KEY is not set" in page
    assert re.search(r'<button type="submit" disabled[^>]*>Add webhook', page)
    assert re.search(r'name="url" type="url"[^>]*disabled', page)
    answer = signed_in.post(
        "/app/settings/webhooks", {"url": "https://example.com/hook", "events": "message.status"}
    )
    assert answer.status_code == 400
    assert "webhooks need SENDLINE_SECRET_KEY" in answer.text
    assert "provider secret" not in answer.text
    assert "No webhooks yet" in answer.text


@pytest.fixture
def secret_settings(engine: Engine, tmp_path: Path) -> Settings:
    """Settings with SENDLINE_SECRET_KEY: providers and webhooks seal their secrets."""
    url = engine.url.render_as_string(hide_password=False)
    return Settings(
        data_dir=tmp_path,
        database_url=url,
        api_rate=100_000.0,
        api_burst=100_000,
        secret_keys=(new_secret_key(),),
    )


@pytest.fixture
def secret_pages(
    engine: Engine,
    session_factory: sessionmaker[Session],
    secret_settings: Settings,
    acme: Member,
) -> Iterator[Browserless]:
    """The dashboard with a secret key, signed in as Acme's user."""
    app = create_app(Runtime(secret_settings, engine, session_factory))
    with TestClient(app, raise_server_exceptions=False) as client:
        pages = Browserless(client)
        pages.sign_in(acme.email)
        yield pages


def test_it_adds_a_webhook_shows_its_secret_once_and_rotates_it(
    secret_pages: Browserless,
) -> None:
    pages = secret_pages
    assert " disabled" not in pages.get("/app/settings/webhooks").text.split("Add a webhook")[1]
    answer = pages.post(
        "/app/settings/webhooks",
        {"url": "https://example.com/hook", "events": ["message.status", "inbound.received"]},
    )
    assert answer.status_code == 200, answer.text
    secret = re.search(r'id="new-secret">([^<]+)<', answer.text)
    assert secret is not None
    listing = pages.get("/app/settings/webhooks")
    assert "https://example.com/hook" in listing.text and secret.group(1) not in listing.text
    hook = re.search(r'/app/settings/webhooks/(\d+)"', listing.text)
    assert hook is not None
    detail = pages.get(f"/app/settings/webhooks/{hook.group(1)}")
    assert "Deliveries" in detail.text and "Nothing delivered yet" in detail.text
    rotated = pages.post(f"/app/settings/webhooks/{hook.group(1)}/rotate")
    fresh = re.search(r'id="new-secret">([^<]+)<', rotated.text)
    assert fresh is not None and fresh.group(1) != secret.group(1)
    gone = pages.post(f"/app/settings/webhooks/{hook.group(1)}/delete", follow_redirects=False)
    assert gone.status_code == 303
    assert pages.get(f"/app/settings/webhooks/{hook.group(1)}").status_code == 404


def test_it_answers_another_accounts_webhook_with_a_404(
    secret_pages: Browserless,
    globex: Member,
    session_factory: sessionmaker[Session],
    secret_settings: Settings,
) -> None:
    hook = create_webhook(
        session_factory,
        secret_settings,
        globex.account_id,
        "https://example.com/g",
        ["message.status"],
    )
    for path in ("", "/rotate", "/delete", "/disable"):
        get_or_post = secret_pages.get if not path else secret_pages.post
        answer = get_or_post(f"/app/settings/webhooks/{hook.view.id}{path}")
        assert answer.status_code == 404, path
    assert secret_pages.get("/app/settings/webhooks/x").status_code == 404


def test_it_says_a_provider_needs_the_secret_key(signed_in: Browserless) -> None:
    page = signed_in.get("/app/settings/providers")
    assert "SENDLINE_SECRET_KEY is not set" in page.text
    answer = signed_in.post(
        "/app/settings/providers",
        {
            "kind": "twilio",
            "account_sid": "AC" + "1" * 32,
            "auth_token": "f" * 32,
            "from_number": "+14155550111",
        },
    )
    assert answer.status_code in (400, 503)
    assert "SENDLINE_SECRET_KEY" in answer.text
    assert "f" * 32 not in answer.text  # a secret is never echoed


@pytest.mark.parametrize(
    "values",
    [
        {"kind": "twilio", "account_sid": "nope", "auth_token": "x"},
        {"kind": "twilio", "account_sid": "AC" + "1" * 32, "auth_token": "x" * 500},
        {"kind": "http", "config": "::: not yaml", "from_number": "+14155550111"},
        {"kind": "fax"},
        {"kind": "twilio", "position": "abc"},
        {},
    ],
)
def test_it_refuses_bad_provider_input_without_a_500(
    secret_pages: Browserless, values: dict[str, str]
) -> None:
    answer = secret_pages.post("/app/settings/providers", values)
    assert answer.status_code == 400, answer.text
    assert 'role="alert"' in answer.text


def test_it_adds_moves_and_removes_a_provider(secret_pages: Browserless) -> None:
    pages = secret_pages
    for number in ("+14155550111", "+14155550112"):
        answer = pages.post(
            "/app/settings/providers",
            {
                "kind": "twilio",
                "account_sid": "AC" + "1" * 32,
                "auth_token": "f" * 32,
                "from_number": number,
                "label": f"Twilio {number[-1]}",
            },
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
    page = pages.get("/app/settings/providers").text
    assert "Twilio 1" in page and "Twilio 2" in page and "f" * 32 not in page
    assert "+14155550111" not in page  # numbers are masked
    ids = re.findall(r"/app/settings/providers/(\d+)/remove", page)
    moved = pages.post(f"/app/settings/providers/{ids[1]}/move", {"position": "1"})
    assert moved.status_code == 200
    assert moved.text.index("Twilio 2") < moved.text.index("Twilio 1")
    assert (
        pages.post(f"/app/settings/providers/{ids[1]}/move", {"position": "9"}).status_code == 400
    )
    assert pages.post(f"/app/settings/providers/{ids[0]}/remove").status_code == 200
    assert "Twilio 1" not in pages.get("/app/settings/providers").text
    assert pages.post("/app/settings/providers/999999/remove").status_code == 404


@sqlite_only
def test_it_saves_settings_in_chromium(page: Any, site: LiveApp, acme: Member) -> None:
    sign_in_browser(page, site, acme)
    page.goto(site.url + "/app/settings")
    page.get_by_label("Frequency cap").fill("lots")
    page.get_by_role("button", name="Save settings").click()
    assert page.locator("#error-frequency_cap").is_visible()
    assert page.get_by_label("Frequency cap").input_value() == "lots"
    page.get_by_label("Frequency cap").fill("4")
    page.get_by_label("Sending starts at").fill("07:00")
    page.get_by_role("button", name="Save settings").click()
    assert page.get_by_role("status").inner_text() == "Settings saved."
    assert page.get_by_label("Sending starts at").input_value() == "07:00"
    screenshot(page, "settings")
