"""The provider_configs rows of one account: its carriers in failover order.

`position` is unique per account and kept 1..n with no gaps, so "position 1" always
means "tried first". The services check what users type; this module only reads and
orders rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sendline.store.engine_models import Message, ProviderConfig
from sendline.store.ids import parse_id

# A message a reconciliation still needs its provider for (R17): that provider stays.
UNSETTLED = ("sending", "unknown")


def provider_name(kind: str, row_id: int) -> str:
    """`twilio:7`: a configured provider's name, as messages.provider holds it."""
    return f"{kind}:{row_id}"


def name_of(row: ProviderConfig) -> str:
    return provider_name(row.kind, row.id)


def account_providers(session: Session, account_id: int) -> list[ProviderConfig]:
    """The account's rows in failover order."""
    query = select(ProviderConfig).where(ProviderConfig.account_id == account_id)
    return list(session.scalars(query.order_by(ProviderConfig.position)))


def find(rows: Sequence[ProviderConfig], ref: str) -> ProviderConfig | None:
    """A row by id ("7") or name ("twilio:7"); None when none of `rows` is it."""
    wanted = parse_id(ref.rpartition(":")[2])
    for row in rows:
        if row.id == wanted and (":" not in ref or ref.strip() == name_of(row)):
            return row
    return None


def sender_elsewhere(session: Session, account_id: int, sender: str) -> bool:
    """Whether another account's provider sends from `sender`."""
    query = select(ProviderConfig.id).where(
        ProviderConfig.sender_number == sender, ProviderConfig.account_id != account_id
    )
    return session.scalar(query.limit(1)) is not None


def unsettled_messages(session: Session, row: ProviderConfig) -> int:
    """The row's messages whose outcome is not known yet (they need it to reconcile)."""
    query = (
        select(func.count())
        .select_from(Message)
        .where(  # the account's own messages: its (account_id, status) index
            Message.account_id == row.account_id,
            Message.status.in_(UNSETTLED),
            Message.provider == name_of(row),
        )
    )
    return int(session.scalar(query) or 0)


def renumber(session: Session, ordered: Sequence[ProviderConfig]) -> None:
    """Positions 1..n in `ordered`'s order; a new row in it is added. (account, position)
    is unique and checked row by row, so stored rows first step aside (negative)."""
    for row in ordered:
        if row.id is not None:
            row.position = -row.id
    session.flush()
    for at, row in enumerate(ordered, start=1):
        row.position = at
        session.add(row)
    session.flush()
