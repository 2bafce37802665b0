"""Answers that hold a secret shown once: a new API key, a webhook's signing secret.

No cache may keep them (`Cache-Control: no-store`), and the idempotency store keeps a
notice in their place (`api/idempotency.py`): the secret exists in clear only in the
one answer.
"""

from __future__ import annotations

from fastapi import Response

NO_STORE = "no-store"


def shown_once(response: Response) -> None:
    response.headers["Cache-Control"] = NO_STORE
