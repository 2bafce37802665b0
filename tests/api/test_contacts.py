"""/api/v1/contacts, /tags and /lists on both databases: create, search, read, change,
delete, export; tags and lists start automations as the CLI does; another account's
contacts are 404 and never listed."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from sendline.services import automations
from sendline.services import contacts as service
from tests.api.conftest import Tenant
from tests.api.test_v1 import problem_of

V1 = "/api/v1"
VIP = "name: Vip\ntrigger: {type: tag_added, tag: vip}\nsteps: [{type: send_sms, body: Hi}]"
NEWS = (
    "name: News\ntrigger: {type: list_subscribed, list: Newsletter}\n"
    "steps: [{type: send_sms, body: Hi}]"
)


def _create(client: TestClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = client.post(f"{V1}/contacts", headers=tenant.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _activate(sessions: sessionmaker[Session], account: str, definition: str) -> None:
    automation = automations.create_automation(sessions, account, definition)
    automations.change_status(sessions, account, automation.name, "activate")


def test_it_creates_a_contact_and_shows_it(client: TestClient, acme: Tenant) -> None:
    created = _create(
        client,
        acme,
        email=" Grace@Example.com ",
        phone="(415) 555-0132",
        first_name="Grace",
        tags=["lead"],
        lists=["Newsletter"],
    )
    assert created["email"] == "grace@example.com"
    assert (created["phone"], created["phone_e164"]) == ("(415) 555-0132", "+14155550132")
    assert (created["phone_status"], created["sms_consent"]) == ("ok", "none")
    assert (created["tags"], created["lists"]) == (["lead"], ["Newsletter"])
    shown = client.get(f"{V1}/contacts/{created['id']}", headers=acme.headers).json()
    assert shown == created


def test_it_refuses_a_contact_without_email_or_phone_naming_the_field(
    client: TestClient, acme: Tenant
) -> None:
    response = client.post(f"{V1}/contacts", headers=acme.headers, json={"first_name": "X"})
    assert problem_of(response, 422, "no_identity")["field"] == "phone"
    bad = client.post(f"{V1}/contacts", headers=acme.headers, json={"email": "nope"})
    assert problem_of(bad, 422, "bad_email")["field"] == "email"


def test_it_refuses_a_duplicate_phone_with_409(client: TestClient, acme: Tenant) -> None:
    response = client.post(f"{V1}/contacts", headers=acme.headers, json={"phone": "4158675309"})
    assert problem_of(response, 409, "conflict")["field"] == "phone"


def test_it_searches_by_phone_email_tag_list_and_consent_newest_first(
    client: TestClient, acme: Tenant, globex: Tenant
) -> None:
    grace = _create(client, acme, email="grace@example.com", tags=["vip"], lists=["Newsletter"])
    alan = _create(client, acme, phone="+1 415 555 0177", tags=["vip"])
    _create(client, globex, email="grace@example.com", tags=["vip"], lists=["Newsletter"])

    def ids(**query: Any) -> list[int]:
        response = client.get(f"{V1}/contacts", headers=acme.headers, params=query)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["data"]]

    assert ids() == [alan["id"], grace["id"], acme.contact_id]
    assert ids(phone="(415) 555-0177") == [alan["id"]]
    assert ids(email="GRACE@example.com") == [grace["id"]]
    assert ids(tag="vip") == [alan["id"], grace["id"]]
    assert ids(list="Newsletter") == [grace["id"]]
    assert ids(tag="vip", list="Newsletter") == [grace["id"]]
    assert ids(consent="opted_in") == [acme.contact_id]
    assert ids(consent="none") == [alan["id"], grace["id"]]
    assert ids(list="No such list") == []
    assert ids(email="not an email") == []


def test_it_pages_contacts_with_a_cursor(client: TestClient, acme: Tenant) -> None:
    made = [_create(client, acme, email=f"p{i}@example.com")["id"] for i in range(5)]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"{V1}/contacts", headers=acme.headers, params=params).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [*reversed(made), acme.contact_id]
    bad = client.get(f"{V1}/contacts", headers=acme.headers, params={"cursor": "zzz"})
    assert problem_of(bad, 422, "invalid_input")["field"] == "cursor"


def test_it_updates_a_contact_keeping_what_is_absent(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    url = f"{V1}/contacts/{acme.contact_id}"
    response = client.patch(url, headers=acme.headers, json={"last_name": "Lovelace"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["changed"] is True
    assert (body["contact"]["first_name"], body["contact"]["last_name"]) == ("Ada", "Lovelace")
    assert body["contact"]["email"] == "ada@acme.example"
    again = client.patch(url, headers=acme.headers, json={"last_name": "Lovelace"}).json()
    assert again["changed"] is False
    cleared = client.patch(url, headers=acme.headers, json={"email": None}).json()
    assert cleared["contact"]["email"] is None
    assert service.show(session_factory, acme.account_id, acme.contact_id).email is None
    unknown = client.patch(url, headers=acme.headers, json={"fields": {"PLAN": "gold"}})
    assert problem_of(unknown, 422, "invalid_input")["detail"].startswith("unknown custom field")


def test_it_deletes_a_contact_without_history_and_keeps_one_with_it(
    client: TestClient, acme: Tenant
) -> None:
    fresh = _create(client, acme, email="gone@example.com")
    response = client.delete(f"{V1}/contacts/{fresh['id']}", headers=acme.headers)
    assert (response.status_code, response.content) == (204, b"")
    gone = client.get(f"{V1}/contacts/{fresh['id']}", headers=acme.headers)
    problem_of(gone, 404, "not_found")
    kept = client.delete(f"{V1}/contacts/{acme.contact_id}", headers=acme.headers)
    problem_of(kept, 409, "contact_has_history")


def test_it_tags_and_subscribes_starting_automations_like_the_cli(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    _activate(session_factory, "Acme", VIP)
    _activate(session_factory, "Acme", NEWS)
    base = f"{V1}/contacts/{acme.contact_id}"
    tagged = client.post(f"{base}/tags", headers=acme.headers, json={"tags": ["vip", "gold"]})
    assert tagged.status_code == 200, tagged.text
    assert (tagged.json()["contact"]["tags"], tagged.json()["runs_started"]) == (
        ["gold", "vip"],
        1,
    )
    again = client.post(f"{base}/tags", headers=acme.headers, json={"tags": ["vip"]}).json()
    assert (again["changed"], again["runs_started"]) == (False, 0)
    joined = client.post(f"{base}/lists", headers=acme.headers, json={"list": "Newsletter"})
    assert (joined.json()["contact"]["lists"], joined.json()["runs_started"]) == (
        ["Newsletter"],
        1,
    )
    untagged = client.delete(f"{base}/tags/gold", headers=acme.headers).json()
    assert (untagged["contact"]["tags"], untagged["changed"]) == (["vip"], True)
    left = client.delete(f"{base}/lists/Newsletter", headers=acme.headers).json()
    assert (left["contact"]["lists"], left["changed"]) == ([], True)
    unknown = client.delete(f"{base}/lists/Nope", headers=acme.headers)
    problem_of(unknown, 404, "not_found")
    bad = client.post(f"{base}/tags", headers=acme.headers, json={"tags": ["a;b"]})
    problem_of(bad, 422, "invalid_input")


def test_it_lists_tags_and_lists_with_counts(
    client: TestClient, acme: Tenant, globex: Tenant
) -> None:
    for n, tags in enumerate((["b", "a"], ["b"], ["c"])):
        lists = ["L1"] if "a" in tags else ["L1", "L2"]
        _create(client, acme, email=f"t{n}@example.com", tags=tags, lists=lists)
    _create(client, globex, email="g@example.com", tags=["a", "secret"], lists=["Globex list"])
    first = client.get(f"{V1}/tags", headers=acme.headers, params={"limit": 2}).json()
    assert first["data"] == [{"tag": "a", "contacts": 1}, {"tag": "b", "contacts": 2}]
    rest = client.get(
        f"{V1}/tags", headers=acme.headers, params={"cursor": first["next_cursor"]}
    ).json()
    assert rest == {"data": [{"tag": "c", "contacts": 1}], "next_cursor": None}
    lists = client.get(f"{V1}/lists", headers=acme.headers).json()["data"]
    assert [(row["name"], row["members"]) for row in lists] == [("L2", 2), ("L1", 3)]
    assert lists[0]["id"] > lists[1]["id"]
    bad = client.get(f"{V1}/tags", headers=acme.headers, params={"cursor": "djE6MTA"})
    assert problem_of(bad, 422, "invalid_input")["field"] == "cursor"


def test_it_exports_the_contacts_as_the_cli_does(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    _create(client, acme, email="eve@example.com", first_name="=HYPERLINK(1)", tags=["t"])
    response = client.get(f"{V1}/contacts/export", headers=acme.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    expected = io.StringIO(newline="")
    service.export_contacts(session_factory, "Acme", expected)
    assert response.text == expected.getvalue()
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:7] == ["email", "first_name", "last_name", "phone", "consent", "tags", "lists"]
    assert ["eve@example.com", "'=HYPERLINK(1)"] == rows[2][:2]
    assert "globex" not in response.text.lower()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/contacts/{id}", None),
        ("PATCH", "/contacts/{id}", {"first_name": "Mallory"}),
        ("DELETE", "/contacts/{id}", None),
        ("POST", "/contacts/{id}/tags", {"tags": ["x"]}),
        ("DELETE", "/contacts/{id}/tags/x", None),
        ("POST", "/contacts/{id}/lists", {"list": "Hijack"}),
        ("DELETE", "/contacts/{id}/lists/Globex%20list", None),
    ],
)
def test_it_answers_404_for_another_accounts_contact_and_changes_nothing(
    client: TestClient,
    acme: Tenant,
    globex: Tenant,
    session_factory: sessionmaker[Session],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    service.subscribe(session_factory, globex.account_id, globex.contact_id, "Globex list")
    before = service.show(session_factory, globex.account_id, globex.contact_id)
    url = V1 + path.format(id=globex.contact_id)
    response = client.request(method, url, headers=acme.headers, json=body)
    assert "Globex" not in problem_of(response, 404, "not_found")["detail"]
    assert service.show(session_factory, globex.account_id, globex.contact_id) == before
    missing = client.request(method, V1 + path.format(id=999999), headers=acme.headers, json=body)
    assert missing.json()["detail"] == response.json()["detail"].replace(
        str(globex.contact_id), "999999"
    )


def test_it_never_lists_another_accounts_rows(
    client: TestClient, acme: Tenant, globex: Tenant
) -> None:
    _create(client, globex, email="x@globex.example", tags=["gx"], lists=["GX"])
    for query in ({}, {"tag": "gx"}, {"list": "GX"}, {"email": "x@globex.example"}):
        data = client.get(f"{V1}/contacts", headers=acme.headers, params=query).json()["data"]
        assert globex.contact_id not in [c["id"] for c in data]
        assert all(c["email"] != "x@globex.example" for c in data)
    phone = client.get(f"{V1}/contacts", headers=acme.headers, params={"phone": "+14158675308"})
    assert phone.json()["data"] == []
    assert client.get(f"{V1}/tags", headers=acme.headers).json()["data"] == []
    assert client.get(f"{V1}/lists", headers=acme.headers).json()["data"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("POST", "/contacts", {"email": "a@b.co", "first_name": "A\x00"}, None),
        ("PATCH", "/contacts/{id}", {"fields": {"X": "\x00"}}, None),
        ("GET", "/contacts", None, {"tag": "a\x00"}),
        ("POST", "/contacts/{id}/lists", {"list": "L\x00"}, None),
        ("DELETE", "/contacts/{id}/lists/L%00", None, None),
        ("GET", "/tags", None, {"cursor": "dDE6AA"}),
    ],
)
def test_it_refuses_a_nul_character_with_422_on_both_databases(
    client: TestClient,
    acme: Tenant,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    params: dict[str, str] | None,
) -> None:
    url = V1 + path.format(id=acme.contact_id)
    response = client.request(method, url, headers=acme.headers, json=body, params=params)
    problem_of(response, 422, "invalid_input")
