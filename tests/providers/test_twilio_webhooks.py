"""Twilio's webhooks on a live `sendline serve` app, on both databases: only requests
Twilio signed for the URL they reach are believed; inbound texts act as R12 says."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from sendline.bootstrap import Runtime
from sendline.config import Settings
from sendline.providers.twilio import INBOUND_PATH
from sendline.store.engine_models import InboundMessage, Message, ProviderConfig
from sendline.store.models import Account, Contact
from sendline.store.types import utcnow
from tests.engine.factories import make_account, make_contact, message, queue_message
from tests.fakes.live_app import LiveApp
from tests.fakes.twilio_api import FakeMessage, signature_for
from tests.providers.conftest import TWILIO_NUMBER, TwilioSite

STRANGER_TOKEN = "e" * 32


def _post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def _sent(site: TwilioSite, session: Session) -> tuple[int, FakeMessage]:
    """A message Twilio accepted, its callbacks not posted (the test posts them)."""
    site.fake.send_callbacks = False
    message_id = queue_message(
        session, site.account, site.contact, due_at=utcnow(), created_at=utcnow()
    ).id
    site.worker().step()
    assert message(session, message_id).status == "sent"
    return message_id, site.fake.messages[0]


def _snapshot(session: Session) -> tuple[Any, ...]:
    rows = session.execute(
        select(Message.id, Message.status, Message.provider_id, Message.updated_at).order_by(
            Message.id
        )
    ).all()
    inbound = session.scalar(select(func.count()).select_from(InboundMessage))
    consent = session.scalars(select(Contact.sms_consent).order_by(Contact.id)).all()
    session.commit()
    return tuple(rows), inbound, tuple(consent)


def _replies(session: Session) -> list[str]:
    bodies = session.scalars(
        select(Message.body).where(Message.kind == "reply").order_by(Message.id)
    ).all()
    session.commit()
    return [body or "" for body in bodies]


def _consent(session: Session, site: TwilioSite) -> str:
    found = session.get(Contact, site.contact.id, populate_existing=True)
    assert found is not None
    session.commit()
    return found.sms_consent


# -- signatures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attack", ["unsigned", "forged", "other_message", "other_path", "tampered"]
)
def test_it_refuses_a_status_callback_twilio_did_not_sign_for_that_url(
    twilio_site: TwilioSite, session: Session, attack: str
) -> None:
    message_id, at_twilio = _sent(twilio_site, session)
    fake = twilio_site.fake
    url = f"{twilio_site.status_url}?message_id={message_id}"
    params = fake.status_params(at_twilio, "undelivered")
    token = fake.auth_token
    options: dict[str, Any] = {
        "unsigned": {"signature": ""},
        "forged": {"token": STRANGER_TOKEN},
        "other_message": {"signed_url": f"{twilio_site.status_url}?message_id={message_id + 1}"},
        "other_path": {"signed_url": f"{twilio_site.inbound_url}?message_id={message_id}"},
        "tampered": {"signature": signature_for(token, url, {**params, "ErrorCode": "1"}.items())},
    }[attack]
    before = _snapshot(session)
    assert fake.post_signed(url, params, **options) == 403
    assert _snapshot(session) == before


@pytest.mark.parametrize("attack", ["unsigned", "forged", "replayed"])
def test_it_refuses_an_inbound_text_twilio_did_not_sign_for_that_url(
    twilio_site: TwilioSite, session: Session, attack: str
) -> None:
    fake = twilio_site.fake
    params = fake.inbound_params(
        from_=twilio_site.contact.phone_e164 or "", to=TWILIO_NUMBER, body="STOP"
    )
    options: dict[str, Any] = {
        "unsigned": {"signature": ""},
        "forged": {"token": STRANGER_TOKEN},
        "replayed": {"signed_url": f"{twilio_site.app_url}/somewhere/else"},
    }[attack]
    before = _snapshot(session)
    assert fake.post_signed(twilio_site.inbound_url, params, **options) == 403
    assert _snapshot(session) == before
    assert _consent(session, twilio_site) == "opted_in"


def test_it_logs_a_refusal_without_the_token_or_the_number(
    twilio_site: TwilioSite, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    fake = twilio_site.fake
    with caplog.at_level("WARNING", logger="sendline.webhooks.twilio"):
        fake.post_inbound(
            twilio_site.inbound_url,
            from_="+14158675309",
            to=TWILIO_NUMBER,
            body="hi",
            token=STRANGER_TOKEN,
        )
    [line] = [r.getMessage() for r in caplog.records if r.name == "sendline.webhooks.twilio"]
    assert "403" in line and "+1415•••0100" in line
    assert TWILIO_NUMBER not in line and fake.auth_token not in line and STRANGER_TOKEN not in line


# -- bad input ----------------------------------------------------------------------------


def test_it_refuses_malformed_oversized_and_misaddressed_requests(
    twilio_site: TwilioSite, session: Session
) -> None:
    message_id, at_twilio = _sent(twilio_site, session)
    token = twilio_site.fake.auth_token
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status_url = f"{twilio_site.status_url}?message_id={message_id}"
    before = _snapshot(session)
    cases = [
        (status_url, b'{"MessageStatus": "delivered"}', {"Content-Type": "application/json"}, 415),
        (status_url, b"Body=" + b"x" * 70_000, form, 413),
        (status_url, b"MessageSid=\xff\xfe", {**form, "X-Twilio-Signature": "x"}, 400),
        (twilio_site.status_url, b"MessageSid=SM1", {**form, "X-Twilio-Signature": "x"}, 400),
        (f"{twilio_site.status_url}?message_id=999999", b"a=b", form, 404),
    ]
    for url, data, headers, expected in cases:
        assert _post(url, data, headers)[0] == expected, (url, data[:40])
    nobody = twilio_site.fake.inbound_params(from_="+14158675309", to="+14155550111", body="STOP")
    assert twilio_site.fake.post_signed(twilio_site.inbound_url, nobody, token=token) == 404
    no_from = {
        k: v
        for k, v in twilio_site.fake.inbound_params(
            from_="+14158675309", to=TWILIO_NUMBER, body="STOP"
        ).items()
        if k != "From"
    }
    assert twilio_site.fake.post_signed(twilio_site.inbound_url, no_from) == 400
    assert _snapshot(session) == before


# -- inbound texts (R12) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "carrier_confirms", [False, True], ids=["sendline_confirms", "carrier_confirms"]
)
def test_it_handles_stop_then_start_then_help_from_one_number(
    twilio_site: TwilioSite, session: Session, carrier_confirms: bool
) -> None:
    session.execute(update(ProviderConfig).values(carrier_confirms_optout=carrier_confirms))
    session.commit()
    fake, phone = twilio_site.fake, twilio_site.contact.phone_e164 or ""

    def text(body: str) -> None:
        assert (
            fake.post_inbound(twilio_site.inbound_url, from_=phone, to=TWILIO_NUMBER, body=body)
            == 200
        )

    text("STOP")
    assert _consent(session, twilio_site) == "opted_out"  # committed before the 200
    stop_replies = _replies(session)
    if carrier_confirms:
        assert stop_replies == []  # Twilio sent the one confirmation
    else:
        assert len(stop_replies) == 1 and "unsubscribed" in stop_replies[0]
    text("START")
    assert _consent(session, twilio_site) == "opted_in"
    assert "resubscribed" in _replies(session)[-1]
    text("HELP")
    assert _replies(session)[-1] == twilio_site.account.help_text
    assert len(_replies(session)) == len(stop_replies) + 2
    actions = session.scalars(select(InboundMessage.action).order_by(InboundMessage.id)).all()
    session.commit()
    assert list(actions) == ["opt_out", "opt_in", "help"]


def test_it_answers_an_inbound_text_with_empty_twiml_and_handles_a_retry_once(
    twilio_site: TwilioSite, session: Session
) -> None:
    fake = twilio_site.fake
    params = fake.inbound_params(
        from_=twilio_site.contact.phone_e164 or "", to=TWILIO_NUMBER, body="STOP"
    )
    url = twilio_site.inbound_url
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature_for(fake.auth_token, url, params.items()),
    }
    data = urllib.parse.urlencode(params).encode()
    for _ in range(2):  # Twilio retries a webhook it did not hear back from in time
        status, kind, body = _post(url, data, headers)
        assert (status, kind.split(";")[0], b"<Response/>" in body) == (200, "text/xml", True)
    rows = session.scalars(select(InboundMessage.provider_id)).all()
    session.commit()
    assert list(rows) == [params["MessageSid"]]
    assert len(_replies(session)) == 1


def test_it_stores_a_text_from_a_number_no_contact_has(
    twilio_site: TwilioSite, session: Session
) -> None:
    fake = twilio_site.fake
    assert (
        fake.post_inbound(
            twilio_site.inbound_url, from_="+14155559876", to=TWILIO_NUMBER, body="who is this?"
        )
        == 200
    )
    row = session.scalars(select(InboundMessage)).one()
    session.commit()
    assert (row.account_id, row.contact_id, row.body) == (
        twilio_site.account.id,
        None,
        "who is this?",
    )


def test_it_acts_for_the_account_whose_twilio_number_was_texted(
    twilio_site: TwilioSite, session: Session
) -> None:
    # Another account knows the same person, and the texted account's own sender number
    # is not its Twilio number: the STOP is for the owner of the Twilio config alone.
    other = make_account(session, "other", sender_number="+14155550177")
    theirs = make_contact(session, other, twilio_site.contact.phone_e164 or "")
    session.execute(
        update(Account).where(Account.id == twilio_site.account.id).values(sender_number=None)
    )
    session.commit()
    fake = twilio_site.fake
    phone = twilio_site.contact.phone_e164 or ""
    assert (
        fake.post_inbound(twilio_site.inbound_url, from_=phone, to=TWILIO_NUMBER, body="STOP")
        == 200
    )
    assert _consent(session, twilio_site) == "opted_out"
    other_contact = session.get(Contact, theirs.id, populate_existing=True)
    assert other_contact is not None and other_contact.sms_consent == "opted_in"
    session.commit()


def test_it_refuses_every_webhook_when_no_public_url_is_set(
    twilio_site: TwilioSite, session: Session, engine: Engine, tmp_path: Path
) -> None:
    # Without SENDLINE_PUBLIC_URL no signature can be checked: nothing is believed.
    live = LiveApp()
    settings = Settings(data_dir=tmp_path, database_url="sqlite:///unused.db")
    live.start(Runtime(settings, engine, twilio_site.sessions))
    try:
        fake, phone = twilio_site.fake, twilio_site.contact.phone_e164 or ""
        before = _snapshot(session)
        url = f"{live.url}{INBOUND_PATH}"
        assert fake.post_inbound(url, from_=phone, to=TWILIO_NUMBER, body="STOP") == 403
        assert _snapshot(session) == before
    finally:
        live.stop()
