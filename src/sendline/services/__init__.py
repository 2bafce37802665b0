"""The use cases: what the CLI calls today and the API and web pages will call.

A service function is one thing a user does (import contacts, release held messages,
send an event, record consent...). It takes a session factory from `bootstrap` and plain
values, runs in one transaction of its own (all or nothing), and returns plain values
(dataclasses, never ORM objects bound to a closed session). It raises `SendlineError`s
with stable codes; the shells (cli/, api/, web/) only parse input, call a service and
map its errors to an exit status, an HTTP status or a form message.

Modules are split by what the user works on: `accounts`, `contacts`, `automations`,
`messages`, `inbox`.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from sendline.errors import InvalidInput, NotFound
from sendline.store.accounts import Accounts
from sendline.store.models import Account

# How a use case is told its account: the CLI passes what the user typed (a name or a
# number, or nothing when there is one account); the API passes the key's account id, an
# int, which is never taken for a name.
AccountRef = str | int | None


def resolve_account(session: Session, ref: AccountRef) -> Account:
    """The account with id `ref` (an int), named or numbered `ref` (a str), or the only
    account when `ref` is None."""
    if isinstance(ref, int):
        account = session.get(Account, ref)
        if account is None:
            raise NotFound(f"no account {ref}")
        return account
    accounts = Accounts(session)
    if ref is not None:
        return accounts.resolve(ref)
    every = accounts.list()
    if len(every) == 1:
        return every[0]
    if not every:
        raise NotFound("no accounts yet: create one with `sendline accounts create`")
    raise InvalidInput(f"{len(every)} accounts exist: say which one with --account NAME")


__all__ = ["AccountRef", "resolve_account"]
