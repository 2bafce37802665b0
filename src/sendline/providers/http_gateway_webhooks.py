"""The generic gateway's webhooks, the pure part: is a request signed, what does it say.

A gateway signs each webhook with HMAC-SHA256 over the raw body (over `timestamp.body`
when the config names a timestamp header, so an old request cannot be replayed outside
`max_age`). The comparison is constant-time. The HTTP side (api/gateway_webhooks.py)
reads the body, finds the config, and hands what is read here to the engine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from sendline.errors import InvalidInput
from sendline.providers.base import DeliveryReport
from sendline.providers.http_gateway import mapped_status, scoped_id
from sendline.providers.http_gateway_config import InboundHook, StatusHook, WebhookSpec
from sendline.providers.json_pointer import resolve, scalar_at


@dataclass(frozen=True)
class InboundText:
    """An inbound text as a gateway's webhook carries it."""

    from_number: str
    to_number: str | None
    body: str
    provider_id: str | None  # scoped, like the message ids


def signature(spec: WebhookSpec, secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The signature header's value for `body`: what the gateway sends (and the tests'
    fake gateway computes with this same function's rule)."""
    signed = body if timestamp is None else timestamp.encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    encoded = (
        digest.hex() if spec.signature_encoding == "hex" else base64.b64encode(digest).decode()
    )
    return spec.signature_prefix + encoded


def refusal_reason(
    spec: WebhookSpec, secret: str, body: bytes, headers: Mapping[str, str], now: float
) -> str | None:
    """None when the request carries a valid signature (and a fresh timestamp, when the
    config asks for one); otherwise why not, in words fit for a log line (no secret,
    no signature value)."""
    given = headers.get(spec.signature_header)
    if not given:
        return f"unsigned (no {spec.signature_header} header)"
    stamp = None
    if spec.timestamp_header is not None:
        stamp = headers.get(spec.timestamp_header)
        if not stamp:
            return f"no {spec.timestamp_header} header"
        try:
            at = float(stamp)
        except ValueError:
            return f"{spec.timestamp_header} is not a Unix time"
        if not math.isfinite(at) or abs(now - at) > spec.max_age:
            return f"{spec.timestamp_header} outside the {spec.max_age} s replay window"
    expected = signature(spec, secret, body, stamp)
    offered = given.strip()
    if spec.signature_encoding == "hex":  # hex digits compare case-insensitively
        expected, offered = expected.lower(), offered.lower()
    if not hmac.compare_digest(expected.encode(), offered.encode("utf-8", "replace")):
        return "bad signature"
    return None


def payload(spec: WebhookSpec, body: bytes) -> Any:
    """The webhook's document: JSON, or a form read as a mapping of its first values."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the webhook body is not UTF-8") from None
    if spec.format == "form":
        try:
            fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
        except ValueError:
            raise InvalidInput("the webhook body is not a form") from None
        return {key: values[0] for key, values in fields.items()}
    try:
        document = json.loads(text)
    except ValueError:
        raise InvalidInput("the webhook body is not JSON") from None
    if not isinstance(document, dict | list):
        raise InvalidInput("the webhook body is not a JSON object")
    return document


def status_report(hook: StatusHook, name: str, document: Any) -> DeliveryReport | None:
    """The delivery report in a status webhook; None for a status Sendline does not
    track (an intermediate one the config does not map: nothing to apply)."""
    raw_id = scalar_at(document, hook.id_pointer)
    if raw_id is None:
        raise InvalidInput(f"the status webhook has no message id at {hook.id_pointer}")
    raw_status = scalar_at(document, hook.status_pointer)
    if raw_status is None:
        raise InvalidInput(f"the status webhook has no status at {hook.status_pointer}")
    status = mapped_status(raw_status, hook.status_map)
    if status is None:
        return None
    error = scalar_at(document, hook.error_pointer)
    return DeliveryReport(scoped_id(name, raw_id), status, error[:32] if error else None)


def reference_of(hook: StatusHook, document: Any) -> int | None:
    """Sendline's message id, when the report echoes it (`reference_pointer`)."""
    reference = scalar_at(document, hook.reference_pointer)
    return int(reference) if reference is not None and reference.isdigit() else None


def inbound_text(hook: InboundHook, name: str, document: Any) -> InboundText:
    """The inbound text in an inbound webhook."""
    sender = scalar_at(document, hook.from_pointer)
    if sender is None:
        raise InvalidInput(f"the inbound webhook has no sender at {hook.from_pointer}")
    body = resolve(document, hook.body_pointer)
    if not isinstance(body, str):
        raise InvalidInput(f"the inbound webhook has no text at {hook.body_pointer}")
    raw_id = scalar_at(document, hook.id_pointer)
    return InboundText(
        from_number=sender,
        to_number=scalar_at(document, hook.to_pointer),
        body=body,
        provider_id=scoped_id(name, raw_id) if raw_id is not None else None,
    )
