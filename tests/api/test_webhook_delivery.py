"""Outbound webhooks delivered to a real receiver on loopback, on both databases: every
event once, in order, signed; a receiver down (refused, 500) then up gets everything;
the backoff schedule on a moved clock (no real waiting); disabled after a day of
failure or at once on 410, with the reason over the API; one worker per endpoint."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.webhooks import WebhookDeliverer, backoff
from tests.api.conftest import Tenant
from tests.api.webhook_fixtures import (
    KEY,
    Clock,
    add_event,
    clock,
    deliverer,
    hooks,
    receiver,
    register,
)
from tests.fakes.webhook_receiver import WebhookReceiver

__all__ = ["clock", "deliverer", "hooks", "receiver"]  # fixtures


def _endpoint(hooks: TestClient, tenant: Tenant, endpoint_id: int) -> dict[str, object]:
    response = hooks.get(f"/api/v1/webhooks/{endpoint_id}", headers=tenant.headers)
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def _deliveries(hooks: TestClient, tenant: Tenant, endpoint_id: int) -> list[dict[str, object]]:
    path = f"/api/v1/webhooks/{endpoint_id}/deliveries?limit=200"
    data: list[dict[str, object]] = hooks.get(path, headers=tenant.headers).json()["data"]
    return data[::-1]  # oldest first


def test_it_delivers_each_event_signed_in_order_to_its_kinds_only(
    hooks: TestClient,
    acme: Tenant,
    globex: Tenant,
    session_factory: sessionmaker[Session],
    receiver: WebhookReceiver,
    deliverer: WebhookDeliverer,
    clock: Clock,
) -> None:
    endpoint = register(hooks, acme.headers, receiver.url, "message.status", "contact.opted_out")
    receiver.secret = endpoint["secret"]
    receiver.start()
    at = clock.now
    sent = add_event(
        session_factory,
        acme.account_id,
        "message.status",
        at=at,
        message_id=7,
        contact_id=acme.contact_id,
        status="sent",
    )
    add_event(session_factory, acme.account_id, "message.held", at=at, message_id=8, reason="x")
    add_event(session_factory, globex.account_id, "message.status", at=at, status="sent")
    done = add_event(
        session_factory, acme.account_id, "message.status", at=at, message_id=7, status="delivered"
    )
    assert deliverer.deliver_due() == 2
    assert receiver.delivered == [sent, done] and receiver.rejected == []
    first = receiver.accepted[0].body
    assert first == {
        "id": sent,
        "kind": "message.status",
        "created_at": "2026-12-07T12:00:00Z",
        "account_id": acme.account_id,
        "message_id": 7,
        "contact_id": acme.contact_id,
        "data": {"status": "sent"},
    }
    assert receiver.accepted[0].headers["Sendline-Event-Kind"] == "message.status"
    assert deliverer.deliver_due() == 0  # nothing twice
    assert _endpoint(hooks, acme, endpoint["id"])["cursor"] == done
    other = add_event(session_factory, acme.account_id, "message.held", at=at, reason="x")
    assert deliverer.deliver_due() == 0  # not its kind: passed over, never POSTed
    assert _endpoint(hooks, acme, endpoint["id"])["cursor"] == other
    assert receiver.requests == 2
    log = _deliveries(hooks, acme, endpoint["id"])
    assert [(d["event_id"], d["status_code"], d["delivered"]) for d in log] == [
        (sent, 200, True),
        (done, 200, True),
    ]


def test_it_retries_a_receiver_that_is_down_and_then_delivers_everything_once(
    hooks: TestClient,
    acme: Tenant,
    session_factory: sessionmaker[Session],
    receiver: WebhookReceiver,
    deliverer: WebhookDeliverer,
    clock: Clock,
) -> None:
    endpoint = register(hooks, acme.headers, receiver.url, "message.status")
    receiver.secret = endpoint["secret"]
    events = [
        add_event(
            session_factory, acme.account_id, "message.status", at=clock.now, message_id=m, status=s
        )
        for s in ("queued", "sent", "delivered")
        for m in (1, 2)
    ]
    assert deliverer.deliver_due() == 1  # refused: the head only, nothing behind it
    state = _endpoint(hooks, acme, endpoint["id"])
    assert state["attempts"] == 1 and state["failing_since"] is not None
    assert deliverer.deliver_due() == 0  # not before the backoff
    receiver.start()
    receiver.status = 500
    clock.advance(10)
    assert deliverer.deliver_due() == 1
    assert receiver.delivered == [] and receiver.requests == 1
    receiver.status = 200
    clock.advance(20)
    assert deliverer.deliver_due() == len(events)
    assert receiver.delivered == events  # every one once, in order (so per message too)
    assert _endpoint(hooks, acme, endpoint["id"])["failing_since"] is None
    log = _deliveries(hooks, acme, endpoint["id"])
    head = [(d["attempt"], d["status_code"], d["delivered"]) for d in log[:3]]
    assert head == [(1, None, False), (2, 500, False), (3, 200, True)]
    assert "ConnectError" in str(log[0]["error"])


def test_it_backs_off_exponentially_up_to_an_hour() -> None:
    waits = [backoff(n).total_seconds() for n in range(1, 12)]
    assert waits == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]


def test_it_disables_an_endpoint_failing_for_a_day_and_resumes_when_reenabled(
    hooks: TestClient,
    acme: Tenant,
    session_factory: sessionmaker[Session],
    receiver: WebhookReceiver,
    deliverer: WebhookDeliverer,
    clock: Clock,
) -> None:
    endpoint = register(hooks, acme.headers, receiver.url, "contact.opted_out")
    receiver.secret = endpoint["secret"]
    receiver.start()
    receiver.status = 503
    first = add_event(session_factory, acme.account_id, "contact.opted_out", at=clock.now)
    second = add_event(session_factory, acme.account_id, "contact.opted_out", at=clock.now)
    started, attempts = clock.now, 0
    while _endpoint(hooks, acme, endpoint["id"])["enabled"]:
        attempts += deliverer.deliver_due()
        retry = _endpoint(hooks, acme, endpoint["id"])["next_attempt_at"]
        if retry is not None:
            expected = clock.now + backoff(attempts)
            assert retry == expected.isoformat().replace("+00:00", "Z")
        clock.advance(backoff(attempts).total_seconds())
    state = _endpoint(hooks, acme, endpoint["id"])
    assert clock.now - started >= timedelta(hours=24) > clock.now - started - timedelta(hours=2)
    assert state["disabled_reason"] == (
        "failing since 2026-12-07 12:00:00 UTC: last error HTTP 503"
    )
    assert attempts == 33  # 10 s doubling to an hour, then hourly, for a day
    assert receiver.delivered == []
    clock.advance(3600)
    assert deliverer.deliver_due() == 0  # disabled: nothing is tried
    receiver.status = 200
    path = f"/api/v1/webhooks/{endpoint['id']}"
    assert hooks.patch(path, headers=acme.headers, json={"enabled": True}).status_code == 200
    assert deliverer.deliver_due() == 2
    assert receiver.delivered == [first, second]


def test_it_disables_an_endpoint_at_once_on_410_gone(
    hooks: TestClient,
    acme: Tenant,
    session_factory: sessionmaker[Session],
    receiver: WebhookReceiver,
    deliverer: WebhookDeliverer,
    clock: Clock,
) -> None:
    endpoint = register(hooks, acme.headers, receiver.url, "inbound.received")
    receiver.secret = endpoint["secret"]
    receiver.start()
    receiver.status = 410
    add_event(session_factory, acme.account_id, "inbound.received", at=clock.now, body="hi")
    assert deliverer.deliver_due() == 1
    state = _endpoint(hooks, acme, endpoint["id"])
    assert state["enabled"] is False
    assert state["disabled_reason"] == "the endpoint answered 410 Gone at 2026-12-07 12:00:00 UTC"


def test_it_signs_with_the_rotated_secret_from_the_next_delivery_on(
    hooks: TestClient,
    acme: Tenant,
    session_factory: sessionmaker[Session],
    receiver: WebhookReceiver,
    deliverer: WebhookDeliverer,
    clock: Clock,
) -> None:
    endpoint = register(hooks, acme.headers, receiver.url, "message.held")
    receiver.secret = endpoint["secret"]
    receiver.start()
    path = f"/api/v1/webhooks/{endpoint['id']}/rotate-secret"
    rotated = hooks.post(path, headers=acme.headers).json()["secret"]
    event = add_event(session_factory, acme.account_id, "message.held", at=clock.now)
    assert deliverer.deliver_due() == 1
    assert receiver.rejected == ["signature does not match"]  # the old secret fails
    receiver.secret = rotated
    clock.advance(10)
    assert deliverer.deliver_due() == 1
    assert receiver.delivered == [event]


def test_it_lets_one_worker_at_a_time_deliver_to_an_endpoint(
    hooks: TestClient,
    acme: Tenant,
    session_factory: sessionmaker[Session],
    receiver: WebhookReceiver,
    clock: Clock,
) -> None:
    endpoint = register(hooks, acme.headers, receiver.url, "message.status")
    add_event(session_factory, acme.account_id, "message.status", at=clock.now)
    one = WebhookDeliverer(session_factory, (KEY,), "w1", clock=clock, settle=timedelta(0))
    two = WebhookDeliverer(session_factory, (KEY,), "w2", clock=clock, settle=timedelta(0))
    assert one._claim() == endpoint["id"]
    assert two._claim() is None  # leased to w1
    assert one._claim() is None  # w1 holds it already
    clock.advance(61)
    assert two._claim() == endpoint["id"]  # w1's lease ran out: w1 died


def test_it_waits_for_an_event_to_settle_before_delivering_it(
    hooks: TestClient,
    acme: Tenant,
    session_factory: sessionmaker[Session],
    receiver: WebhookReceiver,
    clock: Clock,
) -> None:
    endpoint = register(hooks, acme.headers, receiver.url, "message.status")
    receiver.secret = endpoint["secret"]
    receiver.start()
    event = add_event(session_factory, acme.account_id, "message.status", at=clock.now)
    patient = WebhookDeliverer(session_factory, (KEY,), "w1", clock=clock, allow_private=True)
    try:
        assert patient.deliver_due() == 0
        clock.advance(2)
        assert patient.deliver_due() == 1
        assert receiver.delivered == [event]
    finally:
        patient.close()


def test_it_keeps_the_delivery_log_for_thirty_days(
    hooks: TestClient,
    acme: Tenant,
    session_factory: sessionmaker[Session],
    receiver: WebhookReceiver,
    deliverer: WebhookDeliverer,
    clock: Clock,
) -> None:
    endpoint = register(hooks, acme.headers, receiver.url, "message.status")
    receiver.secret = endpoint["secret"]
    receiver.start()
    add_event(session_factory, acme.account_id, "message.status", at=clock.now)
    assert deliverer.deliver_due() == 1
    clock.advance(30 * 86400)
    assert deliverer.prune() == 0
    assert len(_deliveries(hooks, acme, endpoint["id"])) == 1
    clock.advance(1)
    assert deliverer.prune() == 1
    assert _deliveries(hooks, acme, endpoint["id"]) == []


def test_it_refuses_to_call_a_host_that_resolves_to_a_private_address(
    hooks: TestClient,
    acme: Tenant,
    session_factory: sessionmaker[Session],
    receiver: WebhookReceiver,
    clock: Clock,
) -> None:
    endpoint = register(hooks, acme.headers, receiver.url.replace("127.0.0.1", "localhost"))
    receiver.secret = endpoint["secret"]
    receiver.start()
    add_event(session_factory, acme.account_id, "message.status", at=clock.now)
    strict = WebhookDeliverer(session_factory, (KEY,), "w1", clock=clock, settle=timedelta(0))
    try:
        assert strict.deliver_due() == 1
    finally:
        strict.close()
    assert receiver.requests == 0
    error = _deliveries(hooks, acme, endpoint["id"])[0]["error"]
    assert str(error).startswith("the URL's host resolves to a private address (")
