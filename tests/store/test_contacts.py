"""Contacts (R5, R6): stored as submitted, derived phone columns, uniqueness, fields."""

from __future__ import annotations

import pytest
from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.errors import Conflict, InvalidInput, NotFound
from sendline.sms.phone import check_phone, time_zone_for
from sendline.store.contact_values import derive_phone
from sendline.store.contacts import Contacts
from sendline.store.models import Contact
from tests.store.conftest import MakeAccount


def test_it_handles_a_phone_stored_exactly_as_submitted(
    session: Session, make_account: MakeAccount
) -> None:
    contacts = Contacts(session, make_account().id)
    contact = contacts.create(email=" Ann@Example.COM ", first_name=" Ann ", phone="(415) 892-1234")
    session.commit()
    stored = session.scalars(select(Contact).where(Contact.id == contact.id)).one()
    assert stored.phone == "(415) 892-1234"
    assert stored.email == "ann@example.com"
    assert stored.first_name == "Ann"
    assert stored.phone_e164 == "+14158921234"
    assert (stored.phone_status, stored.phone_region) == ("ok", "US")
    assert stored.time_zone == "America/Los_Angeles"
    assert stored.sms_consent == "none"
    assert stored.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("06 12 34 56 78", "invalid_phone"),
        ("+44 20 7946 0958", "landline"),
        ("+33 6 12 34 56 78", "ok"),
        ("", "no_phone"),
    ],
)
def test_it_handles_held_numbers_with_their_reason(
    session: Session, make_account: MakeAccount, raw: str, status: str
) -> None:
    contact = Contacts(session, make_account().id).create(email="x@example.com", phone=raw)
    assert contact.phone_status == status
    assert contact.phone_e164 == check_phone(raw).e164
    assert contact.phone == (raw or None)
    if status == "ok":
        assert contact.time_zone == "Europe/Paris"
    else:
        assert contact.time_zone is None


def test_it_refuses_duplicates_within_an_account_only(
    session: Session, make_account: MakeAccount
) -> None:
    a, b = make_account(), make_account()
    Contacts(session, a.id).create(email="ann@example.com", phone="415 892 1234")
    with pytest.raises(Conflict):
        Contacts(session, a.id).create(email="ANN@example.com")
    with pytest.raises(Conflict):
        Contacts(session, a.id).create(phone="+1 (415) 892-1234")  # same number, other format
    other = Contacts(session, b.id).create(email="ann@example.com", phone="4158921234")
    session.commit()
    assert other.phone == "4158921234" and other.phone_e164 == "+14158921234"


def test_it_handles_updates_and_keeps_timestamps_when_nothing_changes(
    session: Session, make_account: MakeAccount
) -> None:
    contacts = Contacts(session, make_account().id)
    contact = contacts.create(email="ann@example.com", phone="415 892 1234")
    session.commit()
    stamp = contact.updated_at
    contacts.update(contact.id, email="ANN@example.com ", phone="415 892 1234")
    assert contact.updated_at == stamp
    contacts.update(contact.id, phone="+33 6 12 34 56 78", last_name="Lee")
    assert contact.updated_at > stamp
    assert (contact.phone, contact.phone_e164, contact.time_zone) == (
        "+33 6 12 34 56 78",
        "+33612345678",
        "Europe/Paris",
    )
    bob = contacts.create(email="bob@example.com")
    with pytest.raises(Conflict):
        contacts.update(bob.id, phone="+33612345678")


def test_it_handles_custom_fields_and_never_uses_a_phone_field_as_destination(
    session: Session, make_account: MakeAccount
) -> None:
    contacts = Contacts(session, make_account().id)
    contacts.define_field("WORK_PHONE", label="Work phone", type="phone")
    contacts.define_field("AGE", type="number")
    contacts.define_field("BIRTHDAY", type="date")
    contact = contacts.create(
        email="ann@example.com",
        fields={"WORK_PHONE": "(415) 892-1234", "AGE": "42", "BIRTHDAY": "1990-02-03"},
    )
    assert contact.fields == {"WORK_PHONE": "(415) 892-1234", "AGE": 42, "BIRTHDAY": "1990-02-03"}
    assert contact.phone is None and contact.phone_e164 is None
    assert contact.phone_status == "no_phone"  # R5: the work phone is never dialled
    contacts.update(contact.id, fields={"AGE": 43.5, "BIRTHDAY": None})
    assert contact.fields == {"WORK_PHONE": "(415) 892-1234", "AGE": 43.5}
    for bad in ({"AGE": "old"}, {"BIRTHDAY": "03/02/1990"}, {"NOPE": "x"}):
        with pytest.raises(InvalidInput):
            contacts.update(contact.id, fields=bad)
    with pytest.raises(InvalidInput):
        contacts.define_field("work phone")
    with pytest.raises(Conflict):
        contacts.define_field("AGE", type="text")


def test_it_handles_tags_and_lists(session: Session, make_account: MakeAccount) -> None:
    contacts = Contacts(session, make_account().id)
    contact = contacts.create(email="ann@example.com", tags=["vip", "vip", " new "])
    contacts.add_to_list(contact.id, "Newsletter")
    contacts.add_to_list(contact.id, "Newsletter")
    assert contacts.tags(contact.id) == ["new", "vip"]
    assert contacts.lists(contact.id) == ["Newsletter"]
    assert contacts.members("Newsletter") == [contact.id]
    contacts.remove_tags(contact.id, ["new"])
    contacts.remove_from_list(contact.id, "Newsletter")
    assert contacts.tags(contact.id) == ["vip"]
    assert contacts.lists(contact.id) == []
    with pytest.raises(InvalidInput):
        contacts.add_tags(contact.id, ["a;b"])


def test_it_refuses_bad_contacts(session: Session, make_account: MakeAccount) -> None:
    contacts = Contacts(session, make_account().id)
    with pytest.raises(InvalidInput) as caught:
        contacts.create(email="not-an-email")
    assert caught.value.code == "bad_email"
    with pytest.raises(InvalidInput) as caught:
        contacts.create(first_name="Nobody")
    assert caught.value.code == "no_identity"
    with pytest.raises(InvalidInput):
        contacts.create(email="a@example.com", first_name="x" * 101)


def test_it_handles_lookup_by_id_email_or_phone(
    session: Session, make_account: MakeAccount
) -> None:
    contacts = Contacts(session, make_account().id)
    contact = contacts.create(email="ann@example.com", phone="415 892 1234")
    for ref in (str(contact.id), "ANN@example.com", "+14158921234", "(415) 892-1234"):
        assert contacts.resolve(ref).id == contact.id
    with pytest.raises(NotFound):
        contacts.resolve("bob@example.com")
    assert contacts.count() == 1
    assert [c.id for batch in contacts.iter_contacts(batch_size=1) for c in batch] == [contact.id]


def test_it_handles_derived_time_zones_like_the_rule_core() -> None:
    for raw in ("212 736 5000", "+44 7911 123456", "+61 412 345 678", "+1 800 555 1234"):
        facts = derive_phone(raw)
        assert facts.e164 is not None
        assert facts.time_zone == time_zone_for(facts.e164)


def test_it_requires_a_resolved_contact_again_once_deleted_or_in_another_account(
    session: Session, make_account: MakeAccount
) -> None:
    # `require` skips its query for the contact `resolve` loaded in the same transaction
    # (an API event does both): never for another account, another transaction or a
    # contact deleted since.
    a, b = make_account(), make_account()
    contacts = Contacts(session, a.id)
    ann = contacts.create(email="ann@example.com")
    bob = contacts.create(email="bob@example.com")
    session.commit()
    assert contacts.resolve(str(ann.id)) is ann
    contacts.require(ann.id)
    with pytest.raises(NotFound):
        Contacts(session, b.id).require(ann.id)
    session.delete(ann)
    session.flush()
    with pytest.raises(NotFound):
        contacts.require(ann.id)
    session.commit()

    assert contacts.resolve(str(bob.id)) is bob
    session.commit()
    session.execute(sql_delete(Contact).where(Contact.id == bob.id))
    with pytest.raises(NotFound):
        contacts.require(bob.id)
