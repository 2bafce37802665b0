"""The data `bench api` serves: an account with an event-triggered automation, opted-in
contacts and an API key; then, for the messages list, a million message rows.

The automation is active and listens to `shipped` with `reentry: always`, so every
`POST /api/v1/events` starts a run (an `automation_runs` row written by the request).
The messages are written with `store/batch_writes.insert_rows` (one executemany per
batch on SQLite, COPY on PostgreSQL): a million rows in seconds, not the minutes the
engine would take to send them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from bench.bench_engine import prepare
from sendline.engine.automations import Automations
from sendline.services.api_keys import create_key
from sendline.store.batch_writes import insert_rows
from sendline.store.credits import Credits
from sendline.store.db import create_engine_for, session_factory
from sendline.store.engine_models import Message
from sendline.store.models import Contact

ON_EVENT = """
name: Shipped
trigger: {type: event, name: shipped}
reentry: always
steps:
  - {type: send_sms, body: "Order %EVENT.ORDER% has shipped"}
"""
BATCH = 20_000
EVENT_CREDITS = 1_000_000
STATUSES = ("delivered", "delivered", "delivered", "sent", "failed", "undelivered")


@dataclass(frozen=True)
class Seeded:
    url: str
    account_id: int
    key: str
    contacts: tuple[int, int]  # the first and last contact id


def seed_account(url: str, contacts: int) -> Seeded:
    """`prepare`'s account and contacts (bench_engine), the `shipped` automation, a key."""
    engine = create_engine_for(url)
    try:
        account_id, _ = prepare(engine, contacts)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            automations = Automations(session, account_id)
            saved = automations.create(ON_EVENT)
            automations.activate(saved.automation.id)
            # Every event's run sends a message once a worker runs (`bench api --worker`).
            Credits(session, account_id).purchase(EVENT_CREDITS)
            first, last = session.execute(
                select(func.min(Contact.id), func.max(Contact.id)).where(
                    Contact.account_id == account_id
                )
            ).one()
        key = create_key(sessions, account_id, "bench").key
        return Seeded(url, account_id, key, (int(first), int(last)))
    finally:
        engine.dispose()


def seed_messages(seeded: Seeded, count: int) -> None:
    """`count` sent messages of the account, ten a minute back from now, oldest first
    (ids ascending with time, as the engine writes them). Ten share each timestamp:
    converting a timestamp costs more than storing the row, and `insert_rows` converts
    each distinct value once."""
    engine = create_engine_for(seeded.url)
    first, last = seeded.contacts
    span = last - first + 1
    start = datetime.now(UTC) - timedelta(minutes=count // 10 + 1)
    try:
        for offset in range(0, count, BATCH):
            rows: list[dict[str, Any]] = []
            for index in range(offset, min(count, offset + BATCH)):
                at = start + timedelta(minutes=index // 10)
                contact = first + index % span
                rows.append(
                    {
                        "account_id": seeded.account_id,
                        "contact_id": contact,
                        "kind": "marketing",
                        "to_e164": f"+1415{contact % 10_000_000:07d}",
                        "region": "US",
                        "body": f"Hi C{contact}, spring sale: 20% off today\nReply STOP to opt out",
                        "encoding": "GSM-7",
                        "segments": 1,
                        "credits": 1,
                        "status": STATUSES[index % len(STATUSES)],
                        "provider": "sandbox",
                        "created_at": at,
                        "sent_at": at,
                        "updated_at": at,
                    }
                )
            with engine.begin() as conn:
                insert_rows(conn, Message.__table__, rows)  # type: ignore[arg-type]
    finally:
        engine.dispose()
