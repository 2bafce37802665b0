"""Twilio's webhooks on `sendline serve`: status callbacks (R16) and inbound texts (R12).

Anyone on the internet can post to these URLs, so nothing is believed before its
`X-Twilio-Signature` checks out: Twilio signs the URL it called (SENDLINE_PUBLIC_URL +
path + query, exactly) and the form's fields with the auth token of the account that
owns the message (status) or the number texted (inbound), and the SDK's
`RequestValidator` checks it against that account's token, opened from its sealed
`provider_configs` secret. A request that fails the check is answered 403 with nothing
changed and one log line (masked numbers, never a token); a malformed or oversized body
or a number no account owns is a 4xx, nothing changed.

- Status: `?message_id=` (our id, in the URL Twilio signed) names the message, and so
  the config whose token must have signed it (`messages.provider` is `twilio:<id>`; a
  message whose send is still being recorded, or ended unknown, has none yet: any of
  its account's Twilio configs). The report goes through the engine's one receipt hook
  (idempotent, never backwards). A message whose outcome was lost (a timeout) learns
  its Twilio SID here: the callback settles it (R17) as a lookup would.
- Inbound: handed to the inbox (`receive_text`), which stores it, commits an opt-out
  before we answer, and replies or fires triggers. When the carrier confirms opt-outs
  itself (`carrier_confirms_optout`), Sendline sends no second confirmation. The answer
  is empty TwiML: Sendline's replies go out through the queue like any message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, parse_qsl

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from sendline.api.bodies import BodyTooLarge, capped_body
from sendline.bootstrap import Runtime
from sendline.engine.receipts import receipt_applier
from sendline.errors import SendlineError
from sendline.masking import mask_phone, mask_secret
from sendline.providers.base import DeliveryReport
from sendline.providers.twilio import (
    AUTH_TOKEN,
    INBOUND_PATH,
    STATUS_PATH,
    provider_name,
    sendline_status,
)
from sendline.services.inbox import receive_text
from sendline.sms.phone import check_phone
from sendline.store.engine_models import Message, ProviderConfig
from sendline.store.ids import is_id
from sendline.store.secret_box import SecretBox

log = logging.getLogger("sendline.webhooks.twilio")

# Twilio's webhook forms are a few hundred bytes (an inbound text is at most 1,600
# characters); anything much larger is not Twilio.
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
FORM = "application/x-www-form-urlencoded"
# A message may get a status callback while its own send is still being recorded, or
# after that send's outcome was lost: then it has no Twilio SID yet.
_UNSETTLED = ("sending", "unknown")


@dataclass(frozen=True)
class Signed:
    """A webhook request as it arrived: the URL Twilio called, its form, its signature."""

    url: str
    form: dict[str, str]
    signature: str
    query: dict[str, list[str]]


class Refused(Exception):
    """A request answered with `status` and nothing changed; `reason` goes to the log."""

    def __init__(self, status: int, reason: str, *, to: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.to = to


def twilio_webhooks(runtime: Runtime) -> APIRouter:
    """The two webhook routes on `runtime`'s database and settings."""
    router = APIRouter()
    sessions = runtime.sessions
    box = SecretBox(runtime.settings.secret_keys)
    public_url = runtime.settings.public_url

    @router.post(STATUS_PATH, include_in_schema=False)
    async def status_callback(request: Request) -> Response:
        try:
            signed = await _signed_request(request, public_url)
            await run_in_threadpool(apply_status, sessions, box, signed)
        except Refused as exc:
            return _refused("status", exc, request)
        return Response(status_code=204)

    @router.post(INBOUND_PATH, include_in_schema=False)
    async def inbound(request: Request) -> Response:
        try:
            signed = await _signed_request(request, public_url)
            await run_in_threadpool(receive_inbound, sessions, box, signed)
        except Refused as exc:
            return _refused("inbound", exc, request)
        return Response(EMPTY_TWIML, media_type="text/xml")

    return router


# -- the two use cases ---------------------------------------------------------------


def apply_status(sessions: sessionmaker[Session], box: SecretBox, signed: Signed) -> None:
    """Apply one signed status callback; raises Refused (nothing changed) otherwise."""
    ids = signed.query.get("message_id", [])
    message_id = int(ids[0]) if len(ids) == 1 and ids[0].isdigit() else 0
    if not is_id(message_id):
        raise Refused(400, "no message_id in the callback URL")
    with sessions.begin() as session:
        candidates = _status_configs(session, message_id)
    config = _signer(box, candidates, signed)
    sid = signed.form.get("MessageSid") or signed.form.get("SmsSid") or ""
    status = sendline_status(signed.form.get("MessageStatus") or signed.form.get("SmsStatus"))
    if not sid.startswith(("SM", "MM")) or len(sid) > 64:
        raise Refused(400, "the callback has no valid MessageSid")
    if status is None:
        return  # a status Sendline does not track (e.g. Twilio's `receiving`)
    code = (signed.form.get("ErrorCode") or "").strip()[:20] or None
    now = datetime.now(UTC)
    with sessions.begin() as session:
        _attach_sid(session, message_id, provider_name(config.id), sid, now)
        report = DeliveryReport(provider_id=sid, status=status, error_code=code)
        receipt_applier(sessions)([report], now, session)


def receive_inbound(sessions: sessionmaker[Session], box: SecretBox, signed: Signed) -> None:
    """Hand one signed inbound text to the inbox; raises Refused (nothing changed)."""
    form = signed.form
    to = form.get("To", "").strip()
    if not to or len(to) > 20:
        raise Refused(400, "the inbound text has no To number")
    to_e164 = check_phone(to).e164 or to  # as the inbox matches it
    with sessions.begin() as session:
        candidates = list(
            session.scalars(
                select(ProviderConfig)
                .where(ProviderConfig.kind == "twilio", ProviderConfig.sender_number == to_e164)
                .order_by(ProviderConfig.id)
            )
        )
        session.expunge_all()
    if not candidates:
        raise Refused(404, "no account owns the number texted", to=to)
    try:
        config = _signer(box, candidates, signed)
    except Refused as exc:
        raise Refused(exc.status, exc.reason, to=to) from None
    sid, sender, body = form.get("MessageSid", ""), form.get("From", ""), form.get("Body")
    if not sid or len(sid) > 64 or not sender or body is None:
        raise Refused(400, "the inbound text lacks MessageSid, From or Body", to=to)
    try:
        receive_text(
            sessions,
            from_number=sender,
            body=body,
            to_number=to_e164,
            provider_id=sid,
            account_id=config.account_id,
            confirm_opt_out=not config.carrier_confirms_optout,
        )
    except SendlineError as exc:
        raise Refused(400, f"the inbound text was refused: {exc.code}", to=to) from None


# -- whose token signed it --------------------------------------------------------------


def _status_configs(session: Session, message_id: int) -> list[ProviderConfig]:
    """The Twilio configs whose token may have signed a callback about this message."""
    message = session.get(Message, message_id)
    if message is None:
        raise Refused(404, f"no message {message_id}")
    query = select(ProviderConfig).where(ProviderConfig.kind == "twilio")
    if message.provider and message.provider.startswith("twilio:"):
        config_id = message.provider.removeprefix("twilio:")
        query = query.where(ProviderConfig.id == (int(config_id) if config_id.isdigit() else 0))
    elif message.provider is None and message.status in _UNSETTLED:
        query = query.where(ProviderConfig.account_id == message.account_id)
    else:
        raise Refused(403, f"message {message_id} was not sent through Twilio")
    configs = list(session.scalars(query.order_by(ProviderConfig.id)))
    session.expunge_all()
    if not configs:
        raise Refused(403, f"message {message_id}'s Twilio provider is gone")
    return configs


def _signer(box: SecretBox, configs: Sequence[ProviderConfig], signed: Signed) -> ProviderConfig:
    """The config whose auth token made the request's signature; Refused(403) if none."""
    if not signed.signature:
        raise Refused(403, "no X-Twilio-Signature")
    for config in configs:
        try:
            token = box.open(config.secret or "").get(AUTH_TOKEN, "")
        except SendlineError as exc:
            log.warning("twilio config %d: auth token unreadable (%s)", config.id, exc.code)
            continue
        if token and RequestValidator(token).validate(signed.url, signed.form, signed.signature):
            return config
    sids = ", ".join(mask_secret(str(c.settings.get("account_sid", ""))) for c in configs)
    raise Refused(403, f"bad X-Twilio-Signature for {signed.url} (accounts {sids})")


def _attach_sid(session: Session, message_id: int, provider: str, sid: str, now: datetime) -> None:
    """Give a message whose send is unsettled the SID Twilio's signed callback names.

    Its worker may still be recording the send, or the send's outcome was lost (R17):
    either way Twilio has the message, so the report may settle it. The worker's late
    write and a reconciler's lookup are conditioned on the status they left, which the
    report moves forward, so exactly one of them settles the message."""
    message = session.scalars(
        select(Message)
        .where(Message.id == message_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if message is None or message.provider_id is not None or message.status not in _UNSETTLED:
        return
    message.provider_id = sid
    message.provider = provider
    message.updated_at = now
    session.flush()


# -- the HTTP side ------------------------------------------------------------------------


async def _signed_request(request: Request, public_url: str | None) -> Signed:
    if not request.headers.get("content-type", "").lower().startswith(FORM):
        raise Refused(415, "not a form-encoded body")
    body = await _capped_body(request)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed form body") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        raise Refused(400, "a form field is repeated")
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    if public_url is None:
        raise Refused(403, "SENDLINE_PUBLIC_URL is not set: no signature can be checked")
    # The public URL carries any prefix a reverse proxy strips before the request gets here.
    url = f"{public_url}{request.scope['path']}" + (f"?{raw_query}" if raw_query else "")
    signature = request.headers.get("x-twilio-signature", "")
    return Signed(url, form, signature, parse_qs(raw_query))


async def _capped_body(request: Request) -> bytes:
    try:
        return await capped_body(request)
    except BodyTooLarge as exc:
        raise Refused(413, str(exc)) from None


def _refused(kind: str, exc: Refused, request: Request) -> Response:
    client = request.client.host if request.client else "-"
    to = f" to {mask_phone(exc.to)}" if exc.to else ""
    log.warning(
        "twilio %s webhook refused (%d) from %s%s: %s", kind, exc.status, client, to, exc.reason
    )
    return Response(status_code=exc.status)
