"""`sendline messages list|release`: what was sent, what is held and why, and releasing
held messages once their cause is fixed (credits bought, consent given, number fixed)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from sendline.cli.common import console
from sendline.cli.db import AccountOption, guarded, open_store, operator_shorteners
from sendline.services.messages import (
    MAX_RELEASE,
    MessageLine,
    Released,
    list_messages,
    release_held,
)

app = typer.Typer(help="Messages: list them, release held ones.", no_args_is_help=True)

ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="A hold reason, e.g. insufficient_credits.")
]


@app.command("list")
@guarded
def list_command(
    account: AccountOption = None,
    status: Annotated[str | None, typer.Option(help="Only this status, e.g. held.")] = None,
    reason: ReasonOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Show an account's messages, newest first: why each held one is held, and why
    each queued one waits (quiet hours until when in the contact's zone, rate limit)."""
    with open_store() as sessions:
        found = list_messages(sessions, account, status=status, reason=reason, limit=limit)
    if as_json:
        console.print_json(json.dumps([_as_dict(m) for m in found]))
        return
    if not found:
        console.print("no messages match")
        return
    table = Table("id", "created", "to", "status", "why", "body")
    for m in found:
        why = f"{m.held_reason}: {m.detail}" if m.held_reason else (m.waiting or m.detail or "")
        table.add_row(str(m.id), _when(m.created_at), m.to or "-", m.status, why, m.body)
    console.print(table)


@app.command("release")
@guarded
def release_command(
    ids: Annotated[list[int] | None, typer.Argument(help="Held message ids.")] = None,
    account: AccountOption = None,
    reason: ReasonOption = None,
) -> None:
    """Run every check again for held messages (by id, or all held for --reason).

    Each is queued if the checks now pass, or stays held with today's reason. All or
    nothing: one id that is not a held message of the account changes none."""
    with open_store() as sessions:
        results = release_held(
            sessions, account, ids=ids or (), reason=reason, shorteners=operator_shorteners()
        )
    if not results:
        console.print("no held messages to release")
    for result in results:
        console.print(_outcome(result))
    queued = sum(1 for r in results if r.status == "queued")
    if results:
        console.print(f"{queued} queued, {len(results) - queued} still held")
    if reason is not None and len(results) == MAX_RELEASE:
        console.print(f"the oldest {MAX_RELEASE:,} (one release at most); run again for any more")


def _outcome(result: Released) -> str:
    if result.status == "queued":
        return f"message {result.message_id}: queued, due {_when(result.due_at)}"
    return f"message {result.message_id}: still held ({result.reason}: {result.detail})"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else "-"


def _as_dict(m: MessageLine) -> dict[str, Any]:
    return {
        "id": m.id,
        "created_at": m.created_at.isoformat(),
        "to": m.to,
        "kind": m.kind,
        "transactional": m.transactional,
        "status": m.status,
        "held_reason": m.held_reason,
        "detail": m.detail,
        "waiting": m.waiting,
        "body": m.body,
        "segments": m.segments,
        "credits": m.credits,
        "due_at": m.due_at.isoformat() if m.due_at else None,
    }
