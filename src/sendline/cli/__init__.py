"""The `sendline` command line: a thin shell over sms/, store/ and engine/.

Each command group lives in its own module and is registered here, the one wiring
point. Commands parse arguments, call the core, and map `SendlineError` codes to exit
statuses; no rule logic lives in the CLI.
"""

from __future__ import annotations

import typer

from sendline.cli import check

app = typer.Typer(
    name="sendline",
    help="Sendline: self-hosted SMS marketing automation that keeps senders legal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(check.app, name="check")


def main() -> None:
    app()
