"""services/composer.py and services/overview.py on both databases: a draft checked by
the rule core with the account's rules, and the overview's counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import InvalidInput, NotFound
from sendline.services.composer import (
    MAX_DRAFT,
    available_tags,
    check_draft,
    contact_choices,
    parse_contact_id,
)
from sendline.services.messages import queue_test
from sendline.services.overview import account_overview
from sendline.shortener_files import packaged_shorteners
from sendline.sms.check import MessageRules, check_message
from sendline.store.consent import Consent
from sendline.store.contacts import Contacts
from tests.engine.factories import make_account, make_contact

SHORTENERS = packaged_shorteners()


def test_it_counts_a_draft_as_the_rule_core_does(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme", optout_clause="Text STOP to quit")
    body = "Hi %FIRSTNAME|there%, 20% off today"
    check = check_draft(session_factory, account.id, body, SHORTENERS)
    core = check_message(body, MessageRules(SHORTENERS, clause="Text STOP to quit"))
    assert (check.characters, check.segments, check.encoding) == (
        core.characters,
        core.segments,
        "GSM-7",
    )
    assert check.final_text == core.sent_body and check.final_text.endswith("Text STOP to quit")
    assert check.clause_appended and check.ok
    assert check.credits_per_recipient == core.sent_segments == check.final_segments
    assert [w.code for w in check.warnings] == ["personalized"]


def test_it_names_ucs2_characters_with_their_gsm7_replacements(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme")
    check = check_draft(
        session_factory, account.id, "It\u2019s \u201con\u201d \U0001f600", SHORTENERS
    )
    assert check.encoding == "UCS-2"
    found = {u.char: u.replacement for u in check.ucs2}
    assert found == {"\u2019": "'", "\u201c": '"', "\u201d": '"', "\U0001f600": None}
    assert ("\u2019", True) in check.highlighted
    assert "right single quotation mark" in check.ucs2[0].name


def test_it_refuses_a_public_shortener_and_an_unknown_tag(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme")
    Contacts(session, account.id).define_field("CITY", label="City")
    session.commit()
    check = check_draft(session_factory, account.id, "See bit.ly/x in %CITY% %NOPE%", SHORTENERS)
    assert not check.ok
    assert [p.host for p in check.shortener_errors] == ["bit.ly"]
    assert "bit.ly" in check.shortener_errors[0].message
    assert [p.code for p in check.errors] == ["unknown_tag", "public_shortener"]
    assert "%CITY%" in [t.tag for t in check.tags]
    assert [t.tag for t in available_tags(session_factory, account.id)][-1] == "%CITY%"


def test_it_previews_for_a_contact_and_says_why_it_would_be_held(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme")
    ada = make_contact(session, account)
    bob = Contacts(session, account.id).create(phone="+14155550199", first_name="Bob")
    session.commit()
    ok = check_draft(session_factory, account.id, "Hi %FIRSTNAME%", SHORTENERS, contact_id=ada.id)
    assert ok.preview is not None and ok.preview.text == "Hi Ada\nReply STOP to opt out"
    assert ok.preview.held_reason is None and ok.preview.credits == 1
    held = check_draft(session_factory, account.id, "Hi %FIRSTNAME%", SHORTENERS, contact_id=bob.id)
    assert held.preview is not None and held.preview.text.startswith("Hi Bob\n")
    assert held.preview.held_reason == "no_consent"
    assert [c.id for c in contact_choices(session_factory, account.id)] == [bob.id, ada.id]


def test_it_refuses_another_accounts_contact_and_odd_input(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    acme = make_account(session, "Acme")
    globex = make_account(session, "Globex")
    theirs = make_contact(session, globex)
    with pytest.raises(NotFound):
        check_draft(session_factory, acme.id, "Hi", SHORTENERS, contact_id=theirs.id)
    with pytest.raises(InvalidInput):
        check_draft(session_factory, acme.id, "x" * (MAX_DRAFT + 1), SHORTENERS)
    for raw in ("abc", "-1", "1.5", "\u0661", "99999999999999999999"):
        with pytest.raises(InvalidInput):
            parse_contact_id(raw)
    assert parse_contact_id(" ") is None
    odd = check_draft(session_factory, acme.id, "a\x00b\r\nc\ud800", SHORTENERS)
    assert odd.body == "ab\nc?"


def test_it_counts_the_overview_from_what_happened(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme")
    ada = make_contact(session, account)
    stranger = Contacts(session, account.id).create(phone="+14155550199", first_name="Bob")
    Contacts(session, account.id).create(phone="06 12 34 56 78", first_name="Eve")
    now = datetime.now(UTC)
    queue_test(session, account, ada, "Order shipped", now)
    held = queue_test(session, account, stranger, "Order shipped", now)
    Consent(session, account.id).record(
        ada.id, "opt_out", "keyword", source="STOP", occurred_at=now
    )
    session.commit()
    assert held.status == "held"

    found = account_overview(session_factory, account.id, days=7)
    assert len(found.days) == 7 and found.days[-1].day == now.date()
    assert found.totals["held"] == 1 and found.totals["opt_outs"] == 1
    assert [(h.reason, h.count) for h in found.held] == [("no_consent", 1)]
    assert "opt-in" in found.held[0].fix
    assert found.invalid_numbers == 1 and found.review_queue == 0
    assert found.credits.audit.ok and found.needs_action
    with pytest.raises(InvalidInput):
        account_overview(session_factory, account.id, days=0)
    older = account_overview(session_factory, account.id, days=3, today=now.date() - timedelta(10))
    assert older.totals["held"] == 0


def test_it_counts_each_day_from_when_it_happened(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme")
    ada = make_contact(session, account)
    now = datetime.now(UTC).replace(hour=12)
    first = queue_test(session, account, ada, "One", now)
    second = queue_test(session, account, ada, "Two", now)
    # What the dispatcher and the receipts write, days apart (the engine's own tests
    # cover how they get there; this is about which day each lands on).
    first.sent_at, first.delivered_at = now - timedelta(days=2), now - timedelta(days=1)
    first.status, first.updated_at = "delivered", now - timedelta(days=1)
    second.sent_at, second.status, second.updated_at = now, "failed", now
    session.commit()

    days = {d.day: d for d in account_overview(session_factory, account.id, days=3).days}
    today = now.date()
    assert days[today - timedelta(days=2)].sent == 1
    assert days[today - timedelta(days=1)].delivered == 1
    assert (days[today].sent, days[today].failed, days[today].delivered) == (1, 1, 0)
