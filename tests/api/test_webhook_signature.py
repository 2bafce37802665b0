"""The documented `verify`: a genuine signature passes; a forged, tampered, stale or
malformed one is refused."""

from __future__ import annotations

import pytest

from sendline.webhook_signature import InvalidSignature, sign, verify

SECRET = "whsec_test-secret"
BODY = b'{"id":1,"kind":"message.status"}'
NOW = 1_796_644_800


def test_it_accepts_a_genuine_signature_within_five_minutes() -> None:
    header = sign(SECRET, BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify(BODY, header, SECRET, now=NOW + 299) == NOW
    assert verify(BODY, header, SECRET, now=NOW - 299) == NOW
    rotated = f"{header},v1={sign('whsec_other', BODY, NOW).split('v1=')[1]}"
    assert verify(BODY, rotated, "whsec_other", now=NOW) == NOW  # any v1 may match


@pytest.mark.parametrize(
    ("body", "header", "reason"),
    [
        (BODY, sign("whsec_forged", BODY, NOW), "signature does not match"),
        (BODY + b" ", sign(SECRET, BODY, NOW), "signature does not match"),
        (BODY, sign(SECRET, BODY, NOW).replace(f"t={NOW}", f"t={NOW + 1}"), "does not match"),
        (BODY, sign(SECRET, BODY, NOW - 301), "outside the tolerance"),
        (BODY, sign(SECRET, BODY, NOW + 301), "outside the tolerance"),
        (BODY, None, "no Sendline-Signature header"),
        (BODY, "", "no Sendline-Signature header"),
        (BODY, f"t={NOW}", "malformed"),
        (BODY, "v1=abc", "malformed"),
        (BODY, f"t=-{NOW},v1=abc", "malformed"),
        (BODY, f"t={NOW},v1=\u00e9\u00e9", "does not match"),
    ],
)
def test_it_refuses_a_forged_tampered_stale_or_malformed_signature(
    body: bytes, header: str | None, reason: str
) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify(body, header, SECRET, now=NOW)
