"""`sendline inbox list|review`: parse, call services/inbox.py, print."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from sendline.cli.common import console, usage_error
from sendline.cli.db import AccountOption, guarded, open_store
from sendline.services.inbox import list_inbound, review_reply

app = typer.Typer(
    help="Texts contacts sent, what each did, and the free-text revocations to review (R12).",
    no_args_is_help=True,
)


@app.command("list")
@guarded
def list_command(
    account: AccountOption = None,
    review: Annotated[
        bool, typer.Option("--review", help="Only the replies awaiting a person's review.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """List inbound texts, newest first, with the action taken or awaiting review."""
    with open_store() as sessions:
        replies = list_inbound(sessions, account, review_only=review, limit=limit)
    if not replies:
        console.print("no replies awaiting review" if review else "no inbound texts yet")
        return
    table = Table("id", "received (UTC)", "contact", "from", "text", "outcome")
    for reply in replies:
        style = "bold yellow" if reply.awaiting_review else ""
        table.add_row(
            str(reply.id),
            reply.received_at.strftime("%Y-%m-%d %H:%M"),
            str(reply.contact_id) if reply.contact_id is not None else "-",
            reply.from_number,
            Text(reply.body[:80]),  # Text: a reply is never read as Rich markup
            Text(reply.outcome, style=style),
        )
    console.print(table)
    waiting = sum(1 for reply in replies if reply.awaiting_review)
    if waiting:
        console.print(
            f"{waiting} awaiting review: `sendline inbox review ID --opt-out` or --not-opt-out"
        )


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers)
        return "cli"


@app.command("review")
@guarded
def review_command(
    reply_id: Annotated[int, typer.Argument(metavar="ID", help="The reply's id (inbox list).")],
    opt_out: Annotated[
        bool | None,
        typer.Option(
            "--opt-out/--not-opt-out",
            help="It revokes consent (the contact is opted out), or it does not.",
            show_default=False,
        ),
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who decides (default: your login).")] = None,
    account: AccountOption = None,
) -> None:
    """Decide a reply flagged for review; recorded with who decided."""
    if opt_out is None:
        raise usage_error("say --opt-out or --not-opt-out")
    with open_store() as sessions:
        result = review_reply(
            sessions, reply_id, opt_out=opt_out, by=by or _default_reviewer(), account=account
        )
    reply = result.reply
    if result.consent_event_id is not None:
        console.print(
            f"reply {reply.id}: contact {reply.contact_id} opted out by {reply.reviewed_by} "
            f"(consent event {result.consent_event_id}); {result.canceled} pending messages "
            "canceled"
        )
    else:
        console.print(f"reply {reply.id}: not an opt-out, review closed by {reply.reviewed_by}")
