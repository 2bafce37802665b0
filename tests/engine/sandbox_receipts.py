"""The sandbox's receipts polled as the worker polls them (through the engine's hook),
for tests that want to see which receipts applied."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from sendline.engine.receipts import receipt_applier
from sendline.providers.base import DeliveryReport
from sendline.providers.sandbox import SandboxProvider


def poll(
    sandbox: SandboxProvider, sessions: sessionmaker[Session], now: datetime
) -> list[DeliveryReport]:
    """Poll the sandbox's due receipts into the engine; returns those that applied."""
    applied: list[DeliveryReport] = []
    engine_side = receipt_applier(sessions)

    def apply(
        reports: Sequence[DeliveryReport], now: datetime, session: Session | None = None
    ) -> set[str]:
        matched = engine_side(reports, now, session)
        applied.extend(report for report in reports if report.provider_id in matched)
        return matched

    assert sandbox.poll_receipts(now, apply) == len(applied)
    return applied
