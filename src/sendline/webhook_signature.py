"""Signing and verifying Sendline's outbound webhooks (standard library only).

Every POST Sendline makes to a webhook endpoint carries

    Sendline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

where `secret` is the endpoint's signing secret (`whsec_...`, shown once when the
endpoint is created or its secret rotated), used as UTF-8 bytes as it is. The timestamp
is inside the signed text, so a captured request cannot be replayed later than the
receiver's tolerance (5 minutes by default) with a fresh `t`.

Receivers may copy `verify` as it is: it needs nothing but Python's standard library.
Verify the raw body, byte for byte, before parsing it: a re-serialised JSON document
will not match.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Sendline-Signature"
EVENT_ID_HEADER = "Sendline-Event-Id"
EVENT_KIND_HEADER = "Sendline-Event-Kind"
TOLERANCE = 300  # seconds: how old (or how far in the future) a signature may be
SECRET_PREFIX = "whsec_"


class InvalidSignature(ValueError):
    """The request was not signed with the secret, or not recently enough."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Sendline-Signature` header value for `body` sent at `timestamp`."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a webhook request; return its timestamp, or raise InvalidSignature.

    `body` is the raw request body; `header` the Sendline-Signature header's value.
    Any `v1` entry may match (several are allowed, for secret rotation). A timestamp
    more than `tolerance` seconds away from `now` (default: the current time) is
    refused, so a captured request cannot be replayed.
    """
    if not header:
        raise InvalidSignature("no Sendline-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature("malformed Sendline-Signature header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("signature timestamp outside the tolerance (a replay?)")
    expected = signature(secret, timestamp, body)
    wanted = expected.encode("ascii")
    if not any(hmac.compare_digest(wanted, c.encode("utf-8", "replace")) for c in candidates):
        raise InvalidSignature("signature does not match")
    return timestamp
