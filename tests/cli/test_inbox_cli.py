"""`sendline inbox list|review` on both databases (R12's review queue)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from sendline.cli import app
from sendline.engine.inbound import receive
from sendline.store.consent import Consent
from tests.engine.factories import NOW, SENDER, World, make_world

cli = CliRunner()
PHONE = "+14158675309"


def run(database_url: str, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, list(args), env={"SENDLINE_DATABASE_URL": database_url})
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, " ".join(result.stdout.split()), " ".join(result.stderr.split())


@pytest.fixture
def world(session: Session) -> World:
    made = make_world(session)
    for body in ("please stop texting me", "HELP"):
        receive(session, from_number=PHONE, to_number=SENDER, body=body, now=NOW)
    session.commit()
    return made


def test_it_handles_listing_and_reviewing(
    database_url: str, world: World, session: Session
) -> None:
    code, out, _ = run(database_url, "inbox", "list")
    assert code == 0 and "help text sent" in out and "awaiting review" in out
    assert out.index("HELP") < out.index("please stop")  # newest first
    code, out, _ = run(database_url, "inbox", "list", "--review")
    assert code == 0 and "please stop" in out and "HELP" not in out
    code, out, _ = run(database_url, "inbox", "review", "1", "--opt-out", "--by", "alice")
    assert code == 0 and f"contact {world.contact.id} opted out by alice" in out
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_out"
    session.commit()
    code, out, _ = run(database_url, "inbox", "list", "--review")
    assert (code, out) == (0, "no replies awaiting review")
    code, _, err = run(database_url, "inbox", "review", "1", "--not-opt-out")
    assert code == 1 and "error [already_reviewed]: reply 1 was already reviewed by alice" in err
    code, _, err = run(database_url, "inbox", "review", "2", "--opt-out")
    assert code == 1 and "[not_for_review]" in err
    code, _, err = run(database_url, "inbox", "review", "7", "--opt-out")
    assert code == 1 and "error [not_found]: no reply 7 in this account" in err
    code, _, err = run(database_url, "inbox", "review", "1")
    assert code == 2 and "--opt-out or --not-opt-out" in err
