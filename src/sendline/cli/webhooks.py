"""`sendline webhooks list|deliveries`: an account's outbound webhook endpoints and
their delivery log, for the operator (endpoints are managed over the API)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from sendline.cli.common import console
from sendline.cli.db import guarded, open_store
from sendline.services.webhooks import list_deliveries, list_webhooks

app = typer.Typer(help="Outbound webhooks (managed over /api/v1/webhooks).", no_args_is_help=True)

Limit = Annotated[int, typer.Option(min=1, max=1000, help="How many rows, newest first.")]


def _at(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else ""


@app.command("list")
@guarded
def list_command(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    limit: Limit = 50,
) -> None:
    """The account's endpoints: state, cursor, failures (never their secrets)."""
    with open_store() as sessions:
        endpoints = list_webhooks(sessions, account, limit=limit)
    table = Table("id", "url", "events", "state", "cursor", "failing since", "reason")
    for endpoint in endpoints:
        table.add_row(
            str(endpoint.id),
            endpoint.url,
            ", ".join(endpoint.events),
            "enabled" if endpoint.enabled else "disabled",
            str(endpoint.cursor),
            _at(endpoint.failing_since),
            endpoint.disabled_reason or "",
        )
    console.print(table)


@app.command("deliveries")
@guarded
def deliveries_command(
    webhook: Annotated[str, typer.Argument(help="The endpoint's id.")],
    limit: Limit = 50,
) -> None:
    """An endpoint's delivery log, newest first: every attempt and its answer."""
    with open_store() as sessions:
        deliveries = list_deliveries(sessions, None, webhook, limit=limit, any_account=True)
    table = Table("id", "at", "event", "kind", "attempt", "answer", "ms", "next attempt")
    for delivery in deliveries:
        answer = str(delivery.status_code) if delivery.status_code is not None else ""
        table.add_row(
            str(delivery.id),
            _at(delivery.at),
            str(delivery.event_id),
            delivery.event_kind,
            str(delivery.attempt),
            f"{answer} {delivery.error or ''}".strip(),
            str(delivery.duration_ms),
            _at(delivery.next_attempt_at),
        )
    console.print(table)
