"""Messages created the way the runner creates them: `Pipeline.queue_many` (there is no
single-message path to test instead)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from sendline.engine.pipeline import Pipeline, SmsRequest
from sendline.store.engine_models import Message
from sendline.store.models import Account, Contact


def queue_one(
    session: Session, owner: Account, who: Contact, request: SmsRequest | str, now: datetime
) -> Message:
    """One message through the batch path, read back."""
    if isinstance(request, str):
        request = SmsRequest(template=request)
    created = Pipeline(owner).queue_many(session, [(who, request)], now)
    assert created == 1
    return session.scalars(select(Message).order_by(Message.id.desc())).first()  # type: ignore[return-value]
