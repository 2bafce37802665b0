"""PATCH /api/v1/account on both databases: every setting `accounts update` changes,
each value checked before anything is written (a partly invalid change writes nothing,
the 422 names the field), the plan out of an account key's reach, and one account's
change never touching another's."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from sendline.services.api_keys import create_key
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of

CLAUSE = "Reply STOP to end texts."
HELP = "Acme alerts. Reply STOP to opt out. Help: acme.example/help"


def _account(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    response = client.get("/api/v1/account", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_it_changes_every_sending_setting_at_once(
    client: TestClient, acme: Tenant, globex: Tenant
) -> None:
    before_globex = _account(client, globex)
    change = {
        "quiet_hours": "09:00-20:30",
        "frequency_cap": 3,
        "max_segments": 2,
        "optout_clause": CLAUSE,
        "optout_language": "fr",
        "optout_clause_policy": "every_30_days",
        "help_text": HELP,
        "sender_number": "+1 415 555 0199",
    }
    response = client.patch("/api/v1/account", headers=acme.headers, json=change)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = change | {"sender_number": "+14155550199"}
    assert {key: body[key] for key in change} == expected
    # Stored: a new request reads the same, and the other account is untouched.
    assert _account(client, acme) == body
    assert _account(client, globex) == before_globex


def test_it_sets_one_end_of_the_window_and_keeps_the_rest(client: TestClient, acme: Tenant) -> None:
    before = _account(client, acme)
    body = client.patch("/api/v1/account", headers=acme.headers, json={"quiet_end": "21:00"}).json()
    assert body["quiet_hours"] == "00:00-21:00"
    assert {k: v for k, v in body.items() if k != "quiet_hours"} == {
        k: v for k, v in before.items() if k != "quiet_hours"
    }


@pytest.mark.parametrize(
    ("change", "field", "code", "words"),
    [
        # One good value beside a bad one: the good one is not written either.
        (
            {"max_segments": 3, "optout_clause": "Thanks for shopping!"},
            "optout_clause",
            "invalid_optout_clause",
            ["optout_clause: opt-out clause"],
        ),
        (
            {"quiet_hours": "25:00-26:00", "frequency_cap": 5, "help_text": "Call us!"},
            "quiet_hours",
            "invalid_input",
            ["quiet_hours: sending window", "help_text: help text"],
        ),
        ({"optout_language": "French!"}, "optout_language", "invalid_input", ["language"]),
        ({"optout_clause_policy": "sometimes"}, "optout_clause_policy", "invalid_input", []),
        ({"sender_number": "+1 555"}, "sender_number", "invalid_input", ["sender number"]),
        ({"quiet_start": "7am"}, "quiet_start", "invalid_input", ["must look like 08:00"]),
        (
            {"quiet_hours": "08:00-20:00", "quiet_start": "07:00"},
            "quiet_start",
            "invalid_input",
            ["both set quiet_start"],
        ),
        # Bounded by the schema: refused before the service is called.
        ({"max_segments": 11, "help_text": HELP}, "max_segments", "invalid_input", []),
        ({"frequency_cap": 0}, "frequency_cap", "invalid_input", []),
        ({"help_text": "x" * 321}, "help_text", "invalid_input", []),
        ({"optout_clause": "Reply STOP\x00"}, "optout_clause", "invalid_input", []),
        ({"max_segments": "two"}, "max_segments", "invalid_input", []),
        # The plan is the operator's (PATCH /admin/accounts/{id}), not the account's.
        ({"tier": "enterprise"}, "tier", "invalid_input", []),
        ({"sms_addon": True}, "sms_addon", "invalid_input", []),
        ({"credit_rates": {"default": 0}}, "credit_rates", "invalid_input", []),
    ],
)
def test_it_writes_nothing_of_a_partly_invalid_change_and_names_the_field(
    client: TestClient,
    acme: Tenant,
    change: dict[str, Any],
    field: str,
    code: str,
    words: list[str],
) -> None:
    before = _account(client, acme)
    response = client.patch("/api/v1/account", headers=acme.headers, json=change)
    body = problem_of(response, 422, code)
    assert body["field"] == field
    for word in words:
        assert word in body["detail"]
    assert _account(client, acme) == before


def test_it_refuses_a_window_the_stored_end_contradicts(client: TestClient, acme: Tenant) -> None:
    # Each value is fine alone; with the stored end (21:00) the window would be empty.
    client.patch("/api/v1/account", headers=acme.headers, json={"quiet_hours": "08:00-21:00"})
    before = _account(client, acme)
    change = {"quiet_start": "22:00", "max_segments": 4}
    response = client.patch("/api/v1/account", headers=acme.headers, json=change)
    assert "sending window 22:00-21:00" in problem_of(response, 422, "invalid_input")["detail"]
    assert _account(client, acme) == before


def test_it_refuses_an_empty_change(client: TestClient, acme: Tenant) -> None:
    for body in ({}, {"max_segments": None}):
        response = client.patch("/api/v1/account", headers=acme.headers, json=body)
        assert "nothing to change" in problem_of(response, 422, "invalid_input")["detail"]


def test_it_refuses_an_admin_key_and_no_key(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    admin = create_key(session_factory, None, "ops", admin=True).key
    headers = {"Authorization": f"Bearer {admin}"}
    response = client.patch("/api/v1/account", headers=headers, json={"max_segments": 2})
    problem_of(response, 403, "account_key_required")
    response = client.patch("/api/v1/account", json={"max_segments": 2})
    problem_of(response, 401, "invalid_api_key")
    assert _account(client, acme)["max_segments"] == 1
