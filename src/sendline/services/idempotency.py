"""`Idempotency-Key` on POST, with Stripe's semantics.

A client that timed out cannot know whether its POST was done; with a key it can send it
again and get the first answer instead of a second object. The first response to a key
is stored for 24 hours and replayed for the same key; the same key with a different
request is an error (the client has a bug, and guessing which request it meant would be
worse); a request that is still running when its twin arrives makes the twin wait for
its answer.

The row is inserted, and committed, before the request runs: the unique
(api_key_id, key) lets exactly one of two concurrent requests insert it, in one process
or many, on SQLite or PostgreSQL. A request that ends in a server error (5xx), a rate
limit (429), an unknown key (401) or invalid input (422) did not run, or may run
differently next time: its row is deleted so that a retry with the same key runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import Conflict, InvalidInput, SendlineError
from sendline.store.api_models import IdempotencyKey

KEPT_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Answers not stored, as Stripe does not store them: the request did not run (401, 429),
# its input failed validation (422: the client fixes the body and retries with the same
# key), or it failed on the server's side (5xx). The retry with the key runs it.
NOT_STORED = frozenset({401, 422, 429})


class IdempotencyKeyReused(SendlineError):
    """The key was first sent with another request (method, path or body)."""

    code = "idempotency_key_reused"


class IdempotencyKeyInUse(Conflict):
    """The first request with this key is still running."""

    code = "idempotency_key_in_use"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Begun:
    """What to do with a request: `run` it (and then `finish` row `row_id`), `replay`
    the stored response, or `wait` for the first request with this key."""

    action: Literal["run", "replay", "wait"]
    row_id: int
    response: StoredResponse | None = None


def checked_key(raw: str) -> str:
    """The key as sent; a 422 naming the header when it is empty, too long or not
    printable ASCII (a UUID is the usual choice)."""
    if not raw or len(raw) > MAX_KEY_LENGTH or not raw.isascii() or not raw.isprintable():
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            code="invalid_idempotency_key",
            field="Idempotency-Key",
        )
    return raw


def begin(
    sessions: sessionmaker[Session],
    api_key_id: int,
    key: str,
    request_hash: str,
    now: datetime | None = None,
) -> Begun:
    """Claim `key` for this request, or say how the request already made with it ends."""
    moment = now or datetime.now(UTC)
    # Twice: the request holding the key may let it go (it failed) between our insert
    # and our read; then the key is free and this request runs.
    for _ in range(2):
        try:
            with sessions.begin() as session:
                _forget_expired(session, api_key_id, key, moment)
                row = IdempotencyKey(
                    api_key_id=api_key_id,
                    key=key,
                    request_hash=request_hash,
                    state="running",
                    created_at=moment,
                )
                session.add(row)
                session.flush()
                return Begun("run", row.id)
        except IntegrityError:
            pass  # another request holds the key: read how it went
        found = _existing(sessions, api_key_id, key, request_hash)
        if found is not None:
            return found
    raise IdempotencyKeyInUse(
        "another request with this Idempotency-Key is starting; send it again",
        field="Idempotency-Key",
    )


def _forget_expired(session: Session, api_key_id: int, key: str, moment: datetime) -> None:
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.api_key_id == api_key_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at < moment - KEPT_FOR,
        )
    )


def _existing(
    sessions: sessionmaker[Session], api_key_id: int, key: str, request_hash: str
) -> Begun | None:
    with sessions.begin() as session:
        row = session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.api_key_id == api_key_id, IdempotencyKey.key == key
            )
        )
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for a different request; use a new key "
                "for a new request",
                field="Idempotency-Key",
            )
        if row.state != "done" or row.status_code is None:
            return Begun("wait", row.id)
        return Begun("replay", row.id, _stored(row))


def poll(sessions: sessionmaker[Session], row_id: int) -> StoredResponse | None | Literal[False]:
    """The stored answer once the first request is done; None while it runs; False when
    it ended without one (its row was let go)."""
    with sessions.begin() as session:
        row = session.get(IdempotencyKey, row_id)
        if row is None:
            return False
        if row.state != "done" or row.status_code is None:
            return None
        return _stored(row)


def _stored(row: IdempotencyKey) -> StoredResponse:
    assert row.status_code is not None
    body = (row.body or "").encode("utf-8")
    return StoredResponse(row.status_code, row.content_type or "application/json", body)


def finish(
    sessions: sessionmaker[Session], row_id: int, status: int, content_type: str, body: bytes
) -> None:
    """Store the answer to replay, or let the key go when the request did not run."""
    with sessions.begin() as session:
        if status >= 500 or status in NOT_STORED:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id))
            return
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == row_id)
            .values(
                state="done",
                status_code=status,
                content_type=content_type[:100],
                body=body.decode("utf-8", errors="replace"),
            )
        )


def purge_expired(sessions: sessionmaker[Session], now: datetime | None = None) -> int:
    """Delete every stored answer past its 24 hours; how many went."""
    cutoff = (now or datetime.now(UTC)) - KEPT_FOR
    with sessions.begin() as session:
        result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)
