"""`sendline contacts create|update|delete|tag|untag|subscribe|unsubscribe|opt-in|opt-out`.

Each parses, calls `services.contacts` (which goes through the engine's actions, so tag,
list and field triggers fire) and prints what changed and the runs it started.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer

from sendline.cli.common import console
from sendline.cli.db import AccountOption, guarded, open_store
from sendline.errors import InvalidInput
from sendline.services import contacts as service
from sendline.services.contacts import ContactChange
from sendline.store.contact_values import UNSET
from sendline.store.models import CONSENT_METHODS

ContactArgument = Annotated[str, typer.Argument(help="Contact id, email or phone number.")]
FieldOption = Annotated[
    list[str] | None,
    typer.Option("--field", help="A custom field KEY=VALUE (KEY= clears it); repeatable."),
]
_METHODS = ", ".join(CONSENT_METHODS)


def create(
    account: AccountOption = None,
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone, stored as given (R6).")] = None,
    first_name: Annotated[str | None, typer.Option(help="First name.")] = None,
    last_name: Annotated[str | None, typer.Option(help="Last name.")] = None,
    field: FieldOption = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag; repeatable.")] = None,
    list_name: Annotated[
        list[str] | None, typer.Option("--list", help="A list to subscribe to; repeatable.")
    ] = None,
) -> None:
    """Create a contact (consent is recorded separately, with `contacts opt-in`)."""
    with open_store() as sessions:
        change = service.create(
            sessions,
            account,
            email=email,
            phone=phone,
            first_name=first_name,
            last_name=last_name,
            fields=_fields(field),
            tags=tag or [],
            lists=list_name or [],
        )
    _print("created", change)


def update(
    contact: ContactArgument,
    account: AccountOption = None,
    email: Annotated[str | None, typer.Option(help="New email ('' clears it).")] = None,
    phone: Annotated[str | None, typer.Option(help="New phone, stored as given.")] = None,
    first_name: Annotated[str | None, typer.Option(help="New first name.")] = None,
    last_name: Annotated[str | None, typer.Option(help="New last name.")] = None,
    field: FieldOption = None,
) -> None:
    """Change a contact's attributes; field_changed triggers fire for what changed."""
    with open_store() as sessions:
        change = service.update(
            sessions,
            account,
            contact,
            email=UNSET if email is None else email,
            phone=UNSET if phone is None else phone,
            first_name=UNSET if first_name is None else first_name,
            last_name=UNSET if last_name is None else last_name,
            fields=_fields(field),
        )
    _print("updated" if change.changed else "unchanged", change)


def delete(contact: ContactArgument, account: AccountOption = None) -> None:
    """Delete a contact who has no consent records, messages or replies."""
    with open_store() as sessions:
        contact_id = service.delete(sessions, account, contact)
    console.print(f"deleted contact {contact_id}")


def tag(
    contact: ContactArgument,
    tags: Annotated[list[str], typer.Argument(help="Tags to add.")],
    account: AccountOption = None,
) -> None:
    """Tag a contact (tag_added triggers fire for each new tag)."""
    with open_store() as sessions:
        _print("tagged", service.tag(sessions, account, contact, tags))


def untag(
    contact: ContactArgument,
    tags: Annotated[list[str], typer.Argument(help="Tags to remove.")],
    account: AccountOption = None,
) -> None:
    """Remove tags from a contact."""
    with open_store() as sessions:
        _print("untagged", service.untag(sessions, account, contact, tags))


def subscribe(
    contact: ContactArgument,
    list_name: Annotated[str, typer.Argument(metavar="LIST", help="The list (created if new).")],
    account: AccountOption = None,
) -> None:
    """Subscribe a contact to a list (list_subscribed triggers fire)."""
    with open_store() as sessions:
        _print("subscribed", service.subscribe(sessions, account, contact, list_name))


def unsubscribe(
    contact: ContactArgument,
    list_name: Annotated[str, typer.Argument(metavar="LIST", help="The list.")],
    account: AccountOption = None,
) -> None:
    """Take a contact off a list (their SMS consent is not changed: see `opt-out`)."""
    with open_store() as sessions:
        _print("unsubscribed", service.unsubscribe(sessions, account, contact, list_name))


MethodOption = Annotated[str, typer.Option(help=f"How it was captured: {_METHODS}.")]
DisclosureOption = Annotated[
    str | None, typer.Option(help="The exact text the contact saw (required for an opt-in).")
]
IpOption = Annotated[str | None, typer.Option("--ip", help="The contact's IP address.")]
AgentOption = Annotated[str | None, typer.Option(help="The contact's browser user agent.")]
SourceOption = Annotated[str, typer.Option(help="Where it was captured (a form, a shop).")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who records it (default: your login name).")
]


def opt_in(
    contact: ContactArgument,
    method: MethodOption,
    account: AccountOption = None,
    disclosure: DisclosureOption = None,
    ip: IpOption = None,
    user_agent: AgentOption = None,
    source: SourceOption = "manual",
    by: ByOption = None,
) -> None:
    """Record an opt-in captured elsewhere, with its proof (R4: an append-only record)."""
    _consent("opt_in", contact, method, account, disclosure, ip, user_agent, source, by)


def opt_out(
    contact: ContactArgument,
    method: MethodOption,
    account: AccountOption = None,
    disclosure: DisclosureOption = None,
    ip: IpOption = None,
    user_agent: AgentOption = None,
    source: SourceOption = "manual",
    by: ByOption = None,
) -> None:
    """Record an opt-out captured elsewhere (it wins over any queued message, R13)."""
    _consent("opt_out", contact, method, account, disclosure, ip, user_agent, source, by)


def register(app: typer.Typer) -> None:
    for name, command in (
        ("create", create),
        ("update", update),
        ("delete", delete),
        ("tag", tag),
        ("untag", untag),
        ("subscribe", subscribe),
        ("unsubscribe", unsubscribe),
        ("opt-in", opt_in),
        ("opt-out", opt_out),
    ):
        app.command(name)(guarded(command))


def _consent(kind: str, contact: str, method: str, account: str | None, *proof: Any) -> None:
    disclosure, ip, user_agent, source, by = proof
    with open_store() as sessions:
        event = service.record_consent(
            sessions,
            account,
            contact,
            kind=kind,
            method=method,
            disclosure=disclosure,
            ip=ip,
            user_agent=user_agent,
            source=source,
            recorded_by=by or _login(),
        )
    console.print(
        f"recorded {event.kind} via {event.method} for contact {contact} "
        f"(event {event.id}, by {event.recorded_by})",
        markup=False,
    )


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


def _fields(items: list[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    values: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--field {item!r} must look like KEY=VALUE", code="bad_field")
        values[key.strip()] = value if value != "" else None
    return values


def _print(verb: str, change: ContactChange) -> None:
    person = change.contact
    started = f"; {change.runs_started} automation runs started" if change.runs_started else ""
    console.print(
        f"{verb} contact {person.id} ({person.email or person.phone or '-'}): "
        f"tags {', '.join(person.tags) or '-'}; lists {', '.join(person.lists) or '-'}{started}",
        markup=False,
    )
