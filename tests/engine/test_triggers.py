"""Enrollment on both databases: every trigger, re-entry, bulk starts, date triggers in
the contact's zone, and the chain-depth guard between automations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine import date_triggers, triggers
from sendline.engine.actions import Actions
from sendline.engine.automations import Automations
from sendline.engine.definitions import Condition
from sendline.errors import Conflict, InvalidInput
from sendline.store.models import Account
from tests.engine.automation_factories import (
    NOON,
    Clock,
    account,
    automation,
    contact,
    define_fields,
    messages,
    runner,
    runs,
)

TAG_SMS = "steps: [{type: send_sms, body: 'Thanks %FIRSTNAME%'}]"


@pytest.fixture
def owner(session: Session) -> Account:
    return account(session)


def _make(session: Session, owner: Account, trigger: str, reentry: str = "once") -> int:
    text = f"name: {trigger!r}\ntrigger: {trigger}\nreentry: {reentry}\n{TAG_SMS}"
    return automation(session, owner, text).id


def test_it_handles_list_subscriptions(session: Session, owner: Account) -> None:
    automation_id = _make(session, owner, "{type: list_subscribed, list: Newsletter}")
    ada = contact(session, owner)
    actions = Actions(session, owner.id, now=NOON)
    assert actions.subscribe(ada.id, "Newsletter") == 1
    assert actions.subscribe(ada.id, "Newsletter") == 0  # already on it: nothing happens
    actions.unsubscribe(ada.id, "Newsletter")
    assert actions.subscribe(ada.id, "Newsletter") == 0  # re-entry once
    assert actions.subscribe(ada.id, "Other list") == 0
    session.commit()
    [run] = runs(session, automation_id)
    assert (run.contact_id, run.status, run.step_id) == (ada.id, "active", "step-1")
    assert run.due_at == NOON
    assert run.enrollment_key == f"{automation_id}:{ada.id}"


def test_it_handles_reentry_every_time(session: Session, owner: Account) -> None:
    automation_id = _make(session, owner, "{type: tag_added, tag: vip}", reentry="always")
    ada = contact(session, owner)
    actions = Actions(session, owner.id, now=NOON)
    for _ in range(3):
        assert actions.add_tag(ada.id, "vip") == 1
        actions.remove_tag(ada.id, "vip")
    session.commit()
    assert [r.enrollment_key for r in runs(session, automation_id)] == [None, None, None]


def test_it_handles_only_active_automations(session: Session, owner: Account) -> None:
    text = f"name: Draft\ntrigger: {{type: tag_added, tag: vip}}\n{TAG_SMS}"
    draft = automation(session, owner, text, active=False)
    paused = _make(session, owner, "{type: tag_added, tag: vip}")
    Automations(session, owner.id).pause(paused)
    session.commit()
    assert Actions(session, owner.id, now=NOON).add_tag(contact(session, owner).id, "vip") == 0
    assert runs(session, draft.id) == [] and runs(session, paused) == []


def test_it_handles_field_changes(session: Session, owner: Account) -> None:
    define_fields(session, owner, CITY="text", PLAN="text")
    any_change = _make(session, owner, "{type: field_changed, field: city}")
    to_gold = _make(session, owner, "{type: field_changed, field: PLAN, to: Gold}")
    ada = contact(session, owner)
    actions = Actions(session, owner.id, now=NOON)
    assert actions.update_fields(ada.id, {"CITY": "Paris"}) == 1
    assert actions.update_fields(ada.id, {"city": "Paris"}) == 0  # unchanged value
    assert actions.update_fields(ada.id, {"PLAN": "Silver"}) == 0
    assert actions.update_fields(ada.id, {"PLAN": "gold", "FIRSTNAME": "Ann"}) == 1
    session.commit()
    assert len(runs(session, any_change)) == 1 and len(runs(session, to_gold)) == 1
    with pytest.raises(InvalidInput):
        actions.update_fields(ada.id, {"NOPE": 1})


def test_it_handles_custom_events_with_their_payload(
    session: Session, session_factory: sessionmaker[Session], owner: Account
) -> None:
    text = (
        "name: Shipped\ntrigger: {type: event, name: order_shipped}\nreentry: always\n"
        "steps: [{type: send_sms, body: 'Order %EVENT.ORDER_ID% is on its way, %FIRSTNAME%'}]"
    )
    automation(session, owner, text)
    ada = contact(session, owner)
    actions = Actions(session, owner.id, now=NOON)
    assert actions.record_event(ada.id, "order_shipped", {"order_id": "A-17"}) == 1
    assert actions.record_event(ada.id, "order_paid", {"order_id": "A-17"}) == 0
    session.commit()
    runner(session_factory, Clock()).run_due()
    [message] = messages(session)
    assert message.body == "Order A-17 is on its way, Ada\nReply STOP to opt out"
    with pytest.raises(InvalidInput):
        triggers.on_event(session, owner.id, ada.id, "x", [1, 2], now=NOON)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("join", {"JOIN", "any"}),
        ("Join us!", {"JOIN US", "JOIN", "any"}),
        ("  JOIN-US  please", {"JOIN US", "JOIN", "any"}),
        ("rejoin", {"any"}),
        ("What are your hours?", {"any"}),
        ("STOP", set()),  # the inbound handler's business (R12)
        ("help", set()),
        ("please stop texting me", set()),  # a revocation never starts a sequence
    ],
)
def test_it_handles_replies(
    session: Session, owner: Account, body: str, expected: set[str]
) -> None:
    names = {"JOIN": "{type: reply, keyword: join}", "JOIN US": "{type: reply, keyword: Join Us}"}
    names["any"] = "{type: reply}"
    ids = {name: _make(session, owner, trigger) for name, trigger in names.items()}
    ada = contact(session, owner)
    created = triggers.on_reply(session, owner.id, ada.id, body, now=NOON)
    session.commit()
    assert created == len(expected)
    assert {name for name, i in ids.items() if runs(session, i)} == expected


def test_it_handles_bulk_starts(session: Session, owner: Account) -> None:
    text = (
        "name: Blast\ntrigger: {type: bulk, segment: {consent: opted_in}}\n"
        "steps: [{type: send_sms, body: Sale}]"
    )
    blast = automation(session, owner, text)
    ada = contact(session, owner, tags=["vip"])
    contact(session, owner, "+14158675310", tags=["vip"], consent=False)
    contact(session, owner, "+14158675311")
    vip: Condition = TypeAdapter(Condition).validate_python({"tag": "vip"})
    assert triggers.start_bulk(session, owner.id, blast.id, now=NOON, segment=vip) == 1
    assert triggers.start_bulk(session, owner.id, blast.id, now=NOON, segment=vip) == 0
    assert triggers.start_bulk(session, owner.id, blast.id, now=NOON) == 1  # the other one
    session.commit()
    found = runs(session, blast.id)
    assert found[0].contact_id == ada.id and found[0].context == {"depth": 0}
    assert {(r.status, r.step_id, r.steps_done, r.due_at) for r in found} == {
        ("active", "step-1", 0, NOON)
    }


def test_it_handles_bulk_starts_every_time(session: Session, owner: Account) -> None:
    text = "name: Blast\ntrigger: {type: bulk}\nreentry: always\nsteps: [{type: exit}]"
    blast = automation(session, owner, text)
    contact(session, owner)
    assert triggers.start_bulk(session, owner.id, blast.id, now=NOON) == 1
    assert triggers.start_bulk(session, owner.id, blast.id, now=NOON) == 1


def test_it_handles_bulk_starts_of_inactive_automations(session: Session, owner: Account) -> None:
    blast = automation(
        session, owner, "name: B\ntrigger: {type: bulk}\nsteps: [{type: exit}]", active=False
    )
    with pytest.raises(Conflict) as refused:
        triggers.start_bulk(session, owner.id, blast.id, now=NOON)
    assert refused.value.code == "automation_not_active"


def _birthday_automation(session: Session, owner: Account, trigger: str) -> int:
    define_fields(session, owner, BIRTHDAY="date")
    return automation(session, owner, f"name: Birthday\ntrigger: {trigger}\n{TAG_SMS}").id


def test_it_handles_birthdays_in_the_contact_time_zone(session: Session, owner: Account) -> None:
    automation_id = _birthday_automation(
        session, owner, "{type: date, field: BIRTHDAY, every_year: true, at: '09:00'}"
    )
    ada = contact(session, owner, fields={"BIRTHDAY": "1990-11-26"})  # San Francisco
    paris = contact(session, owner, "+33612345678", fields={"BIRTHDAY": "1985-11-26"})
    contact(session, owner, "+14158675311", fields={"BIRTHDAY": "1990-11-27"})
    # 2026-11-26 08:30 UTC: 09:30 in Paris, still the 25th in San Francisco.
    moment = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    assert date_triggers.scan_date_triggers(session, now=moment) == 1
    assert date_triggers.scan_date_triggers(session, now=moment + timedelta(hours=1)) == 0
    # 17:05 UTC is 09:05 in San Francisco.
    assert (
        date_triggers.scan_date_triggers(session, now=datetime(2026, 11, 26, 17, 5, tzinfo=UTC))
        == 1
    )
    session.commit()
    found = runs(session, automation_id)
    assert [r.contact_id for r in found] == [paris.id, ada.id]
    assert found[1].enrollment_key == f"{automation_id}:{ada.id}:2026-11-26"
    next_year = datetime(2027, 11, 26, 17, 5, tzinfo=UTC)
    assert date_triggers.scan_date_triggers(session, now=next_year) == 2  # every anniversary


def test_it_handles_days_before_a_date(session: Session, owner: Account) -> None:
    automation_id = _birthday_automation(
        session, owner, "{type: date, field: BIRTHDAY, offset_days: -3, at: '10:00'}"
    )
    ada = contact(session, owner, fields={"BIRTHDAY": "2026-12-01"})
    contact(session, owner, "+14158675311", fields={"BIRTHDAY": "2027-12-01"})  # not a birthday
    early = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)  # 09:00 in San Francisco
    assert date_triggers.scan_date_triggers(session, now=early) == 0
    assert date_triggers.scan_date_triggers(session, now=early + timedelta(hours=1)) == 1
    late = datetime(2026, 11, 29, 17, 30, tzinfo=UTC)  # a scan that was down catches up
    assert date_triggers.scan_date_triggers(session, now=late) == 0  # ... but only once
    session.commit()
    assert [r.contact_id for r in runs(session, automation_id)] == [ada.id]


def test_it_handles_leap_day_birthdays(session: Session, owner: Account) -> None:
    _birthday_automation(session, owner, "{type: date, field: BIRTHDAY, every_year: true}")
    contact(session, owner, "+447400123456", fields={"BIRTHDAY": "2000-02-29"})  # London
    moment = datetime(2027, 2, 28, 9, 30, tzinfo=UTC)
    assert date_triggers.scan_date_triggers(session, now=moment) == 1


def test_it_handles_chains_of_automations_without_looping(
    session: Session, session_factory: sessionmaker[Session], owner: Account
) -> None:
    ping = (
        "name: Ping\ntrigger: {type: tag_added, tag: ping}\nreentry: always\n"
        "steps: [{type: remove_tag, tag: pong}, {type: add_tag, tag: pong}]"
    )
    pong = ping.replace("Ping", "Pong").replace("pong", "PING").replace("ping", "pong")
    pong = pong.replace("PING", "ping")
    automation(session, owner, ping)
    automation(session, owner, pong)
    ada = contact(session, owner)
    Actions(session, owner.id, now=NOON).add_tag(ada.id, "ping")
    session.commit()
    runner(session_factory, Clock()).run_due()
    found = runs(session)
    assert len(found) == triggers.MAX_DEPTH + 1
    assert sorted(r.context["depth"] for r in found) == list(range(triggers.MAX_DEPTH + 1))
    assert {r.status for r in found} == {"completed"}


def test_it_handles_waking_sleeping_runs(session: Session, owner: Account) -> None:
    text = "name: W\ntrigger: {type: bulk}\nsteps: [{type: wait, duration: 2d}, {type: exit}]"
    waiting = automation(session, owner, text)
    ada = contact(session, owner)
    triggers.start_bulk(session, owner.id, waiting.id, now=NOON)
    [run] = runs(session)
    run.due_at = run.wait_until = NOON + timedelta(days=2)
    session.commit()
    assert triggers.wake_runs(session, ada.id, now=NOON) == 1
    assert triggers.wake_runs(session, ada.id, now=NOON) == 0
    session.commit()
    assert runs(session)[0].due_at == NOON
