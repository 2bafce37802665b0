"""The one way into /api/v1: `Authorization: Bearer <key>`, checked by one dependency.

A missing, malformed, unknown or revoked key is the same 401 (with
`WWW-Authenticate: Bearer`): the answer does not tell which. Routes on one account's
data take `account_id` (an admin key has none: 403); every query they run is scoped
to it. The operator's routes (`/admin/...`) take `admin_caller`: an account's key
there is 403 too.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.orm import Session, sessionmaker

from sendline.api.problems import AccountKeyRequired
from sendline.services.api_keys import Caller, InvalidApiKey, authenticate


class AdminKeyRequired(AccountKeyRequired):
    """An account's key on an operator's route. (A subclass of AccountKeyRequired only
    for its 403 in `api.problems.STATUSES`: both say the key is of the wrong kind.)"""

    code = "admin_key_required"


class Authenticator:
    """The dependencies, bound to the app's database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def caller(self, request: Request) -> Caller:
        """Who sent the request (any kind of key)."""
        known = getattr(request.state, "caller", None)  # the idempotency middleware's
        if isinstance(known, Caller):
            return known
        scheme, credentials = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "bearer" or not credentials:
            raise InvalidApiKey("send an API key: Authorization: Bearer sl_live_...")
        return authenticate(self._sessions, credentials)

    def account_id(self, request: Request) -> int:
        """The account an account key belongs to; admin keys have none."""
        caller = self.caller(request)
        if caller.account_id is None:
            raise AccountKeyRequired("this route needs an account's key, not an admin key")
        return caller.account_id

    def admin_caller(self, request: Request) -> Caller:
        """The operator, calling with an admin key; an account's key is refused."""
        caller = self.caller(request)
        if caller.kind != "admin" or caller.account_id is not None:
            raise AdminKeyRequired("this route needs an admin key, not an account's key")
        return caller
