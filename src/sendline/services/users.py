"""The dashboard's people: creating users, signing in and out, server-side sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults). After `MAX_FAILURES`
wrong passwords in a row a user is locked for `LOCKOUT`: an online guesser gets five
tries per quarter hour, while the owner who mistyped waits minutes, not for ever. An
unknown email costs the same hash as a wrong password, so timing does not tell which
emails have accounts, and both get the same message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from sendline.errors import Conflict, InvalidInput, SendlineError
from sendline.services import AccountRef, resolve_account
from sendline.store.models import Account
from sendline.store.user_models import User, WebSession

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 10
MAX_PASSWORD = 200  # argon2 takes any length; a cap keeps a megabyte "password" cheap
SESSION_IDLE = timedelta(hours=12)
SESSION_MAX = timedelta(days=7)
# last_seen_at is written at most this often: on SQLite every write takes the one
# write lock, and a page view should not.
TOUCH_EVERY = timedelta(minutes=5)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_hasher = PasswordHasher()
# Verified against when the email is unknown, so that answer costs one argon2 too.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class InvalidCredentials(SendlineError):
    code = "invalid_credentials"


class UserLocked(SendlineError):
    code = "user_locked"


class SignInRequired(SendlineError):
    """No session, or one that expired or was signed out."""

    code = "sign_in_required"


@dataclass(frozen=True)
class UserView:
    id: int
    account_id: int
    account_name: str
    email: str


@dataclass(frozen=True)
class SignedIn:
    token: str  # for the cookie; never stored
    user: UserView


@dataclass(frozen=True)
class WebUser:
    """Who a request's session belongs to, and the CSRF token its forms must carry."""

    user_id: int
    account_id: int
    account_name: str
    email: str
    csrf_token: str
    session_id: int


def checked_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or not EMAIL.match(email):
        raise InvalidInput(f"{raw.strip()!r} is not an email address", field="email")
    return email


def checked_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters", field="password"
        )
    if "\x00" in password:
        raise InvalidInput("a password cannot hold a NUL character", field="password")
    return password


def create_user(
    sessions: sessionmaker[Session], account: AccountRef, email: str, password: str
) -> UserView:
    """A user who signs in to `account`'s dashboard; an email belongs to one user."""
    address, secret = checked_email(email), checked_password(password)
    hashed = _hasher.hash(secret)  # outside the transaction: it takes ~50 ms
    with sessions.begin() as session:
        owner = resolve_account(session, account)
        if session.scalar(select(User.id).where(User.email == address)) is not None:
            raise Conflict(f"a user with email {address} exists", field="email")
        row = User(account_id=owner.id, email=address, password_hash=hashed)
        session.add(row)
        session.flush()
        return UserView(row.id, owner.id, owner.name, address)


def sign_in(
    sessions: sessionmaker[Session], email: str, password: str, *, now: datetime | None = None
) -> SignedIn:
    """A new session for the user, or InvalidCredentials / UserLocked."""
    moment = now or datetime.now(UTC)
    address = email.strip().lower()
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.email == address)) if address else None
        if user is None:
            _verify(_DUMMY_HASH, password)
            raise InvalidCredentials("wrong email or password", field="password")
        if user.locked_until is not None and user.locked_until > moment:
            raise _locked(user.locked_until, moment)
        if not _verify(user.password_hash, password):
            _count_failure(user, moment)
            if user.locked_until is not None:
                # This failure locked the user: say so now rather than at the next try.
                session.commit()
                raise _locked(user.locked_until, moment)
            session.commit()  # the failure must count even though we raise
            raise InvalidCredentials("wrong email or password", field="password")
        user.failed_sign_ins, user.locked_until, user.last_sign_in_at = 0, None, moment
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        # Sessions past their end are swept as their user signs in again: no table of
        # dead sessions grows, and no extra job is needed.
        session.execute(
            delete(WebSession).where(WebSession.user_id == user.id, WebSession.expires_at <= moment)
        )
        token = secrets.token_urlsafe(32)
        session.add(
            WebSession(
                user_id=user.id,
                token_hash=_digest(token),
                csrf_token=secrets.token_urlsafe(32),
                created_at=moment,
                last_seen_at=moment,
                expires_at=moment + SESSION_MAX,
            )
        )
        account = session.get(Account, user.account_id)
        assert account is not None  # the foreign key cascades
        return SignedIn(token, UserView(user.id, account.id, account.name, user.email))


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return False


def _count_failure(user: User, moment: datetime) -> None:
    user.failed_sign_ins += 1
    if user.failed_sign_ins >= MAX_FAILURES:
        user.failed_sign_ins = 0
        user.locked_until = moment + LOCKOUT


def _locked(until: datetime, moment: datetime) -> UserLocked:
    minutes = max(1, int((until - moment).total_seconds() // 60) + 1)
    return UserLocked(
        f"too many wrong passwords: this user is locked for {minutes} more minutes",
        field="password",
    )


def session_user(
    sessions: sessionmaker[Session], token: str | None, *, now: datetime | None = None
) -> WebUser:
    """The signed-in user a session cookie stands for, or SignInRequired."""
    if not token or len(token) > 100:
        raise SignInRequired("please sign in")
    moment = now or datetime.now(UTC)
    digest = _digest(token)
    with sessions.begin() as session:
        found = session.execute(
            select(WebSession, User, Account)
            .join(User, User.id == WebSession.user_id)
            .join(Account, Account.id == User.account_id)
            .where(WebSession.token_hash == digest)
        ).first()
        if found is None or not hmac.compare_digest(found[0].token_hash, digest):
            raise SignInRequired("please sign in")
        web, user, account = found
        if web.expires_at <= moment or web.last_seen_at + SESSION_IDLE <= moment:
            session.delete(web)
            session.commit()
            raise SignInRequired("your session expired; please sign in again")
        if moment - web.last_seen_at >= TOUCH_EVERY:
            web.last_seen_at = moment
        return WebUser(user.id, account.id, account.name, user.email, web.csrf_token, web.id)


def sign_out(sessions: sessionmaker[Session], token: str | None) -> None:
    """End the session at once (it cannot be used again, even from a copied cookie)."""
    if not token:
        return
    with sessions.begin() as session:
        session.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
