"""`sendline users create`: people who sign in to an account's web dashboard.

The password is asked for twice at a prompt (never an argument, which would sit in the
shell's history and in `ps`), or read from stdin with `--password-stdin` for scripts.
"""

from __future__ import annotations

import sys
from typing import Annotated

import click
import typer

from sendline.cli.common import console, usage_error
from sendline.cli.db import guarded, open_store
from sendline.services.accounts import show_account
from sendline.services.users import checked_email, create_user

app = typer.Typer(help="Users of the web dashboard.", no_args_is_help=True)


@app.command("create")
@guarded
def create_command(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    email: Annotated[str, typer.Argument(help="The email the user signs in with.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create a user who signs in to ACCOUNT's dashboard with EMAIL."""
    with open_store() as sessions:
        show_account(sessions, account)  # a missing account is said before any prompt
        checked_email(email)
        password = _password(password_stdin)
        user = create_user(sessions, account, email, password)
    console.print(f"user {user.id} ({user.email}) signs in to account {user.account_name}")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        except click.exceptions.Abort:
            raise usage_error("no password given") from None
    if not password:
        raise usage_error("the password is empty")
    return str(password)
