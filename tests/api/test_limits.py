"""What guards /api/ before any database work: the rate per key (429 with Retry-After),
the body size (413), CORS (off unless configured), and access logs without phone
numbers or keys."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.access_log import ScrubbingFilter, scrub
from sendline.api.limits import DEFAULT_MAX_BODY, KeyRates
from tests.api.conftest import Tenant, app_client
from tests.api.test_v1 import problem_of


@pytest.fixture
def strict(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> Iterator[TestClient]:
    """An app allowing a burst of 3 requests, then one a second, per key."""
    yield from app_client(engine, session_factory, tmp_path, api_rate=1.0, api_burst=3)


def test_it_lets_a_burst_through_then_waits_exactly_the_rate() -> None:
    now = [100.0]
    rates = KeyRates(rate=2.0, burst=3, clock=lambda: now[0])

    assert [rates.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rates.take("a") == pytest.approx(0.5)
    assert rates.take("b") == 0.0  # another key has its own burst
    now[0] += 0.5
    assert rates.take("a") == 0.0
    assert rates.take("a") == pytest.approx(0.5)


def test_it_answers_429_with_retry_after_past_the_keys_rate(
    strict: TestClient, acme: Tenant, globex: Tenant
) -> None:
    answers = [strict.get("/api/v1/account", headers=acme.headers) for _ in range(4)]

    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    limited = problem_of(answers[3], 429, "rate_limited")
    assert "retry in 1 s" in limited["detail"]
    assert answers[3].headers["retry-after"] == "1"
    assert strict.get("/api/v1/account", headers=globex.headers).status_code == 200


def test_it_refuses_a_declared_body_over_the_limit_before_reading_it(
    client: TestClient, acme: Tenant
) -> None:
    body = b'{"name": "shipped", "payload": {"x": "' + b"a" * DEFAULT_MAX_BODY + b'"}}'
    response = client.post(
        "/api/v1/events",
        headers={**acme.headers, "Content-Type": "application/json"},
        content=body,
    )
    assert "1 MiB" in problem_of(response, 413, "body_too_large")["detail"]


def test_it_refuses_a_chunked_body_over_the_limit(client: TestClient, acme: Tenant) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "shipped", "payload": {"x": "'
        for _ in range(20):
            yield b"a" * 65536
        yield b'"}}'

    response = client.post(
        "/api/v1/events",
        headers={**acme.headers, "Content-Type": "application/json"},
        content=chunks(),
    )
    problem_of(response, 413, "body_too_large")


def test_it_takes_a_chunked_body_under_the_limit(client: TestClient, acme: Tenant) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "shipped", '
        yield b'"contact_id": %d}' % acme.contact_id

    response = client.post(
        "/api/v1/events",
        headers={**acme.headers, "Content-Type": "application/json"},
        content=chunks(),
    )
    assert response.status_code == 202, response.text


PREFLIGHT = {
    "Origin": "https://shop.example.com",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization",
}


def test_it_allows_no_browser_origin_by_default(client: TestClient, acme: Tenant) -> None:
    preflight = client.options("/api/v1/events", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers
    answer = client.get(
        "/api/v1/account", headers={**acme.headers, "Origin": "https://shop.example.com"}
    )
    assert "access-control-allow-origin" not in answer.headers


def test_it_allows_only_the_configured_origins(
    engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    for client in app_client(
        engine, session_factory, tmp_path, cors_origins=("https://shop.example.com",)
    ):
        allowed = client.options("/api/v1/events", headers=PREFLIGHT)
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example.com"
        other = client.options(
            "/api/v1/events", headers={**PREFLIGHT, "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("line", "hidden"),
    [
        ("GET /api/v1/contacts?phone=%2B14155550100 HTTP/1.1", "14155550100"),
        ("GET /api/v1/contacts?phone=+14155550100 HTTP/1.1", "14155550100"),
        ("GET /api/v1/contacts?phone=14155550100 HTTP/1.1", "14155550100"),
        ("GET /api/v1/x?key=sl_live_AbCdEfGh123456 HTTP/1.1", "AbCdEfGh123456"),
        ("POST /api/v1/webhooks?s=whsec_abcdef123456 HTTP/1.1", "abcdef123456"),
    ],
)
def test_it_masks_phones_and_keys_in_access_logs(line: str, hidden: str) -> None:
    assert hidden not in scrub(line)


def test_it_leaves_ids_readable_in_access_logs() -> None:
    assert scrub("GET /api/v1/messages/1234567 HTTP/1.1") == "GET /api/v1/messages/1234567 HTTP/1.1"


def test_it_scrubs_uvicorns_access_record_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/contacts?phone=%2B14155550100", "1.1", 200),
        None,
    )
    ScrubbingFilter().filter(record)
    assert "14155550100" not in record.getMessage()
    assert "+1415•••0100" in record.getMessage()
