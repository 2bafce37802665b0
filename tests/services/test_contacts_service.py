"""The contacts service on both databases: changes fire triggers, consent keeps its proof,
and bad input is refused with a code and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import Conflict, InvalidInput, NotFound, SendlineError
from sendline.services import contacts as service
from sendline.services.contact_queries import contact_names
from sendline.store.contacts import Contacts
from sendline.store.engine_models import AutomationRun
from sendline.store.models import Account, ConsentEvent, Contact
from tests.engine.automation_factories import automation
from tests.engine.factories import make_account

DISCLOSURE = "Acme: 4 texts a month. Reply STOP to opt out."


@pytest.fixture
def owner(session: Session) -> Account:
    return make_account(session)


def _listen(session: Session, owner: Account, trigger: str) -> int:
    text = f"name: {trigger!r}\ntrigger: {trigger}\nsteps: [{{type: send_sms, body: Hi}}]"
    return automation(session, owner, text).id


def _runs(session: Session, automation_id: int) -> int:
    query = select(func.count()).where(AutomationRun.automation_id == automation_id)
    count = int(session.scalar(query) or 0)
    session.commit()
    return count


def test_it_fires_tag_list_and_field_triggers_for_created_and_changed_contacts(
    session: Session, session_factory: sessionmaker[Session], owner: Account
) -> None:
    Contacts(session, owner.id).define_field("PLAN")
    session.commit()
    tagged = _listen(session, owner, "{type: tag_added, tag: vip}")
    listed = _listen(session, owner, "{type: list_subscribed, list: Newsletter}")
    field = _listen(session, owner, "{type: field_changed, field: PLAN, to: gold}")
    created = service.create(
        session_factory, owner.name, email="ann@example.com", tags=["vip"], lists=["Newsletter"]
    )
    assert created.runs_started == 2 and created.contact.tags == ["vip"]
    assert (
        service.update(
            session_factory, None, "ann@example.com", fields={"PLAN": "gold"}
        ).runs_started
        == 1
    )
    bob = service.create(session_factory, None, email="bob@example.com").contact
    assert service.tag(session_factory, None, str(bob.id), ["vip", "new"]).runs_started == 1
    assert service.subscribe(session_factory, None, str(bob.id), "Newsletter").runs_started == 1
    assert (_runs(session, tagged), _runs(session, listed), _runs(session, field)) == (2, 2, 1)
    untagged = service.untag(session_factory, None, str(bob.id), ["vip"])
    assert untagged.changed and untagged.contact.tags == ["new"]
    left = service.unsubscribe(session_factory, None, str(bob.id), "Newsletter")
    assert left.contact.lists == []
    assert not service.unsubscribe(session_factory, None, str(bob.id), "Newsletter").changed
    with pytest.raises(NotFound):
        service.unsubscribe(session_factory, None, str(bob.id), "No such list")
    listed_vip = service.list_contacts(session_factory, None, tag="vip")
    assert [c.email for c in listed_vip] == ["ann@example.com"]
    assert [
        c.email for c in service.list_contacts(session_factory, None, limit=1, after=bob.id - 1)
    ] == ["bob@example.com"]


def test_it_records_consent_captured_elsewhere_with_its_proof(
    session_factory: sessionmaker[Session], owner: Account
) -> None:
    ann = service.create(session_factory, None, email="ann@example.com", phone="415 867 5309")
    ref = str(ann.contact.id)
    event = service.record_consent(
        session_factory,
        None,
        ref,
        kind="opt_in",
        method="form",
        disclosure=DISCLOSURE,
        ip="203.0.113.7",
        user_agent="Mozilla/5.0",
        source="paper form, shop 12",
        recorded_by="alice",
    )
    assert (event.kind, event.method, event.ip, event.recorded_by) == (
        "opt_in",
        "form",
        "203.0.113.7",
        "alice",
    )
    assert service.show(session_factory, None, ref).sms_consent == "opted_in"
    service.record_consent(
        session_factory,
        None,
        ref,
        kind="opt_out",
        method="agent",
        disclosure=None,
        recorded_by="bob",
    )
    history = service.consent_history(session_factory, None, ref)
    assert history.contact.sms_consent == "opted_out"
    assert [(e.kind, e.recorded_by) for e in history.events] == [
        ("opt_in", "alice"),
        ("opt_out", "bob"),
    ]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"method": "paper"}, "bad_consent_method"),
        ({"disclosure": None}, "disclosure_required"),
        ({"disclosure": "  "}, "disclosure_required"),
        ({"ip": "not an ip"}, "bad_ip"),
        ({"ref": "nobody@example.com"}, "not_found"),
        ({"ref": "999999"}, "not_found"),
    ],
)
def test_it_refuses_bad_consent_records_without_writing(
    session: Session,
    session_factory: sessionmaker[Session],
    owner: Account,
    change: dict[str, str | None],
    code: str,
) -> None:
    service.create(session_factory, None, email="ann@example.com")
    values: dict[str, str | None] = {
        "ref": "ann@example.com",
        "method": "form",
        "disclosure": DISCLOSURE,
        "ip": None,
        **change,
    }
    with pytest.raises(SendlineError) as raised:
        service.record_consent(
            session_factory,
            None,
            str(values["ref"]),
            kind="opt_in",
            method=str(values["method"]),
            disclosure=values["disclosure"],
            ip=values["ip"],
            recorded_by="alice",
        )
    assert raised.value.code == code
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0


def test_it_deletes_a_contact_without_history_and_refuses_one_with(
    session: Session, session_factory: sessionmaker[Session], owner: Account
) -> None:
    ann = service.create(session_factory, None, email="ann@example.com", tags=["x"], lists=["L"])
    assert service.delete(session_factory, None, "ann@example.com") == ann.contact.id
    bob = service.create(session_factory, None, email="bob@example.com").contact
    service.record_consent(
        session_factory,
        None,
        str(bob.id),
        kind="opt_out",
        method="agent",
        disclosure=None,
        recorded_by="a",
    )
    with pytest.raises(Conflict) as raised:
        service.delete(session_factory, None, str(bob.id))
    assert raised.value.code == "contact_has_history"
    emails = session.scalars(select(Contact.email).where(Contact.account_id == owner.id)).all()
    assert emails == ["bob@example.com"]


def test_it_refuses_a_contact_without_email_or_phone_and_bad_fields(
    session: Session, session_factory: sessionmaker[Session], owner: Account
) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.create(session_factory, None, first_name="Nobody")
    assert raised.value.code == "no_identity"
    with pytest.raises(InvalidInput):
        service.create(session_factory, None, email="ann@example.com", fields={"NOPE": "x"})
    assert session.scalar(select(func.count()).select_from(Contact)) == 0  # all or nothing
    session.commit()
    service.create(session_factory, None, email="ann@example.com")
    with pytest.raises(InvalidInput) as raised:
        service.update(session_factory, None, "ann@example.com", email="")
    assert raised.value.code == "no_identity"
    assert service.show(session_factory, None, "ann@example.com").email == "ann@example.com"


def test_it_names_a_page_of_contacts_in_one_query_within_the_account(
    session: Session, session_factory: sessionmaker[Session], owner: Account
) -> None:
    other = make_account(session, "other")
    session.commit()
    ada = service.create(session_factory, owner.id, phone="+14155550101", first_name="Ada")
    bare = service.create(session_factory, owner.id, phone="+14155550102")
    mail = service.create(session_factory, owner.id, email="bo@example.com", last_name="Bo")
    theirs = service.create(session_factory, other.id, phone="+14155550103", first_name="Eve")
    ids = [ada.contact.id, bare.contact.id, mail.contact.id, theirs.contact.id, 10**12]
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))  # the SQL of each statement the query runs

    engine = session_factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        names = contact_names(session_factory, owner.id, ids + ids)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert names == {ada.contact.id: "Ada", bare.contact.id: "+14155550102", mail.contact.id: "Bo"}
    assert sum("FROM contacts" in sql for sql in statements) == 1
    assert contact_names(session_factory, owner.id, []) == {}
