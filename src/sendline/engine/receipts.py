"""Delivery receipts into the engine: the one hook every provider's receipts go through.

A polled provider (the sandbox) gets it from the worker (`Provider.poll_receipts`); a
pushed receipt (a provider's status webhook) is handed to the same function. The engine
applies them (`statuses.apply_delivery_reports`); the provider only reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.statuses import apply_delivery_reports
from sendline.providers.base import ApplyReceipts, DeliveryReport


def receipt_applier(sessions: sessionmaker[Session]) -> ApplyReceipts:
    """The hook, on this database: in the provider's transaction when it passes one (its
    records live beside ours), in a transaction of its own otherwise."""

    def apply(
        reports: Sequence[DeliveryReport], now: datetime, session: Session | None = None
    ) -> set[str]:
        if not reports:
            return set()
        if session is not None:
            return apply_delivery_reports(session, reports, now)
        with sessions.begin() as own:
            return apply_delivery_reports(own, reports, now)

    return apply
