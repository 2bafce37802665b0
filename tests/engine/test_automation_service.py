"""services/automations.py on both databases: what `show` tells about failed runs (issue
12 #4) and the step graph (#1), why an event started no run (#9), the JSON Schema (#12)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from sendline.services import automations as service
from sendline.store.engine_models import AutomationRun
from sendline.store.models import Account, CustomField
from tests.engine.automation_factories import (
    NOON,
    Clock,
    account,
    automation,
    contact,
    define_fields,
    runner,
)


@pytest.fixture
def owner(session: Session) -> Account:
    return account(session, "shop")


def test_it_shows_why_runs_failed(
    session: Session, session_factory: sessionmaker[Session], owner: Account
) -> None:
    define_fields(session, owner, PLAN="text")
    ada = contact(session, owner)
    text = (
        "name: Broken\ntrigger: {type: bulk}\nsteps: [{type: update_field, field: PLAN, value: x}]"
    )
    automation(session, owner, text)
    service.start_blast(session_factory, "shop", "Broken", now=NOON)
    session.execute(delete(CustomField))  # the field the step sets is gone
    session.commit()
    runner(session_factory, Clock()).run_due()
    detail = service.show_automation(session_factory, "shop", "Broken")
    assert detail.runs == {"failed": 1}
    [failure] = detail.failures
    assert (failure.contact_id, failure.failed_at) == (ada.id, NOON)
    assert failure.reason == "step step-1: unknown custom field 'PLAN'; define it first"
    [summary] = service.list_automations(session_factory, "shop")
    assert (summary.failed_runs, summary.active_runs) == (1, 0)


def test_it_shows_the_step_graph_with_its_branches(
    session_factory: sessionmaker[Session], owner: Account
) -> None:
    text = (
        "name: Offer\ntrigger: {type: event, name: paid}\ntransactional: true\nsteps:\n"
        "  - {type: if_else, condition: {tag: vip}, then: [{type: send_sms, body: VIP}],"
        " else: [{type: send_sms, body: Other}, {type: exit}]}\n"
        "  - {type: send_sms, body: Bye}\n"
    )
    service.create_automation(session_factory, "shop", text)
    detail = service.show_automation(session_factory, "shop", "Offer")
    assert detail.transactional and detail.problems == ()
    assert [(s.depth, s.branch, s.id, s.type, s.leads_to) for s in detail.steps] == [
        (0, None, "step-1", "if_else", "then: step-1.then-1; else: step-1.else-1"),
        (1, "then", "step-1.then-1", "send_sms", "step-2"),
        (1, "else", "step-1.else-1", "send_sms", "step-1.else-2"),
        (1, None, "step-1.else-2", "exit", "exit"),
        (0, None, "step-2", "send_sms", "end"),
    ]
    assert detail.steps[0].settings == {"condition": {"tag": "vip", "present": True}}


def test_it_says_why_an_event_started_no_run(
    session: Session, session_factory: sessionmaker[Session], owner: Account
) -> None:
    contact(session, owner)
    outcome = service.send_event(session_factory, "shop", "1", "shipped", {})
    assert (outcome.started, outcome.reasons) == (0, ("no automation listens to event 'shipped'",))
    text = "name: Ship\ntrigger: {type: event, name: shipped}\nsteps: [{type: send_sms, body: Hi}]"
    automation(session, owner, text, active=False)
    outcome = service.send_event(session_factory, "shop", "1", "shipped", {})
    assert outcome.reasons == ("no active automation listens to event 'shipped': 'Ship' is draft",)
    service.change_status(session_factory, "shop", "Ship", "activate")
    first = service.send_event(session_factory, "shop", "1", "shipped", {"order_id": "A-1"})
    assert (first.started, first.reasons) == (1, ())
    again = service.send_event(session_factory, "shop", "1", "shipped", {})
    assert again.reasons == ("the contact is already enrolled in 'Ship' and its re-entry is once",)
    session.commit()
    assert session.query(AutomationRun).count() == 1


def test_it_prints_a_schema_with_every_trigger_and_step() -> None:
    schema = service.automation_schema()
    text = str(schema)
    for kind in (
        "list_subscribed",
        "tag_added",
        "field_changed",
        "event",
        "reply",
        "date",
        "bulk",
        "send_sms",
        "wait",
        "if_else",
        "add_tag",
        "remove_tag",
        "update_field",
        "subscribe",
        "unsubscribe",
        "goal",
        "exit",
        "transactional",
    ):
        assert f"'{kind}'" in text
    assert schema["title"] == "Sendline automation" and "$defs" in schema
