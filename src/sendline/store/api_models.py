"""Tables of the HTTP API itself (not of the domain): stored responses for
`Idempotency-Key` replays."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sendline.store.models import Base, _in
from sendline.store.types import utcnow

IDEMPOTENCY_STATES = ("running", "done")


class IdempotencyKey(Base):
    """One `Idempotency-Key` a key sent on a POST: the request it came with (a hash of
    method, path and body) and, once answered, the response, replayed for 24 hours.

    The row is inserted before the request runs, under a unique (api_key_id, key): of
    two concurrent requests with one key, exactly one inserts it and runs; the other
    waits for its answer or is told the first is still running. Nothing is kept in a
    process's memory, so this holds across `sendline serve` processes too."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint(_in("state", IDEMPOTENCY_STATES), name="state"),
        UniqueConstraint("api_key_id", "key", name="uq_idempotency_keys_api_key_id"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10), default="running")
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
