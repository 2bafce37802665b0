"""services/providers.py on both databases: adding, listing, moving, removing providers,
every refusal (one error naming the field, nothing stored), sealed secrets, rotation,
and the test message."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.errors import ConfigError, Conflict, InvalidInput, NotFound, SendlineError
from sendline.services.providers import (
    HttpFields,
    Progress,
    TwilioFields,
    add_provider,
    list_providers,
    move_provider,
    remove_provider,
    rotate_secrets,
    send_test_message,
    watch_test_message,
)
from sendline.store.engine_models import Message, ProviderConfig
from sendline.store.models import Account
from sendline.store.secret_box import SecretBox
from tests.engine.factories import make_account, make_contact, queue_message

SID = "AC" + "0123456789abcdef" * 2
SERVICE = "MG" + "fedcba9876543210" * 2
TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
FROM = "+14158675310"
KEY = Fernet.generate_key().decode()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_keys=(KEY,),
        public_url="https://sms.example.com",
    )


@pytest.fixture
def acme(session: Session) -> str:
    make_account(session, "Acme")
    return "Acme"


def twilio(**changes: Any) -> TwilioFields:
    return replace(TwilioFields(SID, TOKEN, FROM), **changes)


def _count(session: Session) -> int:
    found = session.scalar(select(func.count()).select_from(ProviderConfig))
    session.commit()
    return int(found or 0)


def test_it_handles_adding_listing_moving_and_removing_providers(
    session_factory: sessionmaker[Session], settings: Settings, acme: str
) -> None:
    first = add_provider(session_factory, settings, acme, twilio()).provider
    assert (first.name, first.position, first.kind) == (f"twilio:{first.id}", 1, "twilio")
    assert (first.identity, first.sender) == ("AC01…ef", "+1415•••5310")
    assert first.label == "Twilio +1415•••5310" and first.carrier_confirms_optout
    second = add_provider(
        session_factory,
        settings,
        acme,
        twilio(from_number=None, messaging_service_sid=SERVICE),
        label="backup",
        position=1,
        carrier_confirms_optout=False,
    ).provider
    assert (second.position, second.sender, second.carrier_confirms_optout) == (
        1,
        "MGfe…10",
        False,
    )
    listed = list_providers(session_factory, acme)
    assert listed.account_name == "Acme"
    assert [(p.name, p.position) for p in listed.providers] == [(second.name, 1), (first.name, 2)]
    order = move_provider(session_factory, acme, first.name, 1)
    assert [(p.name, p.position) for p in order] == [(first.name, 1), (second.name, 2)]
    removed = remove_provider(session_factory, acme, str(first.id))
    assert removed.name == first.name
    left = list_providers(session_factory, acme).providers
    assert [(p.name, p.position, p.label) for p in left] == [(second.name, 1, "backup")]


def test_it_seals_the_auth_token_in_the_row(
    session_factory: sessionmaker[Session], session: Session, settings: Settings, acme: str
) -> None:
    add_provider(session_factory, settings, acme, twilio())
    raw = session.execute(
        text("SELECT secret, settings, sender_number FROM provider_configs")
    ).one()
    session.commit()
    assert TOKEN not in raw.secret and TOKEN not in str(raw.settings)
    assert SecretBox((KEY,)).open(raw.secret) == {"auth_token": TOKEN}
    assert raw.sender_number == FROM


BAD_FIELDS = [
    ({"account_sid": "AC123"}, "invalid_account_sid", "Account SID"),
    ({"account_sid": "XX" + "0" * 32}, "invalid_account_sid", "Account SID"),
    ({"auth_token": TOKEN[:-1]}, "invalid_auth_token", "auth token"),
    ({"auth_token": "z" * 32}, "invalid_auth_token", "auth token"),
    ({"from_number": None}, "invalid_sender", "exactly one"),
    ({"messaging_service_sid": SERVICE}, "invalid_sender", "exactly one"),
    (
        {"from_number": None, "messaging_service_sid": "MG12"},
        "invalid_messaging_service_sid",
        "Messaging Service SID",
    ),
    ({"from_number": "4158675310"}, "invalid_from_number", "E.164"),
    ({"from_number": "+3361234"}, "invalid_from_number", "not a valid number"),
    ({"from_number": "+33142685300"}, "invalid_from_number", "landline"),
]


@pytest.mark.parametrize(("changes", "code", "field"), BAD_FIELDS)
def test_it_refuses_a_bad_field_naming_it_with_nothing_stored(
    session_factory: sessionmaker[Session],
    session: Session,
    settings: Settings,
    acme: str,
    changes: dict[str, Any],
    code: str,
    field: str,
) -> None:
    fields = twilio(**changes)
    with pytest.raises(InvalidInput) as refused:
        add_provider(session_factory, settings, acme, fields)
    assert refused.value.code == code and field in refused.value.message
    for secret in (fields.auth_token, fields.account_sid, fields.from_number):
        assert not secret or len(secret) < 10 or secret not in refused.value.message
    assert _count(session) == 0


@pytest.mark.parametrize(
    ("options", "code"),
    [({"label": " "}, "invalid_label"), ({"label": "x" * 101}, "invalid_label")]
    + [({"position": at}, "invalid_position") for at in (0, 2, -1)],
)
def test_it_refuses_a_bad_label_or_position(
    session_factory: sessionmaker[Session],
    session: Session,
    settings: Settings,
    acme: str,
    options: dict[str, Any],
    code: str,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        add_provider(session_factory, settings, acme, twilio(), **options)
    assert refused.value.code == code
    assert _count(session) == 0


def test_it_refuses_a_secret_without_a_key_and_warns_without_a_public_url(
    session_factory: sessionmaker[Session], session: Session, settings: Settings, acme: str
) -> None:
    with pytest.raises(ConfigError, match="SENDLINE_SECRET_KEY"):
        add_provider(session_factory, replace(settings, secret_keys=()), acme, twilio())
    assert _count(session) == 0
    added = add_provider(session_factory, settings, acme, twilio())
    assert added.warnings == ()
    again = add_provider(session_factory, replace(settings, public_url=None), acme, twilio())
    assert len(again.warnings) == 1 and "SENDLINE_PUBLIC_URL" in again.warnings[0]
    assert "status callbacks" in again.warnings[0]


def test_it_refuses_a_number_another_account_sends_from(
    session_factory: sessionmaker[Session], session: Session, settings: Settings, acme: str
) -> None:
    make_account(session, "Other")
    add_provider(session_factory, settings, acme, twilio())
    with pytest.raises(Conflict) as refused:
        add_provider(session_factory, settings, "Other", twilio())
    assert refused.value.code == "sender_taken" and FROM not in refused.value.message
    assert _count(session) == 1
    assert add_provider(session_factory, settings, acme, twilio()).provider.position == 2


def test_it_refuses_unknown_accounts_and_providers(
    session_factory: sessionmaker[Session], settings: Settings, acme: str
) -> None:
    with pytest.raises(NotFound):
        add_provider(session_factory, settings, "Nobody", twilio())
    line = add_provider(session_factory, settings, acme, twilio()).provider
    for ref in ("99", f"http:{line.id}", "twilio:99", "1234567890123456789012345", "x"):
        with pytest.raises(NotFound):
            remove_provider(session_factory, acme, ref)
    with pytest.raises(InvalidInput):
        move_provider(session_factory, acme, line.name, 2)


def test_it_refuses_removing_a_provider_a_message_still_needs(
    session_factory: sessionmaker[Session], session: Session, settings: Settings, acme: str
) -> None:
    line = add_provider(session_factory, settings, acme, twilio()).provider
    account = session.scalars(select(Account).where(Account.name == acme)).one()
    sent = queue_message(session, account, make_contact(session, account))
    session.execute(
        update(Message).where(Message.id == sent.id).values(status="unknown", provider=line.name)
    )
    session.commit()
    with pytest.raises(Conflict) as refused:
        remove_provider(session_factory, acme, line.name)
    assert refused.value.code == "provider_in_use"
    assert _count(session) == 1
    session.execute(update(Message).values(status="sent"))
    session.commit()
    assert remove_provider(session_factory, acme, line.name).id == line.id


def test_it_rotates_every_secret_to_the_newest_key(
    session_factory: sessionmaker[Session], session: Session, settings: Settings, acme: str
) -> None:
    add_provider(session_factory, settings, acme, twilio())
    add_provider(session_factory, settings, acme, twilio(from_number="+14158675311"))
    newest = Fernet.generate_key().decode()
    assert rotate_secrets(session_factory, replace(settings, secret_keys=(newest, KEY))) == 2
    sealed = session.scalars(select(ProviderConfig.secret)).all()
    session.commit()
    assert all(SecretBox((newest,)).open(s or "") == {"auth_token": TOKEN} for s in sealed)
    with pytest.raises(ConfigError):
        rotate_secrets(session_factory, replace(settings, secret_keys=()))


def test_it_refuses_to_rotate_a_secret_no_key_opens_changing_nothing(
    session_factory: sessionmaker[Session], session: Session, settings: Settings, acme: str
) -> None:
    add_provider(session_factory, settings, acme, twilio())
    before = session.scalars(select(ProviderConfig.secret)).all()
    session.commit()
    stranger = Fernet.generate_key().decode()
    with pytest.raises(SendlineError) as refused:
        rotate_secrets(session_factory, replace(settings, secret_keys=(stranger,)))
    assert refused.value.code == "secret_unreadable" and "twilio:" in refused.value.message
    assert session.scalars(select(ProviderConfig.secret)).all() == before
    session.commit()


def test_it_refuses_a_gateway_config_its_parser_refuses(
    session_factory: sessionmaker[Session], session: Session, settings: Settings, acme: str
) -> None:
    pytest.importorskip("sendline.providers.http_gateway")
    with pytest.raises(InvalidInput):
        add_provider(session_factory, settings, acme, HttpFields("no_such_key: 1\n", {"k": "v"}))
    with pytest.raises(InvalidInput, match="KB"):
        add_provider(session_factory, settings, acme, HttpFields("#" * 70_000))
    assert _count(session) == 0


# -- the test message (sent end to end in tests/cli/test_providers_cli.py) -------------


def test_it_queues_a_test_message_through_the_pipeline(
    session_factory: sessionmaker[Session], session: Session, settings: Settings
) -> None:
    account = make_account(session, "Acme", credits=10)
    make_contact(session, account)
    queued = send_test_message(session_factory, "Acme", "+1 415 867 5309")
    assert (queued.account_name, queued.to, queued.providers) == ("Acme", "+1415•••5309", ())
    message = session.get(Message, queued.message_id)
    session.commit()
    assert message is not None and message.status == "queued" and message.transactional
    assert message.body is not None and message.body.startswith("Sendline test message")
    assert message.clause_included and message.reservation_id is not None
    line = add_provider(session_factory, settings, "Acme", twilio()).provider
    assert send_test_message(session_factory, "Acme", "+14158675309").providers == (line.name,)


def test_it_refuses_a_test_to_an_unknown_or_unconsenting_contact_storing_nothing(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme", credits=10)
    make_contact(session, account, "+14158675309", consent=False)
    cases = [
        ("+14158675399", NotFound, "not_found"),
        ("+14158675309", SendlineError, "no_consent"),
        ("12", InvalidInput, "invalid_to"),
    ]
    for number, kind, code in cases:
        with pytest.raises(kind) as refused:
            send_test_message(session_factory, "Acme", number)
        assert refused.value.code == code
        assert "+14158675309" not in refused.value.message
    assert session.scalar(select(func.count()).select_from(Message)) == 0
    session.commit()


def test_it_refuses_a_test_the_pipeline_would_hold_storing_nothing(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme", credits=0)
    make_contact(session, account)
    with pytest.raises(SendlineError) as refused:
        send_test_message(session_factory, "Acme", "+14158675309")
    assert refused.value.code == "insufficient_credits"
    assert session.scalar(select(func.count()).select_from(Message)) == 0
    session.commit()


def test_it_watches_a_test_message_to_its_final_status(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme", credits=10)
    make_contact(session, account)
    queued = send_test_message(session_factory, "Acme", "+14158675309")
    seen: list[Progress] = []

    def settle(status: str, **values: Any) -> None:
        session.execute(
            update(Message)
            .where(Message.id == queued.message_id)
            .values(status=status, provider="sandbox", **values)
        )
        session.commit()

    settle("delivered")
    done = watch_test_message(session_factory, queued.message_id, timeout=5, on_change=seen.append)
    assert done.status == "delivered" and [p.status for p in seen] == ["delivered"]
    detail = "the handset +14158675309 is unreachable"
    settle("undelivered", error_code="30003", detail=detail)
    with pytest.raises(SendlineError) as failed:
        watch_test_message(session_factory, queued.message_id, timeout=5, on_change=seen.append)
    assert failed.value.code == "provider_test_failed" and "30003" in failed.value.message
    assert "+1415•••5309" in failed.value.message and "+14158675309" not in failed.value.message


def test_it_gives_up_on_a_test_message_after_its_timeout_saying_why(
    session_factory: sessionmaker[Session], session: Session
) -> None:
    account = make_account(session, "Acme", credits=10)
    make_contact(session, account)
    queued = send_test_message(session_factory, "Acme", "+14158675309")
    ticks = iter(range(100))
    seen: list[Progress] = []
    with pytest.raises(SendlineError) as late:
        watch_test_message(
            session_factory,
            queued.message_id,
            timeout=3,
            on_change=seen.append,
            poll=0,
            clock=lambda: float(next(ticks)),
        )
    assert late.value.code == "test_timeout" and "no worker has sent it" in late.value.message
    assert [p.status for p in seen] == ["queued"]  # one line per change, not per poll
    session.execute(update(Message).values(status="sent", provider="sandbox"))
    session.commit()
    with pytest.raises(SendlineError, match="no delivery receipt came"):
        watch_test_message(
            session_factory, queued.message_id, timeout=0, on_change=seen.append, poll=0
        )
