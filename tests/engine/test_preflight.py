"""Pre-flight on both databases: sent vs held by reason, segments and credits by country,
quiet-hours deferrals, a sample of held numbers, and not a single row written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendline.engine import triggers
from sendline.engine.definitions import Condition
from sendline.engine.preflight import preflight
from sendline.store.accounts import Accounts
from sendline.store.engine_models import AutomationRun, Message
from sendline.store.models import Account, Contact, LedgerEntry
from tests.engine.automation_factories import account, automation, contact, define_fields

EARLY = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # 06:00 in San Francisco, 14:00 in London
BLAST = "name: Blast\ntrigger: {type: bulk}\nsteps: [{type: send_sms, body: 'Hi %FIRSTNAME%'}]"


@pytest.fixture
def owner(session: Session) -> Account:
    return account(session, credits=100, credit_rates={"default": 1, "GB": 2}, frequency_cap=1)


def _audience(session: Session, owner: Account) -> dict[str, Contact]:
    people = {
        "us1": contact(session, owner, "+14158675301", tags=["vip"]),
        "us2": contact(session, owner, "+14158675302"),
        "us3": contact(session, owner, "+14158675303"),
        "gb": contact(session, owner, "+44 7400 123456", tags=["vip"]),
        "no_consent": contact(session, owner, "+14158675304", consent=False),
        "invalid": contact(session, owner, "06 12 34 56 78"),
        "landline": contact(session, owner, "+33 1 42 68 53 00"),
        "capped": contact(session, owner, "+14158675305"),
    }
    session.add(
        Message(
            account_id=owner.id,
            contact_id=people["capped"].id,
            kind="marketing",
            status="sent",
            created_at=EARLY - timedelta(hours=3),
            updated_at=EARLY,
        )
    )
    session.commit()
    return people


def _rows(session: Session) -> tuple[int, ...]:
    counts = tuple(
        int(session.scalar(select(func.count()).select_from(table)) or 0)
        for table in (Message, AutomationRun, LedgerEntry)
    )
    session.commit()
    return counts


def test_it_handles_a_full_forecast(session: Session, owner: Account) -> None:
    people = _audience(session, owner)
    automation(session, owner, BLAST)
    before = _rows(session)
    report = preflight(session, owner.id, "Blast", now=EARLY)
    assert not session.new and not session.dirty
    session.commit()
    assert _rows(session) == before  # reads only
    assert (report.audience, report.to_send, report.held_total) == (8, 4, 4)
    assert report.held == {
        "no_consent": 1,
        "invalid_phone": 1,
        "landline": 1,
        "frequency_cap": 1,
    }
    countries = {c.region: (c.messages, c.segments, c.credits) for c in report.by_country}
    assert countries == {"US": (3, 3, 3), "GB": (1, 1, 2)}
    assert report.by_country[0].region == "US"  # the biggest spend first
    assert (report.credits_needed, report.credits_available, report.segments) == (5, 100, 4)
    assert report.quiet_hours_deferred == 3  # the US contacts wait for 08:00 local
    assert report.latest_deferral == datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
    sample = {s.reason: s.phone for s in report.sample_held}
    assert sample == {
        "no_consent": "+14158675304",
        "invalid_phone": "06 12 34 56 78",  # as stored (R6): what the user must fix
        "landline": "+33 1 42 68 53 00",
        "frequency_cap": "+14158675305",
    }
    assert {s.contact_id for s in report.sample_held} == {
        people[k].id for k in ("no_consent", "invalid", "landline", "capped")
    }
    data = report.to_dict()
    assert json.loads(json.dumps(data))["held_total"] == 4
    assert data["step_id"] == "step-1" and data["steps"][0]["sendable"] == 5


def test_it_handles_running_out_of_credits(session: Session) -> None:
    owner = account(session, credits=4, credit_rates={"default": 1, "GB": 2})
    for phone in ("+14158675301", "+14158675302", "+14158675303", "+447400123456"):
        contact(session, owner, phone)
    automation(session, owner, BLAST)
    report = preflight(session, owner.id, "Blast", now=EARLY)
    assert (report.to_send, report.credits_needed) == (3, 3)
    assert report.held == {"insufficient_credits": 1}
    assert "2 credits needed, 1 left" in report.sample_held[0].detail


def test_it_handles_segments(session: Session, owner: Account) -> None:
    _audience(session, owner)
    automation(session, owner, BLAST)
    vip: Condition = TypeAdapter(Condition).validate_python({"tag": "vip"})
    report = preflight(session, owner.id, "Blast", segment=vip, now=EARLY)
    assert (report.audience, report.to_send, report.held) == (2, 2, {})
    assert report.credits_needed == 3


def test_it_handles_list_triggers_and_contacts_already_enrolled(
    session: Session, owner: Account
) -> None:
    text = BLAST.replace("{type: bulk}", "{type: list_subscribed, list: Club}")
    club = automation(session, owner, text)
    first = contact(session, owner, "+14158675301", lists=["Club"])
    contact(session, owner, "+14158675302", lists=["Club"])
    contact(session, owner, "+14158675303")
    triggers.on_list_subscribed(session, owner.id, first.id, "Club", now=EARLY)
    session.commit()
    report = preflight(session, owner.id, club.id, now=EARLY)
    assert (report.audience, report.already_enrolled, report.to_send) == (1, 1, 1)


def test_it_handles_a_sample_of_every_reason(session: Session, owner: Account) -> None:
    for i in range(12):
        contact(session, owner, f"+1415555{i:04d}", consent=False)
    for phone in ("+33 1 42 68 53 00", "+33 1 42 68 53 01"):
        contact(session, owner, phone)
    automation(session, owner, BLAST)
    report = preflight(session, owner.id, "Blast", now=EARLY)
    assert report.held == {"no_consent": 12, "landline": 2}
    reasons = [s.reason for s in report.sample_held]
    assert len(reasons) == 10 and reasons.count("landline") == 2


def test_it_handles_later_steps_and_waits(session: Session, owner: Account) -> None:
    define_fields(session, owner, NOTE="text")
    contact(session, owner, "+14158675301", fields={"NOTE": "short"})
    contact(session, owner, "+14158675302", fields={"NOTE": "n" * 170})
    text = (
        "name: Drip\ntrigger: {type: tag_added, tag: lead}\nreentry: always\n"
        "steps: [{type: wait, duration: 3h}, {type: send_sms, body: Hello},"
        " {type: wait, duration: 1d}, {type: send_sms, body: 'Note: %NOTE%'}]"
    )
    automation(session, owner, text)
    report = preflight(session, owner.id, "Drip", now=EARLY)
    assert report.audience == 0  # nobody holds the tag yet
    contact(session, owner, "+14158675303", tags=["lead"], fields={"NOTE": "n" * 170})
    report = preflight(session, owner.id, "Drip", now=EARLY)
    assert report.send_at == EARLY + timedelta(hours=3)
    assert report.quiet_hours_deferred == 0  # 09:00 in San Francisco by then
    second = report.steps[1]
    assert (second.step_id, second.sendable, second.held) == ("step-4", 0, {"too_long": 1})


def test_it_handles_automations_without_sms(session: Session, owner: Account) -> None:
    automation(session, owner, "name: Tag\ntrigger: {type: bulk}\nsteps: [{type: add_tag, tag: x}]")
    contact(session, owner)
    report = preflight(session, owner.id, "Tag", now=EARLY)
    assert (report.audience, report.to_send, report.step_id) == (1, 0, None)
    assert any("no send_sms step" in note for note in report.notes)


def test_it_handles_the_clause_policy_as_the_blast_does(session: Session) -> None:
    """Preflight runs the blast's own checks (`check_batch`): a contact who had the clause
    this month gets none (account policy "every 30 days"), so 150 characters are one
    segment in the forecast, exactly as they will be when sent; with the clause, two."""
    owner = account(session, max_segments=2)
    Accounts(session).update_settings(owner.id, optout_clause_policy="every_30_days")
    told = contact(session, owner, "+14158675301")
    contact(session, owner, "+14158675302")  # never told: the clause, two segments
    session.add(
        Message(
            account_id=owner.id,
            contact_id=told.id,
            kind="marketing",
            status="delivered",
            clause_included=True,
            created_at=EARLY - timedelta(days=3),
            updated_at=EARLY,
        )
    )
    session.commit()
    body = "x" * 150
    automation(
        session,
        owner,
        f"name: Long\ntrigger: {{type: bulk}}\nsteps: [{{type: send_sms, body: '{body}'}}]",
    )
    before = _rows(session)
    report = preflight(session, owner.id, "Long", now=EARLY)
    assert (report.to_send, report.held, report.segments) == (2, {}, 1 + 2)
    assert _rows(session) == before  # nothing written
