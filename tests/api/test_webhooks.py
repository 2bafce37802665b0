"""/api/v1/webhooks through HTTP on both databases: the secret shown once, the URL
rules, pagination, PATCH and rotation, and tenant isolation on every route."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import InvalidInput
from sendline.services.webhooks import check_url
from sendline.store.secret_box import SecretBox
from sendline.store.webhook_models import WebhookEndpoint
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of
from tests.api.webhook_fixtures import KEY, START, add_event, clock, hooks, register

__all__ = ["clock", "hooks"]  # fixtures

URL = "https://hooks.example.com/sendline"


def test_it_creates_an_endpoint_and_shows_its_secret_once(
    hooks: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    add_event(session_factory, acme.account_id, "message.status", at=START, status="sent")
    created = register(hooks, acme.headers, URL, "message.status", "message.held")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["message.status", "message.held"]
    assert (created["enabled"], created["disabled_reason"], created["attempts"]) == (True, None, 0)
    shown = hooks.get(f"/api/v1/webhooks/{created['id']}", headers=acme.headers)
    assert shown.status_code == 200
    assert "secret" not in shown.json() and created["secret"] not in shown.text
    assert shown.json()["cursor"] == created["cursor"] > 0  # starts after what was
    listed = hooks.get("/api/v1/webhooks", headers=acme.headers).json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert created["secret"] not in str(listed)
    with session_factory() as session:
        row = session.scalars(select(WebhookEndpoint)).one()
        assert created["secret"] not in row.secret  # sealed, never in clear
        assert SecretBox((KEY,)).open(row.secret)["signing_secret"] == created["secret"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://hooks.example.com/x", "events": ["message.status"]}, "url"),
        ({"url": "https://user:pw@hooks.example.com/x", "events": ["message.status"]}, "url"),
        ({"url": "ftp://hooks.example.com/x", "events": ["message.status"]}, "url"),
        ({"url": "https:///nohost", "events": ["message.status"]}, "url"),
        ({"url": "https://hooks.example.com:99999/", "events": ["message.status"]}, "url"),
        ({"url": "https://hooks.example.com/a\x00b", "events": ["message.status"]}, "url"),
        ({"url": "https://hooks.example.com/#top", "events": ["message.status"]}, "url"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["message.sent"]}, "events.0"),
        ({"url": URL}, "events"),
    ],
)
def test_it_refuses_a_bad_url_or_kind_naming_the_field(
    hooks: TestClient, acme: Tenant, body: dict[str, object], field: str
) -> None:
    response = hooks.post("/api/v1/webhooks", headers=acme.headers, json=body)
    assert problem_of(response, 422, "invalid_input")["field"] == field
    assert hooks.get("/api/v1/webhooks", headers=acme.headers).json()["data"] == []


def test_it_allows_http_only_to_loopback_and_only_when_the_setting_says_so() -> None:
    assert check_url("http://127.0.0.1:8080/h", allow_http=True) == "http://127.0.0.1:8080/h"
    assert check_url("http://localhost/h", allow_http=True) == "http://localhost/h"
    for url in ("http://127.0.0.1/h", "https://127.0.0.1/h", "https://10.1.2.3/h"):
        with pytest.raises(InvalidInput):
            check_url(url, allow_http=False)
    with pytest.raises(InvalidInput):
        check_url("http://192.168.1.2/h", allow_http=True)
    assert check_url("https://[2606:4700::1]/h", allow_http=False) == "https://[2606:4700::1]/h"


def test_it_pages_the_endpoints_newest_first(hooks: TestClient, acme: Tenant) -> None:
    ids = [register(hooks, acme.headers, f"{URL}/{n}")["id"] for n in range(3)]
    first = hooks.get("/api/v1/webhooks?limit=2", headers=acme.headers).json()
    assert [e["id"] for e in first["data"]] == [ids[2], ids[1]]
    cursor = first["next_cursor"]
    second = hooks.get(f"/api/v1/webhooks?limit=2&cursor={cursor}", headers=acme.headers).json()
    assert ([e["id"] for e in second["data"]], second["next_cursor"]) == ([ids[0]], None)


def test_it_changes_disables_and_reenables_an_endpoint(hooks: TestClient, acme: Tenant) -> None:
    endpoint = register(hooks, acme.headers, URL)
    path = f"/api/v1/webhooks/{endpoint['id']}"
    changed = hooks.patch(
        path, headers=acme.headers, json={"url": f"{URL}/v2", "events": ["inbound.received"]}
    ).json()
    assert (changed["url"], changed["events"], changed["enabled"]) == (
        f"{URL}/v2",
        ["inbound.received"],
        True,
    )
    off = hooks.patch(path, headers=acme.headers, json={"enabled": False}).json()
    assert (off["enabled"], off["disabled_reason"]) == (False, "disabled by the user")
    on = hooks.patch(path, headers=acme.headers, json={"enabled": True}).json()
    assert (on["enabled"], on["disabled_reason"], on["cursor"]) == (True, None, endpoint["cursor"])
    bad = hooks.patch(path, headers=acme.headers, json={"url": "http://example.com"})
    assert problem_of(bad, 422, "invalid_input")["field"] == "url"


def test_it_rotates_the_secret_and_deletes_the_endpoint(hooks: TestClient, acme: Tenant) -> None:
    endpoint = register(hooks, acme.headers, URL)
    path = f"/api/v1/webhooks/{endpoint['id']}"
    rotated = hooks.post(f"{path}/rotate-secret", headers=acme.headers)
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != endpoint["secret"]
    deleted = hooks.delete(path, headers=acme.headers)
    assert (deleted.status_code, deleted.json()["id"]) == (200, endpoint["id"])
    problem_of(hooks.get(path, headers=acme.headers), 404, "not_found")


def test_it_answers_404_for_another_accounts_endpoint_on_every_route(
    hooks: TestClient, acme: Tenant, globex: Tenant
) -> None:
    theirs = register(hooks, globex.headers, URL)
    path = f"/api/v1/webhooks/{theirs['id']}"
    for response in (
        hooks.get(path, headers=acme.headers),
        hooks.patch(path, headers=acme.headers, json={"enabled": False}),
        hooks.patch(path, headers=acme.headers, json={"url": f"{URL}/mine"}),
        hooks.delete(path, headers=acme.headers),
        hooks.post(f"{path}/rotate-secret", headers=acme.headers),
        hooks.get(f"{path}/deliveries", headers=acme.headers),
    ):
        problem_of(response, 404, "not_found")
    assert hooks.get("/api/v1/webhooks", headers=acme.headers).json()["data"] == []
    unchanged = hooks.get(path, headers=globex.headers).json()
    assert (unchanged["url"], unchanged["enabled"]) == (URL, True)
    problem_of(hooks.get("/api/v1/webhooks/2147483647", headers=acme.headers), 404, "not_found")


def test_it_refuses_to_store_a_secret_without_a_key(client: TestClient, acme: Tenant) -> None:
    response = client.post(
        "/api/v1/webhooks", headers=acme.headers, json={"url": URL, "events": ["message.held"]}
    )
    problem_of(response, 503, "config_error")
