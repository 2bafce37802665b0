"""`Idempotency-Key` on POST, with Stripe's semantics, on both databases: the first
answer replayed, a reused key with another body refused, keys kept apart per API key,
failed requests letting their key go, 24 hours of memory, and concurrent twins creating
one object through a real server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.bootstrap import Runtime
from sendline.config import Settings
from sendline.services import automations, idempotency
from sendline.services.api_keys import list_keys
from sendline.store.api_models import IdempotencyKey
from sendline.store.engine_models import AutomationRun
from tests.api.conftest import Tenant
from tests.api.test_v1 import SHIP, problem_of
from tests.fakes.live_app import LiveApp


def _ship_automation(sessions: sessionmaker[Session], account: str) -> None:
    automations.create_automation(sessions, account, SHIP)
    automations.change_status(sessions, account, "Ship", "activate")


def _runs(session: Session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(AutomationRun)) or 0)


def _event(tenant: Tenant, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "headers": {**tenant.headers, "Idempotency-Key": key},
        "json": {"name": "shipped", "contact_id": tenant.contact_id, **extra},
    }


def test_it_replays_the_first_answer_for_the_same_key(
    client: TestClient, acme: Tenant, session: Session, session_factory: sessionmaker[Session]
) -> None:
    _ship_automation(session_factory, "Acme")
    first = client.post("/api/v1/events", **_event(acme, "order-77"))
    again = client.post("/api/v1/events", **_event(acme, "order-77"))

    assert first.status_code == again.status_code == 202
    assert first.json()["started"] == 1
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _runs(session) == 1


def test_it_refuses_a_key_reused_with_another_body(
    client: TestClient, acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    _ship_automation(session_factory, "Acme")
    assert client.post("/api/v1/events", **_event(acme, "k1")).status_code == 202

    reused = client.post("/api/v1/events", **_event(acme, "k1", payload={"order": "B-78"}))

    body = problem_of(reused, 422, "idempotency_key_reused")
    assert body["field"] == "Idempotency-Key"


def test_it_keeps_the_same_key_apart_for_two_api_keys(
    client: TestClient,
    acme: Tenant,
    globex: Tenant,
    session: Session,
    session_factory: sessionmaker[Session],
) -> None:
    _ship_automation(session_factory, "Acme")
    _ship_automation(session_factory, "Globex")

    for tenant in (acme, globex):
        response = client.post("/api/v1/events", **_event(tenant, "same-key"))
        assert response.status_code == 202
        assert "idempotent-replayed" not in response.headers
    assert _runs(session) == 2


def test_it_lets_the_key_go_when_the_request_was_refused_as_invalid(
    client: TestClient, acme: Tenant, session: Session, session_factory: sessionmaker[Session]
) -> None:
    _ship_automation(session_factory, "Acme")
    bad = client.post(
        "/api/v1/events",
        headers={**acme.headers, "Idempotency-Key": "k2"},
        json={"name": "shipped"},
    )
    problem_of(bad, 422, "invalid_input")

    fixed = client.post("/api/v1/events", **_event(acme, "k2"))

    assert fixed.status_code == 202
    assert "idempotent-replayed" not in fixed.headers
    assert _runs(session) == 1


def test_it_refuses_an_unusable_key_and_an_unknown_api_key(
    client: TestClient, acme: Tenant
) -> None:
    too_long = client.post("/api/v1/events", **_event(acme, "x" * 256))
    assert problem_of(too_long, 422, "invalid_idempotency_key")["field"] == "Idempotency-Key"

    stranger = client.post(
        "/api/v1/events",
        headers={"Authorization": "Bearer sl_live_nope", "Idempotency-Key": "k3"},
        json={"name": "shipped", "contact_id": acme.contact_id},
    )
    problem_of(stranger, 401, "invalid_api_key")


def test_it_forgets_a_key_after_24_hours(
    acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    key_id = list_keys(session_factory, "Acme")[0].id
    begun = idempotency.begin(session_factory, key_id, "k", "h1", datetime(2026, 1, 1, tzinfo=UTC))
    assert begun.action == "run"
    idempotency.finish(session_factory, begun.row_id, 201, "application/json", b"{}")

    day_later = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=23, minutes=59)
    assert idempotency.begin(session_factory, key_id, "k", "h1", day_later).action == "replay"
    expired = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=24, minutes=1)
    assert idempotency.begin(session_factory, key_id, "k", "h2", expired).action == "run"


def test_it_creates_one_object_for_concurrent_requests_with_one_key(
    engine: Engine,
    session: Session,
    session_factory: sessionmaker[Session],
    acme: Tenant,
    tmp_path: Path,
) -> None:
    _ship_automation(session_factory, "Acme")
    settings = Settings(
        data_dir=tmp_path,
        database_url=engine.url.render_as_string(hide_password=False),
        api_rate=100_000.0,
        api_burst=100_000,
    )
    live = LiveApp()
    live.start(Runtime(settings, engine, session_factory))
    barrier = threading.Barrier(8)
    answers: list[httpx.Response] = []

    def fire() -> None:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            barrier.wait()
            answers.append(http.post("/api/v1/events", **_event(acme, "twins")))

    try:
        threads = [threading.Thread(target=fire) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        live.stop()

    assert [a.status_code for a in answers] == [202] * 8, [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert _runs(session) == 1


def test_it_purges_only_answers_past_their_24_hours(
    acme: Tenant, session_factory: sessionmaker[Session]
) -> None:
    key_id = list_keys(session_factory, "Acme")[0].id
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for hour, key in ((0, "old"), (2, "new")):
        begun = idempotency.begin(session_factory, key_id, key, "h", start + timedelta(hours=hour))
        idempotency.finish(session_factory, begun.row_id, 201, "application/json", b"{}")

    assert idempotency.purge_expired(session_factory, start + timedelta(hours=25)) == 1
    later = start + timedelta(hours=25)
    assert idempotency.begin(session_factory, key_id, "new", "h", later).action == "replay"


def test_it_never_stores_a_secret_shown_once(
    keyed_client: TestClient, acme: Tenant, session: Session
) -> None:
    """A signing secret is in the first answer only: a replay gets a notice, the
    idempotency table never holds the secret, and one endpoint exists."""
    request = {
        "headers": {**acme.headers, "Idempotency-Key": "hook-1"},
        "json": {"url": "https://hooks.acme.example/in", "events": ["message.status"]},
    }
    first = keyed_client.post("/api/v1/webhooks", **request)
    assert first.status_code == 201, first.text
    assert first.headers["cache-control"] == "no-store"
    secret = first.json()["secret"]

    again = keyed_client.post("/api/v1/webhooks", **request)

    notice = problem_of(again, 409, "idempotency_key_used")
    assert "(201)" in notice["detail"] and secret not in again.text
    session.expire_all()
    stored = session.scalars(select(IdempotencyKey.body)).all()
    assert stored and all(secret not in (body or "") for body in stored)
    session.rollback()  # a read holds SQLite's write lock (BEGIN IMMEDIATE): let it go
    listed = keyed_client.get("/api/v1/webhooks", headers=acme.headers).json()["data"]
    assert len(listed) == 1
