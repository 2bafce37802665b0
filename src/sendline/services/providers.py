"""Providers: the carriers an account sends through (issue 13), and the test message.

An account lists its providers in failover order (`position`, 1 first); with none it
keeps the sandbox. Everything a user types is checked before anything is written (one
error naming the field, nothing stored). Secrets (an auth token, a gateway's keys) are
sealed with `SENDLINE_SECRET_KEY` before the transaction starts, so without a key the
add is refused and nothing is written in clear. No secret and no full phone number
appears in a result or an error: results carry them masked (`masking.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sendline.config import Settings
from sendline.errors import ConfigError, Conflict, InvalidInput, NotFound, SendlineError
from sendline.masking import mask_phone, mask_secret
from sendline.providers.configs import (
    HttpFields,
    TwilioFields,
    check_label,
    check_position,
    prepare_http,
    prepare_twilio,
)
from sendline.services import AccountRef, resolve_account
from sendline.services.messages import queue_test
from sendline.sms.phone import check_phone
from sendline.store.contacts import Contacts
from sendline.store.engine_models import Message, ProviderConfig
from sendline.store.models import Account
from sendline.store.provider_configs import (
    account_providers,
    find,
    name_of,
    renumber,
    sender_elsewhere,
    unsettled_messages,
)
from sendline.store.secret_box import SecretBox

FINAL = frozenset({"delivered", "undelivered", "failed", "canceled", "held"})
TEST_BODY = "Sendline test message: your SMS provider works."


@dataclass(frozen=True)
class ProviderLine:
    """A configured provider as it may be shown: ids and numbers masked, no secret."""

    id: int
    name: str  # "twilio:7": what messages.provider holds
    kind: str
    position: int
    label: str
    identity: str  # the Twilio Account SID, masked (`AC12…89`); "-" for a gateway
    sender: str  # the from-number (`+1415•••0101`) or Messaging Service SID, masked
    carrier_confirms_optout: bool


@dataclass(frozen=True)
class Added:
    provider: ProviderLine
    warnings: tuple[str, ...]


def add_provider(
    sessions: sessionmaker[Session],
    settings: Settings,
    account_ref: AccountRef,
    fields: TwilioFields | HttpFields,
    *,
    label: str | None = None,
    position: int | None = None,
    carrier_confirms_optout: bool | None = None,
) -> Added:
    """Store a provider for the account, at `position` (default: last), after checking
    every field; the secrets sealed. Nothing is stored when anything is refused."""
    twilio = isinstance(fields, TwilioFields)
    with _naming_the_field(None if twilio else "config"):
        ready = prepare_twilio(fields) if isinstance(fields, TwilioFields) else prepare_http(fields)
        label = check_label(label if label is not None else ready.label)
    # Sealed before the transaction: no key, no row (ConfigError from the box).
    sealed = SecretBox(settings.secret_keys).seal(ready.secrets) if ready.secrets else None
    confirms = ready.confirms_optout if carrier_confirms_optout is None else carrier_confirms_optout
    try:
        with sessions.begin() as session:
            account = _locked_account(session, account_ref)
            _refuse_taken_sender(session, account.id, ready.sender_number)
            rows = account_providers(session, account.id)
            with _naming_the_field("position"):
                at = check_position(position, len(rows) + 1)
            row = ProviderConfig(
                account_id=account.id,
                kind=ready.kind,
                label=label,
                settings=ready.settings,
                secret=sealed,
                sender_number=ready.sender_number,
                carrier_confirms_optout=confirms,
            )
            renumber(session, [*rows[: at - 1], row, *rows[at - 1 :]])
            line = _line(row)
    except IntegrityError:
        raise _concurrent_change() from None
    return Added(line, _warnings(settings))


@dataclass(frozen=True)
class ProviderList:
    account_name: str
    providers: list[ProviderLine]  # in failover order; empty: the sandbox


def list_providers(sessions: sessionmaker[Session], account_ref: AccountRef) -> ProviderList:
    """The account's providers in failover order (none: it sends through the sandbox)."""
    with sessions.begin() as session:
        account = resolve_account(session, account_ref)
        return ProviderList(
            account.name, [_line(row) for row in account_providers(session, account.id)]
        )


def remove_provider(
    sessions: sessionmaker[Session], account_ref: AccountRef, ref: str
) -> ProviderLine:
    """Remove a provider; the ones after it move up. Refused while a message handed to
    it may still need it to be reconciled (R17: only that provider can say whether it
    has the message, and a message is never handed to a second one)."""
    try:
        with sessions.begin() as session:
            account = _locked_account(session, account_ref)
            rows = account_providers(session, account.id)
            row = _find(rows, ref, account)
            pending = unsettled_messages(session, row)
            if pending:
                raise Conflict(
                    f"{pending} message(s) handed to {name_of(row)} have no known outcome yet; "
                    "remove it once the worker has reconciled them",
                    code="provider_in_use",
                )
            line = _line(row)
            session.delete(row)
            session.flush()
            renumber(session, [r for r in rows if r is not row])
    except IntegrityError:
        raise _concurrent_change() from None
    return line


def move_provider(
    sessions: sessionmaker[Session], account_ref: AccountRef, ref: str, position: int
) -> list[ProviderLine]:
    """Put a provider at `position` in the failover order; returns the new order."""
    try:
        with sessions.begin() as session:
            account = _locked_account(session, account_ref)
            rows = account_providers(session, account.id)
            row = _find(rows, ref, account)
            with _naming_the_field("position"):
                at = check_position(position, len(rows))
            others = [r for r in rows if r is not row]
            ordered = [*others[: at - 1], row, *others[at - 1 :]]
            renumber(session, ordered)
            return [_line(r) for r in ordered]
    except IntegrityError:
        raise _concurrent_change() from None


def rotate_secrets(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Re-seal every provider secret with the newest key (the first of
    SENDLINE_SECRET_KEY); returns how many. All or nothing: one secret no key opens
    stops it, naming its provider, with nothing changed."""
    if not settings.secret_keys:
        raise ConfigError("rotating provider secrets needs SENDLINE_SECRET_KEY")
    box = SecretBox(settings.secret_keys)
    with sessions.begin() as session:
        rows = session.scalars(
            select(ProviderConfig)
            .where(ProviderConfig.secret.is_not(None))
            .order_by(ProviderConfig.id)
        ).all()
        for row in rows:
            try:
                row.secret = box.reseal(row.secret or "")
            except SendlineError as exc:
                where = f"provider {name_of(row)} (account {row.account_id})"
                raise SendlineError(f"{where}: {exc.message}", code=exc.code) from None
        return len(rows)


def new_secret_key() -> str:
    """A fresh key for SENDLINE_SECRET_KEY (Fernet: 32 random bytes, url-safe base64)."""
    return Fernet.generate_key().decode("ascii")


# -- checking what was typed -----------------------------------------------------------

# The input field each refusal of `providers.configs` is about (the API names it; the
# CLI's messages already say the option).
_FIELD_OF_CODE = {
    "invalid_account_sid": "account_sid",
    "invalid_auth_token": "auth_token",
    "invalid_sender": "from_number",
    "invalid_from_number": "from_number",
    "invalid_messaging_service_sid": "messaging_service_sid",
    "invalid_config": "config",
    "invalid_secret": "secrets",
    "missing_secret": "secrets",
    "unknown_secret": "secrets",
    "invalid_label": "label",
    "invalid_position": "position",
    "invalid_to": "to",
}


@contextmanager
def _naming_the_field(default: str | None) -> Iterator[None]:
    """Give an InvalidInput raised inside the field it is about: by its code, else
    `default` (a gateway config's own errors are all about `config`)."""
    try:
        yield
    except InvalidInput as exc:
        if exc.field is None:
            exc.field = _FIELD_OF_CODE.get(exc.code, default)
        raise


def _warnings(settings: Settings) -> tuple[str, ...]:
    if settings.public_url is not None:
        return ()
    return (
        "SENDLINE_PUBLIC_URL is not set: the provider cannot reach this Sendline with "
        "status callbacks or inbound texts (delivery receipts and replies will not arrive)",
    )


# -- the rows --------------------------------------------------------------------------


def _locked_account(session: Session, ref: AccountRef) -> Account:
    """The account, locked against a concurrent change to its providers (PostgreSQL;
    SQLite serializes writers anyway)."""
    account = resolve_account(session, ref)
    session.execute(select(Account.id).where(Account.id == account.id).with_for_update())
    return account


def _find(rows: Sequence[ProviderConfig], ref: str, account: Account) -> ProviderConfig:
    found = find(rows, ref)
    if found is None:
        raise NotFound(f"no provider {ref.strip()[:40]!r} in account {account.name}")
    return found


def _refuse_taken_sender(session: Session, account_id: int, sender: str | None) -> None:
    """A number belongs to one account: inbound texts to it, and the token that signs
    them, are found by it."""
    if sender is not None and sender_elsewhere(session, account_id, sender):
        raise Conflict(
            f"the from-number {mask_phone(sender)} is already configured for another "
            "account (inbound texts to a number must reach one account)",
            code="sender_taken",
        )


def _concurrent_change() -> Conflict:
    return Conflict(
        "the account's providers were changed at the same time by someone else; try again",
        code="concurrent_change",
    )


def _line(row: ProviderConfig) -> ProviderLine:
    settings = row.settings or {}
    service = settings.get("messaging_service_sid")
    if row.sender_number:
        sender = mask_phone(row.sender_number)
    else:
        sender = mask_secret(service) if service else "-"
    return ProviderLine(
        id=row.id,
        name=name_of(row),
        kind=row.kind,
        position=row.position,
        label=row.label,
        identity=mask_secret(settings.get("account_sid")) if row.kind == "twilio" else "-",
        sender=sender,
        carrier_confirms_optout=row.carrier_confirms_optout,
    )


# -- the test message ------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedTest:
    """A test message queued: its id, who it goes to (masked) and through what."""

    message_id: int
    account_name: str
    to: str  # masked
    providers: tuple[str, ...]  # the account's chain by name; () is the sandbox


@dataclass(frozen=True)
class Progress:
    """A message as the test watches it."""

    status: str
    provider: str | None
    error_code: str | None
    detail: str | None

    @property
    def final(self) -> bool:
        return self.status in FINAL


def send_test_message(
    sessions: sessionmaker[Session],
    account_ref: AccountRef,
    to: str,
    now: datetime | None = None,
    *,
    provider: str | None = None,
) -> QueuedTest:
    """Queue one real message to a consenting contact with number `to`, through the
    normal pipeline (plan, consent, clause, credits); transactional, so quiet hours and
    the frequency cap do not delay it. A check that would hold it refuses instead, with
    nothing stored: a test should not leave a held message behind. With `provider` (an
    id or name), that provider must be one of the account's (NotFound otherwise); the
    message still goes through the account's failover chain, as every message does."""
    e164 = check_phone(to).e164
    if e164 is None:
        raise InvalidInput(
            f"--to {mask_phone(to)} is not a valid mobile number", code="invalid_to", field="to"
        )
    with sessions.begin() as session:
        account = resolve_account(session, account_ref)
        if provider is not None:
            _find(account_providers(session, account.id), provider, account)
        contact = Contacts(session, account.id).find_by_phone(e164)
        if contact is None:
            raise NotFound(
                f"no contact has {mask_phone(e164)} in account {account.name}: a test goes "
                "only to a contact who opted in (create one and record the opt-in first)"
            )
        if contact.sms_consent != "opted_in":
            raise SendlineError(
                f"contact {contact.id} ({mask_phone(e164)}) has not opted in to SMS from "
                f"{account.name}; a test goes only to a consenting contact",
                code="no_consent",
            )
        message = queue_test(session, account, contact, TEST_BODY, now or datetime.now(UTC))
        if message.status == "held":  # rolled back as it raises
            raise SendlineError(
                f"the test message would be held: {message.detail}",
                code=message.held_reason or "held",
            )
        chain = tuple(name_of(row) for row in account_providers(session, account.id))
        return QueuedTest(message.id, account.name, mask_phone(e164), chain)


def watch_test_message(
    sessions: sessionmaker[Session],
    message_id: int,
    *,
    timeout: float,
    on_change: Callable[[Progress], None],
    poll: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
) -> Progress:
    """Follow a test message until it is final, calling `on_change` at each change.
    Returns when it is delivered; raises when it ends otherwise (undelivered, failed:
    the provider's error code and words), or when `timeout` seconds pass first."""
    deadline = clock() + timeout
    seen: Progress | None = None
    while True:
        now = _progress(sessions, message_id)
        if now != seen:
            seen = now
            on_change(now)
        if now.status == "delivered":
            return now
        if now.final:
            why = f"{now.error_code}: {now.detail}" if now.error_code else now.detail
            raise SendlineError(
                f"the test message ended {now.status} ({why or 'no reason given'})",
                code="provider_test_failed",
            )
        if clock() >= deadline:
            raise SendlineError(_timed_out(now, timeout), code="test_timeout")
        time.sleep(poll)


def _progress(sessions: sessionmaker[Session], message_id: int) -> Progress:
    with sessions() as session:
        row = session.execute(
            select(
                Message.status,
                Message.provider,
                Message.error_code,
                Message.detail,
                Message.to_e164,
            ).where(Message.id == message_id)
        ).one_or_none()
    if row is None:
        raise NotFound(f"no message {message_id}")
    detail = row.detail
    if detail and row.to_e164:  # a provider's words may quote the number
        detail = detail.replace(row.to_e164, mask_phone(row.to_e164))
    return Progress(row.status, row.provider, row.error_code, detail)


def _timed_out(progress: Progress, timeout: float) -> str:
    if progress.status == "queued":
        hint = "no worker has sent it: is `sendline worker` (or `sendline serve`) running?"
        if progress.detail:
            hint = f"it waits: {progress.detail}"
    elif progress.status == "sent":
        hint = (
            "the provider accepted it but no delivery receipt came: can the provider "
            "reach SENDLINE_PUBLIC_URL?"
        )
    else:
        hint = f"its outcome is not known yet ({progress.detail or progress.status})"
    return f"no final status within {timeout:g} s: the message is {progress.status}; {hint}"


__all__ = [
    "Added",
    "HttpFields",
    "ProviderLine",
    "ProviderList",
    "Progress",
    "QueuedTest",
    "TwilioFields",
    "add_provider",
    "list_providers",
    "move_provider",
    "new_secret_key",
    "remove_provider",
    "rotate_secrets",
    "send_test_message",
    "watch_test_message",
]
