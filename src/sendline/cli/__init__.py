"""The `sendline` command line: a thin shell over sms/, store/ and engine/.

Each command group lives in its own module and is registered here, the one wiring
point. Commands parse arguments, call the core, and map `SendlineError` codes to exit
statuses; no rule logic lives in the CLI.
"""

from __future__ import annotations

import typer

from sendline.cli import (
    accounts,
    automations,
    check,
    contacts,
    credits,
    db,
    inbox,
    keys,
    messages,
    providers,
    sandbox,
    service,
    users,
    webhooks,
)

app = typer.Typer(
    name="sendline",
    help="Sendline: self-hosted SMS marketing automation that keeps senders legal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(check.app, name="check")
app.add_typer(db.app, name="db")
app.add_typer(accounts.app, name="accounts")
app.add_typer(credits.app, name="credits")
app.add_typer(contacts.app, name="contacts")
app.add_typer(automations.app, name="automations")
app.add_typer(automations.events_app, name="events")
app.add_typer(messages.app, name="messages")
app.add_typer(inbox.app, name="inbox")
app.add_typer(providers.app, name="providers")
app.add_typer(keys.app, name="keys")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(users.app, name="users")
app.command("serve")(service.serve)
app.command("worker")(service.worker_command)


def main() -> None:
    app()
