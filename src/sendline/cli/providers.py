"""`sendline providers add|list|remove|move|test|rotate-secrets|new-key`.

The carriers an account sends through, in failover order. Thin: options are parsed
here, everything is checked and stored by `services.providers`; nothing printed holds a
secret or a full phone number (the service hands them over masked).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from sendline import bootstrap
from sendline.cli.common import console, err_console, usage_error
from sendline.cli.db import guarded, open_store
from sendline.providers.configs import MAX_CONFIG
from sendline.services.providers import (
    HttpFields,
    Progress,
    ProviderLine,
    TwilioFields,
    add_provider,
    list_providers,
    move_provider,
    new_secret_key,
    remove_provider,
    rotate_secrets,
    send_test_message,
    watch_test_message,
)

app = typer.Typer(
    help="SMS providers per account (Twilio, HTTP gateways), in failover order.",
    no_args_is_help=True,
)


class Kind(StrEnum):
    twilio = "twilio"
    http = "http"


AccountArg = Annotated[str, typer.Argument(help="Account name or id.")]
ProviderArg = Annotated[str, typer.Argument(help="Provider id (7) or name (twilio:7).")]
TWILIO_ONLY = ("--account-sid", "--auth-token-stdin", "--messaging-service-sid")


@app.command("add")
@guarded
def add_command(
    account: AccountArg,
    kind: Annotated[Kind, typer.Argument(help="twilio or http.")],
    account_sid: Annotated[str | None, typer.Option(help="Twilio: AC + 32 hex.")] = None,
    auth_token: Annotated[
        str | None,
        typer.Option(
            envvar="TWILIO_AUTH_TOKEN",
            show_envvar=True,
            help="Twilio: the auth token (better: TWILIO_AUTH_TOKEN or --auth-token-stdin, "
            "which keep it out of the shell history).",
        ),
    ] = None,
    auth_token_stdin: Annotated[
        bool, typer.Option(help="Twilio: read the auth token from standard input.")
    ] = False,
    from_number: Annotated[
        str | None, typer.Option("--from", help="The from-number, E.164 (+14155550100).")
    ] = None,
    messaging_service_sid: Annotated[
        str | None,
        typer.Option(help="Twilio: a Messaging Service (MG + 32 hex) instead of --from."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="HTTP gateway: its YAML config file.")] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(help="HTTP gateway: a secret its config refers to, NAME=VALUE (repeat)."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="A name for people.")] = None,
    position: Annotated[
        int | None, typer.Option(help="Place in the failover order (1 first; default last).")
    ] = None,
    carrier_confirms_optout: Annotated[
        bool | None,
        typer.Option(
            "--carrier-confirms-optout/--no-carrier-confirms-optout",
            help="The carrier answers STOP itself, so Sendline sends no confirmation "
            "(default: yes for twilio, no for http).",
        ),
    ] = None,
) -> None:
    """Add a provider to an account. Its secrets are stored sealed (SENDLINE_SECRET_KEY)."""
    fields: TwilioFields | HttpFields
    if kind is Kind.twilio:
        if config is not None or secret:
            raise usage_error("--config and --secret are for http providers")
        if account_sid is None:
            raise usage_error("twilio needs --account-sid AC...")
        token = _auth_token(auth_token, auth_token_stdin)
        fields = TwilioFields(account_sid, token, from_number, messaging_service_sid)
    else:
        # (--auth-token is not refused: it may be a TWILIO_AUTH_TOKEN left in the env.)
        if account_sid or auth_token_stdin or messaging_service_sid:
            raise usage_error(f"{', '.join(TWILIO_ONLY)} are for twilio providers")
        if config is None:
            raise usage_error("http needs --config FILE.yaml")
        fields = HttpFields(_read_config(config), _secrets(secret or []), from_number)
    with bootstrap.opened() as runtime:
        added = add_provider(
            runtime.sessions,
            runtime.settings,
            account,
            fields,
            label=label,
            position=position,
            carrier_confirms_optout=carrier_confirms_optout,
        )
    line = added.provider
    console.print(f"added {line.name} at position {line.position}: {_describe(line)}")
    for warning in added.warnings:
        err_console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)


@app.command("list")
@guarded
def list_command(
    account: AccountArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Show an account's providers in failover order (masked: no secret, no full number)."""
    with open_store() as sessions:
        found = list_providers(sessions, account)
    if as_json:
        console.print_json(json.dumps([asdict(line) for line in found.providers]))
        return
    if not found.providers:
        console.print(f"{found.account_name} has no provider: it sends through the sandbox")
        return
    table = Table("position", "id", "kind", "label", "account", "sender", "carrier confirms STOP")
    for line in found.providers:
        table.add_row(
            str(line.position),
            line.name,
            line.kind,
            line.label,
            line.identity,
            line.sender,
            "yes" if line.carrier_confirms_optout else "no",
        )
    console.print(table)


@app.command("remove")
@guarded
def remove_command(account: AccountArg, provider: ProviderArg) -> None:
    """Remove a provider (refused while one of its messages awaits reconciliation)."""
    with open_store() as sessions:
        removed = remove_provider(sessions, account, provider)
    console.print(f"removed {removed.name} ({removed.label}); the ones after it moved up")


@app.command("move")
@guarded
def move_command(
    account: AccountArg,
    provider: ProviderArg,
    position: Annotated[int, typer.Option(help="The new place, 1 first.")],
) -> None:
    """Change a provider's place in the failover order."""
    with open_store() as sessions:
        order = move_provider(sessions, account, provider, position)
    console.print("failover order: " + ", ".join(f"{p.position}. {p.name}" for p in order))


@app.command("test")
@guarded
def test_command(
    account: AccountArg,
    to: Annotated[str, typer.Option(help="A consenting contact's number.")],
    timeout: Annotated[
        float, typer.Option(min=1.0, max=3600.0, help="Seconds to wait for the receipt.")
    ] = 60.0,
) -> None:
    """Send one real message to a consenting contact and wait for its delivery receipt.

    It goes through the normal checks (consent, clause, credits) and a running worker
    (`sendline worker` or `sendline serve`) sends it through the account's providers."""
    with open_store() as sessions:
        queued = send_test_message(sessions, account, to)
        through = ", ".join(queued.providers) or "the sandbox (no provider configured)"
        console.print(
            f"test message {queued.message_id} to {queued.to} queued for "
            f"{queued.account_name}, through {through}"
        )
        watch_test_message(sessions, queued.message_id, timeout=timeout, on_change=_progress)
    console.print("delivered: the provider works")


@app.command("rotate-secrets")
@guarded
def rotate_command() -> None:
    """Re-seal every provider secret with the newest key (the first of SENDLINE_SECRET_KEY)."""
    with bootstrap.opened() as runtime:
        count = rotate_secrets(runtime.sessions, runtime.settings)
    console.print(
        f"re-sealed {count} provider secret(s) with the newest key; older keys may now be "
        "dropped from SENDLINE_SECRET_KEY"
    )


@app.command("new-key")
def new_key_command() -> None:
    """Print a new key for SENDLINE_SECRET_KEY (put it first, then rotate-secrets)."""
    console.print(new_secret_key())
    err_console.print(
        "put it first in SENDLINE_SECRET_KEY (NEW,OLD), run `sendline providers "
        "rotate-secrets`, then drop OLD",
        soft_wrap=True,
    )


def _auth_token(given: str | None, from_stdin: bool) -> str:
    if from_stdin:  # asked for explicitly: wins over a TWILIO_AUTH_TOKEN left in the env
        return sys.stdin.readline().strip()
    if given is None:
        raise usage_error("twilio needs an auth token: --auth-token-stdin or TWILIO_AUTH_TOKEN")
    return given


def _read_config(path: Path) -> str:
    with path.open("rb") as file:
        raw = file.read(MAX_CONFIG + 1)  # over the cap is refused (by the service) unread
    try:  # cut at the cap, a character may be split: that file is refused for its size
        return raw.decode("utf-8", errors="replace" if len(raw) > MAX_CONFIG else "strict")
    except UnicodeDecodeError:
        raise usage_error(f"--config {path} is not UTF-8 text") from None


def _secrets(pairs: list[str]) -> dict[str, str]:
    secrets: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            # Not echoed: what was typed may be the secret itself.
            raise usage_error("a --secret is NAME=VALUE")
        if name.strip() in secrets:
            raise usage_error(f"--secret {name.strip()[:64]} is given twice")
        secrets[name.strip()] = value
    return secrets


def _describe(line: ProviderLine) -> str:
    who = f" ({line.identity})" if line.identity != "-" else ""
    confirms = (
        "the carrier confirms opt-outs"
        if line.carrier_confirms_optout
        else ("Sendline confirms opt-outs")
    )
    return f"{line.label}{who}, from {line.sender}; {confirms}"


def _progress(now: Progress) -> None:
    via = f" via {now.provider}" if now.provider else ""
    code = f" [{now.error_code}]" if now.error_code else ""
    detail = f": {now.detail}" if now.detail else ""
    console.print(f"  {now.status}{via}{code}{detail}", soft_wrap=True)
