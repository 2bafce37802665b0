"""`sendline keys create|list|revoke`: the keys the HTTP API accepts.

Thin: `services.api_keys` creates, stores (as a hash) and revokes them. The full key is
printed once, at creation; nothing else ever shows it again.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from sendline.cli.common import console, err_console, usage_error
from sendline.cli.db import guarded, open_store
from sendline.services.api_keys import create_key, list_keys, revoke_key

app = typer.Typer(help="API keys for the HTTP API (/api/v1).", no_args_is_help=True)


@app.command("create")
@guarded
def create_command(
    account: Annotated[
        str | None, typer.Argument(help="Account name or id (not with --admin).")
    ] = None,
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'shop'.")] = "",
    admin: Annotated[
        bool, typer.Option(help="An operator key, for no account (creates and lists accounts).")
    ] = False,
) -> None:
    """Create a key and print it once: store it now, it cannot be shown again."""
    if not name.strip():
        raise usage_error("--name is required")
    if admin == (account is not None):
        raise usage_error("give an ACCOUNT, or --admin for an operator key (not both)")
    with open_store() as sessions:
        created = create_key(sessions, account, name, admin=admin)
    view = created.view
    whose = "admin" if view.account_id is None else f"account {view.account_id}"
    console.print(f"key {view.id} ({view.name}, {whose}):")
    console.print(Text(created.key), soft_wrap=True)
    err_console.print(
        Text("Store this key now: it is shown once and cannot be recovered.", style="yellow")
    )


@app.command("list")
@guarded
def list_command(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
) -> None:
    """An account's keys (prefixes only), revoked ones included."""
    with open_store() as sessions:
        keys = list_keys(sessions, account)
    table = Table("id", "name", "key", "created", "last used", "revoked")
    for key in keys:
        table.add_row(
            str(key.id),
            key.name,
            f"{key.prefix}...",
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )
    console.print(table)


@app.command("revoke")
@guarded
def revoke_command(key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with open_store() as sessions:
        view = revoke_key(sessions, key_id)
    console.print(f"key {view.id} ({view.name}, {view.prefix}...) revoked")
