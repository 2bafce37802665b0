"""Tenant isolation, walked over every route in the served schema, on both databases.

Account B (Globex) gets one object of every kind. Account A (Acme) then calls every
/api/v1 operation with its own key, aimed at B's objects: B's ids in the path, B's ids
in the body. Every such call must be a 404 problem, exactly like an object that does not
exist; every list and search A can make must show none of B's data; and, afterwards,
every row of B's, in every table, must be exactly as it was.

Each operation must be in `TARGETED` or `OWN_ACCOUNT` below: a new route with no entry
fails `test_it_has_a_case_for_every_route`, so the walk cannot silently skip it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.services import automations, contacts, credits, providers, webhooks
from sendline.services.api_keys import list_keys
from sendline.services.inbox import receive_text
from sendline.store.import_models import ImportJob
from sendline.store.models import Account, Base, Contact
from tests.api.conftest import SECRET_KEY, Tenant
from tests.engine.factories import queue_message

MARKER = "GlobexSecret"  # in B's texts, names and addresses: A must never see it
B_PHONE = "+14158675308"  # the `globex` fixture's contact


@dataclass(frozen=True)
class Objects:
    """B's objects, by the path parameter that names each kind."""

    ids: dict[str, int]
    contact_id: int
    message_id: int


# What A sends to an operation: keyword arguments of `TestClient.request`.
Call = Callable[[Objects], dict[str, Any]]
NOTHING: Call = lambda b: {}  # noqa: E731
B_TAG = f"{MARKER}-vip"
B_LIST = f"{MARKER} list"
DEFINITION = {
    "name": "Acme ship",
    "trigger": {"type": "event", "name": "shipped"},
    "steps": [{"type": "send_sms", "body": "Hi"}],
}
CSV = "phone,first_name\n+14155550123,Ada\n"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
ACME_TWILIO = {
    "kind": "twilio",
    "account_sid": TWILIO_SID,
    "auth_token": TWILIO_TOKEN,
    "from_number": "+14158675390",
}

# Operations aimed at B's objects (by path or body): each must be a 404.
TARGETED: dict[tuple[str, str], Call] = {
    ("POST", "/api/v1/events"): lambda b: {"json": {"name": "shipped", "contact_id": b.contact_id}},
    ("DELETE", "/api/v1/keys/{key_id}"): NOTHING,
    ("GET", "/api/v1/contacts/{contact_id}"): NOTHING,
    ("PATCH", "/api/v1/contacts/{contact_id}"): lambda b: {"json": {"first_name": "Eve"}},
    ("DELETE", "/api/v1/contacts/{contact_id}"): NOTHING,
    ("POST", "/api/v1/contacts/{contact_id}/tags"): lambda b: {"json": {"tags": ["x"]}},
    ("DELETE", "/api/v1/contacts/{contact_id}/tags/{tag}"): NOTHING,
    ("POST", "/api/v1/contacts/{contact_id}/lists"): lambda b: {"json": {"list": "x"}},
    ("DELETE", "/api/v1/contacts/{contact_id}/lists/{name}"): NOTHING,
    ("GET", "/api/v1/contacts/{contact_id}/consent"): NOTHING,
    ("POST", "/api/v1/contacts/{contact_id}/consent"): lambda b: {
        "json": {"status": "opted_out", "method": "api"}
    },
    ("GET", "/api/v1/imports/{import_id}"): NOTHING,
    ("GET", "/api/v1/imports/{import_id}/rejected"): NOTHING,
    ("GET", "/api/v1/automations/{automation_id}"): NOTHING,
    ("PUT", "/api/v1/automations/{automation_id}"): lambda b: {"json": DEFINITION},
    ("GET", "/api/v1/automations/{automation_id}/versions"): NOTHING,
    ("POST", "/api/v1/automations/{automation_id}/activate"): NOTHING,
    ("POST", "/api/v1/automations/{automation_id}/pause"): NOTHING,
    ("POST", "/api/v1/automations/{automation_id}/archive"): NOTHING,
    ("POST", "/api/v1/automations/{automation_id}/preflight"): NOTHING,
    ("POST", "/api/v1/automations/{automation_id}/start"): NOTHING,
    ("GET", "/api/v1/messages/{message_id}"): NOTHING,
    ("POST", "/api/v1/messages/{message_id}/cancel"): NOTHING,
    ("POST", "/api/v1/messages/release"): lambda b: {"json": {"ids": [b.message_id]}},
    ("POST", "/api/v1/messages/test"): lambda b: {
        "json": {"contact_id": b.contact_id, "body": "Hi"}
    },
    ("GET", "/api/v1/inbound/{inbound_id}"): NOTHING,
    ("POST", "/api/v1/inbound/{inbound_id}/review"): lambda b: {
        "json": {"decision": "opt_out", "by": "ops"}
    },
    ("GET", "/api/v1/webhooks/{webhook_id}"): NOTHING,
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): lambda b: {"json": {"enabled": False}},
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): NOTHING,
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): NOTHING,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): NOTHING,
    ("DELETE", "/api/v1/providers/{provider_id}"): NOTHING,
    ("POST", "/api/v1/providers/{provider_id}/move"): lambda b: {"json": {"position": 1}},
    ("POST", "/api/v1/providers/{provider_id}/test"): lambda b: {"json": {"to": B_PHONE}},
}

# Operations on A's own account (lists, searches, creations), searches aimed at B's
# data: A gets an answer, and nothing of B's may appear in it.
OWN_ACCOUNT: dict[tuple[str, str], Call] = {
    ("GET", "/api/v1/account"): NOTHING,
    ("GET", "/api/v1/keys"): NOTHING,
    ("GET", "/api/v1/contacts"): lambda b: {"params": {"phone": B_PHONE}},
    ("POST", "/api/v1/contacts"): lambda b: {"json": {"phone": "+14155550199"}},
    ("GET", "/api/v1/contacts/export"): NOTHING,
    ("GET", "/api/v1/tags"): NOTHING,
    ("GET", "/api/v1/lists"): NOTHING,
    ("GET", "/api/v1/imports"): NOTHING,
    ("POST", "/api/v1/imports"): lambda b: {"files": {"file": ("acme.csv", CSV, "text/csv")}},
    ("GET", "/api/v1/automations"): NOTHING,
    ("GET", "/api/v1/automations/schema"): NOTHING,
    ("POST", "/api/v1/automations"): lambda b: {"json": DEFINITION},
    ("POST", "/api/v1/automations/validate"): lambda b: {"json": DEFINITION},
    ("GET", "/api/v1/messages"): lambda b: {"params": {"contact_id": b.contact_id}},
    ("GET", "/api/v1/inbound"): lambda b: {"params": {"contact_id": b.contact_id}},
    ("GET", "/api/v1/webhooks"): NOTHING,
    ("POST", "/api/v1/webhooks"): lambda b: {
        "json": {"url": "https://hooks.acme.example/sendline", "events": ["message.status"]}
    },
    ("PATCH", "/api/v1/account"): lambda b: {"json": {"max_segments": 2}},
    ("GET", "/api/v1/credits"): NOTHING,
    ("GET", "/api/v1/credits/ledger"): NOTHING,
    ("POST", "/api/v1/credits/purchases"): lambda b: {"json": {"credits": 5}},
    ("GET", "/api/v1/providers"): NOTHING,
    ("POST", "/api/v1/providers"): lambda b: {"json": ACME_TWILIO},
}

# Routes outside any account: the admin key's.
NOT_ACCOUNT_ROUTES = ("/api/v1/admin/",)


def _operations(client: TestClient) -> set[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/v1/") and not path.startswith(NOT_ACCOUNT_ROUTES)
        for method in operations
    }


def _b_objects(sessions: sessionmaker[Session], session: Session, globex: Tenant) -> Objects:
    # The service needs the settings' secret key and webhook rules, not their database.
    keyed = Settings(data_dir=Path("."), database_url="sqlite:////x", secret_keys=(SECRET_KEY,))
    account = session.get(Account, globex.account_id)
    contact = session.get(Contact, globex.contact_id)
    assert account is not None and contact is not None
    contact.first_name = MARKER
    session.commit()
    message_id = queue_message(session, account, contact, body=f"{MARKER} sale. Reply STOP").id
    account_id, contact_id = account.id, contact.id
    session.rollback()  # a read holds SQLite's write lock (BEGIN IMMEDIATE): let it go
    receive_text(sessions, from_number=B_PHONE, body=f"is this {MARKER}?", account_id=account.id)
    inbound_id = _newest_id(session, "inbound_messages")
    session.rollback()
    hook = webhooks.create_webhook(
        sessions, keyed, account_id, f"https://{MARKER.lower()}.example/hook", ["message.held"]
    )
    automation = automations.create_automation(
        sessions,
        account_id,
        f"name: {MARKER} ship\ntrigger: {{type: event, name: shipped}}\n"
        "steps: [{type: send_sms, body: Hi}]",
    )
    provider = providers.add_provider(
        sessions,
        keyed,
        account_id,
        providers.TwilioFields(TWILIO_SID, TWILIO_TOKEN, "+14158675391"),
        label=f"{MARKER} Twilio",
    )
    credits.buy_credits(sessions, account_id, 5, note=f"{MARKER} invoice")
    contacts.tag(sessions, account_id, contact_id, [B_TAG])
    contacts.subscribe(sessions, account_id, contact_id, B_LIST)
    job = ImportJob(
        account_id=account_id,
        status="done",
        filename=f"{MARKER}.csv",
        options={},
        counts={"created": 1},
        owner="test",
    )
    session.add(job)
    session.commit()
    import_id = job.id
    session.rollback()
    return Objects(
        ids={
            "message_id": message_id,
            "inbound_id": inbound_id,
            "webhook_id": hook.view.id,
            "contact_id": contact_id,
            "automation_id": automation.id,
            "import_id": import_id,
            "key_id": list_keys(sessions, account_id)[0].id,
            "provider_id": provider.provider.id,
        },
        contact_id=contact_id,
        message_id=message_id,
    )


def _newest_id(session: Session, table: str) -> int:
    column = Base.metadata.tables[table].c.id
    found = session.scalar(select(column).order_by(column.desc()).limit(1))
    assert found is not None
    return int(found)


def _rows_of(session: Session, account_id: int, contact_ids: set[int]) -> dict[str, Any]:
    """Every row of the account's, in every table: by account_id, else by contact_id."""
    session.expire_all()
    snapshot: dict[str, Any] = {}
    for name, table in sorted(Base.metadata.tables.items()):
        if "account_id" in table.c:
            query = select(table).where(table.c.account_id == account_id)
        elif "contact_id" in table.c and contact_ids:
            query = select(table).where(table.c.contact_id.in_(contact_ids))
        else:
            continue
        rows = session.execute(query.order_by(*table.primary_key.columns)).mappings()
        snapshot[name] = [dict(row) for row in rows]
    session.rollback()  # a read holds SQLite's write lock (BEGIN IMMEDIATE): let it go
    return snapshot


def _fill(path: str, objects: Objects) -> str:
    names = {"tag": B_TAG, "name": B_LIST}
    for name, value in [*objects.ids.items(), *names.items()]:
        path = path.replace("{" + name + "}", str(value))
    assert "{" not in path, f"no object of B's for a parameter of {path}"
    return path


def test_it_has_a_case_for_every_route(client: TestClient) -> None:
    listed = set(TARGETED) | set(OWN_ACCOUNT)
    assert _operations(client) - listed == set(), "routes with no isolation case"
    assert listed - _operations(client) == set(), "cases for routes that do not exist"


@pytest.fixture
def b_objects(session_factory: sessionmaker[Session], session: Session, globex: Tenant) -> Objects:
    return _b_objects(session_factory, session, globex)


def test_it_shows_and_changes_nothing_of_another_account_on_any_route(
    keyed_client: TestClient,
    acme: Tenant,
    globex: Tenant,
    b_objects: Objects,
    session: Session,
) -> None:
    before = _rows_of(session, globex.account_id, {b_objects.contact_id})
    assert before["messages"] and before["webhook_endpoints"], "B has objects to protect"

    for (method, path), call in sorted(TARGETED.items()):
        response = keyed_client.request(
            method, _fill(path, b_objects), headers=acme.headers, **call(b_objects)
        )
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] in ("not_found", "contact_not_found"), response.text
        assert MARKER not in response.text and B_PHONE not in response.text

    for (method, path), call in sorted(OWN_ACCOUNT.items()):
        response = keyed_client.request(method, path, headers=acme.headers, **call(b_objects))
        assert response.status_code < 300, (method, path, response.text)
        assert MARKER not in response.text and B_PHONE not in response.text, (method, path)

    assert _rows_of(session, globex.account_id, {b_objects.contact_id}) == before
