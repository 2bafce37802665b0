"""`sendline accounts create|show|list`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer
from rich.table import Table

from sendline.cli.common import console, usage_error
from sendline.cli.db import guarded, open_store
from sendline.store.accounts import Accounts, format_window, parse_rates, parse_window
from sendline.store.credits import Credits
from sendline.store.models import Account

app = typer.Typer(
    help="Accounts: plan, cohort, SMS add-on and sending settings.", no_args_is_help=True
)


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise usage_error(f"{option} {text!r} must be a date YYYY-MM-DD") from None


def sms_state(account: Account) -> str:
    refusal = account.sms_refusal()
    return "enabled" if refusal is None else f"refused ({refusal.code})"


@app.command("create")
@guarded
def create(
    name: Annotated[str, typer.Argument(help="Unique account name.")],
    product_line: Annotated[str, typer.Option("--line", help="marketing or sales.")],
    tier: Annotated[
        str, typer.Option("--tier", help="lite, starter, plus, professional or enterprise.")
    ],
    purchased_on: Annotated[
        str,
        typer.Option("--purchased-on", help="Date of the last purchase or upgrade (the cohort)."),
    ],
    sms_addon: Annotated[bool, typer.Option("--sms-addon", help="Bought the SMS add-on.")] = False,
    optout_clause: Annotated[str | None, typer.Option(help="Opt-out clause.")] = None,
    optout_language: Annotated[str | None, typer.Option(help="Its language (en, fr...).")] = None,
    help_text: Annotated[str | None, typer.Option(help="Reply to HELP.")] = None,
    max_segments: Annotated[int | None, typer.Option(help="Segments per message (1-10).")] = None,
    quiet_hours: Annotated[
        str | None, typer.Option(help="Local sending window, e.g. 08:00-21:00 (the default).")
    ] = None,
    frequency_cap: Annotated[int | None, typer.Option(help="Texts per contact per 24 h.")] = None,
    rate: Annotated[
        list[str] | None, typer.Option("--rate", help="Credits per segment: default=1, GB=2...")
    ] = None,
    sender: Annotated[str | None, typer.Option(help="The from-number.")] = None,
) -> None:
    """Create an account with an empty credit balance."""
    settings: dict[str, Any] = {
        "optout_clause": optout_clause,
        "optout_language": optout_language,
        "help_text": help_text,
        "max_segments": max_segments,
        "frequency_cap": frequency_cap,
        "sender_number": sender,
    }
    if quiet_hours is not None:
        settings["quiet_start"], settings["quiet_end"] = parse_window(quiet_hours)
    if rate:
        settings["credit_rates"] = parse_rates(rate)
    with open_store() as sessions, sessions.begin() as session:
        account = Accounts(session).create(
            name,
            product_line=product_line,
            tier=tier,
            last_purchase_on=_date(purchased_on, "--purchased-on"),
            sms_addon=sms_addon,
            **settings,
        )
        console.print(
            f"created account {account.name!r} (id {account.id}): {account.product_line} "
            f"{account.tier}, {account.cohort} cohort, SMS {sms_state(account)}"
        )


@app.command("show")
@guarded
def show(account: Annotated[str, typer.Argument(help="Account name or id.")]) -> None:
    """Show an account's plan, SMS state and settings."""
    with open_store() as sessions, sessions.begin() as session:
        found = Accounts(session).resolve(account)
        balance = Credits(session, found.id).balance()
        table = Table(show_header=False, box=None)
        rows = [
            ("id", str(found.id)),
            ("name", found.name),
            ("plan", f"{found.product_line} {found.tier}"),
            ("last purchase", f"{found.last_purchase_on} ({found.cohort} cohort)"),
            ("SMS add-on", "yes" if found.sms_addon else "no"),
            ("SMS", sms_state(found)),
            ("monthly free credits", str(found.monthly_free_credits)),
            (
                "credits",
                f"{balance.available} available ({balance.free} free, "
                f"{balance.purchased} purchased), {balance.reserved} reserved",
            ),
            ("opt-out clause", f"{found.optout_clause} [{found.optout_language}]"),
            ("help text", found.help_text),
            ("max segments", str(found.max_segments)),
            ("sending window", format_window(found.quiet_start, found.quiet_end)),
            ("frequency cap", f"{found.frequency_cap} per 24 h"),
            ("credit rates", ", ".join(f"{k}={v}" for k, v in sorted(found.credit_rates.items()))),
            ("sender", found.sender_number or "-"),
        ]
        for label, value in rows:
            table.add_row(label, value)
        console.print(table)


@app.command("list")
@guarded
def list_accounts() -> None:
    """List every account."""
    with open_store() as sessions, sessions.begin() as session:
        accounts = Accounts(session).list()
        if not accounts:
            console.print("no accounts yet: create one with `sendline accounts create`")
            return
        table = Table("id", "name", "plan", "cohort", "SMS", "credits")
        for account in accounts:
            balance = Credits(session, account.id).balance()
            table.add_row(
                str(account.id),
                account.name,
                f"{account.product_line} {account.tier}",
                account.cohort,
                sms_state(account),
                str(balance.available),
            )
        console.print(table)
