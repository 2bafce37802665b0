"""/api/v1/contacts/{id}/consent on both databases: an opt-in is recorded with its proof
and refused without it (as `sendline contacts opt-in` refuses it), an opt-out wins, the
history pages newest first, and another account's contact is 404."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from sendline.services import contacts as service
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of

V1 = "/api/v1"
NAIVE = "2026-01-01T00:00:00"
YEAR_ONE = "0001-01-01T00:00:00+01:00"
SEEN = "Yes, text me offers from Acme (up to 3/week). Reply STOP to opt out."


def _url(tenant: Tenant, contact_id: int | None = None) -> str:
    return f"{V1}/contacts/{contact_id or tenant.contact_id}/consent"


def test_it_records_an_opt_in_with_its_proof(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    new = client.post(f"{V1}/contacts", headers=acme.headers, json={"phone": "+14155550190"})
    url = _url(acme, new.json()["id"])
    body = {
        "status": "opted_in",
        "method": "form",
        "disclosure": SEEN,
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "source": "checkout form",
        "occurred_at": "2026-11-20T10:00:00+01:00",
    }
    response = client.post(url, headers=acme.headers, json=body)
    assert response.status_code == 201, response.text
    event = response.json()
    assert {k: event[k] for k in ("status", "method", "disclosure", "ip", "source")} == {
        "status": "opted_in",
        "method": "form",
        "disclosure": SEEN,
        "ip": "203.0.113.7",
        "source": "checkout form",
    }
    assert event["occurred_at"].startswith("2026-11-20T09:00:00")
    assert event["recorded_by"].startswith("api key ")
    shown = service.show(session_factory, acme.account_id, new.json()["id"])
    assert shown.sms_consent == "opted_in"
    assert shown.latest_consent is not None and shown.latest_consent.id == event["id"]


def test_it_refuses_an_opt_in_without_disclosure_as_the_cli_does(
    client: TestClient, acme: Tenant
) -> None:
    url = _url(acme)
    no_text = client.post(url, headers=acme.headers, json={"status": "opted_in", "method": "form"})
    assert problem_of(no_text, 422, "disclosure_required")["field"] == "disclosure"
    no_method = client.post(
        url, headers=acme.headers, json={"status": "opted_in", "disclosure": SEEN}
    )
    assert problem_of(no_method, 422, "invalid_input")["field"] == "method"
    bad_ip = {"status": "opted_in", "method": "form", "disclosure": SEEN, "ip": "999.1.1.1"}
    assert (
        problem_of(client.post(url, headers=acme.headers, json=bad_ip), 422, "bad_ip")["field"]
        == "ip"
    )
    history = client.get(url, headers=acme.headers).json()["data"]
    assert len(history) == 1  # only the fixture's opt-in: nothing was recorded


def test_it_records_an_opt_out_and_pages_the_history_newest_first(
    client: TestClient, acme: Tenant
) -> None:
    url = _url(acme)
    out = {"status": "opted_out", "method": "agent", "recorded_by": "support: Kim"}
    response = client.post(url, headers=acme.headers, json=out)
    assert response.status_code == 201, response.text
    assert response.json()["recorded_by"] == "support: Kim"
    contact = client.get(f"{V1}/contacts/{acme.contact_id}", headers=acme.headers).json()
    assert contact["sms_consent"] == "opted_out"
    assert contact["latest_consent"]["status"] == "opted_out"
    first = client.get(url, headers=acme.headers, params={"limit": 1}).json()
    assert [e["status"] for e in first["data"]] == ["opted_out"]
    rest = client.get(url, headers=acme.headers, params={"cursor": first["next_cursor"]}).json()
    assert [e["status"] for e in rest["data"]] == ["opted_in"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("POST", {"status": "opted_out", "method": "api"}),
        ("POST", {"status": "opted_in", "method": "form", "disclosure": SEEN}),
        ("GET", None),
    ],
)
def test_it_answers_404_for_another_accounts_contact(
    client: TestClient,
    acme: Tenant,
    globex: Tenant,
    session_factory: sessionmaker[Session],
    method: str,
    body: dict[str, Any] | None,
) -> None:
    response = client.request(method, _url(globex), headers=acme.headers, json=body)
    assert "Globex" not in problem_of(response, 404, "not_found")["detail"]
    history = service.consent_history(session_factory, globex.account_id, globex.contact_id)
    assert [e.kind for e in history.events] == ["opt_in"]  # nothing recorded


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "maybe", "method": "form"}, "status"),
        ({"status": "opted_out", "method": "carrier pigeon"}, "method"),
        ({"status": "opted_out", "method": "api", "occurred_at": "2026-01-01T00:00:00"}, None),
        (
            {"status": "opted_out", "method": "api", "occurred_at": "0001-01-01T00:00:00+01:00"},
            None,
        ),
        ({"status": "opted_out", "method": "api", "source": ""}, "source"),
    ],
)
def test_it_names_the_field_of_invalid_consent_with_422(
    client: TestClient, acme: Tenant, body: dict[str, Any], field: str | None
) -> None:
    response = client.post(_url(acme), headers=acme.headers, json=body)
    problem = problem_of(response, 422, "invalid_input")
    assert problem["field"] == (field or "occurred_at")
