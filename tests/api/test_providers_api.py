"""/api/v1/providers on both databases: add (Twilio, HTTP gateway), list, move, remove
and the test message; every refusal a 422 naming the field with nothing stored;
secrets never in a response; and another account's provider a 404 on every route."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.app import create_app
from sendline.bootstrap import Runtime
from sendline.config import Settings
from sendline.engine.worker import Worker, WorkerOptions
from sendline.providers.factory import build_directory
from sendline.services.providers import TEST_BODY
from sendline.store.engine_models import Message, ProviderConfig
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of
from tests.fakes.gateway_api import API_KEY, WEBHOOK_SECRET, docs_example
from tests.fakes.twilio_api import FakeTwilio

SID = "AC" + "0123456789abcdef" * 2
SERVICE = "MG" + "fedcba9876543210" * 2
TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
FROM = "+14158675310"
KEY = Fernet.generate_key().decode()
SECRETS = (TOKEN, SID, FROM, API_KEY, WEBHOOK_SECRET, SERVICE)


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    """SENDLINE_SECRET_KEY and SENDLINE_PUBLIC_URL set."""
    return Settings(
        data_dir=tmp_path,
        database_url=engine.url.render_as_string(hide_password=False),
        secret_keys=(KEY,),
        public_url="https://sms.example.com",
    )


@pytest.fixture
def api(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> Iterator[TestClient]:
    app = create_app(Runtime(settings, engine, session_factory))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def twilio(**changes: Any) -> dict[str, Any]:
    return {"kind": "twilio", "account_sid": SID, "auth_token": TOKEN, "from_number": FROM} | {
        k: v for k, v in changes.items()
    }


def gateway() -> dict[str, Any]:
    return {
        "kind": "http",
        "config": docs_example("http://127.0.0.1:9"),
        "secrets": {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET},
        "from_number": "+14158675311",
        "label": "Backup gateway",
    }


def revealing(response: Response) -> list[str]:
    """The secrets (and full SID or number) a response shows: none, ever."""
    return [secret for secret in SECRETS if secret in response.text]


def _add(api: TestClient, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/api/v1/providers", headers=tenant.headers, json=body)
    assert response.status_code == 201, response.text
    assert revealing(response) == []
    added: dict[str, Any] = response.json()
    return added


def _listed(api: TestClient, tenant: Tenant) -> list[dict[str, Any]]:
    response = api.get("/api/v1/providers", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert revealing(response) == []
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def _stored(session: Session) -> int:
    count = session.scalar(select(func.count()).select_from(ProviderConfig))
    session.commit()
    return int(count or 0)


def test_it_adds_lists_moves_and_removes_providers_without_showing_a_secret(
    api: TestClient, acme: Tenant
) -> None:
    assert _listed(api, acme) == []
    first = _add(api, acme, twilio())
    assert first == {
        "id": first["id"],
        "name": f"twilio:{first['id']}",
        "kind": "twilio",
        "position": 1,
        "label": "Twilio +1415•••5310",
        "identity": "AC01…ef",
        "sender": "+1415•••5310",
        "carrier_confirms_optout": True,
        "warnings": [],
    }
    second = _add(api, acme, gateway())
    assert (second["kind"], second["position"], second["label"]) == ("http", 2, "Backup gateway")
    assert [p["id"] for p in _listed(api, acme)] == [first["id"], second["id"]]

    moved = api.post(
        f"/api/v1/providers/{second['id']}/move", headers=acme.headers, json={"position": 1}
    )
    assert moved.status_code == 200, moved.text
    assert [(p["id"], p["position"]) for p in moved.json()["data"]] == [
        (second["id"], 1),
        (first["id"], 2),
    ]
    assert _listed(api, acme) == moved.json()["data"]

    removed = api.delete(f"/api/v1/providers/{second['id']}", headers=acme.headers)
    assert removed.status_code == 200, removed.text
    assert removed.json()["id"] == second["id"]
    assert [(p["id"], p["position"]) for p in _listed(api, acme)] == [(first["id"], 1)]
    again = api.delete(f"/api/v1/providers/{second['id']}", headers=acme.headers)
    problem_of(again, 404, "not_found")


def test_it_pages_the_providers_in_failover_order(api: TestClient, acme: Tenant) -> None:
    ids = [_add(api, acme, twilio(from_number=f"+1415867{5320 + n}"))["id"] for n in range(3)]
    api.post(f"/api/v1/providers/{ids[2]}/move", headers=acme.headers, json={"position": 1})
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/v1/providers", headers=acme.headers, params=params).json()
        seen += [p["id"] for p in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [ids[2], ids[0], ids[1]]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (twilio(account_sid="AC123"), "account_sid", "invalid_account_sid"),
        (twilio(account_sid="XX" + "0" * 32), "account_sid", "invalid_account_sid"),
        (twilio(auth_token=TOKEN[:-1] + "z"), "auth_token", "invalid_auth_token"),
        (twilio(from_number="4158675310"), "from_number", "invalid_from_number"),
        (twilio(messaging_service_sid=SERVICE), "from_number", "invalid_sender"),
        (
            twilio(from_number=None, messaging_service_sid="MG1"),
            "messaging_service_sid",
            "invalid_messaging_service_sid",
        ),
        (twilio(position=2), "position", "invalid_position"),
        (twilio(label="   "), "label", "invalid_label"),
        (gateway() | {"secrets": {"api_key": API_KEY}}, "secrets", "missing_secret"),
        (gateway() | {"config": "request: [unclosed"}, "config", "invalid_input"),
        # The schema's own bounds.
        (twilio(account_sid="A" * 65), "twilio.account_sid", "invalid_input"),
        (twilio(position=0), "twilio.position", "invalid_input"),
        (twilio(colour="blue"), "twilio.colour", "invalid_input"),
        # A kind it does not know: pydantic places that error on the body as a whole.
        ({"kind": "carrier-pigeon"}, None, "invalid_input"),
    ],
)
def test_it_refuses_a_bad_field_by_name_and_stores_nothing(
    api: TestClient,
    acme: Tenant,
    session: Session,
    body: dict[str, Any],
    field: str | None,
    code: str,
) -> None:
    response = api.post("/api/v1/providers", headers=acme.headers, json=body)
    problem = problem_of(response, 422, code)
    assert problem.get("field") == field
    assert field is not None or "'kind'" in problem["detail"]
    assert revealing(response) == []
    assert _stored(session) == 0


def test_it_refuses_a_number_another_account_sends_from(
    api: TestClient, acme: Tenant, globex: Tenant, session: Session
) -> None:
    _add(api, acme, twilio())
    response = api.post("/api/v1/providers", headers=globex.headers, json=twilio())
    problem_of(response, 409, "sender_taken")
    assert revealing(response) == []
    assert _listed(api, globex) == []


def test_it_is_unavailable_without_the_secret_key_and_stores_nothing(
    client: TestClient, acme: Tenant, session: Session
) -> None:
    response = client.post("/api/v1/providers", headers=acme.headers, json=twilio())
    problem_of(response, 503, "config_error")
    assert revealing(response) == []
    assert _stored(session) == 0


def test_it_queues_a_test_message_through_the_accounts_providers(
    api: TestClient, acme: Tenant, session: Session
) -> None:
    provider = _add(api, acme, twilio())
    response = api.post(
        f"/api/v1/providers/{provider['id']}/test",
        headers=acme.headers,
        json={"to": "+1 415 867 5309"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["to"] == "+1415•••5309"
    assert body["providers"] == [provider["name"]]
    message = session.get(Message, body["message_id"])
    assert message is not None
    assert (message.account_id, message.contact_id) == (acme.account_id, acme.contact_id)
    assert message.status == "queued"
    session.commit()
    unknown = api.post(
        "/api/v1/providers/4242/test", headers=acme.headers, json={"to": "+14158675309"}
    )
    problem_of(unknown, 404, "not_found")
    stranger = api.post(
        f"/api/v1/providers/{provider['id']}/test", headers=acme.headers, json={"to": "+1415"}
    )
    assert problem_of(stranger, 422, "invalid_to")["field"] == "to"


def test_it_answers_404_for_another_accounts_provider_on_every_route(
    api: TestClient, acme: Tenant, globex: Tenant, session: Session
) -> None:
    theirs = _add(api, acme, twilio())
    path = f"/api/v1/providers/{theirs['id']}"
    attempts = [
        api.delete(path, headers=globex.headers),
        api.post(f"{path}/move", headers=globex.headers, json={"position": 1}),
        api.post(f"{path}/test", headers=globex.headers, json={"to": "+14158675308"}),
    ]
    for response in attempts:
        body = problem_of(response, 404, "not_found")
        assert "Acme" not in body["detail"]
        assert revealing(response) == []
    assert _listed(api, globex) == []
    # Nothing of Acme's changed, and no message was queued for Globex's contact.
    assert [(p["id"], p["position"]) for p in _listed(api, acme)] == [(theirs["id"], 1)]
    queued = session.scalar(select(func.count()).select_from(Message))
    session.commit()
    assert queued == 0


def test_it_sends_the_test_message_through_a_twilio_added_over_the_api(
    engine: Engine,
    session_factory: sessionmaker[Session],
    session: Session,
    settings: Settings,
    acme: Tenant,
) -> None:
    with FakeTwilio(seed=14, send_callbacks=False) as fake:
        settings = replace(settings, twilio_api_url=fake.url)
        app = create_app(Runtime(settings, engine, session_factory))
        with TestClient(app, raise_server_exceptions=False) as api:
            body = twilio(account_sid=fake.account_sid, auth_token=fake.auth_token)
            provider = _add(api, acme, body)
            path = f"/api/v1/providers/{provider['id']}/test"
            queued = api.post(path, headers=acme.headers, json={"to": "+14158675309"})
            assert queued.status_code == 202, queued.text
        message_id = queued.json()["message_id"]
        # A worker as `sendline worker` builds it: the stored providers, secrets opened.
        options = WorkerOptions(worker_id="w1", provider_concurrency=1)
        worker = Worker(session_factory, build_directory(settings, session_factory), options)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                message = session.get(Message, message_id, populate_existing=True)
                session.commit()
                if message is not None and message.status not in ("queued", "sending"):
                    break
                time.sleep(0.1)
        finally:
            worker.stop()
            thread.join(timeout=30)
        sent = fake.messages_to("+14158675309")
    assert message is not None
    assert (message.status, message.provider) == ("sent", provider["name"])
    assert len(sent) == 1
    assert sent[0].from_ == FROM and sent[0].body.startswith(TEST_BODY)
