"""The runner end to end on both databases: a trigger produces the right message, every
hold reason (R1-R15) comes out of a real case, quiet hours defer and then send (R14),
waits, branches, goals, versions, a crash mid-batch, and no step ever runs twice."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, make_url, select, update
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine import triggers
from sendline.engine.actions import Actions
from sendline.engine.automations import Automations
from sendline.engine.dispatcher import Dispatcher
from sendline.engine.pipeline import HOLD_REASONS
from sendline.providers.sandbox import SandboxProvider
from sendline.store.accounts import Accounts
from sendline.store.consent import Consent
from sendline.store.contacts import Contacts
from sendline.store.engine_models import AutomationRun, Message
from sendline.store.models import Account, Contact, CustomField
from sendline.store.types import utcnow
from tests.engine.automation_factories import (
    NOON,
    Clock,
    account,
    automation,
    contact,
    define_fields,
    many_contacts,
    messages,
    runner,
    runs,
    saved_before_checks,
)
from tests.engine.factories import assert_ledger_ok


def _bulk(session: Session, owner: Account, steps: str, name: str = "Flow") -> int:
    found = automation(session, owner, f"name: {name}\ntrigger: {{type: bulk}}\nsteps: {steps}")
    triggers.start_bulk(session, owner.id, found.id, now=NOON)
    session.commit()
    return found.id


def test_it_handles_a_trigger_end_to_end(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    text = (
        "name: Welcome\ntrigger: {type: list_subscribed, list: Newsletter}\n"
        "steps: [{type: send_sms, body: 'Hi %FIRSTNAME|there%, welcome to %LIST|our list%!'}]"
    )
    define_fields(session, owner, LIST="text")
    welcome = automation(session, owner, text)
    ada = contact(session, owner)
    Actions(session, owner.id, now=NOON).subscribe(ada.id, "Newsletter")
    session.commit()
    assert runner(session_factory, Clock()).run_due() == 1
    [message] = messages(session)
    assert message.body == "Hi Ada, welcome to our list!\nReply STOP to opt out"
    assert (message.status, message.to_e164, message.due_at) == ("queued", ada.phone_e164, NOON)
    assert (message.automation_id, message.step_id, message.credits) == (welcome.id, "step-1", 1)
    [run] = runs(session)
    assert (run.status, run.steps_done, run.due_at) == ("completed", 1, None)
    assert message.idempotency_key == f"run:{run.id}:0"
    assert_ledger_ok(session, owner.id)


# -- every hold reason -------------------------------------------------------------------

Scene = Callable[[Session, Account], object]


def _with(phone: str | None = "+14158675309", **details: Any) -> Scene:
    return lambda session, owner: contact(session, owner, phone, email="a@example.com", **details)


def _opted_out(session: Session, owner: Account) -> None:
    ada = contact(session, owner)
    Consent(session, owner.id).record(ada.id, "opt_out", "keyword", source="STOP")


def _plan(**change: Any) -> Scene:
    return lambda session, owner: Accounts(session).change_plan(owner.id, **change)


def _capped(session: Session, owner: Account) -> None:
    Accounts(session).update_settings(owner.id, frequency_cap=1)
    contact(session, owner)


@dataclass(frozen=True)
class HoldCase:
    before: Scene = _with()  # the contact (and settings) before the automation is saved
    body: str = "Sale today"
    after: Scene | None = None  # a change after it was activated and started
    sends: int = 1
    credits: int = 100


HOLD_CASES: dict[str, HoldCase] = {
    "sms_not_in_plan": HoldCase(after=_plan(tier="starter")),  # downgraded since
    "sms_addon_required": HoldCase(after=_plan(sms_addon=False)),
    "no_consent": HoldCase(_with(consent=False)),
    "opted_out": HoldCase(_opted_out),
    "no_phone": HoldCase(_with(phone=None)),
    "invalid_phone": HoldCase(_with("06 12 34 56 78")),  # not +33: read as a US number
    "landline": HoldCase(_with("+33 1 42 68 53 00")),
    "template_error": HoldCase(
        _with(fields={"CITY": "Paris"}),
        "Deals in %CITY%",
        after=lambda session, owner: session.execute(delete(CustomField)),
    ),
    "empty": HoldCase(_with(first_name=None), "%FIRSTNAME%"),
    "public_shortener": HoldCase(_with(fields={"NOTE": "https://bit.ly/3xYz"}), "Go: %NOTE%"),
    "too_long": HoldCase(_with(fields={"NOTE": "z" * 200}), "Note: %NOTE%"),
    "frequency_cap": HoldCase(_capped, sends=2),
    "insufficient_credits": HoldCase(credits=0),
}


def test_it_handles_a_case_for_every_hold_reason() -> None:
    assert set(HOLD_CASES) == set(HOLD_REASONS)


@pytest.mark.parametrize("reason", HOLD_REASONS)
def test_it_handles_each_hold_reason(
    session: Session, session_factory: sessionmaker[Session], reason: str
) -> None:
    case = HOLD_CASES[reason]
    owner = account(session, credits=case.credits)
    case.before(session, owner)
    session.commit()
    steps = ", ".join([f"{{type: send_sms, body: {case.body!r}}}"] * case.sends)
    automation_id = _bulk(session, owner, f"[{steps}]")
    if case.after is not None:
        case.after(session, owner)
        session.commit()
    runner(session_factory, Clock()).run_due()
    held = messages(session)[-1]
    assert (held.status, held.held_reason) == ("held", reason)
    assert held.detail and held.due_at is None and held.automation_id == automation_id
    assert runs(session)[0].status == "completed"  # a held message does not stop the run
    assert_ledger_ok(session, owner.id)


# -- quiet hours -------------------------------------------------------------------------


def test_it_handles_quiet_hours_by_deferring_then_sending(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    contact(session, owner)  # San Francisco
    early = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # 06:00 in San Francisco
    clock = Clock(early)
    text = "name: B\ntrigger: {type: bulk}\nsteps: [{type: send_sms, body: Hi}]"
    found = automation(session, owner, text)
    triggers.start_bulk(session, owner.id, found.id, now=early)
    session.commit()
    runner(session_factory, clock).run_due()
    [message] = messages(session)
    window = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # 08:00 local
    assert (message.status, message.due_at) == ("queued", window)
    sandbox = SandboxProvider(session_factory, rng=random.Random(1), clock=clock)
    dispatcher = Dispatcher(
        session_factory, sandbox, worker_id="d1", clock=clock, rng=random.Random(2)
    )
    assert dispatcher.dispatch_due() == 0  # not before 08:00 local
    clock.now = window
    assert dispatcher.dispatch_due() == 1
    assert messages(session)[0].status == "sent"
    assert_ledger_ok(session, owner.id)


# -- waits, branches, goals --------------------------------------------------------------


def test_it_handles_waits_of_a_duration(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    contact(session, owner)
    steps = "[{type: send_sms, body: One}, {type: wait, duration: 2d}, {type: send_sms, body: Two}]"
    _bulk(session, owner, steps)
    clock = Clock()
    work = runner(session_factory, clock)
    assert work.run_due() == 1
    [run] = runs(session)
    later = NOON + timedelta(days=2)
    assert (run.step_id, run.steps_done, run.due_at, run.wait_until) == ("step-3", 2, later, later)
    clock.advance(days=1)
    assert work.run_due() == 0
    clock.advance(days=1)
    assert work.run_due() == 1
    assert [m.body.split("\n")[0] for m in messages(session) if m.body] == ["One", "Two"]
    assert runs(session)[0].status == "completed"


def test_it_handles_waits_until_a_local_time_and_weekday(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    contact(session, owner)  # San Francisco; NOON is Wednesday 12:00 there
    contact(session, owner, "+33612345678")  # Paris: Wednesday 21:00
    steps = "[{type: wait, until_time: '10:00', weekdays: [mon, thu]}, {type: exit}]"
    _bulk(session, owner, steps)
    runner(session_factory, Clock()).run_due()
    sf, paris = runs(session)
    assert sf.due_at == datetime(2026, 11, 26, 18, 0, tzinfo=UTC)  # Thu 10:00 PST
    assert paris.due_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # Thu 10:00 CET


def test_it_handles_if_else_branches(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    vip = contact(session, owner, tags=["vip"])
    contact(session, owner, "+14158675310")
    steps = (
        "[{type: if_else, condition: {tag: vip}, then: gold, else: plain},"
        " {id: gold, type: send_sms, body: 'Gold offer'}, {type: exit},"
        " {id: plain, type: send_sms, body: 'Plain offer'}]"
    )
    _bulk(session, owner, steps)
    runner(session_factory, Clock()).run_due()
    bodies = {m.contact_id: (m.body or "").split("\n")[0] for m in messages(session)}
    assert bodies[vip.id] == "Gold offer"
    assert sorted(bodies.values()) == ["Gold offer", "Plain offer"]
    assert sorted(r.status for r in runs(session)) == ["completed", "exited"]


GOAL_STEPS = (
    "[{type: send_sms, body: 'Reminder 1'}, {type: wait, duration: 3d},"
    " {type: send_sms, body: 'Reminder 2'},"
    " {type: goal, condition: {tag: purchased}, otherwise: exit},"
    " {type: send_sms, body: 'Thanks for buying'}]"
)


def test_it_handles_goals_reached_while_waiting(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    buyer = contact(session, owner)
    other = contact(session, owner, "+14158675310")
    _bulk(session, owner, GOAL_STEPS)
    clock = Clock()
    work = runner(session_factory, clock)
    work.run_due()
    clock.advance(hours=5)
    actions = Actions(session, owner.id, now=clock.now)
    actions.add_tag(buyer.id, "purchased")  # wakes the buyer's run: the goal now holds
    actions.add_tag(other.id, "newsletter")  # wakes the other run: no goal holds
    session.commit()
    assert work.run_due() == 2
    bought, waiting = runs(session)
    assert bought.status == "completed"
    assert (waiting.status, waiting.due_at) == ("active", NOON + timedelta(days=3))
    clock.advance(days=3)
    work.run_due()
    sent = [(m.contact_id, (m.body or "").split("\n")[0]) for m in messages(session)]
    assert sorted(sent) == sorted(
        [
            (buyer.id, "Reminder 1"),
            (other.id, "Reminder 1"),
            (buyer.id, "Thanks for buying"),
            (other.id, "Reminder 2"),
        ]
    )
    assert runs(session)[1].status == "exited"  # the goal's otherwise: exit


def test_it_handles_goals_that_wait(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    ada = contact(session, owner)
    steps = "[{type: goal, condition: {tag: ready}, otherwise: wait}, {type: send_sms, body: Go}]"
    _bulk(session, owner, steps)
    clock = Clock()
    work = runner(session_factory, clock)
    work.run_due()
    [run] = runs(session)
    assert (run.status, run.step_id, run.due_at) == ("active", "step-1", NOON + timedelta(days=1))
    clock.advance(minutes=10)
    Actions(session, owner.id, now=clock.now).add_tag(ada.id, "ready")
    session.commit()
    assert work.run_due() == 1
    assert [(m.body or "").split("\n")[0] for m in messages(session)] == ["Go"]


def test_it_handles_contact_steps(session: Session, session_factory: sessionmaker[Session]) -> None:
    owner = account(session)
    define_fields(session, owner, PLAN="text")
    ada = contact(session, owner, tags=["old"], lists=["Trial"])
    steps = (
        "[{type: add_tag, tag: new}, {type: remove_tag, tag: old},"
        " {type: update_field, field: PLAN, value: Gold}, {type: subscribe, list: Customers},"
        " {type: unsubscribe, list: Trial}, {type: exit}, {type: send_sms, body: never}]"
    )
    _bulk(session, owner, steps)
    runner(session_factory, Clock()).run_due()
    refreshed = session.get(Contact, ada.id, populate_existing=True)
    assert refreshed is not None and refreshed.fields == {"PLAN": "Gold"}
    assert Contacts(session, owner.id).tags(ada.id) == ["new"]
    assert Contacts(session, owner.id).lists(ada.id) == ["Customers"]
    session.commit()
    assert messages(session) == [] and runs(session)[0].status == "exited"


# -- versions, pauses, failures ----------------------------------------------------------


def test_it_handles_new_versions_while_contacts_run(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    first = contact(session, owner)
    steps = "[{type: wait, duration: 1h}, {type: send_sms, body: 'Version one'}]"
    automation_id = _bulk(session, owner, steps)
    clock = Clock()
    work = runner(session_factory, clock)
    work.run_due()
    edited = f"name: Flow\ntrigger: {{type: bulk}}\nsteps: {steps.replace('one', 'two')}"
    Automations(session, owner.id).update(automation_id, edited)
    second = contact(session, owner, "+14158675310")
    triggers.start_bulk(session, owner.id, automation_id, now=clock.now)
    session.commit()
    work.run_due()  # the second contact starts its wait, on version 2
    clock.advance(hours=2)
    work.run_due()
    bodies = {m.contact_id: (m.body or "").split("\n")[0] for m in messages(session)}
    assert bodies == {first.id: "Version one", second.id: "Version two"}


def test_it_handles_paused_and_archived_automations(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    contact(session, owner)
    automation_id = _bulk(session, owner, "[{type: send_sms, body: Hi}]")
    automations = Automations(session, owner.id)
    automations.pause(automation_id)
    session.commit()
    work = runner(session_factory, Clock())
    assert work.run_due() == 0
    automations.activate(automation_id)
    session.commit()
    assert work.run_due() == 1
    contact(session, owner, "+14158675310")
    triggers.start_bulk(session, owner.id, automation_id, now=NOON)
    automations.archive(automation_id)
    session.commit()
    assert work.run_due() == 0
    assert [r.status for r in runs(session)] == ["completed", "exited"]


def test_it_handles_a_failing_run_alone(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    define_fields(session, owner, PLAN="text")
    contact(session, owner)
    broken = _bulk(session, owner, "[{type: update_field, field: PLAN, value: x}]", name="Broken")
    fine = _bulk(session, owner, "[{type: send_sms, body: Hi}]", name="Fine")
    session.execute(delete(CustomField))  # the field the step sets is gone
    session.commit()
    assert runner(session_factory, Clock()).run_due() == 2
    status = {r.automation_id: (r.status, r.error) for r in runs(session)}
    assert status[fine] == ("completed", None)
    assert status[broken][0] == "failed" and "unknown custom field 'PLAN'" in str(status[broken][1])


def test_it_handles_loops_without_a_wait(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    contact(session, owner)
    steps = "[{id: again, type: if_else, condition: {all: []}, then: again}]"
    # Refused at save today (engine/step_graph.py); a version saved before still runs.
    looping = saved_before_checks(
        session, owner, f"name: L\ntrigger: {{type: bulk}}\nsteps: {steps}"
    )
    triggers.start_bulk(session, owner.id, looping.id, now=NOON)
    session.commit()
    runner(session_factory, Clock()).run_due()
    [run] = runs(session)
    assert run.status == "failed" and "without a wait" in (run.error or "")


# -- durability --------------------------------------------------------------------------


def test_it_handles_a_crash_mid_batch(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    for i in range(5):
        contact(session, owner, f"+1415867531{i}")
    _bulk(session, owner, "[{type: send_sms, body: Hi}]")
    clock = Clock()
    survivor = runner(session_factory, clock, worker_id="survivor")
    # A worker locks a batch of three runs and dies before its commit.
    doomed = session_factory()
    doomed.begin()
    locked = doomed.scalars(
        select(AutomationRun.id).order_by(AutomationRun.id).limit(3).with_for_update()
    ).all()
    assert len(locked) == 3
    expected = 5
    if session.get_bind().dialect.name == "postgresql":
        # Meanwhile the others are taken past the locked batch (SKIP LOCKED). SQLite has
        # one writer: the survivor would wait for the lock instead.
        assert survivor.run_due() == 2
        expected = 3
    doomed.rollback()  # what the database does with a dead connection's transaction
    doomed.close()
    assert survivor.run_due() == expected  # at once: there is no claim to wait out
    assert len(messages(session)) == 5
    assert {r.status for r in runs(session)} == {"completed"}


_WORKER = """
import sys, time
from datetime import timedelta
from sendline.engine.runner import Runner
from sendline.store.db import create_engine_for, session_factory
runner = Runner(session_factory(create_engine_for(sys.argv[1])), worker_id=sys.argv[2],
                batch_size=15)
while True:
    if not runner.run_due():
        time.sleep(0.02)
"""


def _count_messages(session: Session, database_url: str) -> int:
    """Messages so far, read without taking SQLite's write lock: the engine starts every
    transaction with BEGIN IMMEDIATE, and a busy worker would starve the poll."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with closing(sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)) as raw:
            return int(raw.execute("SELECT count(*) FROM messages").fetchone()[0])
    count = int(session.scalar(select(func.count()).select_from(Message)) or 0)
    session.commit()
    return count


@pytest.mark.slow
def test_it_handles_workers_killed_mid_batch(
    session: Session, session_factory: sessionmaker[Session], database_url: str
) -> None:
    owner = account(session, credits=1000)
    many_contacts(session, owner, 500)
    steps = "[{type: send_sms, body: One}, {type: add_tag, tag: x}, {type: send_sms, body: Two}]"
    found = automation(session, owner, f"name: Kill\ntrigger: {{type: bulk}}\nsteps: {steps}")
    triggers.start_bulk(session, owner.id, found.id, now=utcnow())
    session.commit()
    rng = random.Random(7)
    for round_ in range(4):
        before = _count_messages(session, database_url)
        worker = subprocess.Popen(
            [sys.executable, "-c", _WORKER, database_url, f"doomed-{round_}"],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while _count_messages(session, database_url) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        worker.send_signal(signal.SIGKILL)  # no cleanup: claims and an open transaction
        worker.wait()
    left = [r for r in runs(session) if r.status == "active"]
    assert left  # the kills did leave work behind
    clock = Clock(utcnow())  # and nothing to wait out: the rollbacks left the runs due
    runner(session_factory, clock, worker_id="survivor").run_due()
    done = runs(session)
    assert {(r.status, r.steps_done) for r in done} == {("completed", 3)}
    sent = Counter((m.contact_id, (m.body or "").split("\n")[0]) for m in messages(session))
    assert len(sent) == 1000 and set(sent.values()) == {1}  # each step exactly once
    assert_ledger_ok(session, owner.id)


def test_it_handles_a_step_replayed_after_a_lost_position(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    contact(session, owner)
    _bulk(session, owner, "[{type: send_sms, body: Hi}]")
    work = runner(session_factory, Clock())
    work.run_due()
    # As if the run's new position had been lost: it points at the step again.
    session.execute(
        update(AutomationRun).values(status="active", step_id="step-1", steps_done=0, due_at=NOON)
    )
    session.commit()
    assert work.run_due() == 1
    assert len(messages(session)) == 1  # the idempotency key found the first message
    assert_ledger_ok(session, owner.id)


def test_it_handles_concurrent_workers(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session, credits=1000)
    for i in range(60):
        contact(session, owner, f"+1415555{i:04d}")
    _bulk(session, owner, "[{type: send_sms, body: Hi}, {type: add_tag, tag: done}]")
    clock = Clock()
    done: list[int] = []

    def work(name: str) -> None:
        done.append(runner(session_factory, clock, worker_id=name, batch_size=7).run_due())

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(done) == 60
    found = messages(session)
    assert len(found) == 60 and len({m.contact_id for m in found}) == 60
    assert {r.status for r in runs(session)} == {"completed"}
    assert_ledger_ok(session, owner.id)
