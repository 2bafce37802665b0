"""`sendline sandbox outbox|reply`: the embedded carrier, seen from the outside.

`outbox` shows what the sandbox "sent"; `reply` plays a phone texting the account's
number, so STOP, START, HELP and ordinary replies can be tried without a provider.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sendline.cli.common import console
from sendline.cli.db import AccountOption, guarded, open_store
from sendline.providers.sandbox import ERRORS
from sendline.providers.sandbox_store import SandboxMessage, outbox
from sendline.services.inbox import Received, receive_text

app = typer.Typer(
    help="The sandbox carrier: what it sent, and texts to it from a phone.",
    no_args_is_help=True,
)


@app.command("outbox")
@guarded
def outbox_command(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Show what the sandbox carrier accepted, newest first."""
    with open_store() as sessions, sessions() as session:
        records = outbox(session, limit)
    if as_json:
        console.print_json(json.dumps([_as_dict(record) for record in records]))
        return
    if not records:
        console.print("the sandbox has sent nothing yet")
        return
    table = Table("time", "to", "body", "status", "error")
    for record in records:
        table.add_row(
            record.accepted_at.strftime("%Y-%m-%d %H:%M:%S"),
            record.to,
            record.body,
            record.status,
            _error(record.error_code) if record.status != "sent" else "",
        )
    console.print(table)


@app.command("reply")
@guarded
def reply_command(
    number: Annotated[str, typer.Argument(help="The phone that texts, e.g. +14158675309.")],
    body: Annotated[str, typer.Argument(help="What it texts, e.g. STOP.")],
    account: AccountOption = None,
) -> None:
    """Text an account's number from a phone, as if through the carrier (R12)."""
    with open_store() as sessions:
        handled = receive_text(sessions, from_number=number, body=body, account_ref=account)
    for item in handled:
        console.print(describe(item, number))


def describe(item: Received, number: str) -> str:
    """One line saying what an inbound text did."""
    where = f"account {item.account_name}" if item.account_name is not None else "no account"
    if item.duplicate:
        return "already received (same provider id): nothing done"
    if not item.has_contact:
        return f"no contact has {number} in {where}: stored as {item.action}, nothing else done"
    if item.action == "opt_out":
        text = f"opted out {number} from {where}"
        text += "; confirmation queued" if item.replied else "; already opted out, no confirmation"
        if item.canceled:
            text += f"; {item.canceled} pending message(s) canceled"
        return text
    if item.action == "opt_in":
        if not item.replied:
            return f"{number} is already opted in to {where}: nothing sent"
        return f"opted in {number} to {where}; confirmation queued"
    if item.action == "help":
        return f"help text queued for {number} ({where})"
    if item.action == "review":
        return f"stored for review: it may ask to stop ({number}, {where}); consent unchanged"
    return f"reply from {number} stored ({where}); {item.enrolled} automation run(s) started"


def _error(code: str | None) -> str:
    return f"{code} {ERRORS.get(code, '')}".strip() if code else ""


def _as_dict(record: SandboxMessage) -> dict[str, Any]:
    return {
        "provider_id": record.provider_id,
        "message_id": record.message_ref,
        "accepted_at": record.accepted_at.isoformat(),
        "from": record.sender,
        "to": record.to,
        "body": record.body,
        "segments": record.segments,
        "status": record.status,
        "error_code": record.error_code,
    }
