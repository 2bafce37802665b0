"""`sendline db upgrade|status`, and what every store command shares.

`open_store` reads the settings, opens the database and refuses to go on when its
schema is behind (the same check the service and the worker make); `guarded` turns any
error a user can cause into one red line and exit status 1, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.text import Text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from sendline import bootstrap
from sendline.cli.common import console, err_console, fail
from sendline.config import load_settings
from sendline.errors import InvalidInput, SendlineError
from sendline.services import resolve_account
from sendline.sms.links import ShortenerList
from sendline.sms.optout import InvalidClause
from sendline.store.db import (
    current_revisions,
    head_revision,
    open_engine,
    pending_migrations,
    redact,
    upgrade,
)

app = typer.Typer(
    help="The database: apply migrations, show the schema status.", no_args_is_help=True
)

P = ParamSpec("P")
R = TypeVar("R")


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command, mapping user-caused errors to a one-line message and exit 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SendlineError as exc:
            raise fail(exc) from None
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise fail(SendlineError(f"database error: {reason}", code="database_error")) from None
        except OSError as exc:
            raise fail(SendlineError(str(exc), code="io_error")) from None
        except InvalidClause as exc:
            # A clause stored before clauses were checked (they are now, when set).
            hint = (
                "fix the account's clause with `sendline accounts update ACCOUNT --optout-clause`"
            )
            raise fail(SendlineError(f"{exc}; {hint}", code="invalid_optout_clause")) from None
        except OverflowError as exc:
            # Last line of defence: lookups refuse out-of-range ids themselves (store/ids.py).
            raise fail(
                InvalidInput(f"a number is out of range: {exc}", code="out_of_range")
            ) from None
        except KeyboardInterrupt:
            err_console.print(Text("interrupted: nothing was changed", style="bold red"))
            raise typer.Exit(130) from None

    return run


@contextmanager
def open_store(*, require_current: bool = True) -> Iterator[sessionmaker[Session]]:
    """A session factory on the configured database, closed afterwards."""
    with bootstrap.opened(require_current=require_current) as runtime:
        yield runtime.sessions


def operator_shorteners() -> ShortenerList:
    """R10: the packaged public-shortener list plus the operator's own
    (SENDLINE_SHORTENERS_FILE), as the worker sees it."""
    return bootstrap.operator_shorteners()


AccountOption = Annotated[
    str | None,
    typer.Option("--account", "-a", help="Account name or id (optional when there is only one)."),
]


@app.command("upgrade")
@guarded
def upgrade_command() -> None:
    """Apply every pending migration (forward-only)."""
    settings = load_settings()
    engine = open_engine(settings.database_url, require_current=False)
    try:
        applied = upgrade(engine)
    finally:
        engine.dispose()
    where = redact(settings.database_url)
    if applied:
        console.print(f"{where}: applied {', '.join(applied)}; schema is at {applied[-1]}")
    else:
        console.print(f"{where}: already up to date (schema at {head_revision()})")


@app.command("status")
@guarded
def status_command() -> None:
    """Show the schema revision and any pending migrations."""
    settings = load_settings()
    engine = open_engine(settings.database_url, require_current=False)
    try:
        current = current_revisions(engine)
        pending = pending_migrations(engine)
    finally:
        engine.dispose()
    console.print(f"database: {redact(settings.database_url)}")
    console.print(f"schema:   {', '.join(current) or 'empty'} (latest {head_revision()})")
    if pending:
        console.print(f"pending:  {', '.join(pending)}; run `sendline db upgrade`")
    else:
        console.print("pending:  none")


# resolve_account lives in services (the API and web use it too); re-exported for the
# command modules that import it from here.
__all__ = [
    "AccountOption",
    "app",
    "guarded",
    "open_store",
    "operator_shorteners",
    "resolve_account",
]
