"""`sendline credits show|grant-monthly|purchase`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from sendline.cli.common import console
from sendline.cli.db import AccountOption, guarded, open_store, resolve_account
from sendline.services.accounts import grant_monthly_credits, purchase_credits
from sendline.store.credits import Credits
from sendline.store.monthly import check_period, period_of
from sendline.store.types import utcnow

app = typer.Typer(
    help="SMS credits: balance, ledger, purchases, monthly grants.", no_args_is_help=True
)


@app.command("show")
@guarded
def show(
    account: AccountOption = None,
    entries: Annotated[int, typer.Option("--ledger", help="Ledger entries to list.")] = 10,
) -> None:
    """Show the balance and the latest ledger entries."""
    with open_store() as sessions, sessions.begin() as session:
        found = resolve_account(session, account)
        credits = Credits(session, found.id)
        audit = credits.audit()
        balance = audit.balance
        console.print(
            f"{found.name}: {balance.available} credits available "
            f"({balance.free} free, {balance.purchased} purchased), {balance.reserved} reserved"
        )
        if not audit.ok:  # pragma: no cover - the invariant is enforced on every write
            console.print(f"[bold red]ledger sums to {audit.ledger}, balance says {balance}")
        ledger = credits.ledger(limit=max(entries, 0))
        if not ledger:
            return
        table = Table("id", "when (UTC)", "kind", "amount", "free", "purchased", "reserved", "note")
        for entry in ledger:
            about = [entry.note or (f"message {entry.message_id}" if entry.message_id else "")]
            if entry.reservation_id is not None:  # a settlement: which reservation it settles
                about.append(f"of reservation {entry.reservation_id}")
            table.add_row(
                str(entry.id),
                entry.created_at.strftime("%Y-%m-%d %H:%M"),
                entry.kind,
                str(entry.amount),
                f"{entry.free_delta:+d}",
                f"{entry.purchased_delta:+d}",
                f"{entry.reserved_delta:+d}",
                ", ".join(part for part in about if part),
            )
        console.print(table)


@app.command("purchase")
@guarded
def purchase(
    amount: Annotated[int, typer.Argument(help="Credits bought.")],
    account: AccountOption = None,
    note: Annotated[str | None, typer.Option(help="e.g. the invoice number.")] = None,
) -> None:
    """Record a purchase of credits (purchased credits never expire)."""
    with open_store() as sessions:
        found = purchase_credits(sessions, account, amount, note=note)
    console.print(f"{found.name}: bought {amount} credits; {found.balance.available} available")


@app.command("grant-monthly")
@guarded
def grant(
    period: Annotated[
        str | None, typer.Option(help="Month to grant, e.g. 2026-11 (default: this month).")
    ] = None,
    account: Annotated[
        str | None, typer.Option("--account", "-a", help="Only this account.")
    ] = None,
) -> None:
    """Expire last month's unused free credits and grant this month's (legacy accounts).

    Safe to run twice, or from two places at once: each month is granted once.
    """
    month = check_period(period or period_of(utcnow().date()))
    with open_store() as sessions:
        results = grant_monthly_credits(sessions, month, account)
    granted = [r for r in results if r.granted]
    for result in results:
        if result.granted or result.expired:
            console.print(
                f"account {result.account_id}: +{result.granted} free credits for {month}, "
                f"{result.expired} unused expired"
            )
    total = sum(r.granted for r in granted)
    noun = "account" if len(granted) == 1 else "accounts"
    console.print(f"{month}: {len(granted)} {noun} granted {total} credits in all")
