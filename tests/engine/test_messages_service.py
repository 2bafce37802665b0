"""The messages service (list_messages, release_held) on both databases, and why a
queued message waits (issue 12 #9): quiet hours until when in the contact's zone, the
sender's rate limit, or due now, in `messages list`'s table and JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from sendline.cli import app
from sendline.engine.dispatcher import PACED
from sendline.engine.held import wait_reason
from sendline.errors import InvalidInput, NotFound
from sendline.services.messages import list_messages, release_held
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from tests.engine.automation_factories import account, contact
from tests.engine.queueing import queue_one

NIGHT = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # 23:00 in San Francisco
LA = "America/Los_Angeles"


def test_it_handles_each_wait_reason() -> None:
    morning = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    assert wait_reason("queued", NIGHT, None, None, LA, NIGHT) == "due now"
    assert wait_reason("queued", None, None, None, LA, NIGHT) == "due now"
    quiet = wait_reason("queued", morning, None, None, LA, NIGHT)
    assert quiet == f"quiet hours until 08:00 tomorrow ({LA})"
    later = wait_reason("queued", morning + timedelta(days=1), None, None, LA, NIGHT)
    assert later == f"quiet hours until 08:00 on Fri 27 Nov ({LA})"
    evening = wait_reason("queued", morning, None, None, LA, morning - timedelta(hours=1))
    assert evening == f"quiet hours until 08:00 ({LA})"  # 07:00 there: the same day
    paced = wait_reason("queued", NIGHT + timedelta(seconds=2), PACED, None, LA, NIGHT)
    assert paced == "rate limit: due 07:00:02 UTC"
    retry = wait_reason("queued", morning, "carrier busy", "timeout", LA, NIGHT)
    assert retry == "retry after timeout: due 16:00:00 UTC"
    assert wait_reason("held", None, "no credits", None, LA, NIGHT) is None
    assert wait_reason("sent", NIGHT, None, None, LA, NIGHT) is None


def test_it_handles_listing_why_queued_messages_wait(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session, name="shop")
    ada = contact(session, owner)
    night = queue_one(session, owner, ada, "Sale today", NIGHT)
    day = queue_one(
        session, owner, contact(session, owner, "+14155550123"), "Hi", NIGHT - timedelta(hours=12)
    )
    session.commit()
    lines = {m.id: m for m in list_messages(session_factory, "shop", now=NIGHT)}
    assert lines[night.id].waiting == f"quiet hours until 08:00 tomorrow ({LA})"
    assert lines[day.id].waiting == "due now"
    assert lines[night.id].body == "Sale today\nReply STOP to opt out"
    with pytest.raises(InvalidInput, match="unknown status"):
        list_messages(session_factory, "shop", status="lost")


def test_it_handles_releasing_through_the_service(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session, name="shop", credits=0)
    held = queue_one(session, owner, contact(session, owner), "Sale today", NIGHT)
    session.commit()
    Credits(session, owner.id).purchase(3)
    session.commit()
    [released] = release_held(session_factory, "shop", ids=[held.id], now=NIGHT)
    assert (released.status, released.due_at) == (
        "queued",
        datetime(2026, 11, 26, 16, 0, tzinfo=UTC),
    )
    with pytest.raises(NotFound):
        release_held(session_factory, "shop", ids=[held.id], now=NIGHT)  # not held any more


def test_it_handles_showing_the_wait_in_the_cli(cli_env: CliRunner, session: Session) -> None:
    owner = account(session)
    msg = queue_one(session, owner, contact(session, owner), "Sale today", NIGHT)
    # Due at 08:00 in San Francisco tomorrow, as seen from the real clock the CLI reads.
    due = datetime.now(UTC).replace(hour=16, minute=0, second=0, microsecond=0) + timedelta(days=1)
    session.execute(update(Message).where(Message.id == msg.id).values(due_at=due))
    session.commit()
    shown = cli_env.invoke(app, ["messages", "list"])
    assert shown.exit_code == 0, shown.output
    assert "quiet hours until 08:00" in shown.output and LA in shown.output
    listed = cli_env.invoke(app, ["messages", "list", "--json"])
    [only] = json.loads(listed.output)
    assert only["waiting"].startswith("quiet hours until 08:00")
    assert only["transactional"] is False
