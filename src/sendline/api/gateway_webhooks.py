"""Webhooks of the generic HTTP gateways: delivery reports and inbound texts.

`POST /webhooks/http/{config_id}/status` and `.../inbound`, `config_id` being the
`provider_configs` row of the gateway (its YAML says how requests are signed and read).
Every request must carry a valid HMAC-SHA256 signature of its raw body with the
gateway's webhook secret; anything else is answered 403 with nothing changed and one log
line that names no secret. A malformed or oversized body (over 64 KiB), or an unknown
config, is a 4xx with nothing changed.

Reports go through the engine's one receipt hook (`receipt_applier`: idempotent, never
backwards, R16); inbound texts through the inbox service (R12: an opt-out is committed
before the 200 is returned).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from sendline.api.bodies import BodyTooLarge, capped_body
from sendline.config import Settings
from sendline.engine.receipts import receipt_applier
from sendline.engine.statuses import adopt_record
from sendline.errors import SendlineError
from sendline.masking import mask_secret
from sendline.providers.base import DeliveryReport, ProviderRecord
from sendline.providers.http_gateway import config_of, gateway_name
from sendline.providers.http_gateway_config import WebhookSpec
from sendline.providers.http_gateway_webhooks import (
    inbound_text,
    payload,
    reference_of,
    refusal_reason,
    status_report,
)
from sendline.services.inbox import receive_text
from sendline.store.engine_models import Message, ProviderConfig
from sendline.store.ids import is_id
from sendline.store.models import Account
from sendline.store.secret_box import SecretBox

log = logging.getLogger("sendline.webhooks")


T = TypeVar("T")


@dataclass(frozen=True)
class _Gateway:
    """What a webhook needs of its gateway's config row (read, then the session closed)."""

    config_id: int
    account_id: int
    name: str
    spec: WebhookSpec
    secret: str
    to_number: str | None  # the number texted, when the webhook does not say
    carrier_confirms_optout: bool


def gateway_router(sessions: sessionmaker[Session], settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/webhooks/http", tags=["webhooks"])

    @router.post("/{config_id}/status")
    async def status(config_id: int, request: Request) -> JSONResponse:
        """A delivery report from a gateway."""
        body = await _body(request)
        gateway = await run_in_threadpool(
            _verified, sessions, settings, config_id, "status", request, body
        )
        return await run_in_threadpool(_apply_status, sessions, gateway, body)

    @router.post("/{config_id}/inbound")
    async def inbound(config_id: int, request: Request) -> JSONResponse:
        """An inbound text through a gateway."""
        body = await _body(request)
        gateway = await run_in_threadpool(
            _verified, sessions, settings, config_id, "inbound", request, body
        )
        return await run_in_threadpool(_receive, sessions, gateway, body)

    return router


def _apply_status(sessions: sessionmaker[Session], gateway: _Gateway, body: bytes) -> JSONResponse:
    hook = gateway.spec.status
    assert hook is not None  # _verified checked it
    document = _read(lambda: payload(gateway.spec, body))
    report = _read(lambda: status_report(hook, gateway.name, document))
    if report is None:
        return JSONResponse({"applied": False, "reason": "status not tracked"})
    now = datetime.now(UTC)
    if receipt_applier(sessions)([report], now):
        return JSONResponse({"applied": True})
    reference = reference_of(hook, document)
    if reference is not None and _adopt(sessions, gateway, report, reference, now):
        return JSONResponse({"applied": True})
    # Not ours (yet): the send's outcome may not be committed. A non-2xx makes the
    # gateway try again later rather than lose the report.
    raise HTTPException(404, "no message has this id (yet)")


def _receive(sessions: sessionmaker[Session], gateway: _Gateway, body: bytes) -> JSONResponse:
    hook = gateway.spec.inbound
    assert hook is not None  # _verified checked it
    text = _read(lambda: inbound_text(hook, gateway.name, payload(gateway.spec, body)))
    received = _read(
        lambda: receive_text(
            sessions,
            from_number=text.from_number,
            body=text.body,
            to_number=text.to_number or gateway.to_number,
            provider_id=text.provider_id,
            confirm_opt_out=not gateway.carrier_confirms_optout,
        )
    )
    return JSONResponse({"received": len(received)})


async def _body(request: Request) -> bytes:
    try:
        return await capped_body(request)
    except BodyTooLarge as exc:
        raise HTTPException(413, str(exc)) from None


def _verified(
    sessions: sessionmaker[Session],
    settings: Settings,
    config_id: int,
    kind: str,
    request: Request,
    body: bytes,
) -> _Gateway:
    """The gateway the request is for, once its signature is checked; 404 for no such
    gateway (or no such webhook), 403 for a request it did not sign."""
    gateway = _gateway(sessions, settings, config_id, kind)
    reason = refusal_reason(gateway.spec, gateway.secret, body, request.headers, time.time())
    if reason is not None:
        client = request.client.host if request.client else "-"
        # What was offered, masked: enough to tell a stale secret from garbage.
        offered = mask_secret(request.headers.get(gateway.spec.signature_header))
        log.warning(
            "refused %s webhook for gateway %s from %s: %s (signature %s)",
            kind,
            config_id,
            client,
            reason,
            offered,
        )
        raise HTTPException(403, "invalid signature")
    return gateway


def _gateway(
    sessions: sessionmaker[Session], settings: Settings, config_id: int, kind: str
) -> _Gateway:
    with sessions.begin() as session:
        found = (
            session.execute(
                select(ProviderConfig, Account.sender_number)
                .join(Account, Account.id == ProviderConfig.account_id)
                .where(ProviderConfig.id == config_id, ProviderConfig.kind == "http")
            ).first()
            if is_id(config_id)
            else None
        )
        if found is None:
            raise HTTPException(404, "no such gateway")
        row, account_number = found
        settings_json: dict[str, Any] = dict(row.settings)
        sealed, to_number = row.secret, row.sender_number or account_number
        row_account = row.account_id
        confirms = row.carrier_confirms_optout
    try:
        spec = config_of(settings_json).webhooks
    except SendlineError:
        log.error("gateway %s has a config that no longer parses", config_id)
        raise HTTPException(404, "no such gateway") from None
    if spec is None or getattr(spec, kind) is None:
        raise HTTPException(404, f"gateway {config_id} has no {kind} webhook configured")
    if not sealed:
        log.error("gateway %s has no secrets stored", config_id)
        raise HTTPException(503, "this gateway's webhook secret is not stored")
    try:
        secret = SecretBox(settings.secret_keys).open(sealed).get(spec.secret_name)
    except SendlineError as exc:
        log.error("gateway %s: its webhook secret cannot be read (%s)", config_id, exc.code)
        raise HTTPException(503, "this gateway's secrets cannot be read") from None
    if not secret:
        log.error("gateway %s: no %s secret stored", config_id, spec.secret_name)
        raise HTTPException(503, "this gateway's webhook secret is not stored")
    return _Gateway(
        config_id, row_account, gateway_name(config_id), spec, secret, to_number, confirms
    )


def _adopt(
    sessions: sessionmaker[Session],
    gateway: _Gateway,
    report: DeliveryReport,
    message_id: int,
    now: datetime,
) -> bool:
    """Settle a message of the gateway's account whose send had no known outcome, by
    the reference the report echoes: the gateway had it after all. Like a lookup's
    answer (R17 reconciliation): its id adopted, its status and credits settled."""
    if not is_id(message_id):
        return False
    with sessions.begin() as session:
        message = session.scalars(
            select(Message)
            .where(
                Message.id == message_id,
                Message.account_id == gateway.account_id,
                Message.status == "unknown",
                Message.provider_id.is_(None),
                # Handed to this gateway (the dispatcher records it with the unknown
                # outcome), or to nobody known: a worker died before recording it.
                or_(Message.provider == gateway.name, Message.provider.is_(None)),
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        if message is None:
            return False
        record = ProviderRecord(report.provider_id, report.status, report.error_code)
        adopt_record(session, message, record, gateway.name, now)
        return True


def _read(read: Callable[[], T]) -> T:
    """`read()`, its input errors (a malformed payload, a bad number) as a 400."""
    try:
        return read()
    except SendlineError as exc:
        raise HTTPException(400, str(exc)) from None
