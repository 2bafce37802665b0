"""`sendline credits show|grant-monthly|purchase`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from sendline.cli.common import console
from sendline.cli.db import AccountOption, guarded, open_store
from sendline.services.accounts import grant_monthly_credits, purchase_credits
from sendline.services.credits import credit_statement
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
    with open_store() as sessions:
        statement = credit_statement(sessions, account, entries=entries)
    balance = statement.audit.balance
    console.print(
        f"{statement.account_name}: {balance.available} credits available "
        f"({balance.free} free, {balance.purchased} purchased), {balance.reserved} reserved"
    )
    if not statement.audit.ok:  # pragma: no cover - the invariant is enforced on every write
        console.print(f"[bold red]ledger sums to {statement.audit.ledger}, balance says {balance}")
    if not statement.entries:
        return
    table = Table("id", "when (UTC)", "kind", "amount", "free", "purchased", "reserved", "note")
    for line in statement.entries:
        table.add_row(
            str(line.id),
            line.created_at.strftime("%Y-%m-%d %H:%M"),
            line.kind,
            str(line.amount),
            f"{line.free_delta:+d}",
            f"{line.purchased_delta:+d}",
            f"{line.reserved_delta:+d}",
            line.about,
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
