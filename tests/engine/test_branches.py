"""Branches, loops and the transactional flag through the real runner, on both databases:
each if_else branch ends where its list ends (issue 12 #1), what a save refuses (#3),
and what a transactional automation passes on (#10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine import triggers
from sendline.engine.actions import Actions
from sendline.engine.automations import Automations
from sendline.engine.definitions import InvalidAutomation
from sendline.store.models import Account
from tests.engine.automation_factories import (
    NOON,
    Clock,
    account,
    automation,
    contact,
    messages,
    runner,
    runs,
)

VIP_FLOW = """
name: Offer
trigger: {type: bulk}
steps:
  - type: if_else
    condition: {tag: vip}
    then:
      - {type: send_sms, body: "VIP offer: 30% off"}
    else:
      - {type: send_sms, body: "Offer: 10% off"}
      - {type: add_tag, tag: regular}
  - {type: send_sms, body: "See you soon"}
"""


def _first_lines(session: Session) -> dict[int, list[str]]:
    sent: dict[int, list[str]] = {}
    for message in messages(session):
        assert message.contact_id is not None
        sent.setdefault(message.contact_id, []).append((message.body or "").split("\n")[0])
    return sent


def _start(session: Session, owner: Account, text: str) -> int:
    found = automation(session, owner, text)
    triggers.start_bulk(session, owner.id, found.id, now=NOON)
    session.commit()
    return found.id


def test_it_sends_a_vip_only_the_vip_branch_and_others_only_theirs(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    vip = contact(session, owner, tags=["vip"])
    other = contact(session, owner, "+14158675310")
    _start(session, owner, VIP_FLOW)
    runner(session_factory, Clock()).run_due()
    assert _first_lines(session) == {
        vip.id: ["VIP offer: 30% off", "See you soon"],
        other.id: ["Offer: 10% off", "See you soon"],
    }
    assert [m.step_id for m in messages(session) if m.contact_id == vip.id] == [
        "step-1.then-1",
        "step-2",
    ]
    assert [r.status for r in runs(session)] == ["completed", "completed"]


def test_it_handles_a_branch_that_waits_then_joins(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    vip = contact(session, owner, tags=["vip"])
    text = (
        "name: W\ntrigger: {type: bulk}\nsteps:\n"
        "  - {type: if_else, condition: {tag: vip}, then: [{type: wait, duration: 1h},"
        " {type: send_sms, body: Later}], else: [{type: exit}]}\n"
        "  - {type: send_sms, body: Joined}\n"
    )
    _start(session, owner, text)
    clock = Clock()
    work = runner(session_factory, clock)
    work.run_due()
    assert runs(session)[0].step_id == "step-1.then-2"
    clock.advance(hours=1)
    work.run_due()
    assert _first_lines(session) == {vip.id: ["Later", "Joined"]}


def test_it_ends_an_empty_or_missing_branch_at_the_join(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    vip = contact(session, owner, tags=["vip"])
    other = contact(session, owner, "+14158675310")
    text = (
        "name: E\ntrigger: {type: bulk}\nsteps:\n"
        "  - {type: if_else, condition: {tag: vip}, then: [{type: send_sms, body: Gold}]}\n"
        "  - {type: send_sms, body: All}\n"
    )
    _start(session, owner, text)
    runner(session_factory, Clock()).run_due()
    assert _first_lines(session) == {vip.id: ["Gold", "All"], other.id: ["All"]}


FALLS_THROUGH = """
name: Offer
trigger: {type: bulk}
steps:
  - {type: if_else, condition: {tag: vip}, then: gold, else: plain}
  - {id: gold, type: send_sms, body: "VIP offer"}
  - {id: plain, type: send_sms, body: "Offer"}
"""


def test_it_refuses_jump_branches_that_run_into_each_other(session: Session) -> None:
    owner = account(session)
    with pytest.raises(InvalidAutomation) as caught:
        Automations(session, owner.id).create(FALLS_THROUGH)
    [problem] = caught.value.problems
    assert problem.startswith(
        "step step-1: its then branch (from 'gold') runs on into the other branch at 'plain'"
    )


@pytest.mark.parametrize(
    ("steps", "cycle"),
    [
        ("[{id: a, type: send_sms, body: Hi}, {type: if_else, condition: {tag: x}, then: a}]",
         "steps a -> step-2 -> a loop without a wait"),
        ("[{id: a, type: send_sms, body: Hi}, {type: wait, duration: 0m},"
         " {type: if_else, condition: {tag: x}, then: [{type: exit}], else: a}]",
         "steps a -> step-2 -> step-3 -> a loop without a wait"),
    ],
)  # fmt: skip
def test_it_refuses_a_loop_without_a_wait_naming_it(
    session: Session, steps: str, cycle: str
) -> None:
    owner = account(session)
    with pytest.raises(InvalidAutomation, match=cycle):
        Automations(session, owner.id).create(f"name: L\ntrigger: {{type: bulk}}\nsteps: {steps}")
    session.rollback()
    assert Automations(session, owner.id).list() == []  # nothing written


def test_it_runs_a_loop_with_a_wait_once_per_wait(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    ada = contact(session, owner)
    text = (
        "name: R\ntrigger: {type: bulk}\nsteps:\n"
        "  - {id: remind, type: send_sms, body: Reminder}\n"
        "  - {type: wait, duration: 1d}\n"
        "  - {type: if_else, condition: {tag: bought}, then: [{type: exit}], else: remind}\n"
    )
    _start(session, owner, text)
    clock = Clock()
    work = runner(session_factory, clock)
    work.run_due()
    clock.advance(days=1)
    work.run_due()
    assert _first_lines(session) == {ada.id: ["Reminder", "Reminder"]}
    assert runs(session)[0].due_at == NOON + timedelta(days=2)


def test_it_refuses_a_transactional_blast(session: Session) -> None:
    owner = account(session)
    text = "name: B\ntrigger: {type: bulk}\ntransactional: true\nsteps: [{type: exit}]"
    with pytest.raises(InvalidAutomation, match="a bulk .blast. automation cannot be transact"):
        Automations(session, owner.id).create(text)


SHIPPED = (
    "name: Shipped\ntrigger: {type: event, name: shipped}\ntransactional: true\n"
    "steps: [{type: send_sms, body: 'Your order shipped'}]"
)


def test_it_sends_a_transactional_text_during_quiet_hours(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = account(session)
    ada = contact(session, owner)
    night = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)  # 22:00 in San Francisco
    automation(session, owner, SHIPPED)
    Actions(session, owner.id, now=night).record_event(ada.id, "shipped", {})
    session.commit()
    runner(session_factory, Clock(night)).run_due()
    [message] = messages(session)
    assert (message.status, message.due_at) == ("queued", night)
