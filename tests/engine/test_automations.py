"""Saving automations: validation at save time (R9, R10, tags), versions, the lifecycle
and R1 at activation, on both databases."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session

from sendline.engine.automations import Automations, fold_keyword, trigger_key
from sendline.engine.definitions import InvalidAutomation, parse_definition
from sendline.errors import Conflict, NotFound, SendlineError
from sendline.store.accounts import Accounts
from sendline.store.models import Account
from tests.engine.automation_factories import account, define_fields

WELCOME = """
name: Welcome
trigger: {type: list_subscribed, list: Newsletter}
steps:
  - {type: send_sms, body: "Hi %FIRSTNAME|there%, welcome! See %CITY% deals."}
  - {type: wait, duration: 1d}
  - {type: if_else, condition: {field: CITY, op: eq, value: Paris}, then: paris}
  - {type: exit}
  - {id: paris, type: send_sms, body: "Bonjour from Paris"}
"""


@pytest.fixture
def owner(session: Session) -> Account:
    created = account(session)
    define_fields(session, created, CITY="text")
    return created


def _sms(body: str, trigger: str = "{type: bulk}") -> str:
    return f"name: T\ntrigger: {trigger}\nsteps:\n  - type: send_sms\n    body: {body!r}\n"


def test_it_handles_a_new_automation(session: Session, owner: Account) -> None:
    automations = Automations(session, owner.id)
    saved = automations.create(WELCOME)
    session.commit()
    found = automations.resolve("Welcome")
    assert (found.id, found.status, found.trigger_type, found.trigger_key) == (
        saved.automation.id,
        "draft",
        "list_subscribed",
        "Newsletter",
    )
    assert saved.version.number == 1 and saved.warnings == ()
    assert automations.resolve(str(found.id)) is found
    assert automations.definition(found) == parse_definition(WELCOME)
    assert [a.name for a in automations.list()] == ["Welcome"]
    assert automations.list("active") == []
    with pytest.raises(NotFound):
        automations.resolve("Nope")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("Hi %FIRSTNAME%, your %COUNTRY% deal", "step step-1: %COUNTRY% is not a field"),
        ("Sale! bit.ly/deal", "step step-1: bit.ly/deal uses the public link shortener bit.ly"),
        ("x" * 150, "step step-1: with the opt-out clause the message is 172"),
        ("%EVENT.ORDER% shipped", "%EVENT.ORDER% is not a field"),  # no payload on bulk
        ("   ", "step step-1: the message has no text"),
    ],
)
def test_it_handles_bad_bodies_at_save_time(
    session: Session, owner: Account, body: str, problem: str
) -> None:
    with pytest.raises(InvalidAutomation) as caught:
        Automations(session, owner.id).create(_sms(body))
    assert caught.value.code == "invalid_automation"
    assert problem in caught.value.message


def test_it_handles_bodies_that_only_personalization_makes_long(
    session: Session, owner: Account
) -> None:
    # 130 characters of text plus tags: fine when CITY is short, held per contact if not.
    body = "y" * 130 + " %CITY%%CITY%%CITY%"
    saved = Automations(session, owner.id).create(_sms(body))
    assert any("may be too long once personalized" in w for w in saved.warnings)


def test_it_handles_event_payload_tags(session: Session, owner: Account) -> None:
    trigger = "{type: event, name: order_shipped}"
    saved = Automations(session, owner.id).create(_sms("Order %EVENT.ORDER_ID% shipped", trigger))
    assert saved.automation.trigger_key == "order_shipped"


def test_it_handles_unicode_warnings(session: Session, owner: Account) -> None:
    saved = Automations(session, owner.id).create(_sms("Soldes d’été"))
    assert any("UCS-2" in w for w in saved.warnings)


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ("[{type: if_else, condition: {field: CITTY, value: x}}]", "unknown field 'CITTY'"),
        ("[{type: goal, condition: {field: CITY, op: gt}}]", "CITY gt needs a value"),
        ("[{type: goal, condition: {field: CITY, op: contains, value: 3}}]", "text value"),
        ("[{type: update_field, field: PLAN, value: x}]", "cannot update unknown field 'PLAN'"),
    ],
)
def test_it_handles_bad_conditions(
    session: Session, owner: Account, steps: str, problem: str
) -> None:
    with pytest.raises(InvalidAutomation, match=problem):
        Automations(session, owner.id).create(f"name: T\ntrigger: {{type: bulk}}\nsteps: {steps}")


def test_it_handles_a_date_trigger_on_an_unknown_field(session: Session, owner: Account) -> None:
    text = "name: T\ntrigger: {type: date, field: BIRTHDAY}\nsteps: [{type: exit}]"
    with pytest.raises(InvalidAutomation, match="BIRTHDAY"):
        Automations(session, owner.id).create(text)


def test_it_handles_duplicate_names(session: Session, owner: Account) -> None:
    automations = Automations(session, owner.id)
    automations.create(WELCOME)
    with pytest.raises(Conflict):
        automations.create(WELCOME)
    other = account(session, "other")
    define_fields(session, other, CITY="text")
    Automations(session, other.id).create(WELCOME)  # names are per account


def test_it_handles_edits_of_a_draft_in_place(session: Session, owner: Account) -> None:
    automations = Automations(session, owner.id)
    saved = automations.create(WELCOME)
    edited = automations.update("Welcome", WELCOME.replace("Bonjour", "Salut"))
    assert edited.version.id == saved.version.id and edited.version.number == 1
    assert "Salut" in str(automations.definition(saved.automation).steps[-1])


def test_it_handles_edits_of_an_active_automation_as_versions(
    session: Session, owner: Account
) -> None:
    automations = Automations(session, owner.id)
    saved = automations.create(WELCOME)
    automations.activate(saved.automation.id)
    renamed = WELCOME.replace("name: Welcome", "name: Hello").replace("Newsletter", "VIP")
    edited = automations.update(saved.automation.id, renamed)
    session.commit()
    assert edited.version.number == 2
    assert (edited.automation.name, edited.automation.trigger_key) == ("Hello", "VIP")
    assert automations.version(edited.automation, 1).definition["name"] == "Welcome"
    assert automations.definition(edited.automation).name == "Hello"


def test_it_handles_the_lifecycle(session: Session, owner: Account) -> None:
    automations = Automations(session, owner.id)
    saved = automations.create(WELCOME)
    with pytest.raises(Conflict) as not_active:
        automations.pause("Welcome")
    assert not_active.value.code == "not_active"
    assert automations.activate("Welcome").status == "active"
    assert automations.pause("Welcome").status == "paused"
    assert automations.activate("Welcome").status == "active"
    assert automations.archive("Welcome").status == "archived"
    for change in (automations.activate, automations.pause):
        with pytest.raises(Conflict):
            change(saved.automation.id)
    with pytest.raises(Conflict):
        automations.update("Welcome", WELCOME)


@pytest.mark.parametrize(
    ("tier", "purchased_on", "addon", "code"),
    [
        ("starter", date(2024, 6, 1), True, "sms_not_in_plan"),
        ("lite", date(2022, 6, 1), False, "sms_not_in_plan"),
        ("plus", date(2024, 6, 1), False, "sms_addon_required"),
    ],
)
def test_it_handles_accounts_that_cannot_send_sms(
    session: Session, tier: str, purchased_on: date, addon: bool, code: str
) -> None:
    created = Accounts(session).create(
        "small", product_line="sales", tier=tier, last_purchase_on=purchased_on, sms_addon=addon
    )
    define_fields(session, created, CITY="text")
    automations = Automations(session, created.id)
    saved = automations.create(WELCOME)
    assert any("cannot be activated" in w for w in saved.warnings)
    with pytest.raises(SendlineError) as refused:
        automations.activate("Welcome")
    assert refused.value.code == code
    no_sms = "name: Tagger\ntrigger: {type: tag_added, tag: a}\nsteps: [{type: add_tag, tag: b}]"
    automations.create(no_sms)
    assert automations.activate("Tagger").status == "active"  # R1 is about SMS steps only


def test_it_handles_legacy_accounts_without_the_addon(session: Session) -> None:
    legacy = Accounts(session).create(
        "old", product_line="marketing", tier="plus", last_purchase_on=date(2022, 6, 1)
    )
    define_fields(session, legacy, CITY="text")
    automations = Automations(session, legacy.id)
    automations.create(WELCOME)
    assert automations.activate("Welcome").status == "active"


def test_it_handles_trigger_keys() -> None:
    def key(trigger: str) -> str | None:
        return trigger_key(
            parse_definition(f"name: t\ntrigger: {trigger}\nsteps: [{{type: exit}}]")
        )

    assert key("{type: field_changed, field: city}") == "CITY"
    assert key("{type: reply, keyword: ' Join-Us! '}") == "JOIN US"
    assert key("{type: reply}") is None
    assert key("{type: bulk}") is None
    assert fold_keyword("  jóin us!! now") == "JOIN US NOW"
