"""/api/v1/automations through HTTP on both databases, with real data: a definition with
branches saved, activated and fired by an event (each contact takes exactly one branch),
statistics per step, versions, the pre-flight report, bulk starts, refused definitions
naming their fields, hostile bodies answered 4xx, and tenant isolation on every route."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.v1.automations import EXAMPLE
from sendline.engine.runner import Runner
from sendline.store.contacts import Contacts
from sendline.store.engine_models import AutomationRun, AutomationVersion, Message
from sendline.store.models import Account
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of
from tests.engine.factories import make_contact

API = "/api/v1/automations"
BRANCHES: dict[str, Any] = {
    "name": "Shipped",
    "trigger": {"type": "event", "name": "shipped"},
    "reentry": "always",
    "steps": [
        {
            "type": "if_else",
            "id": "vip?",
            "condition": {"tag": "vip"},
            "then": [{"type": "send_sms", "body": "VIP: your order ships free"}],
            "else": [{"type": "send_sms", "body": "Your order has shipped"}],
        },
        {"type": "add_tag", "tag": "shipped"},
    ],
}
BLAST: dict[str, Any] = {
    "name": "Sale",
    "trigger": {"type": "bulk"},
    "steps": [{"type": "send_sms", "body": "Sale: 20% off today"}],
}


def _create(client: TestClient, tenant: Tenant, definition: dict[str, Any]) -> dict[str, Any]:
    response = client.post(API, headers=tenant.headers, json=definition)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _activate(client: TestClient, tenant: Tenant, automation_id: int) -> None:
    response = client.post(f"{API}/{automation_id}/activate", headers=tenant.headers)
    assert (response.status_code, response.json()["status"]) == (200, "active"), response.text


def _run_due(session_factory: sessionmaker[Session]) -> None:
    clock = datetime.now(UTC) + timedelta(seconds=5)
    Runner(session_factory, worker_id="w1", clock=lambda: clock).run_due()


def _messages(session: Session, account_id: int) -> list[tuple[int | None, str | None, str]]:
    rows = session.execute(
        select(Message.contact_id, Message.step_id, Message.body)
        .where(Message.account_id == account_id)
        .order_by(Message.id)
    ).all()
    session.commit()
    return [
        (contact_id, step_id, (body or "").split("\n")[0]) for contact_id, step_id, body in rows
    ]


def test_it_saves_branches_and_each_contact_takes_exactly_one(
    client: TestClient, acme: Tenant, session: Session, session_factory: sessionmaker[Session]
) -> None:
    owner = session.get(Account, acme.account_id)
    assert owner is not None
    regular = make_contact(session, owner, "+14158675310").id
    Contacts(session, acme.account_id).add_tags(acme.contact_id, ["vip"])
    session.commit()
    saved = _create(client, acme, BRANCHES)
    assert (saved["name"], saved["status"], saved["version"]) == ("Shipped", "draft", 1)
    assert (saved["trigger_type"], saved["trigger_key"], saved["warnings"]) == (
        "event",
        "shipped",
        [],
    )
    _activate(client, acme, saved["id"])
    for contact_id in (acme.contact_id, regular):
        event = {"name": "shipped", "contact_id": contact_id}
        fired = client.post("/api/v1/events", headers=acme.headers, json=event)
        assert (fired.status_code, fired.json()["started"]) == (202, 1), fired.text
    _run_due(session_factory)
    assert _messages(session, acme.account_id) == [
        (acme.contact_id, "vip?.then-1", "VIP: your order ships free"),
        (regular, "vip?.else-1", "Your order has shipped"),
    ]
    detail = client.get(f"{API}/{saved['id']}", headers=acme.headers).json()
    assert detail["runs"] == {"active": 0, "completed": 2, "exited": 0, "failed": 0}
    steps = {step["id"]: step for step in detail["steps"]}
    assert list(steps) == ["vip?", "vip?.then-1", "vip?.else-1", "step-2"]
    assert steps["vip?"]["leads_to"] == "then: vip?.then-1; else: vip?.else-1"
    assert (steps["vip?.then-1"]["branch"], steps["vip?.then-1"]["depth"]) == ("then", 1)
    for step_id in ("vip?.then-1", "vip?.else-1"):
        assert steps[step_id]["messages"]["queued"] == 1
        assert sum(steps[step_id]["messages"].values()) == 1
    assert sum(steps["step-2"]["messages"].values()) == 0
    assert detail["definition"]["steps"][0]["then"][0]["id"] == "vip?.then-1"


def test_it_lists_pages_newest_first_and_filters_by_status(
    client: TestClient, acme: Tenant
) -> None:
    ids = [_create(client, acme, BLAST | {"name": f"Sale {n}"})["id"] for n in range(3)]
    _activate(client, acme, ids[1])
    first = client.get(API, headers=acme.headers, params={"limit": 2}).json()
    assert [item["id"] for item in first["data"]] == [ids[2], ids[1]]
    second = client.get(
        API, headers=acme.headers, params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert ([item["id"] for item in second["data"]], second["next_cursor"]) == ([ids[0]], None)
    active = client.get(API, headers=acme.headers, params={"status": "active"}).json()
    assert [(item["id"], item["status"]) for item in active["data"]] == [(ids[1], "active")]
    assert active["data"][0]["runs"] == {"active": 0, "completed": 0, "exited": 0, "failed": 0}
    bad = client.get(API, headers=acme.headers, params={"status": "running"})
    assert problem_of(bad, 422, "invalid_input")["field"] == "status"


def test_it_versions_an_active_automation_and_pauses_it(client: TestClient, acme: Tenant) -> None:
    automation_id = _create(client, acme, BLAST)["id"]
    draft_edit = client.put(f"{API}/{automation_id}", headers=acme.headers, json=BLAST)
    assert draft_edit.json()["version"] == 1  # a draft that never ran: edited in place
    _activate(client, acme, automation_id)
    changed = BLAST | {"steps": [{"type": "send_sms", "body": "Sale: 30% off today"}]}
    updated = client.put(f"{API}/{automation_id}", headers=acme.headers, json=changed)
    assert (updated.status_code, updated.json()["version"]) == (200, 2), updated.text
    versions = client.get(f"{API}/{automation_id}/versions", headers=acme.headers).json()
    assert [(v["number"], v["current"]) for v in versions["data"]] == [(2, True), (1, False)]
    assert versions["data"][0]["definition"]["steps"][0]["body"] == "Sale: 30% off today"
    page = client.get(f"{API}/{automation_id}/versions", headers=acme.headers, params={"limit": 1})
    after = {"limit": 1, "cursor": page.json()["next_cursor"]}
    rest = client.get(f"{API}/{automation_id}/versions", headers=acme.headers, params=after)
    assert [v["number"] for v in page.json()["data"] + rest.json()["data"]] == [2, 1]
    assert rest.json()["next_cursor"] is None
    paused = client.post(f"{API}/{automation_id}/pause", headers=acme.headers)
    assert paused.json()["status"] == "paused"
    again = client.post(f"{API}/{automation_id}/archive", headers=acme.headers)
    assert again.json()["status"] == "archived"
    refused = client.post(f"{API}/{automation_id}/pause", headers=acme.headers)
    problem_of(refused, 409, "not_active")


def test_it_refuses_a_taken_name_with_409_naming_the_field(
    client: TestClient, acme: Tenant
) -> None:
    _create(client, acme, BLAST)
    response = client.post(API, headers=acme.headers, json=BLAST)
    assert problem_of(response, 409, "conflict")["field"] == "name"
    checked = client.post(f"{API}/validate", headers=acme.headers, json=BLAST).json()
    assert checked["valid"] is True
    assert [w["field"] for w in checked["warnings"]] == ["name"]
    taken_by = checked["warnings"][0]["detail"].split("(id ")[1].split(")")[0]
    as_update = client.post(
        f"{API}/validate", headers=acme.headers, json=BLAST, params={"automation_id": taken_by}
    )
    assert as_update.json()["warnings"] == []  # its own name, as a new version


def test_it_reports_the_preflight_numbers(
    client: TestClient, acme: Tenant, session: Session
) -> None:
    owner = session.get(Account, acme.account_id)
    assert owner is not None
    no_consent = make_contact(session, owner, "+14158675311", consent=False).id
    make_contact(session, owner, "+14158675312")
    automation_id = _create(client, acme, BLAST)["id"]
    report = client.post(f"{API}/{automation_id}/preflight", headers=acme.headers)
    assert report.status_code == 200, report.text
    body = report.json()
    assert (body["audience"], body["to_send"], body["held_total"]) == (3, 2, 1)
    assert body["held"] == {"no_consent": 1}
    assert body["by_country"] == [{"region": "US", "messages": 2, "segments": 2, "credits": 2}]
    assert (body["credits_needed"], body["credits_available"]) == (2, 1000)
    assert [(s["contact_id"], s["reason"]) for s in body["sample_held"]] == [
        (no_consent, "no_consent")
    ]
    segment = {"segment": {"consent": "opted_in"}}
    narrowed = client.post(f"{API}/{automation_id}/preflight", headers=acme.headers, json=segment)
    assert (narrowed.json()["audience"], narrowed.json()["held_total"]) == (2, 0)
    unknown = {"segment": {"field": "SHOE_SIZE", "op": "eq", "value": "9"}}
    bad = client.post(f"{API}/{automation_id}/preflight", headers=acme.headers, json=unknown)
    assert problem_of(bad, 422, "invalid_segment")["field"] == "segment"


def test_it_starts_a_segment_and_says_why_others_did_not(
    client: TestClient, acme: Tenant, session: Session
) -> None:
    owner = session.get(Account, acme.account_id)
    assert owner is not None
    make_contact(session, owner, "+14158675310")
    automation_id = _create(client, acme, BLAST)["id"]
    not_yet = client.post(f"{API}/{automation_id}/start", headers=acme.headers)
    problem_of(not_yet, 409, "automation_not_active")
    _activate(client, acme, automation_id)
    first = client.post(f"{API}/{automation_id}/start", headers=acme.headers)
    assert first.status_code == 202, first.text
    assert first.json() == {
        "automation_id": automation_id,
        "name": "Sale",
        "audience": 2,
        "started": 2,
        "not_started": 0,
        "reasons": [],
    }
    again = client.post(f"{API}/{automation_id}/start", headers=acme.headers).json()
    assert (again["started"], again["not_started"]) == (0, 2)
    assert again["reasons"] == [
        "2 contacts of the segment were already enrolled and the automation's re-entry is once"
    ]
    nobody = {"segment": {"tag": "nobody-has-this"}}
    empty = client.post(f"{API}/{automation_id}/start", headers=acme.headers, json=nobody)
    assert empty.json()["reasons"] == ["no contact of the account is in the segment"]


@pytest.mark.parametrize(
    ("steps", "fields"),
    [
        ([{"type": "send_sms", "bdy": "Hi"}], ["steps.0.body", "steps.0.bdy"]),
        ([{"type": "send_sms", "body": "Hi %FRSTNAME%"}], ["steps.0.body"]),
        ([{"type": "wait", "duration": "3 days"}], ["steps.0"]),
        ([{"type": "send_texts", "body": "Hi"}], ["steps.0"]),
        (
            [
                {"type": "wait", "duration": "1h"},
                {
                    "type": "if_else",
                    "condition": {"field": "SHOE_SIZE", "op": "gt", "value": 9},
                    "then": [{"type": "send_sms", "body": "Hi %NOPE%"}],
                },
            ],
            ["steps.1.then.0.body", "steps.1.condition"],
        ),
        (
            [{"type": "if_else", "condition": {"tag": "vip", "op": "eq"}, "then": []}],
            ["steps.0.condition.op"],
        ),
        ([{"type": "update_field", "field": "SHOE_SIZE", "value": "9"}], ["steps.0.field"]),
        (
            [{"type": "send_sms", "id": "a", "body": "Hi"}, {"type": "exit", "id": "a"}],
            ["steps"],
        ),
        (
            [
                {"type": "send_sms", "id": "again", "body": "Hi"},
                {"type": "if_else", "condition": {"tag": "x"}, "then": "again"},
            ],
            ["steps.0"],
        ),
    ],
)
def test_it_names_every_field_at_fault_in_a_refused_definition(
    client: TestClient, acme: Tenant, steps: list[Any], fields: list[str]
) -> None:
    definition = {"name": "Typo", "trigger": {"type": "tag_added", "tag": "x"}, "steps": steps}
    for route in (API, f"{API}/validate"):
        response = client.post(route, headers=acme.headers, json=definition)
        body = problem_of(response, 422, "invalid_automation")
        assert [error["field"] for error in body["errors"]] == fields, body
        assert body["field"] == fields[0]
        assert all(error["detail"] in body["detail"] for error in body["errors"])
    assert client.get(API, headers=acme.headers).json()["data"] == []  # nothing saved


def test_it_validates_without_saving(client: TestClient, acme: Tenant) -> None:
    long_body = "%FIRSTNAME%%LASTNAME%%EMAIL% " + "x" * 110  # fits unless the tags are long
    definition = BRANCHES | {"steps": [{"type": "send_sms", "body": long_body}]}
    response = client.post(f"{API}/validate", headers=acme.headers, json=definition)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["valid"], body["name"], body["steps"], body["sms_steps"]) == (
        True,
        "Shipped",
        1,
        1,
    )
    assert [w["field"] for w in body["warnings"]] == ["steps.0.body"]
    assert client.get(API, headers=acme.headers).json()["data"] == []


def _nested(depth: int) -> dict[str, Any]:
    condition: dict[str, Any] = {"tag": "vip"}
    for _ in range(depth):
        condition = {"not": condition}
    return condition


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,
        json.dumps(BLAST | {"trigger": {"type": "bulk", "segment": _nested(60)}}),
        json.dumps(BLAST | {"steps": [{"type": "add_tag", "tag": "x"}] * 600}),
        json.dumps(BLAST | {"steps": [{"type": "add_tag", "tag": "x" * 100_000}]}),
        json.dumps(
            {
                "name": "x",
                "extra": [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        1
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ],
            }
        ),
        json.dumps([BLAST]),
        json.dumps(BLAST | {"name": "Sale\u0000"}),
        json.dumps(BLAST | {"steps": [{"type": "send_sms", "body": "Hi \ud800"}]}),
        json.dumps({f"k{n}": n for n in range(50)}),
    ],
)
def test_it_answers_a_hostile_definition_with_4xx(
    client: TestClient, acme: Tenant, raw: str
) -> None:
    headers = acme.headers | {"Content-Type": "application/json"}
    for route in (API, f"{API}/validate"):
        response = client.post(route, headers=headers, content=raw)
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/problem+json"


def test_it_serves_the_definition_schema(client: TestClient, acme: Tenant) -> None:
    schema = client.get(f"{API}/schema", headers=acme.headers).json()
    assert schema["title"] == "Sendline automation"
    assert {"name", "trigger", "steps"} <= set(schema["required"])
    # The example the OpenAPI document shows is one that saves.
    checked = client.post(f"{API}/validate", headers=acme.headers, json=EXAMPLE)
    assert (checked.status_code, checked.json()["warnings"]) == (200, []), checked.text


def test_it_keeps_each_accounts_automations_to_itself(
    client: TestClient, acme: Tenant, globex: Tenant
) -> None:
    theirs = _create(client, acme, BLAST)["id"]
    _activate(client, acme, theirs)
    mine = _create(client, globex, BLAST)["id"]  # the same name in another account is fine
    routes = [
        ("GET", f"{API}/{theirs}", None),
        ("PUT", f"{API}/{theirs}", BLAST),
        ("POST", f"{API}/{theirs}/activate", None),
        ("POST", f"{API}/{theirs}/pause", None),
        ("POST", f"{API}/{theirs}/archive", None),
        ("GET", f"{API}/{theirs}/versions", None),
        ("POST", f"{API}/{theirs}/preflight", {"segment": {"tag": "vip"}}),
        ("POST", f"{API}/{theirs}/start", None),
        ("POST", f"{API}/validate?automation_id={theirs}", BLAST),
    ]
    for method, path, body in routes:
        response = client.request(method, path, headers=globex.headers, json=body)
        detail = problem_of(response, 404, "not_found")["detail"]
        assert "Acme" not in detail and "Sale" not in detail
    listed = client.get(API, headers=globex.headers).json()["data"]
    assert [item["id"] for item in listed] == [mine]
    # Nothing changed: acme's automation is still active on version 1, with no runs.
    own = client.get(f"{API}/{theirs}", headers=acme.headers).json()
    assert (own["status"], own["version"], own["runs"]["active"]) == ("active", 1, 0)
    assert [item["id"] for item in client.get(API, headers=acme.headers).json()["data"]] == [theirs]


def test_it_answers_unknown_ids_with_404(client: TestClient, acme: Tenant) -> None:
    for path in (f"{API}/999999", f"{API}/999999/versions"):
        problem_of(client.get(path, headers=acme.headers), 404, "not_found")
    too_big = client.get(f"{API}/{10**12}", headers=acme.headers)
    assert problem_of(too_big, 422, "invalid_input")["field"] == "automation_id"


def test_it_takes_a_name_as_trimmed_so_a_spaced_twin_is_409(
    client: TestClient, acme: Tenant
) -> None:
    assert _create(client, acme, BLAST | {"name": " Sale "})["name"] == "Sale"
    twin = client.post(API, headers=acme.headers, json=BLAST | {"name": "Sale  "})
    problem_of(twin, 409, "conflict")
    blank = client.post(API, headers=acme.headers, json=BLAST | {"name": "   "})
    assert problem_of(blank, 422, "invalid_automation")["field"] == "name"


def test_it_names_a_text_no_database_can_store(client: TestClient, acme: Tenant) -> None:
    headers = acme.headers | {"Content-Type": "application/json"}
    steps = [{"type": "add_tag", "tag": "ok"}, {"type": "send_sms", "body": "Hi \x00"}]
    raw = json.dumps(BLAST | {"steps": steps})  # "\u0000" in the JSON
    response = client.post(API, headers=headers, content=raw)
    assert problem_of(response, 422, "invalid_input")["field"] == "steps.1.body"


def test_it_shows_the_latest_failed_runs_and_why(
    client: TestClient, acme: Tenant, session: Session
) -> None:
    automation_id = _create(client, acme, BLAST)["id"]
    version_id = session.scalar(
        select(AutomationVersion.id).where(AutomationVersion.automation_id == automation_id)
    )
    assert version_id is not None
    failed = AutomationRun(
        account_id=acme.account_id,
        automation_id=automation_id,
        version_id=version_id,
        contact_id=acme.contact_id,
        status="failed",
        error="step step-1: the template uses a tag that no longer exists",
    )
    session.add(failed)
    session.commit()
    detail = client.get(f"{API}/{automation_id}", headers=acme.headers).json()
    assert detail["runs"]["failed"] == 1
    assert [(f["run_id"], f["contact_id"], f["reason"]) for f in detail["failures"]] == [
        (failed.id, acme.contact_id, "step step-1: the template uses a tag that no longer exists")
    ]
    listed = client.get(API, headers=acme.headers).json()["data"][0]
    assert listed["runs"] == {"active": 0, "completed": 0, "exited": 0, "failed": 1}
