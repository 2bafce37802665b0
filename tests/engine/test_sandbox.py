"""The sandbox carrier and its commands: it accepts, remembers, delivers receipts late,
fails with real provider codes, polices its rate, and can lose an answer."""

from __future__ import annotations

import ast
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

import sendline.providers
from sendline.cli import app
from sendline.engine.dispatcher import Dispatcher
from sendline.engine.receipts import receipt_applier
from sendline.providers.base import (
    OutboundSms,
    PermanentError,
    ProviderError,
    TransientError,
    UnknownOutcome,
)
from sendline.providers.sandbox import ERRORS, TEST_NUMBERS, SandboxProvider
from sendline.providers.sandbox_store import SandboxMessage
from sendline.store.consent import Consent
from sendline.store.engine_models import Message
from tests.engine.factories import NOW, make_world, queue_message
from tests.engine.sandbox_receipts import poll

PHONE = "+14158675309"


def _sms(ref: int = 1, to: str = PHONE, body: str = "hello", segments: int = 1) -> OutboundSms:
    return OutboundSms(ref, to, "+14155550000", body, segments)


@pytest.fixture
def sandbox(session_factory: sessionmaker[Session]) -> Iterator[SandboxProvider]:
    provider = SandboxProvider(session_factory, rng=random.Random(1), clock=lambda: NOW)
    yield provider
    provider.close()


def test_it_handles_accepting_and_remembering_a_message(
    sandbox: SandboxProvider, session: Session
) -> None:
    accepted = sandbox.send(_sms(7, body="Spring sale", segments=2))
    assert re.fullmatch(r"SM[0-9a-f]{32}", accepted.provider_id)
    [record] = session.scalars(select(SandboxMessage)).all()
    session.commit()
    assert (record.message_ref, record.to, record.sender, record.body, record.segments) == (
        7,
        PHONE,
        "+14155550000",
        "Spring sale",
        2,
    )
    assert (record.status, record.accepted_at, record.reported) == ("sent", NOW, False)
    found = sandbox.lookup(_sms(7))
    assert found is not None and (found.provider_id, found.status) == (accepted.provider_id, "sent")
    assert sandbox.lookup(_sms(8)) is None
    assert [r.provider_id for r in sandbox.outbox()] == [accepted.provider_id]


def test_it_handles_ids_that_grow_with_time(session_factory: sessionmaker[Session]) -> None:
    # Our unique index on messages.provider_id takes them in order (appended at its end).
    clock = [NOW]
    sandbox = SandboxProvider(session_factory, clock=lambda: clock[0])
    try:
        same_ms = [a.provider_id for a in sandbox.send_window([_sms(i) for i in range(50)])]
        later = []
        for i, step in enumerate((timedelta(milliseconds=1), timedelta(0), timedelta(hours=5))):
            clock[0] += step
            later.append(sandbox.send(_sms(100 + i)).provider_id)
    finally:
        sandbox.close()
    assert all(re.fullmatch(r"SM[0-9a-f]{32}", pid) for pid in same_ms + later)
    assert len(set(same_ms)) == 50  # one millisecond: the random part keeps them apart
    assert max(same_ms) < min(later[:2]) and max(later[:2]) < later[2]


def test_it_handles_receipts_after_a_delay(sandbox: SandboxProvider) -> None:
    ok = sandbox.send(_sms(1))
    bad = sandbox.send(_sms(2, to="+15005550030"))
    assert sandbox.deliver_reports(NOW + timedelta(seconds=1)) == []
    reports = sandbox.deliver_reports(NOW + timedelta(seconds=2))
    assert {(r.provider_id, r.status, r.error_code) for r in reports} == {
        (ok.provider_id, "delivered", None),
        (bad.provider_id, "undelivered", "30003"),
    }
    assert sandbox.deliver_reports(NOW + timedelta(seconds=3)) == []  # each once
    found = sandbox.lookup(_sms(2, to="+15005550030"))
    assert found is not None and (found.status, found.error_code) == ("undelivered", "30003")


@pytest.mark.parametrize(
    ("to", "error", "code"),
    [
        ("+15005550001", PermanentError, "21211"),
        ("+15005550004", PermanentError, "21610"),
        ("+15005550029", TransientError, "20429"),
        ("+15005550091", UnknownOutcome, "timeout"),
        ("+15005550090", UnknownOutcome, "timeout"),
        ("+3312", PermanentError, "21211"),  # not a number at all
    ],
)
def test_it_handles_its_test_numbers(
    sandbox: SandboxProvider, to: str, error: type[ProviderError], code: str
) -> None:
    with pytest.raises(error) as raised:
        sandbox.send(_sms(1, to=to))
    assert raised.value.code == code
    recorded = sandbox.lookup(_sms(1, to=to)) is not None
    assert recorded is (TEST_NUMBERS.get(to) == "lost")  # lost answer: it has the message


def test_it_handles_a_lookup_that_cannot_tell(sandbox: SandboxProvider) -> None:
    with pytest.raises(UnknownOutcome):
        sandbox.send(_sms(1, to="+15005550092"))
    with pytest.raises(UnknownOutcome):
        sandbox.lookup(_sms(1, to="+15005550092"))


def _outcomes(sandbox: SandboxProvider, count: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for ref in range(count):
        try:
            sandbox.send(_sms(ref))
            seen["accepted"] += 1
        except ProviderError as exc:
            seen[exc.code] += 1
    return seen


def test_it_handles_a_failure_rate_deterministically(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    def make(seed: int) -> SandboxProvider:
        rng = random.Random(seed)
        return SandboxProvider(session_factory, failure_rate=0.5, rng=rng, clock=lambda: NOW)

    first = _outcomes(make(42), 200)
    assert first == _outcomes(make(42), 200)  # same seed, same carrier
    refused = sum(count for code, count in first.items() if code != "accepted")
    codes = Counter(session.scalars(select(SandboxMessage.error_code)).all())
    session.commit()
    failed = refused + sum(count for code, count in codes.items() if code is not None) / 2
    assert 0.35 * 200 < failed < 0.65 * 200
    assert set(first) <= {"accepted", "21211", "21610", "20429"}
    assert {code for code in codes if code} <= {"30003", "30005", "30007"}
    assert all(code in ERRORS for code in [*first, *codes] if code and code != "accepted")


def test_it_handles_its_rate(session_factory: sessionmaker[Session]) -> None:
    sandbox = SandboxProvider(session_factory, mps=2, clock=lambda: NOW)
    started = time.monotonic()
    refusals: list[TransientError] = []
    accepted = 0
    for ref in range(20):
        try:
            sandbox.send(_sms(ref))
            accepted += 1
        except TransientError as exc:
            refusals.append(exc)
    elapsed = time.monotonic() - started
    # A second's burst (2), then 2 per second: however slow the machine, never more.
    assert 2 <= accepted <= 2 + 2 * elapsed + 1
    assert len(refusals) == 20 - accepted and {r.code for r in refusals} == {"20429"}
    assert all(r.retry_after is not None and 0 < r.retry_after <= 0.5 for r in refusals)


def test_it_handles_pushed_receipts_through_the_same_hook(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    """Receipts a provider pushes (a webhook; here the sandbox's `deliver_reports`) go
    through the hook the worker hands to polled ones, in a transaction of its own."""
    world = make_world(session)
    msg = queue_message(session, world.account, world.contact)
    sandbox = SandboxProvider(session_factory, clock=lambda: NOW)
    Dispatcher(session_factory, sandbox, worker_id="w1", clock=lambda: NOW).dispatch_due()
    reports = sandbox.deliver_reports(NOW + timedelta(seconds=2))
    provider_id = session.get(Message, msg.id, populate_existing=True).provider_id  # type: ignore[union-attr]
    session.commit()  # SQLite: the test's own read holds the write lock until then
    assert receipt_applier(session_factory)(reports, NOW) == {provider_id}
    assert session.get(Message, msg.id, populate_existing=True).status == "delivered"  # type: ignore[union-attr]
    session.commit()


def test_it_handles_providers_that_never_import_the_engine() -> None:
    """The engine applies receipts and decides; a provider only reports (issue 12)."""
    package = Path(sendline.providers.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = [
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        ]
        assert not [name for name in imported if (name or "").startswith("sendline.engine")], (
            module.name
        )


def test_it_handles_an_unknown_rate(session_factory: sessionmaker[Session]) -> None:
    sandbox = SandboxProvider(session_factory, unknown_rate=1.0, clock=lambda: NOW)
    with pytest.raises(UnknownOutcome):
        sandbox.send(_sms(5))
    assert sandbox.lookup(_sms(5)) is not None  # the carrier has it all the same


def test_it_handles_a_receipt_that_overtakes_the_sender(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    """A receipt for a message whose sender has not recorded the id yet is kept and
    retried, as carriers retry callbacks; once the id is known, it applies."""
    world = make_world(session)
    msg = queue_message(session, world.account, world.contact)
    sandbox = SandboxProvider(session_factory, clock=lambda: NOW)
    accepted = sandbox.send(_sms(msg.id))  # a worker's call, its outcome not yet committed
    assert poll(sandbox, session_factory, NOW + timedelta(seconds=2)) == []
    session.execute(
        update(Message)
        .where(Message.id == msg.id)
        .values(status="sent", provider_id=accepted.provider_id)
    )
    session.commit()
    assert (
        poll(sandbox, session_factory, NOW + timedelta(seconds=3)) == []
    )  # retried later, not at once
    [report] = poll(sandbox, session_factory, NOW + timedelta(seconds=4))
    assert report.provider_id == accepted.provider_id
    assert session.get(Message, msg.id, populate_existing=True).status == "delivered"  # type: ignore[union-attr]
    session.commit()


# -- the commands ---------------------------------------------------------------------


def test_it_handles_the_outbox_command(
    cli_env: CliRunner, session: Session, session_factory: sessionmaker[Session]
) -> None:
    empty = cli_env.invoke(app, ["sandbox", "outbox"])
    assert empty.exit_code == 0 and "sent nothing yet" in empty.output, empty.output
    world = make_world(session)
    queue_message(session, world.account, world.contact, body="Spring sale today")
    queue_message(session, world.account, world.contact, to="+15005550031")
    # The carrier on the test's clock too: its receipts fall due a day after NOW, not
    # after the real date.
    sandbox = SandboxProvider(session_factory, clock=lambda: NOW)
    Dispatcher(session_factory, sandbox, worker_id="w1", clock=lambda: NOW).dispatch_due()
    poll(sandbox, session_factory, NOW + timedelta(days=1))
    shown = cli_env.invoke(app, ["sandbox", "outbox"])
    assert shown.exit_code == 0, shown.output
    assert "Spring sale today" in shown.output and "30005" in shown.output
    listed = cli_env.invoke(app, ["sandbox", "outbox", "--json", "--limit", "1"])
    [newest] = json.loads(listed.output)
    assert (newest["to"], newest["status"], newest["error_code"]) == (
        "+15005550031",
        "undelivered",
        "30005",
    )


def test_it_handles_the_reply_command(cli_env: CliRunner, session: Session) -> None:
    world = make_world(session)
    stop = cli_env.invoke(app, ["sandbox", "reply", PHONE, "STOP"])
    assert stop.exit_code == 0, stop.output
    assert f"opted out {PHONE} from account demo; confirmation queued" in stop.output
    assert Consent(session, world.account.id).status(world.contact.id) == "opted_out"
    session.commit()
    again = cli_env.invoke(app, ["sandbox", "reply", PHONE, "stop"])
    assert "already opted out" in again.output
    help_ = cli_env.invoke(app, ["sandbox", "reply", PHONE, "HELP", "--account", "demo"])
    assert "help text queued" in help_.output
    stranger = cli_env.invoke(app, ["sandbox", "reply", "+14155550999", "hello"])
    assert stranger.exit_code == 0 and "no contact has +14155550999" in stranger.output


def test_it_handles_command_errors_without_a_traceback(
    cli_env: CliRunner, session: Session
) -> None:
    make_world(session)
    bad = cli_env.invoke(app, ["sandbox", "reply", "12", "STOP"])
    assert bad.exit_code == 1 and "not a valid phone number" in bad.output
    unknown = cli_env.invoke(app, ["sandbox", "reply", PHONE, "STOP", "--account", "nope"])
    assert unknown.exit_code == 1 and "no account named" in unknown.output
    assert "Traceback" not in bad.output + unknown.output
