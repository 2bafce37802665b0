"""A CSV import through the service: its tags and lists start automations (set-based,
once), and contacts stored with a phone no one can text get their messages held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.importing.importer import ImportOptions
from sendline.services import contacts as service
from sendline.store.contacts import Contacts
from sendline.store.engine_models import AutomationRun, Message
from sendline.store.models import Account
from tests.engine.automation_factories import Clock, automation, runner
from tests.engine.factories import make_account
from tests.store.test_import import DISCLOSURE, write_csv

HEADER = ["email", "first_name", "phone", "consent", "tags", "lists"]


def _welcome(session: Session, owner: Account, trigger: str, name: str) -> int:
    text = f"name: {name}\ntrigger: {trigger}\nsteps: [{{type: send_sms, body: 'Hi %FIRSTNAME%'}}]"
    return automation(session, owner, text).id


def _import(
    sessions: sessionmaker[Session], owner: Account, path: Path, batch_size: int = 5000
) -> service.ImportResult:
    options = ImportOptions(
        disclosure=DISCLOSURE, report_path=path.with_suffix(".report.csv"), batch_size=batch_size
    )
    return service.import_contacts(sessions, owner.name, path, options)


def _runs(session: Session, automation_id: int) -> list[int]:
    query = select(AutomationRun.contact_id).where(AutomationRun.automation_id == automation_id)
    found = sorted(session.scalars(query))
    session.commit()
    return found


def test_it_starts_the_automations_of_an_imports_tags_and_lists_once(
    session: Session, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    owner = make_account(session)
    newsletter = _welcome(session, owner, "{type: list_subscribed, list: Newsletter}", "Welcome")
    vip = _welcome(session, owner, "{type: tag_added, tag: vip}", "VIP")
    known = Contacts(session, owner.id).create(email="old@example.com", tags=["vip"])
    session.commit()
    rows = [HEADER]
    rows += [
        [f"u{i}@example.com", "U", f"+1415555{i:04d}", "yes", "vip", "Newsletter"] for i in range(5)
    ]
    rows += [["old@example.com", "Old", "", "", "vip;new", "Newsletter;Other"]]
    path = write_csv(tmp_path / "list.csv", rows)
    result = _import(session_factory, owner, path, batch_size=2)  # across batches
    assert result.report.runs_started == 6 + 5  # Newsletter: all six; vip: the five new
    contacts = Contacts(session, owner.id)
    everyone = sorted([known.id, *(contacts.resolve(f"u{i}@example.com").id for i in range(5))])
    assert _runs(session, newsletter) == everyone
    assert _runs(session, vip) == [c for c in everyone if c != known.id]
    again = _import(session_factory, owner, path, batch_size=2)
    assert again.report.runs_started == 0 and again.report.updated == 0
    assert len(_runs(session, newsletter)) == 6


def test_it_holds_the_messages_of_imported_contacts_whose_phone_cannot_be_texted(
    session: Session, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    owner = make_account(session)
    _welcome(session, owner, "{type: list_subscribed, list: Newsletter}", "Welcome")
    path = write_csv(
        tmp_path / "list.csv",
        [
            HEADER,
            ["ann@example.com", "Ann", "+1 415 867 5309", "yes", "", "Newsletter"],
            ["dan@example.com", "Dan", "06 12 34 56 78", "yes", "", "Newsletter"],
            ["eve@example.com", "Eve", "+33 1 42 68 53 00", "yes", "", "Newsletter"],
        ],
    )
    report = _import(session_factory, owner, path).report
    assert (report.created, report.flagged, report.rejected) == (3, 2, 0)
    assert report.flags == {"invalid_phone": 1, "landline": 1}
    runner(session_factory, Clock(datetime.now(UTC) + timedelta(seconds=1))).run_due()
    contacts = Contacts(session, owner.id)
    held = {
        contacts.get(m.contact_id).email: (m.status, m.held_reason)
        for m in session.scalars(select(Message).where(Message.account_id == owner.id))
        if m.contact_id is not None
    }
    assert held["dan@example.com"] == ("held", "invalid_phone")
    assert held["eve@example.com"] == ("held", "landline")
    assert held["ann@example.com"][0] != "held"
