"""`sendline users create`: people who sign in to an account's web dashboard.

The password is asked for twice at a prompt (never an argument, which would sit in the
shell's history and in `ps`), or read from stdin with `--password-stdin` for scripts.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sendline.cli.common import console, usage_error
from sendline.cli.db import guarded, open_store
from sendline.services.users import create_user

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
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise usage_error("the password is empty")
    with open_store() as sessions:
        user = create_user(sessions, account, email, password)
    console.print(f"user {user.id} ({user.email}) signs in to account {user.account_name}")
