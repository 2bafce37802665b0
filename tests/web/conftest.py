"""The dashboard under test: a signed-in TestClient on both databases, and a real
Chromium (Debian's /usr/bin/chromium, driven by pytest-playwright) against
`sendline serve`'s app with its embedded worker on a real uvicorn server.

Browser tests run on SQLite, the embedded default `make run` serves; the TestClient
tests (forms, CSRF, another account's objects) run on both databases.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.app import create_app
from sendline.bootstrap import Runtime
from sendline.config import Settings
from sendline.engine.worker import WorkerOptions
from sendline.services.users import create_user
from sendline.shortener_files import shorteners
from tests.engine.factories import make_account, make_contact
from tests.fakes.live_app import LiveApp

CHROMIUM = os.environ.get("SENDLINE_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Where the page screenshots go when asked for (README: docs/screenshots/).
SCREENSHOTS = os.environ.get("SENDLINE_SCREENSHOTS")


@dataclass(frozen=True)
class Member:
    """An account with a user who can sign in, and one consenting contact."""

    account_id: int
    contact_id: int
    email: str
    password: str = PASSWORD


def make_member(
    session: Session, sessions: sessionmaker[Session], name: str, phone: str, **settings: Any
) -> Member:
    account = make_account(session, name, **settings)
    contact = make_contact(session, account, phone)
    email = f"owner@{name.lower()}.example"
    create_user(sessions, account.id, email, PASSWORD)
    return Member(account.id, contact.id, email)


@pytest.fixture
def acme(session: Session, session_factory: sessionmaker[Session]) -> Member:
    member = make_member(session, session_factory, "Acme", "+14158675309")
    session.rollback()  # SQLite: a read left open would hold the write lock
    return member


@pytest.fixture
def globex(session: Session, session_factory: sessionmaker[Session], acme: Member) -> Member:
    member = make_member(session, session_factory, "Globex", "+14155550123")
    session.rollback()
    return member


def _runtime(engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> Runtime:
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(data_dir=tmp_path, database_url=url, api_rate=100_000.0, api_burst=100_000)
    return Runtime(settings, engine, sessions)


class Browserless:
    """A TestClient that signs in like a browser and sends each form's CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.http = client
        self.csrf = ""

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        token = self.token_of(self.http.get("/app/login").text)
        answer = self.http.post(
            "/app/login",
            data={"csrf_token": token, "email": email, "password": password},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        self.csrf = self.token_of(self.http.get("/app/").text)

    @staticmethod
    def token_of(page: str) -> str:
        found = CSRF.search(page)
        assert found is not None, "the page has no CSRF token"
        return found.group(1)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.http.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A form post with the session's CSRF token, as the page's form sends it."""
        return self.http.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)


@pytest.fixture
def pages(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> Iterator[Browserless]:
    """The dashboard on the test database, through a TestClient, not signed in."""
    app = create_app(_runtime(engine, session_factory, tmp_path))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Browserless(client)


@pytest.fixture
def signed_in(pages: Browserless, acme: Member) -> Browserless:
    """The dashboard, signed in as Acme's user."""
    pages.sign_in(acme.email)
    return pages


# --- real Chromium -------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium, never a downloaded browser; the flags keep it off the
    network this machine does not have."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium", pytrace=False)
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def site(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> Iterator[LiveApp]:
    """`sendline serve` on the test database with its embedded worker, on loopback."""
    runtime = _runtime(engine, session_factory, tmp_path)
    options = WorkerOptions(
        worker_id="web-tests",
        batch_size=50,
        lease=timedelta(seconds=60),
        shorteners=shorteners(None),
        idle_sleep=0.05,
    )
    live = LiveApp()
    live.start(runtime, options)
    yield live
    live.stop()


def sign_in_browser(page: Any, site: LiveApp, member: Member) -> None:
    """Sign in through the real form, as a person does."""
    page.goto(site.url + "/app/login")
    page.get_by_label("Email").fill(member.email)
    page.get_by_label("Password").fill(member.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url + "/app/")


def screenshot(page: Any, name: str) -> None:
    """Keep a picture of the page when SENDLINE_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


# Browser tests run on the embedded default only (see the module docstring).
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
