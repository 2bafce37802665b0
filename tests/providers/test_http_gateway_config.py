"""The generic HTTP gateway without a database: its YAML (strict, every error naming its
field), JSON Pointers, webhook signatures, and each class of answer from a real HTTP
server (the fake gateway on loopback)."""

from __future__ import annotations

import hashlib
import hmac
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from sendline.errors import ConfigError, InvalidInput
from sendline.providers.base import (
    OutboundSms,
    PermanentError,
    TransientError,
    UnknownOutcome,
)
from sendline.providers.http_gateway import GatewayConfig, HttpGatewayProvider, scoped_id
from sendline.providers.http_gateway_config import render, render_body
from sendline.providers.http_gateway_webhooks import (
    InboundText,
    inbound_text,
    payload,
    refusal_reason,
)
from sendline.providers.json_pointer import MISSING, resolve
from tests.fakes.gateway_api import API_KEY, WEBHOOK_SECRET, FakeGateway, docs_example

SECRETS = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
SMS = OutboundSms(
    message_id=42, to="+14158675309", sender="+14155550000", body="Hi & bye", segments=1
)

Edit = Callable[[dict[str, Any]], None]


def _example() -> dict[str, Any]:
    data = yaml.safe_load(docs_example())
    assert isinstance(data, dict)
    return data


def _edited(edit: Edit) -> str:
    data = _example()
    edit(data)
    return yaml.safe_dump(data)


def test_it_parses_the_example_in_docs_providers_md() -> None:
    config = GatewayConfig.parse(docs_example())
    assert config.secret_names == ("api_key", "webhook_secret")
    assert config.response.id_pointer == "/message/id"
    assert config.webhooks is not None and config.webhooks.status is not None
    assert config.webhooks.status.status_map["DELIVRD"] == "delivered"


BAD_CONFIGS: list[tuple[str, Edit, str]] = [
    ("missing url", lambda d: d["request"].pop("url"), "request.url: is required"),
    (
        "pointer without slash",
        lambda d: d["response"].update(id_pointer="message.id"),
        "response.id_pointer: must be a JSON Pointer such as /message/id",
    ),
    (
        "pointer with a bad escape",
        lambda d: d["response"].update(error_pointer="/error/~2code"),
        "response.error_pointer: must be a JSON Pointer",
    ),
    ("unknown key", lambda d: d["request"].update(methd="POST"), "request.methd: unknown key"),
    ("unknown top key", lambda d: d.update(retries=3), "retries: unknown key"),
    (
        "not an http url",
        lambda d: d["request"].update(url="ftp://sms.example.com/send"),
        "request.url: must be an absolute http(s) URL",
    ),
    ("bad method", lambda d: d["request"].update(method="FETCH"), "request.method:"),
    (
        "json and form",
        lambda d: d["request"].update(form={"to": "${to}"}),
        "request: give a json or a form body, not both",
    ),
    (
        "no body",
        lambda d: d["request"].pop("json"),
        "request: a POST needs a json or a form body template",
    ),
    (
        "unknown placeholder",
        lambda d: d["request"]["json"].update(to="${phone}"),
        "request.json.to: unknown placeholder ${phone}",
    ),
    (
        "lookup placeholder",
        lambda d: d["lookup"].update(url="https://sms.example.com/v1/m?text=${body}"),
        "lookup.url: unknown placeholder ${body}",
    ),
    (
        "a secret written in clear",
        lambda d: d["webhooks"].update(secret="hunter2"),
        "webhooks.secret: must name a secret, such as ${secret:webhook_secret}",
    ),
    (
        "a status Sendline does not have",
        lambda d: d["webhooks"]["status"]["status_map"].update(DELIVRD="done"),
        "webhooks.status.status_map.DELIVRD:",
    ),
    ("no replay window", lambda d: d["webhooks"].update(max_age=0), "webhooks.max_age:"),
    (
        "a webhook with nothing to receive",
        lambda d: d["webhooks"].update(status=None, inbound=None),
        "webhooks: configure status, inbound or both",
    ),
    (
        "a bad header name",
        lambda d: d["webhooks"].update(signature_header="X Signature"),
        "webhooks.signature_header: must be an HTTP header name",
    ),
    (
        "missing inbound pointer",
        lambda d: d["webhooks"]["inbound"].pop("body_pointer"),
        "webhooks.inbound.body_pointer: is required",
    ),
    (
        "bad status code",
        lambda d: d["response"].update(transient_statuses=[99]),
        "transient_statuses.0",
    ),
]


@pytest.mark.parametrize(("case", "edit", "error"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_it_refuses_a_bad_config_naming_the_field(case: str, edit: Edit, error: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        GatewayConfig.parse(_edited(edit))
    assert error in str(caught.value), case


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("request: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "a gateway config is a mapping"),
        ("", "a gateway config is a mapping"),
    ],
)
def test_it_refuses_a_config_that_is_not_a_mapping(text: str, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        GatewayConfig.parse(text)


def test_it_reads_numeric_error_codes_and_statuses_as_text() -> None:
    config = GatewayConfig.parse(
        _edited(
            lambda d: (
                d["response"].update(permanent_errors=[21211, "x"]),
                d["webhooks"]["status"].update(status_map={1: "delivered"}),
            )
        )
    )
    assert config.response.permanent_errors == ("21211", "x")
    assert config.webhooks is not None and config.webhooks.status is not None
    assert config.webhooks.status.status_map == {"1": "delivered"}


def test_it_resolves_json_pointers_as_rfc_6901_says() -> None:
    document = {"a/b": 1, "m~n": 2, "list": [{"id": "x"}], "": 3}
    assert resolve(document, "/a~1b") == 1
    assert resolve(document, "/m~0n") == 2
    assert resolve(document, "/list/0/id") == "x"
    assert resolve(document, "/") == 3
    assert resolve(document, "/list/01") is MISSING  # no leading zeros
    assert resolve(document, "/list/1/id") is MISSING
    assert resolve(document, "/a~1b/deeper") is MISSING


def test_it_refuses_a_provider_without_its_secrets() -> None:
    config = GatewayConfig.parse(docs_example())
    with pytest.raises(ConfigError, match="webhook_secret") as caught:
        HttpGatewayProvider(
            "http:1", config=config, secrets={"api_key": "sk-live-1234"}, status_callback_url=None
        )
    assert "sk-live" not in str(caught.value)  # names, never values


def test_it_scopes_gateway_ids_within_the_column() -> None:
    assert scoped_id("http:7", "gw-1") == "http:7:gw-1"
    long_id = scoped_id("http:7", "x" * 100)
    assert len(long_id) <= 64 and long_id == scoped_id("http:7", "x" * 100)
    assert long_id != scoped_id("http:7", "x" * 101)


# -- signatures ---------------------------------------------------------------------


def _signed(body: bytes, stamp: str, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def test_it_accepts_only_a_fresh_request_signed_with_the_secret() -> None:
    spec = GatewayConfig.parse(docs_example()).webhooks
    assert spec is not None
    body, now = b'{"id": "gw-1", "status": "DELIVRD"}', 1_800_000_000.0
    stamp = str(int(now))
    good = {"X-Signature": _signed(body, stamp), "X-Timestamp": stamp}
    assert refusal_reason(spec, WEBHOOK_SECRET, body, good, now) is None
    upper = {**good, "X-Signature": good["X-Signature"].upper()}
    assert refusal_reason(spec, WEBHOOK_SECRET, body, upper, now) is None
    old = str(int(now) - 301)
    cases = [
        ({"X-Timestamp": stamp}, "unsigned"),
        ({**good, "X-Signature": _signed(body, stamp, "another secret")}, "bad signature"),
        ({**good, "X-Signature": _signed(body + b" ", stamp)}, "bad signature"),  # tampered
        ({**good, "X-Signature": _signed(body, str(int(now) + 1))}, "bad signature"),
        ({"X-Signature": good["X-Signature"]}, "no X-Timestamp"),
        ({"X-Signature": _signed(body, old), "X-Timestamp": old}, "replay window"),
    ]
    for headers, expected in cases:
        reason = refusal_reason(spec, WEBHOOK_SECRET, body, headers, now)
        assert reason is not None and expected in reason, (expected, reason)
        assert WEBHOOK_SECRET not in reason


# -- answers from a real HTTP server --------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    server = FakeGateway().start()
    yield server
    server.stop()


def _provider(base_url: str, timeout: float = 0.5, **edits: Any) -> HttpGatewayProvider:
    data = yaml.safe_load(docs_example(base_url))
    for section, values in edits.items():
        if values is None:
            data.pop(section)
        else:
            data[section].update(values)
    config = GatewayConfig.parse(yaml.safe_dump(data))
    return HttpGatewayProvider(
        "http:1", config=config, secrets=SECRETS, status_callback_url=None, timeout=timeout
    )


def test_it_sends_the_rendered_template(fake: FakeGateway) -> None:
    accepted = _provider(fake.url).send(SMS)
    [stored] = fake.messages
    assert accepted.provider_id == f"http:1:{stored.id}"
    assert (stored.to, stored.sender, stored.text, stored.reference) == (
        SMS.to,
        SMS.sender,
        "Hi & bye",
        "42",
    )
    assert stored.status_url is None  # no public URL: the field is left out


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        ("429", TransientError, "rate"),
        ("500", TransientError, "internal"),
        ("permanent", PermanentError, "invalid_number"),
        ("opt_out", PermanentError, "recipient_opted_out"),
        ("slow", UnknownOutcome, "timeout"),
        ("drop", UnknownOutcome, "connection_lost"),
    ],
)
def test_it_handles_each_class_of_answer(
    fake: FakeGateway, fault: str, kind: type[Exception], code: str
) -> None:
    fake.fail_next(fault)
    with pytest.raises(kind) as caught:
        _provider(fake.url).send(SMS)
    error = caught.value
    assert getattr(error, "code", None) == code
    assert isinstance(error, TransientError) == (fault in ("429", "500"))
    if fault == "429":
        assert isinstance(error, TransientError) and error.retry_after == 7.0
    if fault == "opt_out":
        assert isinstance(error, PermanentError) and error.opted_out
    stored = 1 if fault in ("slow", "drop") else 0
    assert len(fake.messages) == stored and fake.requests == 1
    assert SMS.to not in str(error) and API_KEY not in str(error)


def test_it_refuses_for_good_with_a_wrong_key(fake: FakeGateway) -> None:
    provider = _provider(fake.url)
    provider._secrets["api_key"] = "wrong"  # noqa: SLF001 - a key revoked at the gateway
    with pytest.raises(PermanentError, match="unauthorized"):
        provider.send(SMS)


def test_it_retries_later_when_the_connection_is_refused() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(TransientError) as caught:
        _provider(f"http://127.0.0.1:{port}").send(SMS)
    assert caught.value.code == "connect_failed"


def test_it_looks_a_message_up_by_its_reference(fake: FakeGateway) -> None:
    provider = _provider(fake.url)
    assert provider.lookup(SMS) is None  # never got it: 404
    fake.fail_next("drop")
    with pytest.raises(UnknownOutcome):
        provider.send(SMS)
    record = provider.lookup(SMS)
    assert record is not None
    assert (record.provider_id, record.status) == (f"http:1:{fake.messages[0].id}", "sent")


def test_it_never_guesses_without_a_lookup(fake: FakeGateway) -> None:
    provider = _provider(fake.url, lookup=None)
    with pytest.raises(UnknownOutcome, match="no lookup"):
        provider.lookup(SMS)


def test_it_reads_a_form_encoded_inbound_webhook() -> None:
    config = GatewayConfig.parse(
        _edited(
            lambda d: (
                d["webhooks"].update(format="form"),
                d["webhooks"]["inbound"].update(
                    from_pointer="/From", to_pointer="/To", body_pointer="/Body", id_pointer="/Sid"
                ),
            )
        )
    )
    assert config.webhooks is not None and config.webhooks.inbound is not None
    document = payload(config.webhooks, b"From=%2B14158675309&To=%2B14155550000&Body=STOP&Sid=i1")
    text = inbound_text(config.webhooks.inbound, "http:3", document)
    assert text == InboundText("+14158675309", "+14155550000", "STOP", "http:3:i1")
    with pytest.raises(InvalidInput, match="not a form"):
        payload(config.webhooks, b"&&=&")


def test_it_leaves_out_an_absent_optional_field_and_encodes_url_values() -> None:
    values = {"to": "+1 415", "from": None, "body": "a&b=c", "status_callback_url": None}
    template = {"to": "${to}", "from": "${from}", "text": "${body}", "cb": "${status_callback_url}"}
    assert render_body(template, values, {}) == {"to": "+1 415", "text": "a&b=c"}
    url = "https://sms.example.com/send?text=${body}&key=${secret:k}"
    assert render(url, values, {"k": "s/1"}, in_url=True) == (
        "https://sms.example.com/send?text=a%26b%3Dc&key=s%2F1"
    )
