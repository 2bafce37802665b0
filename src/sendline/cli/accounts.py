"""`sendline accounts create|update|show|list`: parse, call services/accounts.py, print."""

from __future__ import annotations

import inspect
from datetime import date
from typing import Annotated, Any

import typer
from rich.table import Table

from sendline.cli.common import console, usage_error
from sendline.cli.db import guarded, open_store
from sendline.services.accounts import (
    FIELDS,
    AccountField,
    AccountView,
    create_account,
    list_accounts,
    parse_changes,
    show_account,
    update_account,
)

app = typer.Typer(
    help="Accounts: plan, cohort, SMS add-on and sending settings.", no_args_is_help=True
)


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise usage_error(f"{option} {text!r} must be a date YYYY-MM-DD") from None


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
    settings = parse_changes(
        {
            "optout-clause": optout_clause,
            "optout-language": optout_language,
            "help-text": help_text,
            "max-segments": max_segments,
            "quiet-hours": quiet_hours,
            "frequency-cap": frequency_cap,
            "rate": rate,
            "sender": sender,
        }
    )
    with open_store() as sessions:
        account = create_account(
            sessions,
            name,
            product_line=product_line,
            tier=tier,
            purchased_on=_date(purchased_on, "--purchased-on"),
            sms_addon=sms_addon,
            settings=settings,
        )
    console.print(
        f"created account {account.name!r} (id {account.id}): {account.product_line} "
        f"{account.tier}, {account.cohort} cohort, SMS {account.sms_state}"
    )


def _option(field: AccountField) -> inspect.Parameter:
    """The typer parameter `FIELDS` gives one field: an option defaulting to None."""
    name = field.option.replace("-", "_")
    names = f"--{field.option}/--no-{field.option}" if field.kind is bool else f"--{field.option}"
    kind: Any = {bool: bool | None, list: list[str] | None}.get(field.kind, str | None)
    annotation = Annotated[kind, typer.Option(names, help=field.help, show_default=False)]
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


def _update_command(account: str, **options: Any) -> None:
    """Change an account's plan and settings. Every value is checked first: one bad
    option (named in the error) changes nothing."""
    changes = parse_changes(
        {field.option: options[field.option.replace("-", "_")] for field in FIELDS}
    )
    with open_store() as sessions:
        updated = update_account(sessions, account, changes)
    console.print(f"updated account {updated.name!r} (id {updated.id}):")
    _print(updated)


def _register_update() -> None:
    # Built from FIELDS so a new setting needs no code here: typer reads the signature.
    target = Annotated[str, typer.Argument(help="Account name or id.")]
    parameters = [
        inspect.Parameter("account", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=target)
    ]
    parameters += [_option(field) for field in FIELDS]
    command: Any = guarded(_update_command)
    command.__signature__ = inspect.Signature(parameters)
    app.command("update")(command)


_register_update()


@app.command("show")
@guarded
def show(account: Annotated[str, typer.Argument(help="Account name or id.")]) -> None:
    """Show an account's plan, SMS state and settings."""
    with open_store() as sessions:
        _print(show_account(sessions, account))


def _print(found: AccountView) -> None:
    balance = found.balance
    table = Table(show_header=False, box=None)
    rows = [
        ("id", str(found.id)),
        ("name", found.name),
        ("plan", f"{found.product_line} {found.tier}"),
        ("last purchase", f"{found.last_purchase_on} ({found.cohort} cohort)"),
        ("SMS add-on", "yes" if found.sms_addon else "no"),
        ("SMS", found.sms_state),
        ("monthly free credits", str(found.monthly_free_credits)),
        (
            "credits",
            f"{balance.available} available ({balance.free} free, "
            f"{balance.purchased} purchased), {balance.reserved} reserved",
        ),
        ("opt-out clause", f"{found.optout_clause} [{found.optout_language}]"),
        ("clause policy", found.optout_clause_policy),
        ("help text", found.help_text),
        ("max segments", str(found.max_segments)),
        ("sending window", found.window),
        ("frequency cap", f"{found.frequency_cap} per 24 h"),
        ("credit rates", ", ".join(f"{k}={v}" for k, v in sorted(found.credit_rates.items()))),
        ("sender", found.sender_number or "-"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)


@app.command("list")
@guarded
def list_command() -> None:
    """List every account."""
    with open_store() as sessions:
        accounts = list_accounts(sessions)
    if not accounts:
        console.print("no accounts yet: create one with `sendline accounts create`")
        return
    table = Table("id", "name", "plan", "cohort", "SMS", "credits")
    for account in accounts:
        table.add_row(
            str(account.id),
            account.name,
            f"{account.product_line} {account.tier}",
            account.cohort,
            account.sms_state,
            str(account.balance.available),
        )
    console.print(table)
