"""The Twilio adapter against the fake Twilio API, through the real SDK: what it sends,
how each of Twilio's answers maps to an outcome, and reconciliation by lookup (R17)."""

from __future__ import annotations

import socket

import pytest

from sendline.providers.base import (
    Accepted,
    OutboundSms,
    PermanentError,
    TransientError,
    UnknownOutcome,
)
from sendline.providers.twilio import TwilioProvider, sendline_status
from tests.fakes.twilio_api import FakeTwilio, Fault

FROM = "+14155550100"
TO = "+14158675309"
CALLBACK = "https://sms.example.com/webhooks/twilio/status"


def _provider(fake: FakeTwilio, **overrides: object) -> TwilioProvider:
    options: dict[str, object] = {
        "account_sid": fake.account_sid,
        "auth_token": fake.auth_token,
        "from_number": FROM,
        "messaging_service_sid": None,
        "api_url": fake.url,
        "status_callback_url": CALLBACK,
        "timeout": 1.0,
    }
    options.update(overrides)
    return TwilioProvider("twilio:1", **options)  # type: ignore[arg-type]


def _sms(
    message_id: int = 42, body: str = "Spring sale: 20% off. Reply STOP to opt out"
) -> OutboundSms:
    return OutboundSms(message_id, TO, None, body, 1)


@pytest.fixture
def fake() -> FakeTwilio:
    with FakeTwilio(send_callbacks=False) as server:
        yield server


def test_it_sends_from_a_number_with_a_callback_carrying_our_message_id(fake: FakeTwilio) -> None:
    answer = _provider(fake).send(_sms(42))
    assert isinstance(answer, Accepted)
    [stored] = fake.messages
    assert answer.provider_id == stored.sid and stored.sid.startswith("SM")
    assert (stored.to, stored.from_, stored.messaging_service_sid) == (TO, FROM, None)
    assert stored.body == _sms().body
    assert stored.status_callback == f"{CALLBACK}?message_id=42"


def test_it_sends_through_a_messaging_service_without_a_from_number(fake: FakeTwilio) -> None:
    service = "MG" + "a" * 32
    _provider(fake, from_number=None, messaging_service_sid=service, status_callback_url=None).send(
        _sms()
    )
    [stored] = fake.messages
    assert (stored.from_, stored.messaging_service_sid, stored.status_callback) == (
        None,
        service,
        None,
    )


def test_it_refuses_to_be_built_without_a_sender(fake: FakeTwilio) -> None:
    with pytest.raises(ValueError, match="from-number or a Messaging Service"):
        _provider(fake, from_number=None)


def test_it_maps_21610_to_a_permanent_refusal_that_opts_the_contact_out(fake: FakeTwilio) -> None:
    fake.faults.append(Fault.refuse(21610))
    with pytest.raises(PermanentError) as refused:
        _provider(fake).send(_sms())
    assert (refused.value.code, refused.value.opted_out) == ("21610", True)
    assert fake.messages == []


@pytest.mark.parametrize("code", [21211, 21408, 21612, 21614, 30003, 30005, 30006, 30007, 21602])
def test_it_maps_refusals_to_permanent_errors(fake: FakeTwilio, code: int) -> None:
    fake.faults.append(Fault.refuse(code))
    with pytest.raises(PermanentError) as refused:
        _provider(fake).send(_sms())
    assert (refused.value.code, refused.value.opted_out) == (str(code), False)


def test_it_keeps_full_numbers_out_of_the_refusals_detail(fake: FakeTwilio) -> None:
    fake.faults.append(Fault.refuse(21211))
    with pytest.raises(PermanentError) as refused:
        _provider(fake).send(_sms())
    assert TO not in str(refused.value) and "+1415•••5309" in refused.value.detail


@pytest.mark.parametrize(
    ("fault", "code", "retry_after"),
    [
        (Fault.too_many(retry_after=7), "20429", 7.0),
        (Fault.too_many(retry_after=None), "20429", None),
        (Fault.refuse(20429, status=429), "20429", None),
        (Fault.server_error(), "500", None),
        (Fault.refuse(20500, status=503), "20500", None),
        (Fault.refuse(30001), "30001", None),
        (Fault.refuse(30008), "30008", None),
    ],
)
def test_it_maps_rate_limits_and_outages_to_transient_errors(
    fake: FakeTwilio, fault: Fault, code: str, retry_after: float | None
) -> None:
    fake.faults.append(fault)
    with pytest.raises(TransientError) as transient:
        _provider(fake).send(_sms())
    assert (transient.value.code, transient.value.retry_after) == (code, retry_after)
    assert fake.messages == []


def test_it_takes_bad_credentials_for_transient(fake: FakeTwilio) -> None:
    with pytest.raises(TransientError) as transient:
        _provider(fake, auth_token="wrong" * 6).send(_sms())
    assert transient.value.code == "20003"
    assert fake.messages == []


def test_it_takes_a_refused_connection_for_transient(fake: FakeTwilio) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(TransientError) as transient:
            _provider(fake, api_url=f"http://127.0.0.1:{port}").send(_sms())
    assert transient.value.code == "connection_refused"


@pytest.mark.parametrize("fault", [Fault.slow(3.0), Fault.drop()], ids=["timeout", "dropped"])
def test_it_reports_an_unknown_outcome_when_twilio_got_it_but_did_not_answer(
    fake: FakeTwilio, fault: Fault
) -> None:
    fake.faults.append(fault)
    provider = _provider(fake, timeout=0.5)
    with pytest.raises(UnknownOutcome):
        provider.send(_sms())
    [stored] = fake.messages  # Twilio has it: it must be found, never sent again
    record = provider.lookup(_sms())
    assert record is not None
    assert (record.provider_id, record.status) == (stored.sid, "sent")


def test_it_finds_nothing_for_a_message_twilio_never_got(fake: FakeTwilio) -> None:
    provider = _provider(fake)
    provider.send(_sms(1, body="another text"))
    assert provider.lookup(_sms(2)) is None


def test_it_matches_the_body_and_reports_the_status_twilio_has(fake: FakeTwilio) -> None:
    provider = _provider(fake)
    first = provider.send(_sms(1, body="first"))
    provider.send(_sms(2, body="second"))
    fake.messages[0].status, fake.messages[0].error_code = "undelivered", 30003
    record = provider.lookup(_sms(1, body="first"))
    assert record is not None
    assert (record.provider_id, record.status, record.error_code) == (
        first.provider_id,
        "undelivered",
        "30003",
    )


def test_it_does_not_take_another_senders_message_for_ours(fake: FakeTwilio) -> None:
    _provider(fake, from_number="+14155550199").send(_sms())
    assert _provider(fake).lookup(_sms()) is None


@pytest.mark.parametrize("fault", [Fault.server_error(), Fault.drop(), Fault.too_many()])
def test_it_raises_unknown_when_the_lookup_itself_fails(fake: FakeTwilio, fault: Fault) -> None:
    fake.lookup_faults.append(fault)
    with pytest.raises(UnknownOutcome):
        _provider(fake).lookup(_sms())


@pytest.mark.parametrize(
    ("twilio", "ours"),
    [
        ("accepted", "sent"),
        ("queued", "sent"),
        ("sending", "sent"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("undelivered", "undelivered"),
        ("failed", "failed"),
        ("received", None),
        (None, None),
    ],
)
def test_it_maps_twilios_statuses_to_sendlines(twilio: str | None, ours: str | None) -> None:
    assert sendline_status(twilio) == ours
