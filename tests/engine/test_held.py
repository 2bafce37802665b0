"""`sendline messages list|release`: held messages are visible with their reason, and a
release runs every check again, all or nothing."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from sendline.cli import app
from sendline.engine.actions import Actions
from sendline.engine.auto_replies import queue_reply
from sendline.engine.held import release
from sendline.engine.pipeline import SmsRequest
from sendline.services.messages import release_held
from sendline.store.consent import Consent
from sendline.store.credits import Credits
from sendline.store.engine_models import Message
from sendline.store.models import Account
from tests.engine.automation_factories import Clock, account, automation, contact, messages, runner
from tests.engine.factories import NOW, assert_ledger_ok, make_account, make_contact
from tests.engine.queueing import queue_one


def _statuses(session: Session) -> dict[int, tuple[str, str | None]]:
    rows = session.execute(select(Message.id, Message.status, Message.held_reason)).all()
    session.commit()
    return {row[0]: (row[1], row[2]) for row in rows}


def _held_world(session: Session) -> tuple[int, list[int], int]:
    """One credit for three messages (two held for credits) and one never-opted-in."""
    owner = make_account(session, credits=1)
    request = SmsRequest("Hi %FIRSTNAME%, spring sale today")
    paid = [
        queue_one(session, owner, make_contact(session, owner, f"+1415555{n:04d}"), request, NOW).id
        for n in (101, 102, 103)
    ]
    stranger = make_contact(session, owner, "+14155550199", consent=False)
    refused = queue_one(session, owner, stranger, request, NOW).id
    session.commit()
    return owner.id, paid, refused


def test_it_handles_listing_held_messages_with_their_reasons(
    cli_env: CliRunner, session: Session
) -> None:
    _, paid, refused = _held_world(session)
    shown = cli_env.invoke(app, ["messages", "list", "--status", "held"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("insufficient_credits") == 2 and "no_consent" in shown.output
    listed = cli_env.invoke(app, ["messages", "list", "--reason", "no_consent", "--json"])
    [only] = json.loads(listed.output)
    assert (only["id"], only["status"], only["held_reason"]) == (refused, "held", "no_consent")
    bad = cli_env.invoke(app, ["messages", "list", "--reason", "too_loud"])
    assert bad.exit_code == 1 and "unknown reason 'too_loud'" in bad.output
    assert "Traceback" not in bad.output


def test_it_handles_a_release_once_the_cause_is_fixed(cli_env: CliRunner, session: Session) -> None:
    account_id, paid, refused = _held_world(session)
    before = _statuses(session)
    early = cli_env.invoke(app, ["messages", "release", "--reason", "insufficient_credits"])
    assert early.exit_code == 0, early.output
    assert "0 queued, 2 still held" in early.output  # checked again: still no credits
    assert _statuses(session) == before
    Credits(session, account_id).purchase(10)
    session.commit()
    fixed = cli_env.invoke(app, ["messages", "release", "--reason", "insufficient_credits"])
    assert fixed.exit_code == 0 and "2 queued, 0 still held" in fixed.output, fixed.output
    assert {_statuses(session)[i] for i in paid} == {("queued", None)}
    assert_ledger_ok(session, account_id)
    # No consent is not fixed by credits: released by id, it stays held, with its reason.
    again = cli_env.invoke(app, ["messages", "release", str(refused)])
    assert "still held (no_consent" in again.output
    assert _statuses(session)[refused] == ("held", "no_consent")


def test_it_handles_a_release_that_names_a_wrong_message(
    cli_env: CliRunner, session: Session
) -> None:
    account_id, paid, _ = _held_world(session)
    Credits(session, account_id).purchase(10)
    session.commit()
    before = _statuses(session)
    mixed = cli_env.invoke(app, ["messages", "release", str(paid[1]), str(paid[0]), "99999"])
    assert mixed.exit_code == 1 and "error [" in mixed.output
    assert str(paid[0]) in mixed.output or "99999" in mixed.output
    assert _statuses(session) == before  # all or nothing: the held one was not queued
    assert_ledger_ok(session, account_id)
    neither = cli_env.invoke(app, ["messages", "release"])
    assert neither.exit_code == 1 and "by id or by --reason" in neither.output


def test_it_handles_releasing_an_opt_out_confirmation(cli_env: CliRunner, session: Session) -> None:
    """A STOP confirmation held for credits goes out once they are bought: it is owed to
    the contact who opted out, so consent is not what it is checked against."""
    owner = make_account(session, credits=0)
    who = make_contact(session, owner)
    Consent(session, owner.id).record(who.id, "opt_out", "keyword", source="sms reply")
    text = "You are unsubscribed."
    confirmation = queue_reply(session, owner, who, "+14158675309", text, now=NOW)
    session.commit()
    assert (confirmation.status, confirmation.held_reason) == ("held", "insufficient_credits")
    Credits(session, owner.id).purchase(5)
    session.commit()
    released = cli_env.invoke(app, ["messages", "release", str(confirmation.id)])
    assert released.exit_code == 0 and "1 queued" in released.output, released.output
    assert _statuses(session)[confirmation.id] == ("queued", None)
    assert_ledger_ok(session, owner.id)


def _held_for_credits(
    session: Session, count: int, *, one_contact: bool = False, frequency_cap: int = 3
) -> tuple[int, list[int]]:
    """`count` messages held for want of credits, to one contact each (or all to one)."""
    owner = make_account(session, credits=0, frequency_cap=frequency_cap)
    request = SmsRequest("Hi %FIRSTNAME%, spring sale today")
    same = make_contact(session, owner)
    ids = []
    for n in range(count):
        who = same if one_contact else make_contact(session, owner, f"+1415555{n:04d}")
        ids.append(queue_one(session, owner, who, request, NOW).id)
    session.commit()
    assert {_statuses(session)[i] for i in ids} == {("held", "insufficient_credits")}
    return owner.id, ids


def test_it_handles_a_release_larger_than_the_credits(session: Session) -> None:
    account_id, ids = _held_for_credits(session, 5)
    Credits(session, account_id).purchase(3)
    owner = session.get(Account, account_id)
    assert owner is not None
    released = release(session, owner, reason="insufficient_credits", now=NOW)
    session.commit()
    # Oldest first: the balance covers the first three; the others wait for more credits.
    assert [(r.message_id, r.status) for r in released] == [
        (i, "queued" if n < 3 else "held") for n, i in enumerate(ids)
    ]
    assert all(r.due_at == NOW for r in released[:3])
    assert {_statuses(session)[i] for i in ids[3:]} == {("held", "insufficient_credits")}
    assert Credits(session, account_id).balance().available == 0
    assert_ledger_ok(session, account_id)


def test_it_handles_the_frequency_cap_within_one_release(session: Session) -> None:
    account_id, ids = _held_for_credits(session, 2, one_contact=True, frequency_cap=1)
    Credits(session, account_id).purchase(10)
    owner = session.get(Account, account_id)
    assert owner is not None
    first, second = release(session, owner, ids=ids, now=NOW)
    session.commit()
    assert (first.status, second.status, second.reason) == ("queued", "held", "frequency_cap")
    assert_ledger_ok(session, account_id)


def test_it_handles_an_id_named_twice(session: Session) -> None:
    account_id, [only] = _held_for_credits(session, 1)
    Credits(session, account_id).purchase(10)
    owner = session.get(Account, account_id)
    assert owner is not None
    released = release(session, owner, ids=[only, only], now=NOW)
    session.commit()
    assert [(r.message_id, r.status) for r in released] == [(only, "queued")]
    assert Credits(session, account_id).balance().reserved == 1  # reserved once
    assert_ledger_ok(session, account_id)


def test_it_handles_releasing_an_event_message_with_its_event_values(session: Session) -> None:
    """Issue 12 #2: held for credits, released once they are bought, an event-triggered
    message renders %EVENT.ORDER_ID% from the event it came from (it rendered empty:
    "order  shipped"), and sends the body `messages list` showed while it was held."""
    owner = make_account(session, credits=0)
    who = make_contact(session, owner)
    request = SmsRequest("Order %EVENT.ORDER_ID% shipped", event={"order_id": "A-1042"})
    held = queue_one(session, owner, who, request, NOW)
    session.commit()
    assert (held.status, held.held_reason) == ("held", "insufficient_credits")
    assert held.event == {"order_id": "A-1042"}
    shown = held.body
    assert shown == "Order A-1042 shipped\nReply STOP to opt out"
    Credits(session, owner.id).purchase(5)
    [released] = release(session, owner, ids=[held.id], now=NOW)
    session.commit()
    assert released.status == "queued"
    sent = session.get(Message, held.id, populate_existing=True)
    assert sent is not None and sent.body == shown
    assert_ledger_ok(session, owner.id)


def test_it_handles_releasing_a_held_message_of_an_event_triggered_automation(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    """The whole way: an `order_shipped` event starts a run, the runner's message is held
    for credits, credits are bought, the release sends "Order A-17 shipped"."""
    owner = account(session, credits=0, quiet_start=0, quiet_end=24 * 60)
    automation(
        session,
        owner,
        "name: Shipped\ntrigger: {type: event, name: order_shipped}\n"
        "steps: [{type: send_sms, body: 'Order %EVENT.ORDER_ID% shipped'}]",
    )
    ada = contact(session, owner)
    assert Actions(session, owner.id, now=NOW).record_event(
        ada.id, "order_shipped", {"order_id": "A-17"}
    )
    session.commit()
    runner(session_factory, Clock(NOW)).run_due()
    [held] = messages(session)
    assert (held.status, held.held_reason) == ("held", "insufficient_credits")
    Credits(session, owner.id).purchase(5)
    session.commit()
    [released] = release_held(session_factory, owner.name, ids=[held.id], now=NOW)
    [sent] = messages(session)
    assert (released.status, sent.body) == ("queued", "Order A-17 shipped\nReply STOP to opt out")
    assert_ledger_ok(session, owner.id)
