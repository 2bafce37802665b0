"""What every command module shares: the consoles and the error-to-exit mapping."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.text import Text

from sendline.errors import SendlineError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

EXIT_ERROR = 1  # a domain error: the command ran and refused (message says why)
EXIT_USAGE = 2  # the command line itself is wrong (same code Click uses)


def usage_error(message: str) -> typer.Exit:
    err_console.print(Text(f"error: {message}", style="bold red"), soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def fail(error: SendlineError) -> typer.Exit:
    """Print a domain error as one readable line (with its stable code) and exit 1."""
    # soft_wrap: one line however long, so scripts and logs get the whole message
    err_console.print(
        Text(f"error [{error.code}]: {error.message}", style="bold red"), soft_wrap=True
    )
    return typer.Exit(EXIT_ERROR)
